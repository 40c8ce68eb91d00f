"""CT transforms: HU window, isotropic resampling, body-centred crop, resize.

MONAI-style "one transform, one job": each function does one step in numpy/scipy
(no TensorFlow) and keeps the canonical ``vol[z, x, y]`` orientation and the
world position of every voxel (see :mod:`xprospect_tf.data.volume`).
:func:`prepare_volume` composes them into the pipeline applied to every case.
"""

import itertools
import logging

import numpy as np
from scipy import ndimage

from xprospect_tf.checks import DEFAULT_FOV_MM, DEFAULT_WINDOW, check_data_size, check_fov_mm, check_window
from xprospect_tf.data.volume import Volume
from xprospect_tf.errors import ConfigError, InputError

log = logging.getLogger(__name__)

AIR_HU = -1000.0
BODY_THRESHOLD_HU = -500.0
_COARSE_MM = 4.0  # the body is searched on a grid about this coarse ...
_COARSE_MIN_VOXELS = 32  # ... that keeps at least this many voxels per axis


def hu_window(hu, window=DEFAULT_WINDOW):
    """Clip Hounsfield units to ``window`` and scale them linearly to ``[0, 1]``.

    XprospeCT, section 2 (Data): the CT volumes are scaled "from -1000, 1000 HU to
    between 0 and 1"; clipping the values outside the window is ours (the paper does
    not say what happens to them). X-ray2CTPA uses [-100, 900].

    Args:
        hu: array in HU, any shape.
        window: ``(low, high)`` HU mapped to 0 and 1.

    Returns:
        float32 array of ``hu``'s shape with values in ``[0, 1]``.

    Example:
        >>> hu_window(np.array([-2000.0, 0.0, 500.0])).tolist()
        [0.0, 0.5, 0.75]
    """
    lo, hi = check_window(window, "window")
    hu = np.asarray(hu, dtype=np.float32)
    return ((np.clip(hu, lo, hi) - lo) / (hi - lo)).astype(np.float32, copy=False)


def hu_unwindow(vol01, window=DEFAULT_WINDOW):
    """Map a ``[0, 1]`` volume back to HU: the inverse of :func:`hu_window`.

    Values are clipped to ``[0, 1]`` first, so a model prediction that overshoots
    lands on the window's edge, not outside it.

    Args:
        vol01: array in ``[0, 1]``, any shape.
        window: the ``(low, high)`` HU window used by :func:`hu_window`.

    Returns:
        float32 array in HU, within ``window``.

    Example:
        >>> hu_unwindow(np.array([0.0, 0.5, 1.2])).tolist()
        [-1000.0, 0.0, 1000.0]
    """
    lo, hi = check_window(window, "window")
    vol01 = np.clip(np.asarray(vol01, dtype=np.float32), 0.0, 1.0)
    return (vol01 * (hi - lo) + lo).astype(np.float32, copy=False)


def resample_isotropic(volume, spacing_mm, order=1):
    """Resample ``volume`` to isotropic voxels of ``spacing_mm``.

    The first voxel's centre keeps its world position (``origin`` is unchanged);
    the output grid ``i * spacing_mm`` covers the input's extent, so no voxel lies
    outside the input and no fill value is needed. Along an axis whose spacing
    grows by a factor ``f >= 2``, voxels are first averaged over blocks of
    ``floor(f)`` (a box anti-aliasing filter, like OpenCV's INTER_AREA: it avoids
    aliasing fine structure such as ribs and is much cheaper than a Gaussian on a
    512x512x300 CT); the remaining factor ``< 2`` is interpolated with a spline of
    ``order``. Voxels within half a block of the border are extrapolated from the
    edge (scipy mode ``nearest``).

    Args:
        volume: :class:`Volume` in HU.
        spacing_mm: output voxel size in mm (> 0).
        order: spline order of the interpolation (0 nearest, 1 linear, 3 cubic).

    Returns:
        :class:`Volume` with spacing ``(spacing_mm,) * 3`` and ``volume.origin``.

    Example:
        >>> v = Volume(np.zeros((10, 20, 20)), spacing=(2.0, 1.0, 1.0))
        >>> resample_isotropic(v, 2.0).shape
        (10, 10, 10)
    """
    target = _positive(spacing_mm, "spacing_mm")
    step = target / np.asarray(volume.spacing)  # input voxels per output voxel
    shape = tuple(int(np.floor((n - 1) / r + 1e-6)) + 1 for n, r in zip(volume.shape, step))
    block = np.clip(np.floor(step + 1e-6).astype(int), 1, volume.shape)
    reduced = block_mean(volume.hu, block)
    # Output voxel i sits at input index i*step; reduced voxel m at m*block + (block-1)/2.
    hu = ndimage.affine_transform(
        reduced, step / block, offset=-(block - 1) / (2.0 * block), output_shape=shape,
        order=order, mode="nearest", prefilter=order > 1,
    )
    return Volume(hu, (target,) * 3, volume.origin, volume.source)


