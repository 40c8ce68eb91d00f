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
        channels = [m.get_layer(f"fusion_{i}").conv_layers[0].kernel.shape[-2] for m in (plain, projinj)]
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


# -- the decoder blocks up-sample inside (issue #11): the same model as the graph before ----------


def _graph_before_issue_11(size, dense_units, base_filters, projinj=False):
    """The reconstruction graph as built before the decoder blocks took their half-resolution input:
    UpSampling3D + Concatenate (Connection-D in the fusion decoder) + ConvBlock at every scale."""
    from xprospect_tf.layers import ConnectionB, ConnectionC, ConnectionD, ConvBlock
    from xprospect_tf.models.reconstruction import _encoder, _validated_levels

    filters = level_filters(base_filters, _validated_levels(size, dense_units, projinj, base_filters, None))
    inputs = [keras.Input((size, size, 1), name=n) for n in ("frontal", "lateral")]

    def branch(image, prefix):
        skips, bottleneck = _encoder(image, prefix, filters)
        x = ConnectionA(dense_units, grid_size=bottleneck.shape[1], filters=filters[-1],
                        name=f"{prefix}_connection_a")(bottleneck)
        volumes = [x]
        for i in reversed(range(len(skips))):
            up = keras.layers.UpSampling3D(2, name=f"{prefix}_up_{i}")(x)
            skip = ConnectionB(filters[i], name=f"{prefix}_connection_b_{i}")(skips[i])
            x = keras.layers.Concatenate(name=f"{prefix}_concat_{i}")([up, skip])
            x = ConvBlock(filters[i], spatial_dims=3, name=f"{prefix}_decoder_{i}")(x)
            volumes.append(x)
        return volumes[::-1]

    def inject(x, level):
        if not projinj:
            return x
        projected = BackProjection(pool_size=2**level, name=f"projinj_{level}")(inputs)
        return keras.layers.Concatenate(name=f"projinj_concat_{level}")([x, projected])

    coronal, sagittal = branch(inputs[0], "coronal"), branch(inputs[1], "sagittal")
    bottom = len(filters) - 1
    x = inject(ConnectionC(name="connection_c")([coronal[bottom], sagittal[bottom]]), bottom)
    x = ConvBlock(filters[bottom], spatial_dims=3, name=f"fusion_{bottom}")(x)
    for i in reversed(range(bottom)):
        up = keras.layers.UpSampling3D(2, name=f"fusion_up_{i}")(x)
        x = ConnectionD(name=f"connection_d_{i}")([coronal[i], sagittal[i], up])
        x = ConvBlock(filters[i], spatial_dims=3, name=f"fusion_{i}")(inject(x, i))
    ct = keras.layers.Conv3D(1, 1, activation="sigmoid", name="ct")(x)
    return keras.Model(inputs, ct)


def _copy_weights_by_layer(source, target):
    """Copy every layer's weights to the layer of the same name (the same shapes and paths are
    required); the order of ``model.weights`` differs between the graphs (it follows graph depth)."""
    weighted = {layer.name: layer for layer in source.layers if layer.weights}
    assert weighted.keys() == {layer.name for layer in target.layers if layer.weights}
    for name, layer in weighted.items():
        twin = target.get_layer(name)
        assert [(w.path, w.shape) for w in layer.weights] == [(w.path, w.shape) for w in twin.weights]
        twin.set_weights(layer.get_weights())


def _logits(model, x):
    """The output before its sigmoid (the sigmoid squashes differences near 0 and 1)."""
    ct = np.clip(keras.ops.convert_to_numpy(model(x)).astype(np.float64), 1e-12, 1 - 1e-12)
    return np.log(ct / (1 - ct))


@pytest.mark.parametrize(
    "kwargs, transposed_from",
    [
        ({"size": 16, "dense_units": 8, "base_filters": 3, "projinj": True}, 1),  # every decoder block
        ({"size": 16, "dense_units": 8, "base_filters": 3}, None),  # the threshold: only the 8^3 -> 16^3 blocks
        ({"size": 32, "dense_units": 4, "base_filters": 2, "projinj": True}, None),
    ],
)
def test_same_weights_and_outputs_as_the_graph_before_issue_11(kwargs, transposed_from, monkeypatch):
    from xprospect_tf.layers import blocks

    if transposed_from is not None:
        monkeypatch.setattr(blocks, "UPSAMPLED_MIN_POSITIONS", transposed_from)
    keras.utils.set_random_seed(5)
    model = build_reconstruction_model(**kwargs)
    before = _graph_before_issue_11(**kwargs)
    assert model.count_params() == before.count_params()
    _copy_weights_by_layer(model, before)
    x = images(kwargs["size"], batch=2, seed=1)
    expected = _logits(before, x)
    np.testing.assert_allclose(_logits(model, x), expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_a_keras_file_saved_before_issue_11_loads_and_gives_the_same_volume(tmp_path):
    keras.utils.set_random_seed(6)
    model = build_reconstruction_model(**TINY, projinj=True)
    before = _graph_before_issue_11(**TINY, projinj=True)
    _copy_weights_by_layer(model, before)
    before.save(tmp_path / "before.keras")
    loaded = keras.saving.load_model(tmp_path / "before.keras")
    assert loaded.get_layer("fusion_0").upsampled is None  # the old graph, as saved
    x = images(16, batch=1)
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-5, atol=1e-6)
    fresh = build_reconstruction_model(**TINY, projinj=True)
    _copy_weights_by_layer(loaded, fresh)  # its weights, layer by layer, into the new graph
    np.testing.assert_allclose(fresh(x), model(x), rtol=1e-5, atol=1e-6)


def test_fine_tuning_starts_from_the_weights_of_a_file_saved_before_issue_11(tmp_path):
    from xprospect_tf.training.rows import load_weights_by_layer_name

    keras.utils.set_random_seed(7)
    model = build_reconstruction_model(**TINY)
    before = _graph_before_issue_11(**TINY)
    _copy_weights_by_layer(model, before)
    before.save(tmp_path / "before.keras")
    fresh = build_reconstruction_model(**TINY)
    load_weights_by_layer_name(fresh, str(tmp_path / "before.keras"))
    x = images(16, batch=1)
    np.testing.assert_allclose(fresh(x), model(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="fusion_2 weight shape"):  # ProjInj: wider fusion blocks
        load_weights_by_layer_name(build_reconstruction_model(**TINY, projinj=True), str(tmp_path / "before.keras"))
    with pytest.raises(ValueError, match="only one of the two models"):  # one level more
        load_weights_by_layer_name(build_reconstruction_model(**{**TINY, "size": 32}), str(tmp_path / "before.keras"))
