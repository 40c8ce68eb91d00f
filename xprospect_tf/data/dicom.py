"""DICOM input: CT series folders (volumes) and single-frame radiographs.

A CT series is stacked from its single-frame slices using only the geometry
in the headers (ImageOrientationPatient, ImagePositionPatient, PixelSpacing),
never the file names or InstanceNumber, then reoriented to the canonical
``(z, x, y)`` order by :func:`~xprospect_tf.data.volume.reorient_to_canonical`.
Public entry points are :func:`xprospect_tf.data.readers.read_volume` and
:func:`xprospect_tf.data.readers.read_xray`; this module holds their DICOM part.
"""

import logging

import numpy as np

from xprospect_tf.errors import InputError
from xprospect_tf.files import sorted_files

logger = logging.getLogger(__name__)

# LPS (DICOM patient coordinates) -> RAS (NIfTI world coordinates).
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_DUPLICATE_MM = 0.01  # two slices closer than this along the normal are duplicates
_STEP_TOLERANCE = 0.01  # allowed relative deviation of a slice step from the median
# Extensions that claim a file is DICOM: such a file that is not valid DICOM is broken, not foreign.
_DICOM_SUFFIXES = (".dcm", ".dicom", ".dic", ".ima")
# Modalities read_xray accepts: computed / digital radiography, radiographic imaging (film),
# and files that do not say (an empty Modality). CT, MR, PT, NM, US, MG, XA, OT, ... are refused.
RADIOGRAPH_MODALITIES = ("CR", "DX", "RG", "")


def is_dicom_file(path):
    """Whether ``path`` is a file with the DICOM Part 10 marker ``DICM`` at byte 128.

    Args:
        path: file path.

    Returns:
        ``True`` for a DICOM Part 10 file. Files without the 128-byte preamble
        (old ACR-NEMA style) are not recognised.

    Example:
        >>> is_dicom_file("notes.txt")
        False
    """
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def read_dicom(path, headers_only=False):
    """Read one DICOM file with pydicom, turning any failure into an InputError.

    Args:
        path: a DICOM file.
        headers_only: stop before the pixel data (fast scan of a folder).

    Returns:
        A ``pydicom.Dataset``.

    Example:
        >>> from pydicom.data import get_testdata_file
        >>> path = get_testdata_file("CT_small.dcm")  # a 128 x 128 CT slice shipped with pydicom
        >>> ds = read_dicom(path, headers_only=True)
        >>> ds.Modality, ds.Rows, "PixelData" in ds
        ('CT', 128, False)
    """
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=headers_only)
        for elem in ds.iterall():  # decode every value now: a corrupt one fails here, named
            elem.value  # noqa: B018
        return ds
    except Exception as err:  # pydicom raises many types for damaged files
        raise InputError(
            f"{path}: cannot read this DICOM file ({type(err).__name__}: {err}); "
            "it is probably truncated or corrupt: copy it again or remove it from the folder"
        ) from err


def pixel_array(ds, path):
    """Decoded pixel data of ``ds`` (read from ``path``), or an InputError.

    Args:
        ds: a ``pydicom.Dataset`` read with its pixel data.
        path: its file, for messages.

    Returns:
        The numpy pixel array (frames/samples as pydicom returns them).

    Example:
        >>> from pydicom.data import get_testdata_file
        >>> path = get_testdata_file("CT_small.dcm")  # a 128 x 128 CT slice shipped with pydicom
        >>> arr = pixel_array(read_dicom(path), path)
        >>> arr.shape, arr.dtype
        ((128, 128), dtype('int16'))
    """
    if "PixelData" not in ds:
        raise InputError(f"{path}: this DICOM file holds no image (no PixelData element)")
    try:
        return ds.pixel_array
    except Exception as err:
        raise InputError(
            f"{path}: cannot decode the DICOM pixel data ({type(err).__name__}: {err}); the file "
            "is truncated/corrupt, or compressed with a codec that needs an extra decoder package "
            "(e.g. pylibjpeg); convert it to uncompressed DICOM, NIfTI or PNG"
        ) from err


def _number_of_frames(ds):
    try:
        return int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        return 1


def _modality(ds):
    return str(ds.get("Modality", "") or "").strip().upper()


