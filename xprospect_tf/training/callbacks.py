"""The callbacks every training run uses: checkpoints, resume, CSV log, TensorBoard.

A run directory holds::

    best.keras        the model with the best ``monitor`` value so far (+ best.keras.json)
    last.keras        the model after the last finished epoch (+ last.keras.json)
    backup/           AtomicBackupAndRestore state (the last two finished epochs):
                      a killed ``fit`` resumes from the last finished epoch when
                      called again with the same run_dir
    history.csv       one row per epoch (appended across resumed fits, never twice)
    logs/             TensorBoard event files

Model files and backups are written atomically: a crash mid-save never leaves a
truncated file that looks complete, and a damaged backup is skipped with a warning.
"""

import csv
import glob
import hashlib
import importlib.util
import json
import logging
import math
import os
import re
import shutil

import keras
import numpy as np

from xprospect_tf.files import atomic_path, fsync_path, remove_temporaries, write_json, write_text

log = logging.getLogger(__name__)

BEST = "best.keras"
LAST = "last.keras"
BACKUP = "backup"
HISTORY = "history.csv"
LOGS = "logs"
_MAX_METRICS = ("psnr", "ssim", "acc")


class AtomicCheckpoint(keras.callbacks.Callback):
    """Save the whole model to a ``.keras`` file atomically at the end of epochs.

    With ``monitor=None`` it saves after every epoch (the last model); otherwise
    only when ``logs[monitor]`` improves. The best value is kept in
    ``filepath + ".json"`` so a resumed run does not overwrite a better model.

    Args:
        filepath: the ``.keras`` file to write.
        monitor: a log key (``"val_loss"``) or None to save every epoch.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (max for PSNR/SSIM/accuracy, else min).

    Example:
        >>> import os, tempfile
        >>> import keras, numpy as np
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> model.compile("sgd", "mse")
        >>> x, y = np.ones((4, 2), "float32"), np.zeros((4, 1), "float32")
        >>> with tempfile.TemporaryDirectory() as d:
        ...     best = AtomicCheckpoint(os.path.join(d, "best.keras"), "val_loss")
        ...     _ = model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0, callbacks=[best])
        ...     sorted(os.listdir(d))
        ['best.keras', 'best.keras.json']
        >>> best.mode
        'min'
    """

    def __init__(self, filepath, monitor=None, mode="auto"):
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        if mode == "auto":
            mode = "max" if monitor and any(k in monitor for k in _MAX_METRICS) else "min"
        self.mode = mode
        self.best = -math.inf if mode == "max" else math.inf
        self._warned = False

    @property
    def state_path(self):
        return self.filepath + ".json"

    def on_train_begin(self, logs=None):
        if self.monitor and os.path.exists(self.state_path):
            with open(self.state_path, encoding="utf-8") as f:
                state = json.load(f)
            if state.get("monitor") == self.monitor and state.get("best") is not None:
                self.best = state["best"]

    def _improved(self, value):
        return value > self.best if self.mode == "max" else value < self.best

    def on_epoch_end(self, epoch, logs=None):
        value = None
        if self.monitor:
            value = (logs or {}).get(self.monitor)
            if value is None:
                if not self._warned:
                    log.warning("%s: %r is not in the logs; not saving", self.filepath, self.monitor)
                    self._warned = True
                return
            value = float(value)
            if not self._improved(value):
                return
            self.best = value
        with atomic_path(self.filepath) as tmp:
            self.model.save(tmp)
        write_json(self.state_path, {"epoch": epoch, "monitor": self.monitor, "best": value})


