"""Tests of the style-transfer CycleGAN (generator, PatchGAN, CycleGAN, EMA resets)."""

import logging

import keras
import numpy as np
import pytest

from xprospect_tf.errors import ConfigError
from xprospect_tf.models.cyclegan import (
    CycleGAN,
    ReflectionPadding2D,
    build_patchgan_discriminator,
    build_resnet_generator,
    compile_cyclegan,
    make_cyclegan,
    paper_optimizer,
)
from xprospect_tf.models.cyclegan.cycle_gan import LOSS_NAMES

SIZE = 16
TINY = dict(filters=4, disc_filters=4, n_residual=0)  # few variables: eager steps stay fast


def tiny_gan(**kwargs):
    return make_cyclegan(SIZE, **{**TINY, **kwargs})


def images(rng, n=2, size=SIZE):
    return rng.random((n, size, size, 1), dtype=np.float32)


def weights_of(model):
    return [np.array(v) for v in model.trainable_variables]


def changed(before, model):
    return any(not np.allclose(b, a) for b, a in zip(before, weights_of(model)))


# --- ReflectionPadding2D --------------------------------------------------------

@pytest.mark.parametrize("padding, pads", [(1, (1, 1)), ((2, 3), (2, 3)), (3, (3, 3))])
def test_reflection_padding_matches_numpy(rng, padding, pads):
    x = rng.random((2, 7, 9, 3)).astype(np.float32)
    layer = ReflectionPadding2D(padding)
    out = np.asarray(layer(x))
    expected = np.pad(x, [(0, 0), (pads[0], pads[0]), (pads[1], pads[1]), (0, 0)], mode="reflect")
    np.testing.assert_allclose(out, expected)
    assert layer.compute_output_shape((None, 7, None, 3)) == (None, 7 + 2 * pads[0], None, 3)
    clone = ReflectionPadding2D.from_config(layer.get_config())
    np.testing.assert_allclose(np.asarray(clone(x)), expected)


def test_reflection_padding_rejects_negative():
    with pytest.raises(ConfigError, match="padding"):
        ReflectionPadding2D(-1)


# --- generator ------------------------------------------------------------------

