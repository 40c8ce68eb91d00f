"""Shared layer test: shapes (eager, symbolic, compute_output_shape), config round trip,
weight count and one fit step."""

import keras
import numpy as np


def random_inputs(shapes, seed=0):
    """One float32 array (batch included) per shape; a single array for a single shape."""
    rng = np.random.default_rng(seed)
    arrays = [rng.random(s, dtype=np.float32) for s in shapes]
    return arrays if len(arrays) > 1 else arrays[0]


def _symbolic(shapes):
    inputs = [keras.Input(s[1:], batch_size=None) for s in shapes]
    return inputs if len(inputs) > 1 else inputs[0]


def _shape_arg(shapes):
    return [tuple(s) for s in shapes] if len(shapes) > 1 else tuple(shapes[0])


def check_layer(cls, kwargs, input_shapes, expected_shape, expected_params=None, fit=False):
    """Run the standard checks on ``cls(**kwargs)``; return the eager output (numpy).

    ``input_shapes`` is a list of shapes with batch; ``expected_shape`` includes the batch.
    """
    inputs = random_inputs(input_shapes)
    layer = cls(**kwargs)
    out = keras.ops.convert_to_numpy(layer(inputs))
    assert out.shape == tuple(expected_shape)
    assert tuple(layer.compute_output_shape(_shape_arg(input_shapes))) == tuple(expected_shape)

    symbolic = cls(**kwargs)(_symbolic(input_shapes))
    assert tuple(symbolic.shape) == (None,) + tuple(expected_shape[1:])

    config = layer.get_config()
    clone = cls.from_config(config)
    assert clone.get_config() == config
    clone(inputs)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(inputs)), out, rtol=1e-5, atol=1e-6)

    if expected_params is not None:
        assert layer.count_params() == expected_params
    if fit:
        _check_fit_step(cls(**kwargs), input_shapes, expected_shape)
    return out


def _check_fit_step(layer, input_shapes, expected_shape):
    """One optimizer step changes the layer's weights and the loss."""
    model_inputs = _symbolic(input_shapes)
    model = keras.Model(model_inputs, layer(model_inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", run_eagerly=True)
    x = random_inputs(input_shapes, seed=1)
    y = np.zeros(expected_shape, np.float32)
    before = [w.copy() for w in model.get_weights()]
    loss0 = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=1, batch_size=expected_shape[0], verbose=0)
    loss1 = model.evaluate(x, y, verbose=0)
    assert loss1 != loss0
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