class AtomicBackupAndRestore(keras.callbacks.Callback):
    """Back up the training state after every epoch; a new ``fit`` resumes from it.

    Like ``keras.callbacks.BackupAndRestore``, but a kill at any moment never
    stops a run from resuming: each backup is ``epoch-NNNNN.weights.h5`` (the
    model's and the optimizer's variables) plus ``epoch-NNNNN.json`` (the next
    epoch, the file's size and SHA-256, Keras' global seed-generator state),
    both written atomically and fsync'ed, the JSON last. The newest ``keep``
    backups are kept. On restore each is verified (checksum, then loading it)
    from the newest on; a damaged one is skipped with a warning, and when none
    is usable training starts again from epoch 0 with the model as it was.

    A backup of epoch ``e`` is written when epoch ``e + 1`` begins (and when
    training ends), after every callback has finished epoch ``e``, so the
    outputs of a restored epoch are all complete whatever the callback order.
    Put this callback first: its ``on_train_begin`` restores the state and
    drops the rows of epochs that will run again from ``history`` before a
    ``CSVLogger`` appends to it.

    Args:
        backup_dir: the backup folder (created).
        keep: how many backups to keep (at least 1; 2 survives a damaged one).
        history: a ``CSVLogger`` file whose rows of epochs at or after the
            restored epoch are dropped on restore (``None``: none).
        delete_on_end: delete ``backup_dir`` when ``fit`` ends (else the final
            state is backed up, so that calling ``fit`` again trains no epoch).

    Example:
        >>> import tempfile
        >>> import numpy as np
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> model.compile(optimizer="sgd", loss="mse")
        >>> x, y = np.ones((4, 2)), np.ones((4, 1))
        >>> with tempfile.TemporaryDirectory() as d:
        ...     backup = AtomicBackupAndRestore(d + "/backup", delete_on_end=False)
        ...     _ = model.fit(x, y, epochs=3, callbacks=[backup], verbose=0)
        ...     again = AtomicBackupAndRestore(d + "/backup", delete_on_end=False)
        ...     backup.backups(), again.restore(model)  # the newest two kept; a new fit starts at epoch 3
        ([3, 2], 3)
    """

    def __init__(self, backup_dir, keep=2, history=None, delete_on_end=True):
        super().__init__()
        if int(keep) < 1:
            raise ValueError(f"keep={keep}: keep at least one backup")
        self.backup_dir = os.fspath(backup_dir)
        self.keep = int(keep)
        self.history = None if history is None else os.fspath(history)
        self.delete_on_end = delete_on_end
        self.restored_epoch = None
        self._pending = None

    def backups(self):
        """The backups' epochs, newest first (only those whose JSON exists)."""
        epochs = []
        for path in glob.glob(os.path.join(glob.escape(self.backup_dir), "epoch-*.json")):
            m = re.fullmatch(r"epoch-(\d+)\.json", os.path.basename(path))
            if m:
                epochs.append(int(m.group(1)))
        return sorted(epochs, reverse=True)

    def _paths(self, epoch):
        stem = os.path.join(self.backup_dir, f"epoch-{epoch:05d}")
        return stem + ".weights.h5", stem + ".json"

    def restore(self, model=None):
        """Load the newest usable backup into the model; returns the epoch to start at (0: none).

        Called by ``on_train_begin``; call it before ``fit`` (with the model) to
        know the epoch first, e.g. to build a dataset that starts there, then
        pass it as ``fit(initial_epoch=...)``.
        """
        if model is not None:
            self.set_model(model)
        if self.restored_epoch is not None:
            return self.restored_epoch
        remove_temporaries(self.backup_dir)
        epochs = self.backups()
        start = 0
        if epochs or _legacy_backup(self.backup_dir):
            start = self._restore_newest(epochs)
        self.restored_epoch = start
        if self.history:
            drop_history_rows(self.history, start)
        return start

    def _restore_newest(self, epochs):
        model = self.model
        if not model.built:
            raise ValueError(f"{self.backup_dir}: build the model before restoring its backup")
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        before = [np.array(v) for v in model.variables] + _optimizer_values(model)
        candidates = [(e, *self._paths(e)) for e in epochs]
        legacy = _legacy_backup(self.backup_dir)
        if legacy:
            candidates.append(legacy)
        for epoch, weights, meta_path in candidates:
            try:
                meta = _verified_meta(weights, meta_path, epoch)
                model.load_weights(weights)
            except Exception as e:  # a damaged backup: any error of h5py/keras/json
                log.warning("%s: damaged backup (%s: %s); trying the previous one", weights,
                            type(e).__name__, e)
                continue
            _set_global_seed_state(meta.get("global_seed_state"))
            log.info("%s: resuming at epoch %d", self.backup_dir, meta["epoch"] + 1)
            return int(meta["epoch"])
        for v, value in zip(list(model.variables) + _optimizer_variables(model), before):
            v.assign(value)
        log.warning("%s: no usable backup; training starts again from epoch 1", self.backup_dir)
        return 0

    def save(self, epoch):
        """Back up the current state as 'the next epoch to run is ``epoch``'."""
        os.makedirs(self.backup_dir, exist_ok=True)
        weights, meta_path = self._paths(epoch)
        with atomic_path(weights, durable=True) as tmp:
            self.model.save_weights(tmp)
        meta = {"epoch": epoch, "bytes": os.path.getsize(weights), "sha256": _sha256(weights),
                "global_seed_state": _global_seed_state()}
        write_text(meta_path, json.dumps(meta, indent=2) + "\n")  # the commit mark: written last
        _fsync_json(meta_path)
        for old in self.backups()[self.keep:]:
            for path in reversed(self._paths(old)):
                if os.path.exists(path):
                    os.remove(path)

    def on_train_begin(self, logs=None):
        self.model._initial_epoch = self.restore() or None  # None: fit's own initial_epoch
        self._pending = None

    def on_epoch_begin(self, epoch, logs=None):
        if self._pending is not None:
            self.save(self._pending)
            self._pending = None

    def on_epoch_end(self, epoch, logs=None):
        self._pending = epoch + 1

    def on_train_end(self, logs=None):
        self.restored_epoch = None  # a later fit restores again
        if self.delete_on_end:
            shutil.rmtree(self.backup_dir, ignore_errors=True)
        elif self._pending is not None:
            self.save(self._pending)
        self._pending = None


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_json(path):
    fsync_path(path)
    fsync_path(os.path.dirname(os.path.abspath(path)))


