import keras
import numpy as np
import pytest

from tests.helpers import check_layer, conv_params, random_inputs, selu
from xprospect_tf.layers import ConvBlock, downsample, selu_conv, upsample


@pytest.mark.parametrize(
    "kwargs, input_shape, expected_shape",
    [
        ({"filters": 3, "spatial_dims": 2}, (2, 8, 6, 1), (2, 8, 6, 3)),
        ({"filters": 2, "spatial_dims": 3}, (1, 4, 6, 8, 3), (1, 4, 6, 8, 2)),
        ({"filters": 2, "spatial_dims": 3, "convs": 1}, (1, 4, 4, 4, 2), (1, 4, 4, 4, 2)),
        ({"filters": 4, "spatial_dims": 2, "convs": 3, "dropout": 0.2}, (2, 8, 8, 2), (2, 8, 8, 4)),
    ],
)
def test_conv_block(kwargs, input_shape, expected_shape):
    d, f, cin = kwargs["spatial_dims"], kwargs["filters"], input_shape[-1]
    convs = kwargs.get("convs", 2)
    params = conv_params(3, d, cin, f) + (convs - 1) * conv_params(3, d, f, f)
    check_layer(ConvBlock, kwargs, [input_shape], expected_shape, params, fit=convs == 1)


def test_conv_block_uses_selu_and_lecun_normal():
    block = ConvBlock(2, spatial_dims=3)
    block(np.zeros((1, 4, 4, 4, 1), np.float32))
    for conv in block.conv_layers:
        assert conv.activation is keras.activations.selu
        assert isinstance(conv.kernel_initializer, keras.initializers.LecunNormal)
        assert conv.padding == "same"
    assert not any(isinstance(l, keras.layers.BatchNormalization) for l in block._flatten_layers())


def test_selu_conv_matches_numpy_selu_of_a_1x1_convolution():
    x = random_inputs([(1, 5, 7, 2)]) - 0.5
    conv = selu_conv(3, 2, name="c", kernel_size=1)
    out = keras.ops.convert_to_numpy(conv(x))
    kernel, bias = conv.get_weights()
    expected = selu(np.einsum("bhwc,cf->bhwf", x, kernel[0, 0]) + bias)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_dropout_is_inactive_at_inference():
    x = random_inputs([(1, 8, 8, 1)])
    with_dropout, without = ConvBlock(2, dropout=0.5), ConvBlock(2)
    with_dropout(x), without(x)
    without.set_weights(with_dropout.get_weights())
    np.testing.assert_allclose(with_dropout(x, training=False), without(x), rtol=1e-6)
    assert not np.allclose(with_dropout(x, training=True), without(x))


@pytest.mark.parametrize("spatial_dims, shape", [(2, (1, 8, 4, 2)), (3, (1, 8, 4, 6, 2))])
def test_downsample_and_upsample_halve_and_double(spatial_dims, shape):
    x = random_inputs([shape])
    down = keras.ops.convert_to_numpy(downsample(spatial_dims, "d")(x))
    blocks = x.reshape((1,) + sum(((s // 2, 2) for s in shape[1:-1]), ()) + (2,))
    np.testing.assert_allclose(down, blocks.max(axis=tuple(range(2, 2 * spatial_dims + 1, 2))))
    up = keras.ops.convert_to_numpy(upsample(spatial_dims, "u")(down))
    expected = down
    for axis in range(1, spatial_dims + 1):
        expected = np.repeat(expected, 2, axis=axis)
    np.testing.assert_array_equal(up, expected)


def test_bad_spatial_dims_is_rejected():
    with pytest.raises(ValueError, match="spatial_dims"):
        ConvBlock(2, spatial_dims=1)