def body_center(hu, threshold=BODY_THRESHOLD_HU, source=""):
    """Voxel coordinates of the centre of the patient's body.

    The body is the largest connected region above ``threshold`` HU; its
    bounding-box centre is returned. The bounding box (not the centroid) is
    used because the lungs (about -800 HU) are holes in that region that would
    pull a centroid around; taking the largest region ignores a CT table, cables
    or noise separated from the body by air.

    Args:
        hu: 3D array in HU.
        threshold: HU above which a voxel is tissue.
        source: file or folder named in the error message.

    Returns:
        tuple of 3 floats (may be half-integers), in voxel units.

    Raises:
        InputError: no voxel is above ``threshold``.

    Example:
        >>> hu = np.full((8, 8, 8), -1000.0); hu[2:4, 1:6, 3:4] = 40.0
        >>> body_center(hu)
        (2.5, 3.0, 3.0)
    """
    labels, count = ndimage.label(np.asarray(hu) > threshold)
    if count == 0:
        raise InputError(
            f"{source or 'volume'}: no voxel is above {threshold} HU, so no body was found; "
            "check that the file is a CT in Hounsfield units (rescale slope/intercept applied)"
        )
    largest = int(np.argmax(np.bincount(labels.ravel())[1:]))
    box = ndimage.find_objects(labels)[largest]
    return tuple((s.start + s.stop - 1) / 2.0 for s in box)


def crop_or_pad_cube(volume, size, center=None, fill=AIR_HU):
    """Crop and/or pad ``volume`` to a ``size``^3 cube centred on ``center``.

    Args:
        volume: :class:`Volume` in HU.
        size: side of the cube in voxels.
        center: voxel coordinates ``(z, x, y)`` of the cube's centre; default
            :func:`body_center` of ``volume``.
        fill: HU written where the cube extends past the volume (air).

    Returns:
        :class:`Volume` of shape ``(size,) * 3`` with ``volume``'s spacing and the
        origin of its first voxel (so world positions are preserved).

    Example:
        >>> v = Volume(np.zeros((4, 10, 10)), spacing=(1.0, 1.0, 1.0))
        >>> crop_or_pad_cube(v, 6, center=(1.5, 4.5, 4.5)).shape
        (6, 6, 6)
    """
    size = _check_size(size, 1)
    if center is None:
        center = body_center(volume.hu, source=volume.source)
    start = np.floor(np.asarray(center, dtype=float) - (size - 1) / 2.0 + 0.5).astype(int)
    return _extract(volume, start, (size,) * 3, fill)


