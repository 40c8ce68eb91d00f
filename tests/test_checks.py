"""``xprospect_tf.checks``: each shared check accepts valid values and names the setting in its refusal."""

import numpy as np
import pytest

from xprospect_tf import checks
from xprospect_tf.errors import ConfigError

VALID = [
    (checks.check_positive_int, (1, "epochs"), 1),
    (checks.check_positive_int, (250, "epochs"), 250),
    (checks.check_window, ([-100, 900],), (-100.0, 900.0)),
    (checks.check_window, ((-1000.0, 1000.0),), (-1000.0, 1000.0)),
    (checks.check_window, (np.array([0, 1]),), (0.0, 1.0)),
    (checks.check_fov_mm, (400,), 400.0),
    (checks.check_fov_mm, ("40.5",), 40.5),
    (checks.check_data_size, (8,), 8),
    (checks.check_data_size, (24,), 24),
    (checks.check_data_size, (np.int64(16),), 16),
    (checks.check_model_size, (16,), 16),
    (checks.check_model_size, (256,), 256),
    (checks.check_levels, (None, 64), 4),
    (checks.check_levels, (None, 16), 2),
    (checks.check_levels, (1, 64), 1),
    (checks.check_levels, (5, 64), 5),
    (checks.check_style_size, (8,), 8),
    (checks.check_style_size, (36,), 36),
]


@pytest.mark.parametrize("check, args, expected", VALID)
def test_valid_values_are_returned_normalized(check, args, expected):
    result = check(*args)
    assert result == expected and type(result) is type(expected)


# (check, args without the setting, the message after "<setting> = ")
INVALID = [
    (checks.check_positive_int, (0,), "0: use a positive integer"),
    (checks.check_positive_int, (-3,), "-3: use a positive integer"),
    (checks.check_positive_int, (2.0,), "2.0: use a positive integer"),
    (checks.check_positive_int, (True,), "True: use a positive integer"),
    (checks.check_positive_int, ("4",), "'4': use a positive integer"),
    (checks.check_window, ([900, -100],), "[900, -100]: use finite [low, high] HU with low < high"),
    (checks.check_window, ([5, 5],), "[5, 5]: use finite"),
    (checks.check_window, ([0, float("inf")],), "[0, inf]: use finite"),
    (checks.check_window, ([0, float("nan")],), "[0, nan]: use finite"),
    (checks.check_window, ([1, 2, 3],), "[1, 2, 3]: give two HU values [low, high]"),
    (checks.check_window, (5,), "5: give two HU values"),
    (checks.check_window, (["a", "b"],), "['a', 'b']: give two HU values"),
    (checks.check_fov_mm, (0,), "0: the field of view must be a positive number of mm"),
    (checks.check_fov_mm, (-1.0,), "-1.0: the field of view must be a positive"),
    (checks.check_fov_mm, (float("inf"),), "inf: the field of view must be a positive"),
    (checks.check_fov_mm, (True,), "True: the field of view must be a positive"),
    (checks.check_fov_mm, ("wide",), "'wide': give the field of view in mm, e.g. 400"),
    (checks.check_fov_mm, (None,), "None: give the field of view in mm"),
    (checks.check_data_size, (4,), "4: the cube side must be at least 8 voxels"),
    (checks.check_data_size, (12.5,), "12.5: use a whole number of voxels"),
    (checks.check_data_size, (True,), "True: use a whole number of voxels"),
    (checks.check_data_size, ("16",), "'16': use a whole number of voxels"),
    (checks.check_model_size, (24,), "24: the reconstruction model needs a power of two >= 16"),
    (checks.check_model_size, (8,), "8: the reconstruction model needs a power of two >= 16"),
    (checks.check_model_size, (16.0,), "16.0: use a whole number of voxels"),
    (checks.check_levels, (5, 32), "5: at size 32 use 1..4 (the bottleneck must be >= 2 x 2), or null for 3"),
    (checks.check_levels, (0, 64), "0: use a positive integer"),
    (checks.check_levels, (2.5, 64), "2.5: use a positive integer"),
    (checks.check_style_size, (10,), "10: style transfer needs an image side that is a multiple of 4"),
    (checks.check_style_size, (4,), "4: style transfer needs an image side that is a multiple of 4 and at least 8"),
    (checks.check_style_size, (None,), "None: use a whole number of voxels"),
]


@pytest.mark.parametrize("check, args, message", INVALID)
def test_invalid_values_raise_naming_the_setting(check, args, message):
    with pytest.raises(ConfigError) as info:
        check(*args, setting="--my-setting")
    assert str(info.value).startswith(f"--my-setting = {message}")


@pytest.mark.parametrize("check, args, setting", [
    (checks.check_window, ([1, 0],), "data.window"),
    (checks.check_fov_mm, (0,), "data.fov_mm"),
    (checks.check_data_size, (4,), "data.size"),
    (checks.check_model_size, (24,), "data.size"),
    (checks.check_style_size, (10,), "data.size"),
    (checks.check_levels, (9, 16), "model.levels"),
])
def test_the_default_setting_name_is_the_config_key(check, args, setting):
    with pytest.raises(ConfigError, match=f"^{setting} = "):
        check(*args)


@pytest.mark.parametrize("size, levels", [(16, 2), (32, 3), (64, 4), (128, 5), (256, 6)])
def test_default_levels_leave_a_4_cube_bottleneck(size, levels):
    assert checks.default_levels(size) == levels
    assert size // 2 ** levels == 4


def test_constants():
    assert checks.DEFAULT_WINDOW == (-1000.0, 1000.0) and checks.DEFAULT_FOV_MM == 400.0
    assert checks.INT32_LIMIT == 2**31 - 1
    assert (checks.MIN_DATA_SIZE, checks.MIN_MODEL_SIZE, checks.MIN_STYLE_SIZE) == (8, 16, 8)
