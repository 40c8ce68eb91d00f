import csv
import importlib.util
import os

import keras
import numpy as np
import pytest

from xprospect_tf.training.callbacks import AtomicCheckpoint, standard_callbacks


class Interrupt(Exception):
    pass


class Recorder(keras.callbacks.Callback):
    """Records the epochs run and the weights at each epoch's start and end;
    raises at the start of ``stop_at``."""

    def __init__(self, stop_at=None):
        super().__init__()
        self.stop_at = stop_at
        self.epochs, self.start_weights, self.end_weights = [], {}, {}

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.stop_at:
            raise Interrupt(epoch)
        self.epochs.append(epoch)
        self.start_weights[epoch] = self.model.get_weights()

    def on_epoch_end(self, epoch, logs=None):
        self.end_weights[epoch] = self.model.get_weights()


def _model():
    keras.utils.set_random_seed(0)
    frontal = keras.Input((4, 4, 1), name="frontal")
    lateral = keras.Input((4, 4, 1), name="lateral")
    x = keras.layers.Concatenate()([keras.layers.Flatten()(frontal), keras.layers.Flatten()(lateral)])
    ct = keras.layers.Reshape((4, 4, 4, 1), name="ct")(keras.layers.Dense(64)(x))
    model = keras.Model({"frontal": frontal, "lateral": lateral}, ct)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", run_eagerly=True)
    return model


def _data():
    rng = np.random.default_rng(0)
    x = {k: rng.random((8, 4, 4, 1), dtype=np.float32) for k in ("frontal", "lateral")}
    return x, rng.random((8, 4, 4, 4, 1), dtype=np.float32)


def _fit(run_dir, recorder, **kw):
    x, y = _data()
    return _model().fit(
        x, y, validation_data=(x, y), epochs=4, batch_size=4, verbose=0, shuffle=False,
        callbacks=standard_callbacks(run_dir, **kw) + [recorder],
    )


