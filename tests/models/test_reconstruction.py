import keras
import numpy as np
import pytest

from xprospect_tf.config import ModelConfig
from xprospect_tf.errors import ConfigError, TensorSizeError
from xprospect_tf.layers import BackProjection, ConnectionA
from xprospect_tf.models import build_model, build_reconstruction_model, level_filters
from xprospect_tf.models.reconstruction import default_levels

TINY = {"size": 16, "dense_units": 8, "base_filters": 2}


def images(size, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.random((batch, size, size, 1), dtype=np.float32) for _ in range(2)]


@pytest.fixture(scope="module")
def tiny_models():
    return {pj: build_reconstruction_model(**TINY, projinj=pj) for pj in (False, True)}


@pytest.mark.parametrize(
    "kwargs, levels, grid",
    [
        ({"size": 16, "dense_units": 8, "base_filters": 2}, 2, 4),
        ({"size": 32, "dense_units": 4, "base_filters": 2}, 3, 4),
        ({"size": 32, "dense_units": 4, "base_filters": 2, "levels": 2}, 2, 8),
        ({"size": 16, "dense_units": 4, "base_filters": 3, "levels": 3, "projinj": True}, 3, 2),
    ],
)
def test_output_shape_levels_and_range(kwargs, levels, grid):
    model = build_reconstruction_model(**kwargs)
    size = kwargs["size"]
    assert [tuple(i.shape) for i in model.inputs] == [(None, size, size, 1)] * 2
    assert [i.name for i in model.inputs] == ["frontal", "lateral"]
    assert model.output_shape == (None, size, size, size, 1)
    connection_a = model.get_layer("coronal_connection_a")
    assert connection_a.output.shape[1:4] == (grid,) * 3
    assert connection_a.output.shape[-1] == level_filters(kwargs["base_filters"], levels)[-1]
    ct = keras.ops.convert_to_numpy(model(images(size, batch=1)))
    assert ct.shape == (1, size, size, size, 1)
    assert ct.min() >= 0.0 and ct.max() <= 1.0


def test_level_filters_double_and_cap():
    assert level_filters(16, 5) == [min(16 * 2**i, 128) for i in range(6)]
    assert level_filters(8, 3) == [8, 16, 32, 64]


def test_dense_units_change_parameters_by_the_dense_weight_difference():
    small, large = (
        build_reconstruction_model(size=16, dense_units=u, base_filters=2) for u in (4, 12)
    )
    channels = level_filters(2, 2)[-1]
    flat = 4 * 4 * channels  # 2D bottleneck, flattened
    grid_cells = 4**3 * channels
    per_branch = (12 - 4) * (flat + 1 + grid_cells)  # kernel in, bias, kernel out
    assert large.count_params() - small.count_params() == 2 * per_branch


def test_projinj_feeds_back_projections_into_every_fusion_scale(tiny_models):
    plain, projinj = tiny_models[False], tiny_models[True]
    filters = level_filters(2, 2)
    injections = [l for l in projinj.layers if isinstance(l, BackProjection)]
    assert sorted(l.pool_size for l in injections) == [2**i for i in range(len(filters))]
    assert not any(isinstance(l, BackProjection) for l in plain.layers)
    for i in range(len(filters)):
        channels = [m.get_layer(f"fusion_{i}").input.shape[-1] for m in (plain, projinj)]
        assert channels[1] - channels[0] == 2  # frontal and lateral smears
    # only the first convolution of each fusion block sees 2 more input channels
    assert projinj.count_params() - plain.count_params() == sum(27 * 2 * f for f in filters)


def test_sagittal_and_coronal_branches_have_the_same_structure(tiny_models):
    model = tiny_models[False]
    for layer in model.layers:
        if layer.name.startswith("coronal_"):
            twin = model.get_layer("sagittal_" + layer.name[len("coronal_"):])
            assert layer.count_params() == twin.count_params()
    assert isinstance(model.get_layer("sagittal_connection_a"), ConnectionA)