def refuse_single_file(path):
    """Raise the InputError explaining why one DICOM file is not a CT volume.

    A single-frame file is one slice or a radiograph; an (Enhanced) multi-frame
    file is not supported. Both messages say what to pass instead.

    Args:
        path: the DICOM file that was given to ``read_volume``.

    Raises:
        InputError: always.

    Example:
        >>> from pydicom.data import get_testdata_file
        >>> path = get_testdata_file("CT_small.dcm")  # a 128 x 128 CT slice shipped with pydicom
        >>> try:
        ...     refuse_single_file(path)
        ... except InputError as e:
        ...     print(str(e).split(": ", 1)[1][:39])
        a 2D image, not a volume; use read_xray
    """
    ds = read_dicom(path, headers_only=True)
    if _number_of_frames(ds) > 1:
        raise InputError(
            f"{path}: a multi-frame (Enhanced) DICOM file with {_number_of_frames(ds)} frames; "
            "read_volume supports CT series stored as one single-frame file per slice (pass "
            "their folder), NIfTI and RAD-ChestCT .npz. Convert this file to NIfTI (e.g. with "
            "dcm2niix) or to single-frame slices"
        )
    raise InputError(
        f"{path}: a 2D image, not a volume; use read_xray for radiographs, or pass the folder "
        "holding all slices of the CT series to read_volume"
    )


def _series_info(datasets):
    """One entry per series: dict(uid, description, modality, number, paths)."""
    groups = {}
    for path, ds in datasets:
        uid = str(ds.get("SeriesInstanceUID", "") or "<no SeriesInstanceUID>")
        if uid not in groups:
            groups[uid] = {
                "uid": uid,
                "description": str(ds.get("SeriesDescription", "") or ""),
                "modality": str(ds.get("Modality", "") or "?"),
                "number": ds.get("SeriesNumber", None),
                "paths": [],
            }
        groups[uid]["paths"].append(path)

    def key(info):
        number = info["number"]
        try:
            return (0, int(number), info["uid"])
        except (TypeError, ValueError):
            return (1, 0, info["uid"])

    return sorted(groups.values(), key=key)


def _describe_series(series_list):
    return "\n".join(
        f"  [{i}] {s['uid']}  {s['modality']}  '{s['description']}'  {len(s['paths'])} file(s)"
        for i, s in enumerate(series_list)
    )


def _choose_series(series_list, series, folder):
    if series is None:
        if len(series_list) == 1:
            return series_list[0]
        raise InputError(
            f"{folder}: holds {len(series_list)} DICOM series; choose one: pass series=<UID> or "
            f"series=<index> to read_volume (CLI: --series <UID>), or copy one series into a "
            f"folder of its own:\n{_describe_series(series_list)}"
        )
    for s in series_list:
        if str(series) == s["uid"]:
            return s
    index = series if isinstance(series, int) else None
    if isinstance(series, str) and series.strip().isdigit():
        index = int(series)
    if index is not None and 0 <= index < len(series_list):
        return series_list[index]
    raise InputError(
        f"{folder}: no DICOM series matches series={series!r}; give one of these UIDs or "
        f"indices (CLI: --series <UID>):\n{_describe_series(series_list)}"
    )


def _scan_folder(folder):
    """(path, header dataset) for every DICOM image file under ``folder``.

    Files that are not DICOM at all (a README, notes.txt, .DS_Store) and DICOM
    files that hold no image by their SOP class (DICOMDIR, reports) are skipped.
    A broken DICOM file is an error naming it, never a silent skip (losing an
    end slice would go unnoticed): a file without the ``DICM`` marker that is
    named like DICOM (``*.dcm``), or is not named like a foreign file (no
    alphabetic extension) and is empty, starts like the preamble of the DICOM
    files beside it, or has the file meta group where it belongs; and an image
    file truncated before its ``Rows`` (pydicom reads truncated files without
    complaint).
    """
    found, others, preambles = [], [], set()
    for path in sorted_files(folder):
        if not is_dicom_file(path):
            others.append(path)
            continue
        ds = read_dicom(path, headers_only=True)
        preambles.add(bytes(getattr(ds, "preamble", None) or b""))
        if "Rows" not in ds:
            sop_class = getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID", None)
            if sop_class is None or "Image Storage" in getattr(sop_class, "name", ""):
                raise InputError(
                    f"{path}: a DICOM image file ({getattr(sop_class, 'name', 'no SOP class')}) "
                    "without its image attributes (Rows, pixel data): it is truncated or corrupt; "
                    f"copy it again, or remove it from {folder}"
                )
            logger.debug("skipping %s: a DICOM file without an image (%s)", path, sop_class.name)
            continue
        found.append((path, ds))
    for path in others:
        if _looks_like_broken_dicom(path, preambles):
            raise InputError(
                f"{path}: a damaged DICOM file in {folder} (empty, truncated, or its 'DICM' "
                "marker at byte 128 is corrupt); copy it again, or remove it from the folder"
            )
        logger.debug("skipping %s: not a DICOM file", path)
    return found


