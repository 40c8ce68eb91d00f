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