@pytest.mark.parametrize("size, filters", [(16, 4), (32, 8)])
def test_generator_shape_and_range(rng, size, filters):
    g = build_resnet_generator(size=size, filters=filters, n_residual=2)
    x = images(rng, 2, size)
    y = np.asarray(g(x))
    assert y.shape == x.shape
    assert y.min() >= 0.0 and y.max() <= 1.0
    assert g.get_layer("down2_conv").output.shape[1:] == (size // 4, size // 4, 4 * filters)


@pytest.mark.parametrize("size, blocks", [(64, 6), (128, 6), (256, 9)])
def test_generator_default_residual_blocks(size, blocks):
    g = build_resnet_generator(size=size, filters=1)
    adds = [layer for layer in g.layers if isinstance(layer, keras.layers.Add)]
    assert len(adds) == blocks
    norms = [layer for layer in g.layers if isinstance(layer, keras.layers.GroupNormalization)]
    assert norms and all(layer.groups == layer.input.shape[-1] for layer in norms)  # instance norm


def test_generator_config_round_trip(rng):
    g = build_resnet_generator(size=SIZE, filters=4, n_residual=1)
    clone = keras.Model.from_config(g.get_config())
    clone.set_weights(g.get_weights())
    x = images(rng)
    np.testing.assert_allclose(np.asarray(clone(x)), np.asarray(g(x)), atol=1e-6)


def test_residual_generator_starts_as_the_identity_and_learns_a_change(rng):
    g = build_resnet_generator(size=SIZE, filters=4, n_residual=1, residual=True)
    x = np.clip(images(rng), 0.01, 0.99)
    np.testing.assert_allclose(np.asarray(g(x)), x, atol=1e-5)
    head = g.get_layer("head_conv")
    head.kernel.assign(rng.normal(0, 0.1, head.kernel.shape).astype("float32"))
    y = np.asarray(g(x))
    assert not np.allclose(y, x, atol=1e-3) and y.min() > 0 and y.max() < 1
    clone = keras.Model.from_config(g.get_config())
    clone.set_weights(g.get_weights())
    np.testing.assert_allclose(np.asarray(clone(x)), y, atol=1e-6)


@pytest.mark.parametrize("size", [4, 18, 16.0])
def test_generator_rejects_bad_size(size):
    with pytest.raises(ConfigError, match="style transfer image size = (4|18|16.0): .*(multiple of 4|whole number)"):
        build_resnet_generator(size=size)


# --- discriminator --------------------------------------------------------------

@pytest.mark.parametrize("size, n_layers, patches", [
    (64, 3, 8), (32, 3, 4), (16, 3, 2), (8, 3, 2), (32, 2, 8), (16, 5, 2),
])
def test_discriminator_patch_map(rng, size, n_layers, patches):
    d = build_patchgan_discriminator(size=size, filters=4, n_layers=n_layers)
    assert d(images(rng, 2, size)).shape == (2, patches, patches, 1)
    stride2 = [layer for layer in d.layers
               if isinstance(layer, keras.layers.Conv2D) and layer.strides == (2, 2)]
    assert len(stride2) == round(np.log2(size / patches))
    norms = [layer.name for layer in d.layers if isinstance(layer, keras.layers.GroupNormalization)]
    assert "conv0_norm" not in norms and len(norms) == len(stride2)


def test_discriminator_config_round_trip(rng):
    d = build_patchgan_discriminator(size=SIZE, filters=4)
    clone = keras.Model.from_config(d.get_config())
    clone.set_weights(d.get_weights())
    x = images(rng)
    np.testing.assert_allclose(np.asarray(clone(x)), np.asarray(d(x)), atol=1e-6)


# --- CycleGAN losses and training -----------------------------------------------

def test_compute_losses_match_numpy_and_cycle_lambda(rng):
    gan = tiny_gan()
    a, b = images(rng), images(rng)
    losses20 = {k: float(v) for k, v in gan.compute_losses(a, b).items()}
    g_ab, g_ba = (lambda x: np.asarray(gan.g_ab(x))), (lambda x: np.asarray(gan.g_ba(x)))
    cycle = np.mean(np.abs(a - g_ba(g_ab(a)))) + np.mean(np.abs(b - g_ab(g_ba(b))))
    identity = np.mean(np.abs(a - g_ba(a))) + np.mean(np.abs(b - g_ab(b)))
    adv = sum(np.mean((np.asarray(d(x)) - 1) ** 2) for d, x in ((gan.d_a, g_ba(b)), (gan.d_b, g_ab(a))))
    np.testing.assert_allclose(losses20["cycle_loss"], cycle, rtol=1e-5)
    np.testing.assert_allclose(losses20["identity_loss"], identity, rtol=1e-5)
    np.testing.assert_allclose(losses20["adv_loss"], adv, rtol=1e-5)
    np.testing.assert_allclose(losses20["g_loss"], adv + 20 * cycle + 10 * identity, rtol=1e-5)

    gan.cycle_lambda, gan.identity_lambda = 0.0, 10.0
    losses0 = {k: float(v) for k, v in gan.compute_losses(a, b).items()}
    np.testing.assert_allclose(losses20["g_loss"] - losses0["g_loss"], 20 * cycle, rtol=1e-4)


def test_identity_lambda_default_and_override():
    assert tiny_gan().identity_weight == 10.0
    assert tiny_gan(cycle_lambda=8.0, identity_lambda=1.0).identity_weight == 1.0


def test_large_cycle_lambda_warns(caplog):
    with caplog.at_level(logging.WARNING):
        tiny_gan(cycle_lambda=30.0)
    assert "weaken" in caplog.text


@pytest.mark.parametrize("bad", [dict(cycle_lambda=-1.0), dict(identity_lambda="x")])
def test_bad_lambdas_raise(bad):
    with pytest.raises(ConfigError, match="lambda"):
        tiny_gan(**bad)


def test_train_step_updates_all_four_networks(rng):
    gan = tiny_gan()
    compile_cyclegan(gan, learning_rate=1e-3, run_eagerly=True)
    nets = (gan.g_ab, gan.g_ba, gan.d_a, gan.d_b)
    before = [weights_of(net) for net in nets]
    logs = gan.train_step((images(rng), images(rng)))
    assert set(logs) == set(LOSS_NAMES)
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert [changed(w, net) for w, net in zip(before, nets)] == [True] * 4
    assert [m.name for m in gan.metrics] == list(LOSS_NAMES)


def test_compile_defaults_are_the_style_configs():
    from xprospect_tf.config import StyleConfig

    paper = StyleConfig()
    gan = tiny_gan()
    gan.compile()
    for opt in (gan.g_optimizer, gan.d_optimizer):
        assert isinstance(opt, keras.optimizers.Nadam)  # the paper's optimizer
        assert opt.use_ema and opt.ema_overwrite_frequency == paper.ema_every
        assert np.isclose(float(opt.ema_momentum), paper.ema_momentum)
        assert np.isclose(float(opt.learning_rate), paper.learning_rate)
    assert gan.cycle_lambda == paper.cycle_lambda == 20.0  # the paper's lambda
    gan = make_cyclegan(SIZE, n_residual=0)
    assert gan.g_ab.get_layer("stem_conv").filters == paper.filters
    assert gan.d_a.get_layer("conv0").filters == 2 * paper.filters  # CycleGAN's ratio
    assert not any(isinstance(layer, keras.layers.Conv2DTranspose) for layer in
                   make_cyclegan(SIZE, n_residual=0, upsampling="resize").g_ab.layers)
    with pytest.raises(ConfigError, match="loss"):
        gan.compile(loss="mse")
    with pytest.raises(ConfigError, match="ema_every"):
        paper_optimizer(ema_every=0)


def test_ema_reset_sets_weights_to_moving_average(rng):
    """After N steps the weights equal a numpy EMA of the weights seen at steps 1..N."""
    momentum, every, lr = 0.5, 2, 1e-2
    resetting = tiny_gan()
    tracking = CycleGAN.from_config(resetting.get_config())
    tracking.set_weights(resetting.get_weights())
    for model, ema_every in ((resetting, every), (tracking, None)):
        optimizers = [paper_optimizer(lr, momentum, ema_every) for _ in range(2)]
        model.compile(*optimizers, run_eagerly=True)
    batch = (images(rng), images(rng))
    seen = []  # the twin that never resets: its weights are the raw trajectory
    for _ in range(every):
        resetting.train_step(batch)
        tracking.train_step(batch)
        seen.append(weights_of(tracking))
        if len(seen) < every:  # no reset yet: both trajectories agree
            for x, y in zip(weights_of(resetting), seen[-1]):
                np.testing.assert_allclose(x, y, atol=1e-6)
    average = seen[0]
    for step in seen[1:]:
        average = [momentum * avg + (1 - momentum) * w for avg, w in zip(average, step)]
    after_reset = weights_of(resetting)
    assert max(np.abs(w - avg).max() for w, avg in zip(seen[-1], average)) > 1e-4
    for net_weights, expected in zip(after_reset, average):
        np.testing.assert_allclose(net_weights, expected, atol=1e-5)


def test_fit_ends_with_the_moving_average_weights(rng):
    """Keras' fit finalizes only ``model.optimizer``; CycleGAN.fit must end with both optimizers' EMA.

    Reference: a numpy EMA of the raw weights recorded after each step (first
    step: the average is the weights themselves).
    """
    momentum, steps = 0.5, 3
    gan = tiny_gan()
    gan.compile(*[paper_optimizer(1e-2, momentum, None) for _ in range(2)], run_eagerly=True)
    seen = []  # raw weights of all four networks after each step
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(weights_of(gan)))
    a, b = images(rng, 2 * steps), images(rng, 2 * steps)
    gan.fit(a, b, batch_size=2, epochs=1, verbose=0, callbacks=[record])
    assert len(seen) == steps
    average = seen[0]
    for step in seen[1:]:
        average = [momentum * avg + (1 - momentum) * w for avg, w in zip(average, step)]
    final = weights_of(gan)
    for got, expected in zip(final, average):
        np.testing.assert_allclose(got, expected, atol=1e-6)
    assert max(np.abs(got - raw).max() for got, raw in zip(final, seen[-1])) > 1e-4  # not the raw weights
    assert len(final) == len(gan.generator_variables) + len(gan.discriminator_variables)


