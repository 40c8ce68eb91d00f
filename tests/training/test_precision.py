"""model.precision: mixed-precision layers, float32 variables, output and losses."""

import dataclasses

import keras
import numpy as np
import pytest

from xprospect_tf.config import ModelConfig, load_experiments
from xprospect_tf.errors import ConfigError
from xprospect_tf.models import build_model
from xprospect_tf.training.rows import build_compiled_model

SIZE = 16


def _convs(model):
    """Every Conv2D/Conv3D of the model, those inside composite layers included."""
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv3D))]


def _xrays(batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.random((batch, SIZE, SIZE, 1), dtype=np.float32) for k in ("frontal", "lateral")}


def test_mixed_bfloat16_computes_in_bfloat16_and_keeps_float32_weights_and_output():
    config = ModelConfig(dense_units=8, base_filters=4)
    reference = build_model(config, SIZE)
    mixed = build_model(dataclasses.replace(config, precision="mixed_bfloat16"), SIZE)
    assert keras.config.dtype_policy().name == "float32"  # the policy was scoped to the build
    convs = _convs(mixed)
    assert len(convs) == len(_convs(reference)) > 10
    hidden = [c for c in convs if c.name != "ct"]
    assert {c.compute_dtype for c in hidden} == {"bfloat16"}
    assert mixed.get_layer("ct").compute_dtype == "float32"
    assert {v.dtype for v in mixed.weights} == {"float32"}
    mixed.set_weights(reference.get_weights())
    x = _xrays()
    out = mixed.predict(x, verbose=0)
    expected = reference.predict(x, verbose=0)
    assert out.dtype == np.float32 and keras.backend.standardize_dtype(mixed.outputs[0].dtype) == "float32"
    assert not np.array_equal(out, expected)  # bfloat16 arithmetic really ran
    np.testing.assert_allclose(out, expected, atol=0.05)


def test_a_mixed_bfloat16_row_trains_without_nan():
    cfg = load_experiments().resolve("512-ProjInj", "smoke", [f"size={SIZE}", "base_filters=4",
                                                               "model.precision=mixed_bfloat16"])
    model = build_compiled_model(cfg)
    assert model.dtype_policy.name == "mixed_bfloat16"
    before = [w.copy() for w in model.get_weights()]
    y = np.random.default_rng(1).random((2, SIZE, SIZE, SIZE, 1), dtype=np.float32)
    logs = model.train_on_batch(_xrays(), y, return_dict=True)
    assert np.isfinite(logs["loss"]) and logs["loss"] > 0
    after = model.get_weights()
    assert all(np.isfinite(w).all() for w in after)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))


def test_mixed_float16_compiles_with_loss_scaling():
    cfg = load_experiments().resolve("64-Dense", "smoke", [f"size={SIZE}", "base_filters=4",
                                                            "model.precision=mixed_float16"])
    model = build_compiled_model(cfg)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert not isinstance(build_compiled_model(load_experiments().resolve("64-Dense", "smoke", [f"size={SIZE}"]))
                          .optimizer, keras.optimizers.LossScaleOptimizer)


def test_an_unknown_precision_is_refused_naming_the_setting():
    with pytest.raises(ConfigError, match="model.precision = 'float16' is not one of float32, mixed_bfloat16"):
        load_experiments().resolve("64-Dense", "smoke", ["model.precision=float16"])


def test_a_reloaded_mixed_bfloat16_model_still_computes_in_bfloat16(tmp_path):
    # Composite layers (ConvBlock, Connection-A/B) make their sublayers in __init__: once
    # reloaded, outside the build's precision scope, they must take the layer's own policy,
    # not Keras' float32 default. At 32^3 Connection-B takes its summed 2D path (depth >= 16),
    # which failed outright with mixed dtypes ("Input 'filter' of 'Conv2D' Op has type
    # bfloat16 that does not match type float32").
    size = 32
    model = build_model(ModelConfig(dense_units=8, base_filters=2, precision="mixed_bfloat16"), size)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    convs = {c.path: c.compute_dtype for c in _convs(loaded)}
    assert convs == {c.path: c.compute_dtype for c in _convs(model)}
    assert {d for p, d in convs.items() if not p.startswith("ct")} == {"bfloat16"}
    rng = np.random.default_rng(0)
    x = {k: rng.random((1, size, size, 1), dtype=np.float32) for k in ("frontal", "lateral")}
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
