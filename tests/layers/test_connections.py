import math

import keras
import numpy as np
import pytest

from tests.helpers import check_layer, conv_params, dense_params, random_inputs, selu
from xprospect_tf.layers import ConnectionA, ConnectionB, ConnectionC, ConnectionD


# -- Connection-A ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, input_shape, expected_shape",
    [
        ({"dense_units": 8, "grid_size": 4, "filters": 3}, (2, 4, 4, 5), (2, 4, 4, 4, 3)),
        ({"dense_units": 5, "grid_size": 2, "filters": 2}, (1, 6, 3), (1, 2, 2, 2, 2)),  # 1D input
        ({"dense_units": 4, "grid_size": 3, "filters": 1}, (1, 2, 2, 2, 2), (1, 3, 3, 3, 1)),  # 3D
    ],
)
def test_connection_a(kwargs, input_shape, expected_shape):
    grid_cells = kwargs["grid_size"] ** 3 * kwargs["filters"]
    params = dense_params(math.prod(input_shape[1:]), kwargs["dense_units"]) + dense_params(
        kwargs["dense_units"], grid_cells
    )
    check_layer(ConnectionA, kwargs, [input_shape], expected_shape, params, fit=True)


def test_connection_a_reshapes_the_dense_output_in_row_major_order():
    layer = ConnectionA(4, grid_size=2, filters=3)
    x = random_inputs([(1, 2, 2, 2)])
    out = keras.ops.convert_to_numpy(layer(x))
    w1, b1, w2, b2 = layer.get_weights()
    flat = selu(selu(x.reshape(1, -1) @ w1 + b1) @ w2 + b2)
    np.testing.assert_allclose(out, flat.reshape(1, 2, 2, 2, 3), rtol=1e-5, atol=1e-6)


# -- Connection-B ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, input_shape, expected_shape",
    [
        ({"filters": 3}, (2, 8, 8, 2), (2, 8, 8, 8, 3)),
        ({"filters": 2}, (1, 4, 6, 1), (1, 4, 6, 6, 2)),  # depth defaults to the width
        ({"filters": 2, "depth": 3}, (1, 4, 6, 2), (1, 4, 6, 3, 2)),
    ],
)
def test_connection_b(kwargs, input_shape, expected_shape):
    f, cin = kwargs["filters"], input_shape[-1]
    params = conv_params(1, 2, cin, f) + conv_params(3, 3, f, f)
    check_layer(ConnectionB, kwargs, [input_shape], expected_shape, params, fit=True)


def _identity_weights(layer, channels):
    """Set the 1x1 Conv2D and the 3^3 Conv3D to identity maps (centre tap only, no bias)."""
    match = np.eye(channels, dtype=np.float32)[None, None]
    mix = np.zeros((3, 3, 3, channels, channels), np.float32)
    mix[1, 1, 1] = np.eye(channels)
    zeros = np.zeros(channels, np.float32)
    layer.set_weights([match, zeros, mix, zeros])


def test_connection_b_expands_along_the_new_axis_3():
    """Coronal skip (b, z, x, c) -> (b, z, x, y, c): every y slice is the (activated) image."""
    image = random_inputs([(1, 4, 6, 2)]) - 0.5
    layer = ConnectionB(2, depth=5)
    layer(image)
    _identity_weights(layer, 2)
    out = keras.ops.convert_to_numpy(layer(image))
    expected = np.broadcast_to(selu(selu(image))[:, :, :, None, :], (1, 4, 6, 5, 2))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def _repeat_then_conv3d(image, weights, depth):
    """The definition of Connection-B: 1x1 Conv2D + SELU, repeat along axis 3, 3^3 Conv3D + SELU."""
    from keras import ops

    match, match_bias, mix, mix_bias = weights
    x = keras.activations.selu(ops.conv(image, match, padding="same") + match_bias)
    x = ops.repeat(ops.expand_dims(x, 3), depth, axis=3)
    return keras.activations.selu(ops.conv(x, mix, padding="same") + mix_bias)


