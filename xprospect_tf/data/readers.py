"""Readers: any supported CT file -> canonical :class:`Volume`; any X-ray -> [0, 1] image.

CT inputs (:func:`read_volume`):

- NIfTI ``.nii`` / ``.nii.gz`` in any orientation (reoriented by its affine);
- a folder holding a DICOM CT series (see :mod:`xprospect_tf.data.dicom`);
- a RAD-ChestCT ``.npz`` (key ``ct``) or a ``.npy`` array (see :func:`read_rad_chestct`).

X-ray inputs (:func:`read_xray`): PNG / JPEG (any bit depth, RGB -> luminance)
and single-frame 2D DICOM radiographs.

Orientation always comes from the file's geometry, never from the array shape
(ARCHITECTURE.md, "Canonical orientation").
"""

import contextlib
import logging
import os

import numpy as np

from xprospect_tf.data import dicom
from xprospect_tf.data.volume import Volume, reorient_to_canonical
from xprospect_tf.errors import InputError, XprospectError

logger = logging.getLogger(__name__)

VOLUME_FORMATS = (
    "NIfTI (.nii, .nii.gz), a folder holding a DICOM CT series, "
    "RAD-ChestCT arrays (.npz with key 'ct', or .npy)"
)
XRAY_FORMATS = "PNG / JPEG images and single-frame 2D DICOM radiographs"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

# RAD-ChestCT (Draelos et al. 2021) volumes were resampled to 0.8 mm isotropic.
RAD_CHESTCT_SPACING = (0.8, 0.8, 0.8)

# What a CT volume must look like to be read (issue #8: a reader refuses garbage).
# At least this many voxels along every axis: 1-3 slices are an image or a localizer,
# not a volume (pydicom's smallest real CT series has 5 slices of 16 x 16).
MIN_VOXELS_PER_AXIS = 4
# Voxel size, mm, along every axis: 0.05 mm (micro-CT) to 50 mm (no CT slice is thicker).
SPACING_RANGE_MM = (0.05, 50.0)
# Every voxel, HU: the 16-bit range scanners store. It holds padding values (-1024,
# -2000, -3024, -32768) and extended-scale metal (up to ~30,000 HU); 3e38 is garbage.
HU_LIMITS = (-32768.0, 32767.0)
# At least AIR_FRACTION of the voxels at or below AIR_HU: a chest CT always shows air or
# lung (a chest CT cropped to the body keeps its lungs, 5-20 % of the voxels). An MR,
# a CT stored without its -1000 (-1024) intercept, or any volume of positive values has none.
AIR_HU = -500.0
AIR_FRACTION = 0.01
# At least this many pixels along both axes of an X-ray.
XRAY_MIN_PIXELS = 8


def read_volume(path, series=None, check_hu=True):
    """Read a CT volume in HU into canonical ``(z, x, y)`` order.

    XprospeCT, section 2 (Data): CT volumes are the model's targets. The
    format is chosen from the path: a folder is read as a DICOM series, a
    ``.nii``/``.nii.gz`` file as NIfTI (``scl_slope``/``scl_inter`` applied),
    a ``.npz``/``.npy`` file as a RAD-ChestCT array (:func:`read_rad_chestct`).

    Args:
        path: file or folder.
        series: for a DICOM folder with several series, the SeriesInstanceUID or
            the index (as listed in the error message) of the one to read.
        check_hu: refuse values that cannot be CT Hounsfield units (see
            :func:`check_ct_volume`); ``False`` reads a real CT without air or
            lung (e.g. cropped to a bone), or a non-CT volume, as it is.

    Returns:
        :class:`~xprospect_tf.data.volume.Volume` with ``hu`` float32
        ``(z, x, y)``, ``spacing`` mm along ``(z, x, y)``, ``origin`` the RAS+
        position of voxel 0 and ``source=str(path)``.

    Raises:
        InputError: missing path, unsupported or corrupt file, 2D image, non-CT
            DICOM series, incomplete series, or a volume that cannot be a CT
            (:func:`check_ct_volume`).

    Example:
        >>> import os, tempfile
        >>> from xprospect_tf.data.volume import Volume, write_nifti
        >>> with tempfile.TemporaryDirectory() as d:
        ...     hu = np.full((6, 4, 5), -1000.0); hu[2:4, 1:3, 1:4] = 40.0  # air around soft tissue
        ...     path = write_nifti(Volume(hu, (2.5, 0.75, 1.25)), os.path.join(d, "case1.nii.gz"))
        ...     vol = read_volume(path)
        >>> vol.hu.shape, vol.spacing
        ((6, 4, 5), (2.5, 0.75, 1.25))
    """
    source = str(path)
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"{source}: no such file or folder; read_volume reads {VOLUME_FORMATS}")
    with _named_failures(source, "volume"):
        volume = _read_any_volume(path, source, series)
        check_ct_volume(volume, check_hu=check_hu)
    return volume