def _verified_meta(weights, meta_path, epoch):
    """A backup's metadata once its weights file matches its size and checksum."""
    if meta_path is None:  # a backup of keras.callbacks.BackupAndRestore: no checksum
        return {"epoch": epoch}
    with open(meta_path, encoding="utf-8") as f:
        meta = json.load(f)
    if meta.get("epoch") != epoch:
        raise ValueError(f"{meta_path} names epoch {meta.get('epoch')}")
    size = os.path.getsize(weights)
    if size != meta["bytes"]:
        raise ValueError(f"{size} bytes instead of {meta['bytes']}")
    if _sha256(weights) != meta["sha256"]:
        raise ValueError("checksum mismatch")
    return meta


def _legacy_backup(backup_dir):
    """``(epoch, weights, None)`` of a backup written by ``keras.callbacks.BackupAndRestore``, or None."""
    weights = os.path.join(backup_dir, "latest.weights.h5")
    meta = os.path.join(backup_dir, "training_metadata.json")
    if not (os.path.exists(weights) and os.path.exists(meta)):
        return None
    try:
        with open(meta, encoding="utf-8") as f:
            return int(json.load(f)["epoch"]), weights, None
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("%s: unreadable; ignoring that backup", meta)
        return None


def _optimizer_variables(model):
    return list(model.optimizer.variables) if model.optimizer is not None else []


def _optimizer_values(model):
    return [np.array(v) for v in _optimizer_variables(model)]


def _global_seed_state():
    """The state of Keras' global seed generator (``keras.random`` calls without a seed), if used."""
    try:
        from keras.src.backend.common import global_state
        from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR
    except ImportError:
        return None
    generator = global_state.get_global_attribute(GLOBAL_SEED_GENERATOR)
    return None if generator is None else np.array(generator.state).tolist()


def _set_global_seed_state(state):
    if state is None:
        return
    from keras.src.random.seed_generator import global_seed_generator

    global_seed_generator().state.assign(np.array(state, dtype=global_seed_generator().state.dtype))