@pytest.mark.parametrize(
    "filters, depth, input_shape",
    [
        (4, None, (2, 5, 6, 3)),  # depth = width = 6
        (3, 7, (2, 4, 5, 2)),
        (2, 3, (1, 3, 4, 1)),  # one interior slice
        (3, 2, (2, 4, 4, 2)),  # no interior slice
        (2, 1, (1, 4, 3, 2)),  # one slice: only the kernel's centre plane applies
    ],
)
@pytest.mark.parametrize("summed", [True, False])
def test_connection_b_equals_repeating_then_convolving_in_3d(filters, depth, input_shape, summed, monkeypatch):
    """Outputs and gradients (input, Conv3D kernel) of the summed-kernel 2D path, and of the repeating
    path used below SUMMED_MIN_DEPTH, match the definition."""
    import tensorflow as tf

    from xprospect_tf.layers import connection_b

    monkeypatch.setattr(connection_b, "SUMMED_MIN_DEPTH", 1 if summed else 10**9)

    rng = np.random.default_rng(3)
    layer = ConnectionB(filters, depth=depth)
    layer.build(input_shape)
    layer.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in layer.weights])
    image = tf.constant(rng.normal(0, 1, input_shape).astype(np.float32))
    d = depth or input_shape[2]
    probe = rng.normal(0, 1, input_shape[:3] + (d, filters)).astype(np.float32)  # a random loss direction

    def value_and_grads(fn):
        with tf.GradientTape() as tape:
            tape.watch(image)
            out = fn()
            loss = tf.reduce_sum(out * probe)
        return [out.numpy()] + [g.numpy() for g in tape.gradient(loss, [image, layer.mix.kernel])]

    got = value_and_grads(lambda: layer(image))
    expected = value_and_grads(lambda: _repeat_then_conv3d(image, layer.weights, d))
    assert got[0].shape == input_shape[:3] + (d, filters)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5 * np.abs(e).max())


# -- Connection-C / D ----------------------------------------------------------------


@pytest.mark.parametrize(
    "shapes, expected_shape",
    [
        ([(1, 4, 5, 3, 2), (1, 4, 3, 5, 2)], (1, 4, 5, 3, 2)),
        ([(2, 4, 4, 4, 1), (2, 4, 4, 4, 1)], (2, 4, 4, 4, 1)),
    ],
)
def test_connection_c_matches_numpy_transpose_and_mean(shapes, expected_shape):
    out = check_layer(ConnectionC, {}, shapes, expected_shape, expected_params=0)
    coronal, sagittal = random_inputs(shapes)
    np.testing.assert_allclose(out, (coronal + sagittal.transpose(0, 1, 3, 2, 4)) / 2, rtol=1e-6)


def test_connection_c_moves_a_sagittal_marker_from_z_y_x_to_z_x_y():
    z, x, y = 1, 3, 2
    coronal = np.zeros((1, 4, 5, 4, 1), np.float32)  # (b, z, x, y, c)
    sagittal = np.zeros((1, 4, 4, 5, 1), np.float32)  # (b, z, y, x, c)
    sagittal[0, z, y, x, 0] = 2.0
    out = keras.ops.convert_to_numpy(ConnectionC()([coronal, sagittal]))
    assert out[0, z, x, y, 0] == 1.0
    assert np.count_nonzero(out) == 1


@pytest.mark.parametrize(
    "shapes, expected_shape",
    [
        ([(1, 4, 5, 3, 2), (1, 4, 3, 5, 2), (1, 4, 5, 3, 3)], (1, 4, 5, 3, 5)),
        ([(2, 4, 4, 4, 1), (2, 4, 4, 4, 1), (2, 4, 4, 4, 1)], (2, 4, 4, 4, 2)),
    ],
)
def test_connection_d_matches_numpy_concatenation(shapes, expected_shape):
    out = check_layer(ConnectionD, {}, shapes, expected_shape, expected_params=0)
    coronal, sagittal, previous = random_inputs(shapes)
    fused = (coronal + sagittal.transpose(0, 1, 3, 2, 4)) / 2
    np.testing.assert_allclose(out, np.concatenate([fused, previous], axis=-1), rtol=1e-6)