def test_one_fit_step_changes_the_loss():
    keras.utils.set_random_seed(0)  # deterministic initial weights, whatever ran before
    model = build_reconstruction_model(**TINY)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse", run_eagerly=True)
    x = images(16)
    y = np.random.default_rng(1).random((2, 16, 16, 16, 1), dtype=np.float32)
    before = model.evaluate(x, y, verbose=0)
    history = model.fit(x, y, epochs=2, batch_size=2, verbose=0)
    after = model.evaluate(x, y, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert after < before


def test_keras_save_and_load_round_trip(tiny_models, tmp_path):
    model = tiny_models[True]
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = images(16, batch=1)
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-5, atol=1e-6)
    assert loaded.count_params() == model.count_params()


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"size": 24}, "size"),
        ({"size": 8}, "size"),
        ({"size": 32.0}, "size"),
        ({"dense_units": 0}, "dense_units"),
        ({"base_filters": -1}, "base_filters"),
        ({"projinj": "yes"}, "projinj"),
        ({"size": 16, "levels": 4}, "levels"),
        ({"levels": 0}, "levels"),
    ],
)
def test_invalid_arguments_raise_config_error_naming_them(kwargs, argument):
    with pytest.raises(ConfigError, match=argument):
        build_reconstruction_model(**kwargs)


def test_oversized_dense_kernel_raises_tensor_size_error():
    with pytest.raises(TensorSizeError, match="levels"):
        build_reconstruction_model(size=256, levels=1)


def test_build_model_dispatches_unet_dense():
    config = ModelConfig(dense_units=6, base_filters=2, projinj=True)
    model = build_model(config, 16)
    assert model.output_shape == (None, 16, 16, 16, 1)
    assert any(isinstance(l, BackProjection) for l in model.layers)
    assert model.get_layer("coronal_connection_a").dense_units == 6


@pytest.mark.parametrize("architecture", ["mean-volume", "back-projection"])
def test_build_model_rejects_baselines(architecture):
    with pytest.raises(ConfigError, match="needs no"):
        build_model(ModelConfig(architecture=architecture), 16)


def test_build_model_rejects_unknown_architecture():
    with pytest.raises(ConfigError, match="unet-dense"):
        build_model(ModelConfig(architecture="vit"), 16)


@pytest.mark.parametrize("size", [16, 32, 64, 128, 256])
def test_default_levels_give_a_4_cube_bottleneck(size):
    levels = default_levels(size)
    assert size // 2**levels == 4
    assert 2**levels * 4 == size


def test_inputs_can_be_given_by_name(tiny_models):
    model = tiny_models[False]
    frontal, lateral = images(16, batch=1)
    by_name = model({"frontal": frontal, "lateral": lateral})
    np.testing.assert_allclose(by_name, model([frontal, lateral]), rtol=1e-6)
    swapped = model({"frontal": lateral, "lateral": frontal})
    assert not np.allclose(swapped, by_name)


@pytest.mark.parametrize("output_bias, expected", [("mean", np.log(0.15 / 0.85)), ("zero", 0.0)])
def test_output_starts_at_the_training_mean(output_bias, expected):
    config = ModelConfig(dense_units=4, base_filters=2, output_bias=output_bias)
    model = build_model(config, 16, output_mean=0.15)
    (bias,) = [w for w in model.get_layer("ct").get_weights() if w.ndim == 1]
    np.testing.assert_allclose(bias, [expected], rtol=1e-6, atol=1e-7)
    if output_bias == "mean":  # the untrained model's mean prediction is near the training mean
        prediction = model.predict(images(16, batch=4), verbose=0)
        assert abs(float(prediction.mean()) - 0.15) < 0.05


@pytest.mark.parametrize("mean", [0.0, 1.0, -0.1, float("nan")])
def test_output_mean_outside_the_open_unit_interval_is_refused(mean):
    with pytest.raises(ConfigError, match="output_mean"):
        build_reconstruction_model(**TINY, output_mean=mean)
