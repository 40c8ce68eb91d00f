"""The record of one prepared case: its arrays and their TFRecord codec.

Each case is one file holding one ``tf.train.Example``; for a cube side ``S``
(canonical ``vol[z, x, y]`` order) its fields are:

- ``ct``: the windowed volume in [0, 1], ``S^3``, stored as little-endian
  uint16 ``round(v * 65535)``. The quantization error is at most
  ``0.5 / 65535 = 7.6e-6``, i.e. 0.015 HU for the paper's 2000 HU window, far
  below the 1 HU step (``1 / 2000`` in [0, 1] units); it halves the disk size
  of float32 (4 MiB per case at 128^3).
- ``ap`` ``(z, x)`` and ``lateral`` ``(z, y)``: mean-CT projections of the
  stored float32 volume (the paper's "mean CT" X-rays), float32.
- ``drr_ap`` and ``drr_lateral``: digitally reconstructed radiographs, float32.
- ``case_id``; optional extra 2D float32 fields (``styled_ap``,
  ``styled_lateral``) added later with :func:`add_fields`.
"""

import numpy as np

from xprospect_tf.checks import DEFAULT_FOV_MM, DEFAULT_WINDOW
from xprospect_tf.errors import ConfigError, InputError
from xprospect_tf.files import atomic_path

CT_LEVELS = 65535  # uint16 quantization of the [0, 1] volume
BASE_FIELDS = ("ap", "lateral", "drr_ap", "drr_lateral")
RESERVED_FIELDS = ("ct", "case_id") + BASE_FIELDS


def tensorflow():
    """TensorFlow, imported on first use (the rest of the data layer is numpy-only)."""
    import tensorflow as tf

    return tf


def case_arrays(volume, size, window=DEFAULT_WINDOW, fov_mm=DEFAULT_FOV_MM):
    """The arrays of one prepared case: windowed cube, mean-CT projections and DRRs.

    The paper (section 2) scales the CT from [-1000, 1000] HU to [0, 1] and
    "resizes" it to ``size^3``; resampling into an isotropic cube of side
    ``fov_mm`` is ours. The "mean CT" X-rays are the cube's means along ``y``
    (frontal) and ``x`` (lateral).

    Args:
        volume: a :class:`~xprospect_tf.data.volume.Volume` in HU.
        size: cube side in voxels.
        window: ``(low, high)`` HU window mapped to [0, 1].
        fov_mm: cube side in mm.

    Returns:
        ``{"ct": (S, S, S), "ap", "lateral", "drr_ap", "drr_lateral": (S, S)}``, float32.

    Example:
        >>> from xprospect_tf.data.phantom import phantom_volume
        >>> arrays = case_arrays(phantom_volume(16), 16)
        >>> arrays["ct"].shape, arrays["ap"].shape
        ((16, 16, 16), (16, 16))
    """
    from xprospect_tf.data.projection import drr, mean_projections
    from xprospect_tf.data.transforms import hu_window, prepare_volume

    cube = prepare_volume(volume, size, fov_mm=fov_mm)
    ct = np.asarray(hu_window(cube.hu, window), dtype=np.float32)
    ap, lateral = mean_projections(ct)
    drr_ap, drr_lateral = drr(cube.hu, cube.spacing)
    arrays = {"ct": ct, "ap": ap, "lateral": lateral, "drr_ap": drr_ap, "drr_lateral": drr_lateral}
    return {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}


def encode_example(case_id, arrays, size):
    """The ``tf.train.Example`` of one case: ``arrays`` as from :func:`case_arrays`."""
    tf = tensorflow()
    feature = {"case_id": _bytes_feature(case_id.encode())}
    for name, array in arrays.items():
        if name == "ct":
            _check_shape("ct", array, (size,) * 3)
            data = np.round(np.clip(array, 0.0, 1.0) * CT_LEVELS).astype("<u2")
        else:
            _check_shape(name, array, (size, size))
            data = np.asarray(array, dtype="<f4")
        feature[name] = _bytes_feature(data.tobytes())
    return tf.train.Example(features=tf.train.Features(feature=feature))


def add_fields(record, arrays, size, where):
    """``record`` (serialized) with extra 2D float32 fields added or replaced.

    Args:
        record: a serialized ``tf.train.Example`` of one case.
        arrays: ``{name: (size, size) array}``; names must not be core fields.
        size: the cube side.
        where: the case, named in error messages.

    Returns:
        The serialized record.

    Raises:
        ConfigError: a reserved or invalid field name.
        InputError: an array of the wrong shape or with non-finite values.
    """
    example = tensorflow().train.Example.FromString(record)
    for name, array in arrays.items():
        if name in RESERVED_FIELDS or not name.isidentifier():
            raise ConfigError(f"{name!r}: cannot add a field of that name; core fields are {RESERVED_FIELDS}")
        _check_shape(name, array, (size, size), where=where)
        data = np.asarray(array, dtype="<f4").tobytes()
        example.features.feature[name].CopyFrom(_bytes_feature(data))
    return example.SerializeToString()


def parse_record(record, size, names):
    """Decode the ``names`` fields of one serialized record into float32 tensors with channel axis."""
    tf = tensorflow()
    parsed = tf.io.parse_single_example(record, {n: tf.io.FixedLenFeature([], tf.string) for n in names})
    out = {}
    for name in names:
        if name == "case_id":
            out[name] = parsed[name]
        elif name == "ct":
            ct = tf.cast(tf.io.decode_raw(parsed[name], tf.uint16, little_endian=True), tf.float32)
            out[name] = tf.reshape(ct / float(CT_LEVELS), (size, size, size, 1))
        else:
            out[name] = tf.reshape(tf.io.decode_raw(parsed[name], tf.float32, little_endian=True), (size, size, 1))
    return out


def write_record(path, data):
    """Write one serialized record as the TFRecord file ``path``, atomically."""
    tf = tensorflow()
    with atomic_path(path) as tmp:
        with tf.io.TFRecordWriter(tmp) as writer:
            writer.write(data)


def read_record(path):
    """The one serialized record of the TFRecord file ``path`` (local or ``tf.io.gfile``)."""
    tf = tensorflow()
    try:
        return next(iter(tf.data.TFRecordDataset(path))).numpy()
    except (tf.errors.OpError, StopIteration) as e:
        raise InputError(
            f"{path}: cannot read the case record ({type(e).__name__}); "
            "delete it and rerun xprospect data prepare with the same --out to rewrite it"
        ) from None


def _bytes_feature(value):
    tf = tensorflow()
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _check_shape(name, array, shape, where="prepared case"):
    array = np.asarray(array)
    if array.shape != shape:
        raise InputError(f"{where}: field {name!r} has shape {array.shape}, expected {shape}")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{where}: field {name!r} contains NaN or infinite values")