def _looks_like_broken_dicom(path, preambles=()):
    """Whether a file that is not valid DICOM Part 10 still claims or looks to be DICOM."""
    import os

    name = os.path.basename(path)
    if name.startswith("."):
        return False  # hidden files (.DS_Store, editor backups) are never slices
    extension = os.path.splitext(name)[1].lower()
    if extension in _DICOM_SUFFIXES:
        return True
    if extension[1:].isalpha() and not extension[1:].isdigit():
        return False  # README.txt, report.pdf, image.png: a foreign file (UID names end in digits)
    try:
        with open(path, "rb") as f:
            head = f.read(134)
    except OSError:
        return True
    if not head[:128].strip(b"\0") or head[132:134] == b"\x02\x00":
        return True  # empty, a zero preamble, or the file meta group where 'DICM' should end
    return any(p and p.startswith(head[:128]) for p in preambles)


def _geometry(ds, path):
    """(row cosine, column cosine, position, pixel spacing) of one slice, LPS mm."""
    try:
        iop = np.array([float(v) for v in ds.ImageOrientationPatient], dtype=float)
        ipp = np.array([float(v) for v in ds.ImagePositionPatient], dtype=float)
        spacing = np.array([float(v) for v in ds.PixelSpacing], dtype=float)
    except Exception as err:  # missing tag, wrong count or type, unparsable number
        raise InputError(
            f"{path}: missing or invalid ImageOrientationPatient / ImagePositionPatient / "
            "PixelSpacing; without them the slice cannot be placed in the volume "
            "(is this a CT slice exported with its geometry?)"
        ) from err
    if iop.shape != (6,) or ipp.shape != (3,) or spacing.shape != (2,):
        raise InputError(f"{path}: malformed DICOM geometry tags (orientation/position/spacing)")
    if not (np.all(np.isfinite(iop)) and np.all(np.isfinite(ipp)) and np.all(spacing > 0)
            and np.all(np.isfinite(spacing))):
        raise InputError(
            f"{path}: invalid DICOM geometry: ImageOrientationPatient {iop.tolist()}, "
            f"ImagePositionPatient {ipp.tolist()}, PixelSpacing {spacing.tolist()} (mm, must be "
            "positive); the header is corrupt: copy or export the series again"
        )
    return iop[:3], iop[3:], ipp, spacing


def _check_consistent(headers, folder):
    """The shared (row cosine, column cosine, pixel spacing, rows, cols) of a series."""
    first_path, first = headers[0]
    row0, col0, _, spacing0 = _geometry(first, first_path)
    shape0 = _rows_columns(first, first_path)
    for path, ds in headers[1:]:
        row, col, _, spacing = _geometry(ds, path)
        if not (np.allclose(row, row0, atol=1e-4) and np.allclose(col, col0, atol=1e-4)):
            raise InputError(
                f"{folder}: slices have different ImageOrientationPatient ({first_path} vs "
                f"{path}); this is not one stack of parallel slices"
            )
        if not np.allclose(spacing, spacing0, rtol=1e-4) or _rows_columns(ds, path) != shape0:
            raise InputError(
                f"{folder}: slices differ in size or PixelSpacing ({first_path} vs {path}); "
                "cannot stack them into one volume"
            )
    return row0, col0, spacing0


def _rows_columns(ds, path):
    try:
        return int(ds.Rows), int(ds.Columns)
    except Exception as err:
        raise InputError(f"{path}: missing or invalid Rows/Columns; the DICOM header is corrupt") from err


