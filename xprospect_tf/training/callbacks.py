"""The callbacks every training run uses: checkpoints, resume, CSV log, TensorBoard.

A run directory holds::

    best.keras        the model with the best ``monitor`` value so far (+ best.keras.json)
    last.keras        the model after the last finished epoch (+ last.keras.json)
    backup/           BackupAndRestore state: a killed ``fit`` resumes from the
                      last finished epoch when called again with the same run_dir
    history.csv       one row per epoch (appended across resumed fits)
    logs/             TensorBoard event files

Model files are written atomically: a crash mid-save never leaves a truncated
``.keras`` file.
"""

import importlib.util
import json
import logging
import math
import os

import keras

from xprospect_tf.files import atomic_path, write_json

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


def _tensorboard_installed():
    if importlib.util.find_spec("tensorboard") is None:
        log.warning("TensorBoard is not installed; no TensorBoard logs (pip install tensorboard)")
        return False
    return True


def standard_callbacks(run_dir, monitor="val_loss", tensorboard=True, backup=True, csv=True,
                       checkpoint=True):
    """The callbacks of a training run writing into ``run_dir``.

    Calling ``fit`` again with a fresh list from the same ``run_dir`` after an
    interruption resumes at the first unfinished epoch (``BackupAndRestore``).

    Args:
        run_dir: the run's output folder (created if missing).
        monitor: the log key that selects ``best.keras``.
        tensorboard: write TensorBoard logs to ``run_dir/logs`` (skipped, with a
            warning, when the ``tensorboard`` package is not installed).
        backup: resume support in ``run_dir/backup``.
        csv: append one row per epoch to ``run_dir/history.csv``.
        checkpoint: save ``run_dir/best.keras`` and ``run_dir/last.keras``.

    Returns:
        a list of ``keras.callbacks.Callback``; the backup runs last at each
        epoch end so that a resumed epoch's outputs are all complete.

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
    if checkpoint:
        callbacks.append(AtomicCheckpoint(os.path.join(run_dir, BEST), monitor=monitor))
        callbacks.append(AtomicCheckpoint(os.path.join(run_dir, LAST), monitor=None))
    if csv:
        callbacks.append(keras.callbacks.CSVLogger(os.path.join(run_dir, HISTORY), append=True))
    if tensorboard and _tensorboard_installed():
        callbacks.append(keras.callbacks.TensorBoard(log_dir=os.path.join(run_dir, LOGS)))
    if backup:
        callbacks.append(keras.callbacks.BackupAndRestore(os.path.join(run_dir, BACKUP)))
    return callbacks