def drop_history_rows(path, first_epoch):
    """Truncate a ``CSVLogger`` file to its header and the rows of epochs before ``first_epoch``.

    Also drops a half-written last line. The file is cut in place (one
    ``truncate``), so a logger that appends to it afterwards continues cleanly.

    Returns:
        The number of rows kept (``None`` when there is no file).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     with open(d + "/h.csv", "w") as f:
        ...         _ = f.write("epoch,loss\\n0,1.0\\n1,0.5\\n2,0.4\\n2,0.4")
        ...     drop_history_rows(d + "/h.csv", 2), open(d + "/h.csv").read()
        (2, 'epoch,loss\\n0,1.0\\n1,0.5\\n')
    """
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        data = f.read()
    keep, rows, column = 0, 0, None
    offset = 0
    for line in data.splitlines(keepends=True):
        end = offset + len(line)
        if not line.endswith(b"\n"):
            break
        text = line.decode("utf-8", errors="replace")
        if column is None:
            header = next(csv.reader([text]))
            if "epoch" not in header:
                return None  # not a CSVLogger file; leave it alone
            column = header.index("epoch")
            keep = end
        else:
            fields = next(csv.reader([text]), [])
            try:
                epoch = int(float(fields[column]))
            except (IndexError, ValueError):
                break
            if epoch >= first_epoch:
                break
            keep, rows = end, rows + 1
        offset = end
    if keep < len(data):
        if column is None:
            keep = 0
        with open(path, "r+b") as f:
            f.truncate(keep)
        log.info("%s: kept the rows of the %d epoch(s) before the restored one", path, rows)
    return rows


def _tensorboard_installed():
    if importlib.util.find_spec("tensorboard") is None:
        log.warning("TensorBoard is not installed; no TensorBoard logs (pip install tensorboard)")
        return False
    return True


def standard_callbacks(run_dir, monitor="val_loss", tensorboard=True, backup=True, csv=True,
                       checkpoint=True, keep_backup=False):
    """The callbacks of a training run writing into ``run_dir``.

    Calling ``fit`` again with a fresh list from the same ``run_dir`` after an
    interruption resumes at the first unfinished epoch (:class:`AtomicBackupAndRestore`).

    Args:
        run_dir: the run's output folder (created if missing).
        monitor: the log key that selects ``best.keras``.
        tensorboard: write TensorBoard logs to ``run_dir/logs`` (skipped, with a
            warning, when the ``tensorboard`` package is not installed).
        backup: resume support in ``run_dir/backup``.
        csv: append one row per epoch to ``run_dir/history.csv``.
        checkpoint: save ``run_dir/best.keras`` and ``run_dir/last.keras``.
        keep_backup: keep the backup (of the final state) when ``fit`` ends, so
            that a run killed after ``fit`` does not train again; the caller
            deletes ``run_dir/backup`` once the run's outputs are written.

    Returns:
        a list of ``keras.callbacks.Callback``; the backup comes first (it
        restores the state and trims ``history.csv`` before the others begin)
        and writes each epoch's backup once every callback has finished that epoch.

    Example:
        >>> import os, tempfile
        >>> import keras, numpy as np
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> model.compile("sgd", "mse")
        >>> x, y = np.ones((4, 2), "float32"), np.zeros((4, 1), "float32")
        >>> with tempfile.TemporaryDirectory() as d:
        ...     callbacks = standard_callbacks(os.path.join(d, "run"), tensorboard=False)
        ...     _ = model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0, callbacks=callbacks)
        ...     sorted(os.listdir(os.path.join(d, "run")))
        ['best.keras', 'best.keras.json', 'history.csv', 'last.keras', 'last.keras.json']
    """
    run_dir = os.fspath(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    callbacks = []
    if backup:
        callbacks.append(AtomicBackupAndRestore(
            os.path.join(run_dir, BACKUP), history=os.path.join(run_dir, HISTORY) if csv else None,
            delete_on_end=not keep_backup))
    if checkpoint:
        callbacks.append(AtomicCheckpoint(os.path.join(run_dir, BEST), monitor=monitor))
        callbacks.append(AtomicCheckpoint(os.path.join(run_dir, LAST), monitor=None))
    if csv:
        callbacks.append(keras.callbacks.CSVLogger(os.path.join(run_dir, HISTORY), append=True))
    if tensorboard and _tensorboard_installed():
        callbacks.append(keras.callbacks.TensorBoard(log_dir=os.path.join(run_dir, LOGS)))
    return callbacks
