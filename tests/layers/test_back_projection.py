import keras
import numpy as np
import pytest

from tests.helpers import check_layer, random_inputs
from xprospect_tf.errors import ConfigError
from xprospect_tf.layers import BackProjection


def block_mean(image, p):
    """Average-pool (b, h, w, c) by p with numpy."""
    b, h, w, c = image.shape
    return image.reshape(b, h // p, p, w // p, p, c).mean(axis=(2, 4))


def reference(frontal, lateral, p, combine):
    ap, lat = block_mean(frontal, p), block_mean(lateral, p)
    shape = ap.shape[:3] + (lat.shape[2], ap.shape[3])
    smeared_ap = np.broadcast_to(ap[:, :, :, None, :], shape)  # constant along y
    smeared_lat = np.broadcast_to(lat[:, :, None, :, :], shape)  # constant along x
    if combine == "mean":
        return (smeared_ap + smeared_lat) / 2
    return np.concatenate([smeared_ap, smeared_lat], axis=-1)


@pytest.mark.parametrize(
    "kwargs, shapes, expected_shape",
    [
        ({}, [(2, 8, 8, 1), (2, 8, 8, 1)], (2, 8, 8, 8, 2)),
        ({"pool_size": 2}, [(1, 8, 8, 1), (1, 8, 8, 1)], (1, 4, 4, 4, 2)),
        ({"pool_size": 4, "combine": "mean"}, [(1, 16, 8, 1), (1, 16, 12, 1)], (1, 4, 2, 3, 1)),
        ({"combine": "mean"}, [(1, 4, 6, 1), (1, 4, 5, 1)], (1, 4, 6, 5, 1)),
    ],
)
def test_back_projection_matches_numpy_broadcast(kwargs, shapes, expected_shape):
    out = check_layer(BackProjection, kwargs, shapes, expected_shape, expected_params=0)
    frontal, lateral = random_inputs(shapes)
    pool_size, combine = kwargs.get("pool_size", 1), kwargs.get("combine", "channels")
    expected = reference(frontal, lateral, pool_size, combine)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)


def test_frontal_is_smeared_along_y_and_lateral_along_x():
    frontal = np.zeros((1, 4, 5, 1), np.float32)
    lateral = np.zeros((1, 4, 3, 1), np.float32)
    frontal[0, 1, 2, 0] = 1.0  # z = 1, x = 2
    lateral[0, 3, 0, 0] = 1.0  # z = 3, y = 0
    out = keras.ops.convert_to_numpy(BackProjection()([frontal, lateral]))
    assert out.shape == (1, 4, 5, 3, 2)
    np.testing.assert_array_equal(out[0, 1, 2, :, 0], 1.0)  # whole y line
    assert out[..., 0].sum() == 3
    np.testing.assert_array_equal(out[0, 3, :, 0, 1], 1.0)  # whole x line
    assert out[..., 1].sum() == 5


@pytest.mark.parametrize(
    "kwargs, word", [({"combine": "sum"}, "combine"), ({"pool_size": 0}, "pool_size")]
)
def test_bad_arguments_raise_config_error(kwargs, word):
    with pytest.raises(ConfigError, match=word):
        BackProjection(**kwargs)
