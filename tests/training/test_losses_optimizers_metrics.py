import keras
import numpy as np
import pytest

from xprospect_tf.errors import ConfigError
from xprospect_tf.evaluation.metrics import psnr as np_psnr
from xprospect_tf.training.losses import get_loss
from xprospect_tf.training.metrics import PSNR
from xprospect_tf.training.optimizers import get_optimizer


@pytest.mark.parametrize("name, formula", [
    ("mse", lambda p, t: np.mean((p - t) ** 2)),
    ("mae", lambda p, t: np.mean(np.abs(p - t))),
])
def test_get_loss_matches_numpy(rng, name, formula):
    t = rng.random((2, 4, 4, 4, 1), dtype=np.float32)
    p = rng.random((2, 4, 4, 4, 1), dtype=np.float32)
    assert float(get_loss(name)(t, p)) == pytest.approx(formula(p, t), rel=1e-5)


def test_unknown_names_raise_config_error():
    with pytest.raises(ConfigError, match="train.loss.*'huber'"):
        get_loss("huber")
    with pytest.raises(ConfigError, match="train.optimizer.*'sgd'"):
        get_optimizer("sgd", 1e-3)
    with pytest.raises(ConfigError, match="momentum"):
        get_optimizer("adam", 1e-3, momentum=0.9)


@pytest.mark.parametrize("name, cls", [("adam", keras.optimizers.Adam), ("nadam", keras.optimizers.Nadam)])
def test_get_optimizer_passes_options(name, cls):
    opt = get_optimizer(name, 2e-4, use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=5, clipnorm=1.0)
    assert type(opt) is cls
    assert float(opt.learning_rate) == pytest.approx(2e-4)
    assert (opt.use_ema, opt.ema_momentum, opt.ema_overwrite_frequency, opt.clipnorm) == (True, 0.9, 5, 1.0)


def test_psnr_metric_is_mean_of_numpy_psnr_over_samples(rng):
    t = rng.random((3, 6, 6, 6, 1), dtype=np.float32)
    p = np.clip(t + 0.05 * rng.standard_normal(t.shape).astype(np.float32), 0, 1)
    m = PSNR()
    m.update_state(t[:2], p[:2])
    m.update_state(t[2:], p[2:])
    expected = np.mean([np_psnr(p[i], t[i]) for i in range(3)])
    assert float(m.result()) == pytest.approx(expected, rel=1e-4)
    assert float(PSNR()(t, t)) == pytest.approx(100.0)  # floored MSE, finite


def test_psnr_metric_serializes_and_logs_in_fit(rng, tmp_path):
    m = PSNR(data_range=2.0, name="p")
    clone = PSNR.from_config(m.get_config())
    assert (clone.data_range, clone.name) == (2.0, "p")
    x = keras.Input((4,))
    model = keras.Model(x, keras.layers.Dense(4)(x))
    model.compile(optimizer="adam", loss="mse", metrics=[PSNR()], run_eagerly=True)
    data = rng.random((8, 4), dtype=np.float32)
    history = model.fit(data, data, epochs=1, verbose=0)
    assert np.isfinite(history.history["psnr"][0])
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    assert reloaded.evaluate(data, data, return_dict=True, verbose=0)["psnr"] == pytest.approx(
        model.evaluate(data, data, return_dict=True, verbose=0)["psnr"], rel=1e-5
    )