def slice_order(positions, folder, paths):
    """Sort slices by position along the normal and check the steps are even.

    Args:
        positions: position of each slice along the slice normal, mm.
        folder: the series folder, for messages.
        paths: file of each slice, for messages.

    Returns:
        The indices that sort the slices (ascending position).

    Raises:
        InputError: duplicate positions, missing slices or uneven spacing.

    Example:
        >>> slice_order([2.0, 0.0, 1.0], "ct", ["a", "b", "c"]).tolist()
        [1, 2, 0]
    """
    positions = np.asarray(positions, dtype=float)
    order = np.argsort(positions, kind="stable")
    sorted_pos = positions[order]
    steps = np.diff(sorted_pos)
    dup = np.flatnonzero(steps < _DUPLICATE_MM)
    if dup.size:
        i = dup[0]
        raise InputError(
            f"{folder}: {dup.size} duplicate slice position(s), e.g. {paths[order[i]]} and "
            f"{paths[order[i + 1]]} both at {sorted_pos[i]:.3f} mm; remove duplicated files "
            "(or split repeated acquisitions into separate folders)"
        )
    median = float(np.median(steps))
    tolerance = max(_STEP_TOLERANCE * median, _DUPLICATE_MM)
    bad = np.flatnonzero(np.abs(steps - median) > tolerance)
    if bad.size:
        i = bad[0]
        missing = max(int(round(steps[i] / median)) - 1, 0)
        what = f"about {missing} missing slice(s)" if missing else "uneven slice spacing"
        raise InputError(
            f"{folder}: {what}: a gap of {steps[i]:.3f} mm between {sorted_pos[i]:.3f} mm "
            f"({paths[order[i]]}) and {sorted_pos[i + 1]:.3f} mm ({paths[order[i + 1]]}), while "
            f"the usual step is {median:.3f} mm ({bad.size} irregular gap(s) in all); "
            "the series is incomplete: copy it again"
        )
    return order


def read_ct_series(folder, series=None):
    """Read a CT series folder into a canonical HU array and its RAS affine.

    Files are found recursively; non-DICOM files are skipped. Slices are grouped
    by SeriesInstanceUID, sorted along the normal of their plane
    (row cosine x column cosine), rescaled with RescaleSlope/Intercept and
    placed by an LPS->RAS affine built from the headers.

    Args:
        folder: directory holding the series (and possibly others).
        series: SeriesInstanceUID, or index in the listing the error gives,
            to pick one series when the folder holds several.

    Returns:
        ``(hu, ras_affine)``: float32 array ``(slices, rows, cols)`` in HU and its
        4x4 RAS+ affine (to be reoriented by the caller).

    Example:
        >>> from pydicom.data import get_testdata_file
        >>> path = get_testdata_file("CT_small.dcm")  # a 128 x 128 CT slice shipped with pydicom
        >>> import os, tempfile
        >>> with tempfile.TemporaryDirectory() as d:  # three slices 5 mm apart
        ...     for i in range(3):
        ...         ds = read_dicom(path)
        ...         ds.ImagePositionPatient = [0.0, 0.0, -5.0 * i]
        ...         ds.SOPInstanceUID = f"{ds.SOPInstanceUID}.{i}"
        ...         ds.save_as(os.path.join(d, f"{i}.dcm"))
        ...     hu, affine = read_ct_series(d)
        >>> hu.shape, hu.dtype
        ((3, 128, 128), dtype('float32'))
    """
    headers = _scan_folder(folder)
    if not headers:
        raise InputError(f"{folder}: no DICOM image files found in this folder or below")
    chosen = _choose_series(_series_info(headers), series, folder)
    label = f"series {chosen['uid']} ('{chosen['description']}')"
    if chosen["modality"] != "CT":
        raise InputError(
            f"{folder}: {label} has Modality {chosen['modality']}; read_volume reads CT only "
            "(its values must be Hounsfield units); pick a CT series or folder"
        )
    paths = set(chosen["paths"])
    headers = [(p, ds) for p, ds in headers if p in paths]
    for path, ds in headers:
        if _modality(ds) != "CT":
            raise InputError(
                f"{path}: Modality {_modality(ds) or '(none)'} in {label}, whose other slices are CT; "
                "the file is corrupt or does not belong to this series: copy it again or remove it"
            )
    frames = max(_number_of_frames(ds) for _, ds in headers)
    if frames > 1:
        refuse_single_file(next(p for p, ds in headers if _number_of_frames(ds) > 1))
    if len(headers) < 2:
        raise InputError(
            f"{folder}: {label} has a single slice ({headers[0][0]}): a 2D image, not a volume; "
            "use read_xray for radiographs, or give a folder with the whole CT series"
        )
    row, col, spacing = _check_consistent(headers, folder)
    normal = np.cross(row, col)
    positions = [np.array([float(v) for v in ds.ImagePositionPatient]) for _, ds in headers]
    order = slice_order([p @ normal for p in positions], folder, [p for p, _ in headers])
    hu = np.stack([_slice_hu(headers[i][0]) for i in order])
    first, last = positions[order[0]], positions[order[-1]]
    lps = np.eye(4)
    lps[:3, 0] = (last - first) / (len(order) - 1)
    lps[:3, 1] = col * spacing[0]  # along rows: PixelSpacing[0] is the row spacing
    lps[:3, 2] = row * spacing[1]
    lps[:3, 3] = first
    logger.info("read %d slices of %s from %s", len(order), label, folder)
    return hu, _LPS_TO_RAS @ lps


