import keras
import numpy as np
import pytest
import tensorflow as tf

from xprospect_tf.errors import ConfigError
from xprospect_tf.training.strategy import get_strategy, global_batch_size

CPUS = ["/cpu:0", "/cpu:1"]


def _model(size=4):
    frontal = keras.Input((size, size, 1), name="frontal")
    lateral = keras.Input((size, size, 1), name="lateral")
    x = keras.layers.Concatenate()([keras.layers.Flatten()(frontal), keras.layers.Flatten()(lateral)])
    x = keras.layers.Dense(size**3, kernel_initializer="glorot_uniform", name="dense")(x)
    ct = keras.layers.Reshape((size, size, size, 1), name="ct")(x)
    return keras.Model({"frontal": frontal, "lateral": lateral}, ct)


def _data(n=4, size=4):
    rng = np.random.default_rng(1)
    x = {k: rng.random((n, size, size, 1), dtype=np.float32) for k in ("frontal", "lateral")}
    y = rng.random((n, size, size, size, 1), dtype=np.float32)
    return x, y


def _train_one_step(strategy, weights, batch):
    with strategy.scope():
        model = _model()
        model.set_weights(weights)
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    x, y = _data(batch)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)
    model.fit(ds, epochs=1, verbose=0, shuffle=False)
    return model.get_weights()


def test_conftest_split_cpu_into_two_logical_devices():
    assert len(tf.config.list_logical_devices("CPU")) >= 2


def test_default_and_global_batch():
    s = get_strategy()
    assert s is tf.distribute.get_strategy()
    assert global_batch_size(3, s) == 3 * s.num_replicas_in_sync
    with pytest.raises(ConfigError, match="train.strategy.*tpu"):
        get_strategy("tpu")
    with pytest.raises(ConfigError, match="devices"):
        get_strategy("default", devices=CPUS)


def test_mirrored_two_replicas_matches_single_device_sgd_step():
    mirrored = get_strategy("mirrored", devices=CPUS)
    assert mirrored.num_replicas_in_sync == 2
    assert global_batch_size(2, mirrored) == 4
    init = _model().get_weights()
    distributed = _train_one_step(mirrored, init, batch=4)
    single = _train_one_step(get_strategy(), init, batch=4)
    assert not np.allclose(distributed[0], init[0])  # weights changed
    for d, s in zip(distributed, single):  # gradients averaged over the global batch
        np.testing.assert_allclose(d, s, rtol=1e-5, atol=1e-6)