def test_interrupted_fit_resumes_at_the_unfinished_epoch(tmp_path):
    first = Recorder(stop_at=2)
    with pytest.raises(Interrupt):
        _fit(tmp_path, first, tensorboard=False)
    assert first.epochs == [0, 1]
    assert os.path.isdir(tmp_path / "backup")

    second = Recorder()
    _fit(tmp_path, second, tensorboard=False)
    assert second.epochs == [2, 3]
    for a, b in zip(second.start_weights[2], first.end_weights[1]):  # restored, not re-initialized
        np.testing.assert_array_equal(a, b)
    with open(tmp_path / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    assert not os.path.exists(tmp_path / "backup")  # removed after a completed fit

    x, _ = _data()
    last = keras.saving.load_model(tmp_path / "last.keras")
    final = second.end_weights[3]
    for a, b in zip(last.get_weights(), final):
        np.testing.assert_array_equal(a, b)
    best = keras.saving.load_model(tmp_path / "best.keras")
    val = [float(r["val_loss"]) for r in rows]
    assert best.evaluate(*_data(), verbose=0) == pytest.approx(min(val), rel=1e-5)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp.keras")]


def test_tensorboard_logs_or_warning(tmp_path, caplog):
    callbacks = standard_callbacks(tmp_path, backup=False, csv=False, checkpoint=False)
    if importlib.util.find_spec("tensorboard") is None:
        assert callbacks == [] and "TensorBoard is not installed" in caplog.text
        return
    assert [type(c).__name__ for c in callbacks] == ["TensorBoard"]
    _fit(tmp_path, Recorder(), backup=False, csv=False, checkpoint=False)
    assert os.listdir(tmp_path / "logs")


def test_callback_selection(tmp_path):
    names = [type(c).__name__ for c in standard_callbacks(tmp_path, tensorboard=False)]
    assert names == ["AtomicBackupAndRestore", "AtomicCheckpoint", "AtomicCheckpoint", "CSVLogger"]


def test_best_checkpoint_keeps_best_across_runs(tmp_path):
    path = tmp_path / "best.keras"
    cb = AtomicCheckpoint(path, monitor="val_psnr")
    assert cb.mode == "max"
    cb.set_model(_model())
    cb.on_train_begin()
    cb.on_epoch_end(0, {"val_psnr": 20.0})
    mtime = os.stat(path).st_mtime_ns
    resumed = AtomicCheckpoint(path, monitor="val_psnr")
    resumed.set_model(_model())
    resumed.on_train_begin()
    assert resumed.best == 20.0
    resumed.on_epoch_end(1, {"val_psnr": 19.0})  # worse: not saved
    assert os.stat(path).st_mtime_ns == mtime
    resumed.on_epoch_end(2, {"val_psnr": 21.0})
    assert resumed.best == 21.0 and os.stat(path).st_mtime_ns != mtime


def _history_epochs(run_dir):
    with open(os.path.join(run_dir, "history.csv")) as f:
        text = f.read()
    assert text.count("epoch,") == 1  # one header
    return [int(r["epoch"]) for r in csv.DictReader(text.splitlines())]


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def test_backups_rotate_and_a_damaged_one_falls_back_to_the_previous(tmp_path, caplog):
    reference = Recorder()
    _fit(tmp_path / "reference", reference, tensorboard=False)

    first = Recorder(stop_at=3)
    with pytest.raises(Interrupt):
        _fit(tmp_path, first, tensorboard=False)
    backup = tmp_path / "backup"
    assert sorted(os.listdir(backup)) == ["epoch-00002.json", "epoch-00002.weights.h5",
                                          "epoch-00003.json", "epoch-00003.weights.h5"]  # the last two
    _truncate(backup / "epoch-00003.weights.h5")  # killed mid-write without the atomic rename
    with open(tmp_path / "history.csv", "a") as f:
        f.write("3,0.1")  # a half-written row

    second = Recorder()
    _fit(tmp_path, second, tensorboard=False)
    assert "damaged backup" in caplog.text and "epoch-00003.weights.h5" in caplog.text
    assert second.epochs == [2, 3]  # from the previous good backup
    for a, b in zip(second.start_weights[2], first.end_weights[1]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(second.end_weights[3], reference.end_weights[3]):  # the same result as never stopped
        np.testing.assert_array_equal(a, b)
    assert _history_epochs(tmp_path) == [0, 1, 2, 3]


def test_unusable_backups_start_again_from_epoch_0(tmp_path, caplog):
    reference = Recorder()
    _fit(tmp_path / "reference", reference, tensorboard=False)
    first = Recorder(stop_at=2)
    with pytest.raises(Interrupt):
        _fit(tmp_path, first, tensorboard=False)
    for name in os.listdir(tmp_path / "backup"):
        if name.endswith(".h5"):
            _truncate(tmp_path / "backup" / name)
    second = Recorder()
    _fit(tmp_path, second, tensorboard=False)
    assert "no usable backup; training starts again" in caplog.text
    assert second.epochs == [0, 1, 2, 3]
    for a, b in zip(second.end_weights[3], reference.end_weights[3]):  # as if nothing was restored
        np.testing.assert_array_equal(a, b)
    assert _history_epochs(tmp_path) == [0, 1, 2, 3]


def test_a_backup_of_keras_backup_and_restore_still_resumes(tmp_path):
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, shuffle=False,
              callbacks=[keras.callbacks.BackupAndRestore(tmp_path / "backup", delete_checkpoint=False)])
    second = Recorder()
    _fit(tmp_path, second, tensorboard=False)
    assert second.epochs == [1, 2, 3]


def test_kept_backup_makes_a_finished_fit_train_no_more(tmp_path):
    _fit(tmp_path, Recorder(), tensorboard=False, keep_backup=True)
    assert "epoch-00004.json" in os.listdir(tmp_path / "backup")
    again = Recorder()
    _fit(tmp_path, again, tensorboard=False, keep_backup=True)
    assert again.epochs == []
    assert _history_epochs(tmp_path) == [0, 1, 2, 3]


def test_drop_history_rows_keeps_earlier_epochs_only(tmp_path):
    from xprospect_tf.training.callbacks import drop_history_rows

    path = tmp_path / "history.csv"
    path.write_text("epoch,loss\n0,1.0\n1,0.5\n2,0.25\n1,0.5\n")
    assert drop_history_rows(str(path), 2) == 2
    assert path.read_text() == "epoch,loss\n0,1.0\n1,0.5\n"
    assert drop_history_rows(str(path), 0) == 0 and path.read_text() == "epoch,loss\n"
    path.write_text("epo")  # a header cut short: emptied, the logger writes it again
    assert drop_history_rows(str(path), 0) == 0 and path.read_text() == ""
    path.write_text("a,b\n1,2\n")  # not a CSVLogger file: untouched
    assert drop_history_rows(str(path), 0) is None and path.read_text() == "a,b\n1,2\n"
    assert drop_history_rows(str(tmp_path / "missing.csv"), 3) is None