def _read_any_volume(path, source, series):
    name = path.lower()
    if os.path.isdir(path):
        hu, affine = dicom.read_ct_series(path, series=series)
        return _canonical_volume(hu, affine, source)
    if name.endswith((".nii", ".nii.gz")):
        hu, affine = _read_nifti(path)
        return _canonical_volume(hu, affine, source)
    if name.endswith((".npz", ".npy")):
        hu, spacing = read_rad_chestct(path)
        return _finite_volume(hu, spacing, (0.0, 0.0, 0.0), source)
    if name.endswith(".dcm") or dicom.is_dicom_file(path):
        dicom.refuse_single_file(path)
    raise InputError(f"{source}: unsupported file type; read_volume reads {VOLUME_FORMATS}")


@contextlib.contextmanager
def _named_failures(source, what):
    """Last line of defence: any unforeseen failure while reading becomes an InputError naming ``source``."""
    try:
        yield
    except (XprospectError, MemoryError):
        raise
    except Exception as err:  # a damaged file can trip any library on the way (struct, zlib, numpy)
        raise InputError(
            f"{source}: cannot read this {what} ({type(err).__name__}: {err}); the file is "
            "probably truncated or corrupt: copy or export it again"
        ) from err


def _canonical_volume(hu, affine, source):
    data, spacing, origin = reorient_to_canonical(hu, affine, source=source)
    return _finite_volume(data, spacing, origin, source)


def _finite_volume(hu, spacing, origin, source):
    hu = np.ascontiguousarray(hu, dtype=np.float32)
    bad = int(hu.size - np.count_nonzero(np.isfinite(hu)))
    if bad:
        raise InputError(
            f"{source}: {bad} voxel(s) are NaN or infinite; repair or re-export the volume "
            "(e.g. replace them with -1000 HU, air) before using it"
        )
    return Volume(hu=hu, spacing=spacing, origin=origin, source=source)


def check_ct_volume(volume, check_hu=True):
    """Refuse a volume that cannot be a CT, naming its source and the rule it breaks.

    The rules (module constants): at least :data:`MIN_VOXELS_PER_AXIS` voxels
    along every axis; every spacing within :data:`SPACING_RANGE_MM`; and, with
    ``check_hu``, every value within :data:`HU_LIMITS` and at least
    :data:`AIR_FRACTION` of the voxels at or below :data:`AIR_HU` (air or lung,
    which every chest CT shows). Finite values are checked when it is read.

    Args:
        volume: a :class:`~xprospect_tf.data.volume.Volume` in HU.
        check_hu: also check the Hounsfield-unit rules.

    Raises:
        InputError: a rule is broken.

    Example:
        >>> check_ct_volume(Volume(np.full((8, 8, 8), -1000.0), (1.0, 1.0, 1.0)))
    """
    source = volume.source or "volume"
    shape, spacing = volume.shape, volume.spacing
    if min(shape) < MIN_VOXELS_PER_AXIS:
        raise InputError(
            f"{source}: a volume of {shape[0]} x {shape[1]} x {shape[2]} voxels (z, x, y); a CT "
            f"has at least {MIN_VOXELS_PER_AXIS} along every axis. This is a 2D image, a localizer "
            "or a damaged header, not a CT volume: give the whole CT"
        )
    low, high = SPACING_RANGE_MM
    if not all(np.isfinite(s) and low <= s <= high for s in spacing):
        raise InputError(
            f"{source}: voxel spacing {tuple(float(f'{s:.4g}') for s in spacing)} mm (z, x, y); a CT's "
            f"voxels measure {low:g} to {high:g} mm. The geometry header (NIfTI pixdim/affine, "
            "DICOM PixelSpacing/ImagePositionPatient, .npz 'spacing') is wrong: fix or re-export it"
        )
    if not check_hu:
        return
    hu = volume.hu
    low, high = HU_LIMITS
    vmin, vmax = float(hu.min()), float(hu.max())
    if vmin < low or vmax > high:
        raise InputError(
            f"{source}: values from {vmin:.4g} to {vmax:.4g}; CT Hounsfield units lie within "
            f"[{low:g}, {high:g}] (air -1000, water 0, bone up to ~3000). The data are corrupt or "
            "not in HU (check the scale slope/intercept): re-export the CT in HU"
        )
    air = np.count_nonzero(hu <= AIR_HU) / hu.size
    if air < AIR_FRACTION:
        raise InputError(
            f"{source}: only {100 * air:.2g} % of the voxels are at or below {AIR_HU:g} HU, values "
            f"{vmin:.4g} to {vmax:.4g}: a CT in Hounsfield units shows air or lung (about -1000 HU) "
            f"in at least {100 * AIR_FRACTION:g} % of its voxels. This is not a CT in HU (an MR, "
            "or a CT stored without its -1000/-1024 rescale intercept): give the CT in HU. If it "
            "is a real CT without any air (e.g. cropped to a bone), read it with "
            "read_volume(..., check_hu=False)"
        )