def resize_volume(array, size, order=1, anti_aliasing=True):
    """Resize a 3D array to ``size``^3 (e.g. 256^3 -> 64^3).

    Same convention as ``skimage.transform.resize(..., mode="edge")``: voxel
    centres are aligned as cell centres (``grid_mode``), and when shrinking an
    axis by a factor ``f`` the array is first smoothed with a Gaussian of sigma
    ``(f - 1) / 2`` voxels to avoid aliasing.

    Args:
        array: 3D array (HU or ``[0, 1]``).
        size: output side in voxels.
        order: spline order (0 nearest, 1 linear, 3 cubic).
        anti_aliasing: smooth before shrinking.

    Returns:
        float32 array of shape ``(size,) * 3``.

    Example:
        >>> resize_volume(np.ones((32, 32, 16)), 16).shape
        (16, 16, 16)
    """
    size = _check_size(size, 1)
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 3:
        raise InputError(f"resize_volume: expected a 3D array, got shape {array.shape}")
    factors = np.asarray(array.shape, dtype=float) / size
    if anti_aliasing and np.any(factors > 1):
        array = ndimage.gaussian_filter(array, np.maximum(0.0, (factors - 1) / 2), mode="nearest")
    return ndimage.zoom(
        array, 1.0 / factors, order=order, mode="nearest", grid_mode=True, prefilter=order > 1
    ).astype(np.float32, copy=False)


def prepare_volume(volume, size, fov_mm=DEFAULT_FOV_MM):
    """The pipeline applied to every CT: isotropic resample + body-centred cube.

    XprospeCT, section 2 (Data), says only that the volumes were "resized" to
    128^3 or 64^3; the isotropic resampling into a body-centred cube of a fixed
    field of view is ours. The output is a ``size``^3 cube of side
    ``fov_mm`` mm (voxel size ``fov_mm / size``) centred on the body's bounding
    box. The default field of view (``DEFAULT_FOV_MM``, 400 mm) holds an adult chest (about
    350 mm wide and 250 mm deep); anything outside it is cut, and cube voxels outside
    the scan are air (-1000 HU). For speed, the scan is first cropped to the cube
    (found on a coarse grid) before it is resampled.

    Args:
        volume: :class:`Volume` in HU, canonical orientation.
        size: cube side in voxels (>= 8), e.g. 64, 128 or 256.
        fov_mm: cube side in mm.

    Returns:
        :class:`Volume` in HU, shape ``(size,) * 3``, spacing ``(fov_mm / size,) * 3``,
        with the RAS+ origin of its first voxel.

    Raises:
        ConfigError: ``size`` < 8 or ``fov_mm`` <= 0.
        InputError: non-finite voxels, or no body (nothing above -500 HU).

    Example:
        >>> hu = np.full((20, 20, 20), -1000.0); hu[5:15, 5:15, 5:15] = 0.0
        >>> prepare_volume(Volume(hu, (2.0, 2.0, 2.0)), 8, fov_mm=48.0).spacing
        (6.0, 6.0, 6.0)
    """
    size = check_data_size(size, "size")
    fov = check_fov_mm(fov_mm, "fov_mm")
    _check_finite(volume)
    spacing = fov / size
    center_mm = _coarse_body_center_mm(volume)
    cropped = _crop_to_extent(volume, center_mm, fov + 2 * spacing)
    resampled = resample_isotropic(cropped, spacing)
    out = crop_or_pad_cube(resampled, size, center=world_to_voxel(resampled, center_mm))
    log.debug("%s: %s at %s mm -> %s at %.3g mm", volume.source, volume.shape,
              volume.spacing, out.shape, spacing)
    return out


def voxel_to_world(volume, index):
    """RAS+ position (mm) of voxel ``index`` (``(z, x, y)``, may be fractional)."""
    affine = volume.affine
    return affine[:3, :3] @ np.asarray(index, dtype=float) + affine[:3, 3]


def world_to_voxel(volume, point_mm):
    """Voxel coordinates ``(z, x, y)`` of the RAS+ position ``point_mm``."""
    affine = volume.affine
    return np.linalg.solve(affine[:3, :3], np.asarray(point_mm, dtype=float) - affine[:3, 3])


