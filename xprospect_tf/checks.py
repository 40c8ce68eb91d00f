"""The rules several layers share: library defaults, limits, and the checks of
the settings that every layer reads (window, field of view, cube size).

This module imports nothing but :mod:`xprospect_tf.errors`, so the config, the
data layer and the models can all use it. Each rule is written here once; a
caller passes ``setting`` (the name the user knows, e.g. ``"data.size"`` or
``"--size"``) so the message names what to change.
"""

import math

from xprospect_tf.errors import ConfigError

DEFAULT_WINDOW = (-1000.0, 1000.0)
"""The paper's HU window mapped to [0, 1] (XprospeCT, section 2: the volumes are scaled
"from -1000, 1000 HU to between 0 and 1"); a library default for pure functions only:
workflows pass the run's ``data.window``."""

DEFAULT_FOV_MM = 400.0
"""Side of the cube a case is resampled into, in mm: holds an adult chest (about
350 mm wide, 250 mm deep). Ours: the paper says only that the volumes were
"resized" to 128^3 or 64^3 (section 2), not how much of the body the cube holds."""

DEFAULT_VAL_FRACTION = 0.2
"""The share of the non-test cases held out for validation: the paper's split,
"80% partitioned for training and 20% for validation" (XprospeCT, section 2),
with the test cases drawn first. A library default: workflows pass the run's
``data.val_fraction``."""

INT32_LIMIT = 2**31 - 1
"""The largest element count of one tensor that TensorFlow's int32 indexing
allows: the limit the tensor-size guard checks, per tensor (weights and
activations alike). The paper (section 5.2) words it as "2^32 parameters per layer"."""

MIN_DATA_SIZE = 8
"""The smallest cube side a prepared dataset may have."""

MIN_MODEL_SIZE = 16
"""The smallest cube side of the reconstruction model (a power of two)."""

MIN_STYLE_SIZE = 8
"""The smallest image side of the style CycleGAN (a multiple of 4)."""


def check_positive_int(value, setting):
    """Return ``value`` if it is an integer > 0 (bool excluded); else raise ConfigError.

    Example:
        >>> check_positive_int(3, "epochs")
        3
    """
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{setting} = {value!r}: use a positive integer")
    return value


def check_window(window, setting="data.window"):
    """Return ``window`` as a ``(low, high)`` float pair with ``low < high``.

    Example:
        >>> check_window([-100, 900])
        (-100.0, 900.0)
    """
    try:
        low, high = (float(w) for w in window)
    except (TypeError, ValueError):
        raise ConfigError(f"{setting} = {window!r}: give two HU values [low, high]") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ConfigError(f"{setting} = {list(window)!r}: use finite [low, high] HU with low < high")
    return low, high


def check_fov_mm(fov_mm, setting="data.fov_mm"):
    """Return ``fov_mm`` as a float if it is finite and positive.

    Example:
        >>> check_fov_mm(400)
        400.0
    """
    try:
        value = float(fov_mm)
    except (TypeError, ValueError):
        raise ConfigError(f"{setting} = {fov_mm!r}: give the field of view in mm, e.g. 400") from None
    if isinstance(fov_mm, bool) or not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{setting} = {fov_mm!r}: the field of view must be a positive number of mm")
    return value


def _check_int(size, setting):
    if isinstance(size, bool) or not isinstance(size, int):
        try:
            import numpy as np

            if isinstance(size, np.integer):
                return int(size)
        except ImportError:  # pragma: no cover
            pass
        raise ConfigError(f"{setting} = {size!r}: use a whole number of voxels")
    return size


def check_data_size(size, setting="data.size"):
    """Return ``size`` if it is a valid cube side for a prepared dataset (>= 8).

    Example:
        >>> check_data_size(24)
        24
    """
    size = _check_int(size, setting)
    if size < MIN_DATA_SIZE:
        raise ConfigError(f"{setting} = {size}: the cube side must be at least {MIN_DATA_SIZE} voxels")
    return size


def check_model_size(size, setting="data.size"):
    """Return ``size`` if the reconstruction model can be built at it: a power of two >= 16.

    Example:
        >>> check_model_size(64)
        64
    """
    size = _check_int(size, setting)
    if size < MIN_MODEL_SIZE or size & (size - 1):
        raise ConfigError(
            f"{setting} = {size}: the reconstruction model needs a power of two >= {MIN_MODEL_SIZE} "
            "(e.g. 32, 64, 128, 256)")
    return size


def default_levels(size):
    """Down-sampling levels so the bottleneck is 4 x 4 (a 4^3 Connection-A grid): log2(size) - 2.

    Example:
        >>> default_levels(128)
        5
    """
    return int(math.log2(size)) - 2


def check_levels(levels, size, setting="model.levels"):
    """Return the number of down-sampling levels to use at ``size`` (``None``: the default).

    Example:
        >>> check_levels(None, 64), check_levels(3, 64)
        (4, 3)
    """
    if levels is None:
        return default_levels(size)
    check_positive_int(levels, setting)
    most = int(math.log2(size)) - 1
    if levels > most:
        raise ConfigError(
            f"{setting} = {levels}: at size {size} use 1..{most} (the bottleneck must be >= 2 x 2), "
            f"or null for {default_levels(size)}")
    return levels


def check_style_size(size, setting="data.size"):
    """Return ``size`` if the style CycleGAN can run at it: a multiple of 4, >= 8
    (the generator down-samples twice by 2; its residual blocks need >= 2 x 2 features).

    Example:
        >>> check_style_size(32)
        32
    """
    size = _check_int(size, setting)
    if size < MIN_STYLE_SIZE or size % 4:
        raise ConfigError(
            f"{setting} = {size}: style transfer needs an image side that is a multiple of 4 "
            f"and at least {MIN_STYLE_SIZE}")
    return size
