import keras
import numpy as np
import pytest

from tests.helpers import check_layer, conv_params, random_inputs, selu
from xprospect_tf.layers import ConvBlock, blocks, downsample, selu_conv, upsample


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


# -- a block fed by a half-resolution input ----------------------------------------------


@pytest.fixture
def transposed_everywhere(monkeypatch):
    """Make every upsampled block take the transposed-convolution path, however small its input."""
    monkeypatch.setattr(blocks, "UPSAMPLED_MIN_POSITIONS", 1)


@pytest.mark.parametrize(
    "kwargs, input_shapes, expected_shape",
    [
        ({"filters": 3, "spatial_dims": 3, "upsampled": 0}, [(2, 4, 4, 4, 2), (2, 8, 8, 8, 1)], (2, 8, 8, 8, 3)),
        ({"filters": 2, "spatial_dims": 3, "upsampled": 1},
         [(1, 4, 6, 8, 1), (1, 2, 3, 4, 3), (1, 4, 6, 8, 2)], (1, 4, 6, 8, 2)),
        ({"filters": 3, "spatial_dims": 2, "upsampled": 0, "convs": 1}, [(2, 4, 3, 2), (2, 8, 6, 1)], (2, 8, 6, 3)),
    ],
)
def test_upsampled_conv_block(kwargs, input_shapes, expected_shape, transposed_everywhere):
    d, f, cin = kwargs["spatial_dims"], kwargs["filters"], sum(s[-1] for s in input_shapes)
    convs = kwargs.get("convs", 2)
    params = conv_params(3, d, cin, f) + (convs - 1) * conv_params(3, d, f, f)
    check_layer(ConvBlock, kwargs, input_shapes, expected_shape, params, fit=True)


def _upsample_concatenate_convolve(inputs, upsampled, weights, spatial_dims):
    """The definition: Keras' UpSampling + Concatenate layers, then 'same' convolutions + SELU."""
    up = (keras.layers.UpSampling2D if spatial_dims == 2 else keras.layers.UpSampling3D)(2)
    x = keras.layers.Concatenate()([up(t) if i == upsampled else t for i, t in enumerate(inputs)])
    for kernel, bias in zip(weights[::2], weights[1::2]):
        x = keras.activations.selu(keras.ops.conv(x, kernel, padding="same") + bias)
    return x


@pytest.mark.parametrize("transposed", [True, False])
@pytest.mark.parametrize(
    "filters, upsampled, input_shapes",
    [
        (5, 0, [(2, 5, 4, 6, 3), (2, 10, 8, 12, 7)]),  # branch decoder: [previous, Connection-B]
        (3, 1, [(2, 6, 6, 6, 5), (2, 3, 3, 3, 7), (2, 6, 6, 6, 2)]),  # fusion: [fused, previous, ProjInj]
        (4, 1, [(3, 8, 8, 8, 1), (3, 4, 4, 4, 3)]),  # the up-sampled input last
        (3, 0, [(1, 3, 3, 3, 5)]),  # only an up-sampled input
        (3, 0, [(2, 7, 5, 3), (2, 14, 10, 1)]),  # 2D
    ],
)
def test_upsampled_conv_block_equals_upsampling_concatenating_and_convolving(
        filters, upsampled, input_shapes, transposed, monkeypatch):
    """Outputs and gradients (every input, the first kernel) of both paths match Keras' layers."""
    import tensorflow as tf

    monkeypatch.setattr(blocks, "UPSAMPLED_MIN_POSITIONS", 1 if transposed else 10**9)
    rng = np.random.default_rng(4)
    d = len(input_shapes[0]) - 2
    block = ConvBlock(filters, spatial_dims=d, upsampled=upsampled)
    block.build(input_shapes)
    assert block.transposes(input_shapes) == transposed
    block.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in block.weights])
    inputs = [tf.constant(rng.normal(0, 1, s).astype(np.float32)) for s in input_shapes]
    kernel = block.conv_layers[0].kernel
    probe = rng.normal(0, 1, block.compute_output_shape(input_shapes)).astype(np.float32)

    def value_and_grads(fn):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            out = fn()
            loss = tf.reduce_sum(out * probe)
        return [np.asarray(out)] + [g.numpy() for g in tape.gradient(loss, inputs + [kernel])]

    got = value_and_grads(lambda: block(inputs))
    expected = value_and_grads(lambda: _upsample_concatenate_convolve(inputs, upsampled, block.weights, d))
    assert got[0].shape == probe.shape
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5 * np.abs(e).max())


def test_upsampled_conv_kernel_sums_the_taps_per_parity():
    """Along each axis: 4 taps [k2, k1 + k2, k0 + k1, k0]; kernel axes (out, in) swapped."""
    kernel = np.random.default_rng(0).normal(size=(3, 3, 2, 5)).astype(np.float32)
    out = keras.ops.convert_to_numpy(blocks.upsampled_conv_kernel(kernel))
    assert out.shape == (4, 4, 5, 2)
    sums = np.stack([kernel[2], kernel[1] + kernel[2], kernel[0] + kernel[1], kernel[0]])
    sums = np.stack([sums[:, 2], sums[:, 1] + sums[:, 2], sums[:, 0] + sums[:, 1], sums[:, 0]], axis=1)
    np.testing.assert_allclose(out, sums.transpose(0, 1, 3, 2), rtol=1e-6)
    with pytest.raises(ValueError, match="3-tap"):
        blocks.upsampled_conv_kernel(np.zeros((5, 5, 2, 2), np.float32))


def test_upsampled_block_takes_the_definitions_path_below_the_threshold():
    block = ConvBlock(2, spatial_dims=3, upsampled=0)
    small, large = [(1, 4, 4, 4, 2), (1, 8, 8, 8, 1)], [(1, 8, 8, 8, 2), (1, 16, 16, 16, 1)]
    assert blocks.UPSAMPLED_MIN_POSITIONS == 8**3
    assert not block.transposes(small) and block.transposes(large)
    assert not ConvBlock(2, spatial_dims=3).transposes((1, 16, 16, 16, 1))
    # the guard sees the up-sampled concatenation below, the two first-convolution terms above
    assert (1, 8, 8, 8, 3) in block.internal_output_shapes(small)
    assert block.internal_output_shapes(large) == [(1, 16, 16, 16, 2)] * 3


def test_old_conv_block_configs_load_without_upsampled():
    config = ConvBlock(3, spatial_dims=3).get_config()
    del config["upsampled"]  # a block saved before the argument existed
    assert ConvBlock.from_config(config).upsampled is None


def test_bad_spatial_dims_is_rejected():
    with pytest.raises(ValueError, match="spatial_dims"):
        ConvBlock(2, spatial_dims=1)