def test_moving_average_weights_swaps_in_and_back_and_without_ema_is_a_no_op(rng):
    gan = tiny_gan()
    compile_cyclegan(gan, learning_rate=1e-2, ema_momentum=0.5, ema_every=None, run_eagerly=True)
    batch = (images(rng), images(rng))
    gan.train_step(batch)
    gan.train_step(batch)
    raw = weights_of(gan)
    averages = [np.array(v) for v in gan.g_optimizer._model_variables_moving_average]  # Keras' own store
    n_generators = len(gan.generator_variables)
    with gan.moving_average_weights():
        for got, expected in zip(weights_of(gan.g_ab) + weights_of(gan.g_ba), averages, strict=True):
            np.testing.assert_array_equal(got, expected)
        assert changed(raw[:n_generators], gan)
        for got, expected in zip(weights_of(gan)[n_generators:], raw[n_generators:]):
            np.testing.assert_array_equal(got, expected)  # the discriminators keep their raw weights
    for got, expected in zip(weights_of(gan), raw):
        np.testing.assert_array_equal(got, expected)  # the raw weights are back, exactly
    plain = tiny_gan()
    compile_cyclegan(plain, learning_rate=1e-2, ema_momentum=None, run_eagerly=True)
    plain.train_step(batch)
    before = weights_of(plain)
    plain.finalize_moving_averages()
    with plain.moving_average_weights():
        assert not changed(before, plain)