def _read_nifti(path):
    """(data float32 3D, RAS affine) of a NIfTI file; a singleton 4th axis is dropped."""
    import nibabel as nib

    try:
        img = nib.load(path)
        shape = img.shape
        data = None
        if len(shape) == 3 or (len(shape) > 3 and all(n == 1 for n in shape[3:])):
            _check_nifti_size(img, path)
            data = img.get_fdata(dtype=np.float32).reshape(shape[:3])
    except InputError:
        raise
    except Exception as err:  # nibabel/gzip/zlib raise many types for damaged files
        raise InputError(
            f"{path}: cannot read this NIfTI file ({type(err).__name__}: {err}); it is probably "
            "truncated or corrupt: copy or export it again"
        ) from err
    if data is None:
        raise InputError(
            f"{path}: a NIfTI image of shape {shape}; read_volume needs one 3D volume "
            "(a 4th axis of length 1 is accepted). Extract the volume you want first "
            "(e.g. nibabel.funcs.four_to_three)"
        )
    return data, img.affine


# deflate never compresses more than 1032:1, so a .nii.gz cannot hold more than this per byte
_GZIP_MAX_RATIO = 1032


def _check_nifti_size(img, path):
    """Refuse a header that declares more voxel data than the file can hold (before allocating it)."""
    header = img.header
    declared = int(np.prod([int(n) for n in img.shape], dtype=object)) * header.get_data_dtype().itemsize
    offset = int(header.get("vox_offset", 0) or 0)
    size = os.path.getsize(path)
    limit = size * _GZIP_MAX_RATIO if path.lower().endswith(".gz") else size
    if declared + offset > limit:
        raise InputError(
            f"{path}: the NIfTI header declares {img.shape} voxels of {header.get_data_dtype()} "
            f"({declared} bytes) but the file is {size} bytes: it is truncated or its header is "
            "corrupt: copy or export it again"
        )


def read_rad_chestct(path):
    """Read a RAD-ChestCT ``.npz`` (or a ``.npy``) HU array in canonical order.

    RAD-ChestCT (Draelos et al. 2021, the CT source of the paper) stores each
    volume as ``np.savez_compressed(path, ct=array)``: int16 HU clipped to
    [-1000, 1000], resampled to 0.8 mm isotropic, with axes
    ``(slice, row, column)`` of the axial DICOM stack: axis 0 superior ->
    inferior, axis 1 anterior -> posterior, axis 2 patient right -> left
    (axial slices in standard orientation). This reader therefore swaps axes 1
    and 2 to return ``(z, x, y)``.

    The array is the ``ct`` key, or the only array in the file. An optional
    ``spacing`` key (3 numbers, mm, in the file's axis order) overrides the
    0.8 mm default. A ``.npy`` file uses the same axis order and 0.8 mm.

    Args:
        path: ``.npz`` or ``.npy`` file.

    Returns:
        ``(hu, spacing)``: float32 array ``(z, x, y)`` and spacing along it, mm.

    Example:
        >>> import os, tempfile
        >>> with tempfile.TemporaryDirectory() as d:  # (slice, row, column) = (z, y, x)
        ...     np.savez(os.path.join(d, "trn00001.npz"), ct=np.zeros((3, 4, 5), np.int16))
        ...     hu, spacing = read_rad_chestct(os.path.join(d, "trn00001.npz"))
        >>> hu.shape, hu.dtype, spacing
        ((3, 5, 4), dtype('float32'), (0.8, 0.8, 0.8))
    """
    spacing = RAD_CHESTCT_SPACING
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                arr, spacing = _npz_array(loaded, path)
        else:
            arr = np.asarray(loaded)
    except InputError:
        raise
    except Exception as err:
        raise InputError(
            f"{path}: cannot read this numpy file ({type(err).__name__}: {err}); it is "
            "probably truncated or corrupt, or holds pickled objects (not supported)"
        ) from err
    if arr.ndim != 3 or not np.issubdtype(arr.dtype, np.number):
        raise InputError(
            f"{path}: expected a 3D numeric HU array (slice, row, column), got shape {arr.shape} "
            f"and dtype {arr.dtype}"
        )
    spacing = tuple(float(s) for s in spacing)
    return np.swapaxes(arr, 1, 2).astype(np.float32), (spacing[0], spacing[2], spacing[1])