def _slice_hu(path):
    ds = read_dicom(path)
    arr = pixel_array(ds, path)
    if arr.ndim != 2:
        raise InputError(f"{path}: expected a single-frame grayscale CT slice, got pixel data of shape {arr.shape}")
    try:
        slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    except Exception as err:
        raise InputError(f"{path}: invalid RescaleSlope/RescaleIntercept; the DICOM header is corrupt") from err
    if not (np.isfinite(slope) and np.isfinite(intercept)) or slope == 0:
        raise InputError(
            f"{path}: RescaleSlope {slope:g} / RescaleIntercept {intercept:g} cannot map stored "
            "values to Hounsfield units; the DICOM header is corrupt"
        )
    return (arr.astype(np.float32) * np.float32(slope) + np.float32(intercept)).astype(np.float32)


def read_dicom_radiograph(path):
    """Pixel values of a single-frame DICOM radiograph, attenuation-bright.

    Applies the modality LUT / rescale, then the VOI LUT or window
    (WindowCenter/Width, via ``pydicom.pixels.apply_voi_lut``), then inverts
    MONOCHROME1 (and PresentationLUTShape INVERSE) so that higher values mean
    more attenuation (bone bright). RGB images are converted to luminance.

    Args:
        path: a single-frame DICOM file.

    Returns:
        float64 array ``(rows, cols)``, not yet normalized.

    Example:
        >>> import os
        >>> from pydicom.data import get_testdata_file
        >>> data = os.path.dirname(get_testdata_file("CT_small.dcm"))
        >>> path = os.path.join(data, "dicomdirtests", "77654033", "CR1", "6154")  # a CR shipped with pydicom
        >>> img = read_dicom_radiograph(path)
        >>> img.shape, img.dtype
        ((16, 16), dtype('float64'))
    """
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    ds = read_dicom(path)
    if _number_of_frames(ds) > 1:
        raise InputError(
            f"{path}: a multi-frame DICOM ({_number_of_frames(ds)} frames), not a 2D radiograph; "
            "read_xray takes one single-frame image (use read_volume for CT)"
        )
    modality = _modality(ds)
    if modality not in RADIOGRAPH_MODALITIES:
        raise InputError(
            f"{path}: a DICOM image of Modality {modality}, not a radiograph; read_xray takes "
            "X-ray radiographs (Modality CR, DX, RG or none). Give the frontal/lateral chest "
            "X-ray; a CT series folder goes to read_volume"
        )
    arr = pixel_array(ds, path)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if arr.ndim == 3 and int(ds.get("SamplesPerPixel", 1)) == 3:
        return luminance(arr)
    if arr.ndim != 2:
        raise InputError(f"{path}: expected a 2D image, got pixel data of shape {arr.shape}")
    try:
        out = apply_voi_lut(apply_modality_lut(arr, ds), ds).astype(np.float64)
    except Exception as err:
        raise InputError(
            f"{path}: invalid modality/VOI LUT or window tags ({type(err).__name__}: {err})"
        ) from err
    inverted = photometric == "MONOCHROME1"
    if str(ds.get("PresentationLUTShape", "")).upper() == "INVERSE":
        inverted = not inverted
    return -out if inverted else out


def luminance(rgb):
    """ITU-R BT.601 luma of an ``(..., 3+)`` RGB(A) array (alpha ignored).

    Args:
        rgb: array whose last axis holds R, G, B (and optionally alpha).

    Returns:
        float64 array without the last axis.

    Example:
        >>> float(luminance(np.array([[255, 255, 255]]))[0])
        255.0
    """
    rgb = np.asarray(rgb, dtype=np.float64)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