def test_keras_save_load_round_trip(rng, tmp_path):
    gan = tiny_gan(cycle_lambda=15.0)
    compile_cyclegan(gan, learning_rate=1e-3, ema_every=7, run_eagerly=True)
    a, b = images(rng), images(rng)
    history = gan.fit(a, b, batch_size=2, epochs=1, verbose=0)
    assert set(history.history) == set(LOSS_NAMES)
    path = tmp_path / "style.keras"
    gan.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, CycleGAN) and loaded.cycle_lambda == 15.0
    np.testing.assert_allclose(loaded.predict(a, verbose=0), gan.predict(a, verbose=0), atol=1e-6)
    assert int(loaded.g_optimizer.iterations) == 1
    assert loaded.d_optimizer.ema_overwrite_frequency == 7
    config = CycleGAN.from_config(gan.get_config()).get_config()
    assert config["cycle_lambda"] == 15.0 and config["g_ab"]["config"]["name"] == "g_ab"


def test_resize_upsampling_generator_has_no_transposed_convolutions():
    import keras

    from xprospect_tf.errors import ConfigError
    from xprospect_tf.models.cyclegan import build_resnet_generator

    g = build_resnet_generator(size=16, filters=4, n_residual=1, upsampling="resize")
    assert g.output_shape == (None, 16, 16, 1)
    assert not any(isinstance(layer, keras.layers.Conv2DTranspose) for layer in g.layers)
    assert sum(isinstance(layer, keras.layers.UpSampling2D) for layer in g.layers) == 2
    with pytest.raises(ConfigError, match="upsampling"):
        build_resnet_generator(size=16, filters=4, upsampling="bilinear")