def _extract(volume, start, shape, fill):
    """The box ``start : start + shape`` of ``volume``; outside voxels get ``fill``."""
    out = np.full(shape, fill, dtype=np.float32)
    src, dst = [], []
    for s, n, m in zip(start, shape, volume.shape):
        lo = max(int(s), 0)
        hi = max(min(int(s) + n, m), lo)
        src.append(slice(lo, hi))
        dst.append(slice(lo - s, hi - s))
    out[tuple(dst)] = volume.hu[tuple(src)]
    return Volume(out, volume.spacing, voxel_to_world(volume, start), volume.source)


def _crop_to_extent(volume, center_mm, extent_mm):
    """The part of ``volume`` within a cube of ``extent_mm`` around ``center_mm`` (a view)."""
    center = world_to_voxel(volume, center_mm)
    half = extent_mm / 2.0 / np.asarray(volume.spacing)
    start = np.maximum(np.floor(center - half).astype(int), 0)
    stop = np.minimum(np.ceil(center + half).astype(int) + 1, volume.shape)
    box = tuple(slice(a, b) for a, b in zip(start, stop))
    return Volume(volume.hu[box], volume.spacing, voxel_to_world(volume, start), volume.source)


def _coarse_body_center_mm(volume):
    """World position of :func:`body_center`, searched on a grid about 4 mm coarse."""
    stride = np.array([
        max(1, min(int(_COARSE_MM // s), n // _COARSE_MIN_VOXELS))
        for s, n in zip(volume.spacing, volume.shape)
    ])
    coarse = volume.hu[::stride[0], ::stride[1], ::stride[2]]
    center = np.asarray(body_center(coarse, source=volume.source)) * stride
    return voxel_to_world(volume, center)


def block_mean(array, block):
    """Mean over non-overlapping blocks of ``block`` voxels (trailing partial blocks dropped).

    Example:
        >>> block_mean(np.arange(8.0).reshape(2, 2, 2), np.array([2, 2, 2])).tolist()
        [[[3.5]]]

    Sums strided views (one per offset in the block), which is several times
    faster than a 6D reshape + mean on a 512x512x300 CT.
    """
    if np.all(block == 1):
        return array
    counts = [n // b for n, b in zip(array.shape, block)]
    total = np.zeros(counts, dtype=np.float32)
    for offset in itertools.product(*(range(b) for b in block)):
        total += array[tuple(slice(o, o + c * b, b) for o, c, b in zip(offset, counts, block))]
    return total / np.float32(np.prod(block))


def _check_size(size, minimum):
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < minimum:
        raise ConfigError(
            f"size={size!r}: the cube side must be an integer >= {minimum} voxels "
            "(data.size in experiments.yaml)"
        )
    return int(size)


def _positive(value, name):
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not (np.isfinite(number) and number > 0):
        raise ConfigError(f"{name}={value!r}: must be a positive number of millimetres")
    return number


def _check_finite(volume):
    bad = int(np.size(volume.hu) - np.count_nonzero(np.isfinite(volume.hu)))
    if bad:
        raise InputError(
            f"{volume.source or 'volume'}: {bad} voxels are NaN or infinite; the file is "
            "corrupt or its rescale slope/intercept is invalid: fix or exclude it"
        )


def square_image(image, size):
    """Zero-pad a 2D X-ray to a centred square (air = 0) and resize it to ``(size, size)``.

    Keeps the aspect ratio of a radiograph that is not square; used wherever
    real X-rays meet a model (``xprospect predict``, style-transfer domain B).

    Args:
        image: 2D array in [0, 1].
        size: output side.

    Returns:
        float32 ``(size, size)`` in [0, 1] (anti-aliased linear resize).

    Example:
        >>> square_image(np.ones((4, 2)), 8).shape
        (8, 8)
    """
    from skimage.transform import resize

    image = np.asarray(image, dtype=np.float32)
    rows, cols = image.shape
    side = max(rows, cols)
    top, left = (side - rows) // 2, (side - cols) // 2
    padded = np.pad(image, ((top, side - rows - top), (left, side - cols - left)))
    out = resize(padded, (size, size), order=1, anti_aliasing=side > size, preserve_range=True)
    return np.clip(out, 0.0, 1.0).astype(np.float32)