def _npz_array(loaded, path):
    keys = list(loaded.files)
    arrays = [k for k in keys if k != "spacing"]
    if "ct" in keys:
        key = "ct"
    elif len(arrays) == 1:
        key = arrays[0]
    else:
        raise InputError(
            f"{path}: expected the CT under key 'ct' (or a single array), found keys {keys}; "
            "save it with np.savez_compressed(path, ct=volume)"
        )
    spacing = RAD_CHESTCT_SPACING
    if "spacing" in keys:
        spacing = np.asarray(loaded["spacing"], dtype=float).ravel()
        if spacing.shape != (3,) or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
            raise InputError(f"{path}: key 'spacing' must hold 3 positive numbers (mm), got {spacing}")
    return np.asarray(loaded[key]), spacing


def read_xray(path):
    """Read a radiograph as float32 in [0, 1], higher where the body attenuates more.

    PNG/JPEG (8/16-bit grayscale; RGB(A) converted to luminance) are taken as
    displayed (bone bright). Single-frame DICOM gets the modality LUT/rescale,
    the VOI LUT or WindowCenter/Width, and MONOCHROME1 inversion (see
    :func:`xprospect_tf.data.dicom.read_dicom_radiograph`). The result is
    min-max normalized to [0, 1].

    Args:
        path: image file.

    Returns:
        float32 array ``(rows, cols)`` in [0, 1].

    Raises:
        InputError: missing, corrupt, blank, tiny (under :data:`XRAY_MIN_PIXELS`
            a side), 3D / multi-frame or unsupported file, or a DICOM whose
            Modality is not a radiograph (CR, DX, RG or none).

    Example:
        >>> import os, tempfile
        >>> from PIL import Image
        >>> with tempfile.TemporaryDirectory() as d:
        ...     Image.fromarray(np.arange(0, 240, 2, np.uint8).reshape(8, 15)).save(os.path.join(d, "view1_frontal.png"))
        ...     img = read_xray(os.path.join(d, "view1_frontal.png"))
        >>> img.shape, img.dtype, float(img.min()), float(img.max())
        ((8, 15), dtype('float32'), 0.0, 1.0)
    """
    source = str(path)
    path = os.fspath(path)
    if not os.path.isfile(path):
        what = "a folder" if os.path.isdir(path) else "no such file"
        raise InputError(f"{source}: {what}; read_xray reads one image file: {XRAY_FORMATS}")
    with _named_failures(source, "image"):
        if path.lower().endswith(".dcm") or dicom.is_dicom_file(path):
            image = dicom.read_dicom_radiograph(path)
        else:
            image = _read_image(path)
        if image.ndim != 2 or min(image.shape) < XRAY_MIN_PIXELS:
            raise InputError(
                f"{source}: an image of {' x '.join(str(n) for n in image.shape)} pixels; an X-ray "
                f"has at least {XRAY_MIN_PIXELS} along both axes: the file is empty, damaged or "
                "not a radiograph"
            )
        return _minmax01(image, source)


def _read_image(path):
    """Grayscale float64 pixels of a PNG/JPEG/TIFF image (RGB -> luminance)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            frames = getattr(img, "n_frames", 1)
            if frames > 1:
                raise InputError(
                    f"{path}: an image with {frames} frames (3D/animated); read_xray takes one 2D image"
                )
            if img.mode in ("RGB", "RGBA", "P", "PA", "LA", "CMYK", "YCbCr", "LAB", "HSV"):
                return dicom.luminance(np.asarray(img.convert("RGB")))
            arr = np.asarray(img)
    except InputError:
        raise
    except UnidentifiedImageError as err:
        raise InputError(f"{path}: not a readable image; read_xray reads {XRAY_FORMATS}") from err
    except Exception as err:
        raise InputError(
            f"{path}: cannot read this image ({type(err).__name__}: {err}); it is probably "
            "truncated or corrupt"
        ) from err
    if arr.ndim != 2:
        raise InputError(f"{path}: expected a 2D grayscale image, got shape {arr.shape}")
    return arr.astype(np.float64)


def _minmax01(image, source):
    image = np.asarray(image, dtype=np.float64)
    if not np.all(np.isfinite(image)):
        raise InputError(f"{source}: the image holds NaN or infinite pixels")
    low, high = float(image.min()), float(image.max())
    if high <= low:
        raise InputError(f"{source}: the image is blank (every pixel is {low:g}); check the file")
    return ((image - low) / (high - low)).astype(np.float32)
