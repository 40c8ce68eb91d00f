"""Forward FLOP counter: each counted layer against a hand formula; sums over nested layers."""

import keras
import pytest

from xprospect_tf.layers import ConnectionA, ConvBlock
from xprospect_tf.training.flops import forward_flops, layer_flops


def _one_layer(input_shape, layer):
    return keras.Sequential([keras.Input(input_shape), layer])


@pytest.mark.parametrize(
    "input_shape, layer, expected",
    [
        # output voxels x kernel volume x in_channels x out_channels x 2
        ((8, 8, 8, 3), keras.layers.Conv3D(5, 3, padding="same"), 8**3 * 27 * 3 * 5 * 2),
        ((9, 9, 9, 2), keras.layers.Conv3D(4, 3, strides=2), 4**3 * 27 * 2 * 4 * 2),  # valid: 4 per axis
        ((6, 6, 4), keras.layers.Conv2D(6, (3, 1), padding="same", groups=2), 36 * 3 * (4 // 2) * 6 * 2),
        ((4, 4, 4, 3), keras.layers.Conv3DTranspose(5, 2, strides=2), 4**3 * 8 * 3 * 5 * 2),  # input voxels
        ((7,), keras.layers.Dense(4), 7 * 4 * 2),
        ((6, 7), keras.layers.Dense(4), 6 * 7 * 4 * 2),  # applied at each of the 6 positions
        ((8, 8, 3), keras.layers.MaxPooling2D(), 0),  # not counted
    ],
)
def test_one_layer_matches_the_hand_formula(input_shape, layer, expected):
    model = _one_layer(input_shape, layer)
    assert layer_flops(layer) == expected
    assert forward_flops(model) == expected


def test_layers_in_sequence_add_up():
    model = keras.Sequential([keras.Input((8, 8, 8, 2)), keras.layers.Conv3D(4, 3, padding="same"),
                              keras.layers.Flatten(), keras.layers.Dense(10)])
    assert forward_flops(model) == 2 * (8**3 * 27 * 2 * 4) + 2 * (8**3 * 4 * 10)


def test_sublayers_of_composite_layers_and_nested_models_are_counted_once():
    inner = _one_layer((8, 8, 1), ConvBlock(4, spatial_dims=2))  # two 3x3 convs: 1 -> 4 -> 4
    block = 2 * 64 * 9 * (1 * 4 + 4 * 4)
    assert forward_flops(inner) == block
    x = keras.Input((8, 8, 1))
    dense = ConnectionA(6, grid_size=2, filters=3)  # flatten 8*8*4 -> 6 -> 2^3 * 3
    outer = keras.Model(x, dense(inner(x)))
    assert forward_flops(outer) == block + 2 * (256 * 6 + 6 * 24)


def test_connection_b_counts_the_2d_convolutions_it_runs():
    from xprospect_tf.layers import ConnectionB

    layer = ConnectionB(4, depth=16)
    _one_layer((8, 8, 3), layer)
    match = 2 * 64 * 3 * 4  # 1x1 Conv2D 3 -> 4 at 8x8
    slices = 3 * 2 * 64 * 9 * 4 * 4  # first, interior, last: one 3x3 Conv2D 4 -> 4 each
    assert forward_flops(layer) == match + slices
    assert forward_flops(layer) < match + 2 * 16 * 64 * 27 * 4 * 4  # the Conv3D it replaces
    shallow = ConnectionB(4, depth=8)  # below SUMMED_MIN_DEPTH: repeated, then the Conv3D
    _one_layer((8, 8, 3), shallow)
    assert forward_flops(shallow) == match + 2 * 8 * 64 * 27 * 4 * 4


def test_an_upsampled_conv_block_counts_its_low_resolution_share_at_8_taps():
    low, skip = keras.Input((8, 8, 8, 6)), keras.Input((16, 16, 16, 2))
    block = ConvBlock(4, spatial_dims=3, upsampled=0)
    keras.Model([low, skip], block([low, skip]))
    voxels = 16**3
    first = 2 * voxels * (8 * 6 + 27 * 2) * 4  # transposed 2^3 taps of the 6 low channels + 3^3 taps of the skip
    assert forward_flops(block) == first + 2 * voxels * 27 * 4 * 4
    small = ConvBlock(4, spatial_dims=3, upsampled=0)  # 4^3 low positions: up-sampled and convolved (27 taps)
    small([keras.Input((4, 4, 4, 6)), keras.Input((8, 8, 8, 2))])
    assert forward_flops(small) == 2 * 8**3 * 27 * (8 * 4 + 4 * 4)
