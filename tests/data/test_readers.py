"""Tests of read_volume / read_xray against ground truth and independent references.

Synthetic DICOM series are written from a known canonical volume ``TRUTH``
(a bright marker at the patient's right-anterior-superior corner, distinct
values elsewhere) so that every acquisition orientation must read back as
exactly ``TRUTH``. Real files come from pydicom's and nibabel's bundled test data.
"""

import os

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from xprospect_tf.data.readers import read_rad_chestct, read_volume, read_xray
from xprospect_tf.data.volume import canonical_affine
from xprospect_tf.errors import InputError

NIB_DATA = os.path.join(os.path.dirname(nib.__file__), "tests", "data")
PYDICOM_DATA = os.path.dirname(get_testdata_file("CT_small.dcm"))
DICOMDIR_TESTS = os.path.join(PYDICOM_DATA, "dicomdirtests")

# Ground truth, canonical (z: S->I, x: R->L, y: A->P). Distinct shape per axis.
SPACING = (2.5, 0.75, 1.25)  # mm along (z, x, y)
_rng = np.random.default_rng(0)
TRUTH = 2.0 * _rng.integers(-400, 400, size=(8, 7, 6))  # even HU: exact with slope 2
TRUTH[0, 0, 0] = 2000.0  # marker: superior, patient right, anterior

# DICOM LPS unit vectors of the canonical axes' *increasing* directions.
L, P, S = np.eye(3)


def _lps_of_truth_voxels():
    """LPS positions (mm) of every TRUTH voxel, origin RAS (0, 0, 0) at voxel 0."""
    i, j, k = np.meshgrid(*(np.arange(n) for n in TRUTH.shape), indexing="ij")
    sz, sx, sy = SPACING
    # canonical voxel (i, j, k) is RAS (-sx j, -sy k, -sz i) -> LPS (sx j, sy k, -sz i)
    return np.stack([sx * j, sy * k, -sz * i], axis=-1)


def _spacing_along(direction):
    """TRUTH's voxel size along an axis-aligned LPS direction."""
    axis = int(np.argmax(np.abs(direction)))
    return {0: SPACING[1], 1: SPACING[2], 2: SPACING[0]}[axis]


def acquire(row, col):
    """Resample TRUTH into slices of an axis-aligned acquisition (exact, no interpolation).

    Returns (stack[slice, row, col] in HU, IPP of each slice, pixel spacing, normal).
    """
    row, col = np.asarray(row, float), np.asarray(col, float)
    normal = np.cross(row, col)
    pos = _lps_of_truth_voxels()
    steps = [_spacing_along(v) for v in (normal, col, row)]
    proj = [pos @ v for v in (normal, col, row)]
    mins = [p.min() for p in proj]
    idx = [np.rint((p - m) / s).astype(int) for p, m, s in zip(proj, mins, steps)]
    shape = tuple(int(i.max()) + 1 for i in idx)
    stack = np.zeros(shape)
    stack[idx[0], idx[1], idx[2]] = TRUTH
    corner = normal * mins[0] + col * mins[1] + row * mins[2]
    ipps = [corner + s * steps[0] * normal for s in range(shape[0])]
    return stack, ipps, (steps[1], steps[2]), normal


def dicom_slice(pixels, ipp=None, iop=None, spacing=(1.0, 1.0), modality="CT", series_uid=None,
                slope=2.0, intercept=-1024.0, photometric="MONOCHROME2", signed=True, **extra):
    """A single-frame DICOM dataset holding ``pixels`` (stored values)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.SeriesDescription = "synthetic"
    if ipp is not None:
        ds.ImagePositionPatient = [f"{v:.6f}" for v in ipp]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in iop]
        ds.PixelSpacing = [f"{v:.6f}" for v in spacing]
    ds.RescaleSlope, ds.RescaleIntercept = f"{slope:g}", f"{intercept:g}"
    pixels = np.asarray(pixels)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = pixels.astype("<i2" if signed else "<u2").tobytes()
    for key, value in extra.items():
        setattr(ds, key, value)
    return ds


def write_series(folder, row=L, col=P, modality="CT", drop=(), duplicate=(), series_uid=None,
                 slope=2.0, intercept=-1024.0, seed=0):
    """Write TRUTH acquired with (row, col) cosines as shuffled slice files; return the folder."""
    stack, ipps, spacing, _ = acquire(row, col)
    os.makedirs(folder, exist_ok=True)
    uid = series_uid or generate_uid()
    iop = list(row) + list(col)
    order = np.random.default_rng(seed).permutation(len(stack))  # file names unrelated to position
    for name_index, s in enumerate(order):
        if s in drop:
            continue
        stored = np.rint((stack[s] - intercept) / slope)
        ds = dicom_slice(stored, ipps[s], iop, spacing, modality, uid, slope, intercept)
        ds.save_as(os.path.join(folder, f"IM{name_index:04d}"), enforce_file_format=True)
        if s in duplicate:
            ds.SOPInstanceUID = generate_uid()
            ds.save_as(os.path.join(folder, f"DUP{name_index:04d}"), enforce_file_format=True)
    return folder


# ----------------------------------------------------------------------------- DICOM series

ORIENTATIONS = {
    "axial": (L, P),
    "axial-flipped-row-and-col": (-L, -P),
    "axial-flipped-col": (L, -P),
    "coronal": (L, -S),
    "sagittal": (P, -S),
    "sagittal-flipped": (-P, S),
}


@pytest.mark.parametrize("name", sorted(ORIENTATIONS))
def test_dicom_series_reads_back_truth_in_any_orientation(tmp_path, name):
    row, col = ORIENTATIONS[name]
    vol = read_volume(write_series(str(tmp_path / name), row, col))
    np.testing.assert_array_equal(vol.hu, TRUTH)
    np.testing.assert_allclose(vol.spacing, SPACING, atol=1e-5)
    np.testing.assert_allclose(vol.origin, (0, 0, 0), atol=1e-5)
    assert np.unravel_index(np.argmax(vol.hu), vol.shape) == (0, 0, 0)
    assert vol.hu.dtype == np.float32 and vol.source == str(tmp_path / name)


def test_dicom_series_world_coordinates_match_headers(tmp_path):
    folder = write_series(str(tmp_path / "ct"), -L, -P)
    vol = read_volume(folder)
    # voxel (i, j, k) must sit at the LPS point the headers give it: LPS = diag(-1,-1,1) RAS
    ras = vol.affine @ np.array([3, 2, 1, 1.0])
    np.testing.assert_allclose(ras[:3] * [-1, -1, 1], _lps_of_truth_voxels()[3, 2, 1], atol=1e-5)


def test_dicom_series_rescale_slope_intercept(tmp_path):
    vol = read_volume(write_series(str(tmp_path / "ct"), slope=0.5, intercept=-1000.0))
    np.testing.assert_array_equal(vol.hu, TRUTH)


def test_dicom_oblique_series_snaps_to_nearest_axes(tmp_path):
    theta = np.deg2rad(6.0)
    row = np.array([np.cos(theta), np.sin(theta), 0.0])
    col = np.array([-np.sin(theta), np.cos(theta), 0.0])
    stack = TRUTH[::-1].transpose(0, 2, 1)  # (slice: I->S, row ~ A->P, col ~ R->L)
    folder = tmp_path / "oblique"
    folder.mkdir()
    uid = generate_uid()
    for s in range(stack.shape[0]):
        ipp = np.array([10.0, 20.0, 30.0]) + s * 2.5 * np.cross(row, col)
        ds = dicom_slice((stack[s] + 1024) / 2, ipp, list(row) + list(col), (1.25, 0.75), series_uid=uid)
        ds.save_as(str(folder / f"s{s}.dcm"), enforce_file_format=True)
    vol = read_volume(str(folder))
    np.testing.assert_array_equal(vol.hu, TRUTH)
    np.testing.assert_allclose(vol.spacing, SPACING, atol=1e-4)


def test_real_ct_series_from_pydicom(tmp_path):
    folder = os.path.join(DICOMDIR_TESTS, "98892001", "CT5N")
    vol = read_volume(folder)
    slices = [pydicom.dcmread(os.path.join(folder, f)) for f in os.listdir(folder)]
    slices.sort(key=lambda d: -float(d.ImagePositionPatient[2]))  # superior first
    expected = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in slices])
    # axial rows run A->P and columns R->L: canonical (z, x, y) = (slice, column, row)
    np.testing.assert_allclose(vol.hu, expected.transpose(0, 2, 1))
    np.testing.assert_allclose(vol.spacing, (2.5, 0.488281, 0.488281), atol=1e-4)
    assert vol.origin[2] == pytest.approx(8.7625, abs=1e-4)  # most superior slice


@pytest.mark.parametrize(
    "kwargs, message",
    [({"drop": (3,)}, "missing slice"), ({"duplicate": (5,)}, "duplicate slice position")],
)
def test_incomplete_series_is_refused(tmp_path, kwargs, message):
    folder = write_series(str(tmp_path / "ct"), **kwargs)
    with pytest.raises(InputError, match=message) as err:
        read_volume(folder)
    assert folder in str(err.value)


def test_uneven_real_series_is_refused():
    folder = os.path.join(DICOMDIR_TESTS, "77654033", "CT2")
    with pytest.raises(InputError, match="gap of 202.500 mm"):
        read_volume(folder)


def test_uneven_spacing_is_refused(tmp_path):
    folder = tmp_path / "ct"
    folder.mkdir()
    uid = generate_uid()
    for s, z in enumerate([0.0, 2.5, 5.0, 7.7, 10.2]):
        dicom_slice(TRUTH[s] / 2 + 512, (0, 0, z), [1, 0, 0, 0, 1, 0], series_uid=uid).save_as(
            str(folder / f"{s}.dcm"), enforce_file_format=True
        )
    with pytest.raises(InputError, match="uneven slice spacing"):
        read_volume(str(folder))


def test_two_series_need_a_choice(tmp_path):
    folder = str(tmp_path / "study")
    uid_a, uid_b = "1.2.3.1", "1.2.3.2"
    write_series(os.path.join(folder, "a"), series_uid=uid_a)
    write_series(os.path.join(folder, "b"), row=P, col=-S, series_uid=uid_b)
    with pytest.raises(InputError, match="2 DICOM series") as err:
        read_volume(folder)
    assert uid_a in str(err.value) and uid_b in str(err.value) and "8 file(s)" in str(err.value)
    listed = [uid_a, uid_b] if str(err.value).index(uid_a) < str(err.value).index(uid_b) else [uid_b, uid_a]
    for choice in (uid_b, listed.index(uid_b), str(listed.index(uid_b))):
        np.testing.assert_array_equal(read_volume(folder, series=choice).hu, TRUTH)
    with pytest.raises(InputError, match="no DICOM series matches"):
        read_volume(folder, series="9.9.9")


def test_non_ct_series_is_refused(tmp_path):
    with pytest.raises(InputError, match="Modality MR"):
        read_volume(write_series(str(tmp_path / "mr"), modality="MR"))
    with pytest.raises(InputError, match="Modality MR"):
        read_volume(os.path.join(DICOMDIR_TESTS, "98892003", "MR700"))


def test_non_dicom_files_are_skipped_and_truncated_ones_named(tmp_path):
    folder = write_series(str(tmp_path / "ct"))
    with open(os.path.join(folder, "README.txt"), "w") as f:
        f.write("not a dicom file\n" * 20)
    np.testing.assert_array_equal(read_volume(folder).hu, TRUTH)
    victim = os.path.join(folder, "IM0002")
    data = open(victim, "rb").read()
    with open(victim, "wb") as f:
        f.write(data[: len(data) - 40])
    with pytest.raises(InputError, match="IM0002"):
        read_volume(folder)


def test_single_slices_are_2d_images(tmp_path):
    with pytest.raises(InputError, match="a 2D image, not a volume; use read_xray"):
        read_volume(get_testdata_file("CT_small.dcm"))
    folder = tmp_path / "one"
    folder.mkdir()
    dicom_slice(TRUTH[0], (0, 0, 0), [1, 0, 0, 0, 1, 0]).save_as(str(folder / "x.dcm"), enforce_file_format=True)
    with pytest.raises(InputError, match="a 2D image, not a volume"):
        read_volume(str(folder))


def test_multiframe_dicom_is_refused():
    with pytest.raises(InputError, match="multi-frame"):
        read_volume(get_testdata_file("rtdose.dcm"))


def test_missing_unsupported_and_empty_inputs(tmp_path):
    for path in (tmp_path / "nope.nii", tmp_path):
        with pytest.raises(InputError, match="NIfTI|no DICOM image files") as err:
            read_volume(path)
        assert str(path) in str(err.value)
    other = tmp_path / "scan.txt"
    other.write_text("hello")
    with pytest.raises(InputError, match=r"unsupported file type.*NIfTI \(\.nii"):
        read_volume(other)


# ----------------------------------------------------------------------------- NIfTI


def _canonical_reference(img):
    """Independent path: nibabel's RAS canonical, then (R,A,S) -> (I,L,P) by flip/transpose."""
    ras = np.asarray(nib.as_closest_canonical(img).get_fdata(), dtype=np.float32)
    return np.transpose(ras, (2, 0, 1))[::-1, ::-1, ::-1]


@pytest.mark.parametrize("name", ["anatomical.nii", "reoriented_anat_moved.nii"])
def test_nifti_matches_nibabel_canonical_and_world_coordinates(name):
    path = os.path.join(NIB_DATA, name)
    img = nib.load(path)
    with pytest.raises(InputError, match="not a CT in HU"):  # these are MR images
        read_volume(path)
    vol = read_volume(path, check_hu=False)
    np.testing.assert_array_equal(vol.hu, _canonical_reference(img))
    data = img.get_fdata()
    for index in [(0, 0, 0), (3, 5, 7), tuple(n - 1 for n in vol.shape)]:
        world = vol.affine @ np.array([*index, 1.0])
        original = np.rint(np.linalg.inv(img.affine) @ world).astype(int)[:3]
        assert vol.hu[index] == data[tuple(original)]
        np.testing.assert_allclose(img.affine @ np.array([*original, 1.0]), world, atol=1e-4)


def test_real_4d_nifti_is_refused():
    with pytest.raises(InputError, match=r"shape \(128, 96, 24, 2\)"):
        read_volume(os.path.join(NIB_DATA, "example4d.nii.gz"))


@pytest.mark.parametrize("perm", [(0, 1, 2), (2, 0, 1), (1, 2, 0), (2, 1, 0)])
@pytest.mark.parametrize("flips", [(False, False, False), (True, False, True), (True, True, True)])
def test_nifti_any_orientation_reads_back_truth(tmp_path, perm, flips):
    origin = (12.0, -30.0, 55.0)
    base = canonical_affine(SPACING, origin)
    data = np.transpose(TRUTH, perm)
    affine = np.eye(4)
    affine[:3, 3] = origin
    for axis, (old, flip) in enumerate(zip(perm, flips)):
        column = base[:3, old]
        if flip:
            data = np.flip(data, axis)
            affine[:3, 3] += column * (data.shape[axis] - 1)
            column = -column
        affine[:3, axis] = column
    path = str(tmp_path / "ct.nii.gz")
    nib.save(nib.Nifti1Image(data.astype(np.float32), affine), path)
    vol = read_volume(path)
    np.testing.assert_array_equal(vol.hu, TRUTH)
    np.testing.assert_allclose(vol.spacing, SPACING, atol=1e-5)
    np.testing.assert_allclose(vol.origin, origin, atol=1e-4)


def test_nifti_scaling_and_singleton_4th_axis(tmp_path):
    stored = ((TRUTH + 1024) / 2).astype(np.int16)
    img = nib.Nifti1Image(stored[..., None], canonical_affine(SPACING))
    img.header.set_slope_inter(2.0, -1024.0)
    path = str(tmp_path / "scaled.nii")
    nib.save(img, path)
    np.testing.assert_array_equal(read_volume(path).hu, TRUTH)


def test_nifti_nan_and_truncated(tmp_path):
    data = TRUTH.astype(np.float32)
    data[1, 2, 3] = np.nan
    data[4, 5, 0] = np.inf
    data[0, 1, 1] = -np.inf
    path = str(tmp_path / "nan.nii.gz")
    nib.save(nib.Nifti1Image(data, canonical_affine(SPACING)), path)
    with pytest.raises(InputError, match="3 voxel") as err:
        read_volume(path)
    assert path in str(err.value)

    good = str(tmp_path / "good.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 16), np.float32), np.eye(4)), good)
    blob = open(good, "rb").read()
    cut = str(tmp_path / "cut.nii.gz")
    with open(cut, "wb") as f:
        f.write(blob[: len(blob) // 2])
    with pytest.raises(InputError, match="cut.nii.gz: cannot read this NIfTI"):
        read_volume(cut)


# ----------------------------------------------------------------------------- RAD-ChestCT


def test_rad_chestct_npz_and_npy(tmp_path):
    file_order = TRUTH.transpose(0, 2, 1)  # (slice S->I, row A->P, column R->L)
    np.savez_compressed(tmp_path / "trn1.npz", ct=file_order.astype(np.int16))
    vol = read_volume(tmp_path / "trn1.npz")
    np.testing.assert_array_equal(vol.hu, TRUTH)
    assert vol.spacing == (0.8, 0.8, 0.8)

    np.savez(tmp_path / "other.npz", volume=file_order, spacing=[2.0, 1.0, 0.5])
    hu, spacing = read_rad_chestct(str(tmp_path / "other.npz"))
    np.testing.assert_array_equal(hu, TRUTH)
    assert spacing == (2.0, 0.5, 1.0)  # file (z, y, x) -> canonical (z, x, y)

    np.save(tmp_path / "a.npy", file_order)
    np.testing.assert_array_equal(read_volume(tmp_path / "a.npy").hu, TRUTH)


def test_rad_chestct_bad_files(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros((4, 4)))
    np.savez(tmp_path / "two.npz", a=np.zeros((2, 2, 2)), b=np.zeros((2, 2, 2)))
    np.savez(tmp_path / "nan.npz", ct=np.full((2, 3, 4), np.nan))
    for name, message in [("flat.npy", "3D numeric"), ("two.npz", "key 'ct'"), ("nan.npz", "24 voxel")]:
        with pytest.raises(InputError, match=message):
            read_volume(tmp_path / name)


# ----------------------------------------------------------------------------- read_xray


def _minmax(a):
    a = np.asarray(a, dtype=np.float64)
    return (a - a.min()) / (a.max() - a.min())


def _window(x, center, width):
    """DICOM PS3.3 C.11.2.1.2 linear window, scaled to [0, 1]."""
    return np.clip((x - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


def test_xray_png_8_and_16_bit(tmp_path, rng):
    for dtype, high in [(np.uint8, 255), (np.uint16, 65535)]:
        pixels = rng.integers(0, high, size=(20, 17)).astype(dtype)
        path = tmp_path / f"x{high}.png"
        Image.fromarray(pixels).save(path)
        out = read_xray(path)
        assert out.dtype == np.float32 and out.shape == (20, 17)
        np.testing.assert_allclose(out, _minmax(pixels), atol=1e-6)


def test_xray_rgb_is_luminance(tmp_path, rng):
    rgb = rng.integers(0, 255, size=(9, 11, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    Image.fromarray(np.dstack([rgb, np.full((9, 11), 255, np.uint8)])).save(tmp_path / "c4.png")
    luma = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    for name in ("c.png", "c4.png"):
        np.testing.assert_allclose(read_xray(tmp_path / name), _minmax(luma), atol=1e-6)


def test_xray_jpeg(tmp_path):
    ramp = np.tile(np.linspace(0, 255, 32), (24, 1)).astype(np.uint8)
    Image.fromarray(ramp).save(tmp_path / "r.jpg", quality=95)
    np.testing.assert_allclose(read_xray(tmp_path / "r.jpg"), _minmax(ramp), atol=0.03)


def test_xray_dicom_window_matches_formula(tmp_path):
    # real pixel data and rescale tags, relabelled as a digital radiograph (read_xray refuses CT)
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.Modality = "DX"
    plain = str(tmp_path / "plain.dcm")
    ds.save_as(plain)
    ds.WindowCenter, ds.WindowWidth = 40, 400
    path = str(tmp_path / "w.dcm")
    ds.save_as(path)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(read_xray(path), _minmax(_window(hu, 40, 400)), atol=1e-5)
    # without a window: min-max of the rescaled values
    np.testing.assert_allclose(read_xray(plain), _minmax(hu), atol=1e-6)


def test_xray_monochrome1_equals_monochrome2(tmp_path, rng):
    anatomy = rng.integers(0, 4096, size=(16, 12))
    center, width = 1500, 2001
    mono2 = dicom_slice(anatomy, slope=1, intercept=0, signed=False, photometric="MONOCHROME2",
                        BitsStored=12, HighBit=11, WindowCenter=center, WindowWidth=width, Modality="DX")
    mono1 = dicom_slice(4095 - anatomy, slope=1, intercept=0, signed=False, photometric="MONOCHROME1",
                        BitsStored=12, HighBit=11, WindowCenter=4096 - center, WindowWidth=width, Modality="DX")
    mono2.save_as(tmp_path / "m2.dcm", enforce_file_format=True)
    mono1.save_as(tmp_path / "m1.dcm", enforce_file_format=True)
    out2, out1 = read_xray(tmp_path / "m2.dcm"), read_xray(tmp_path / "m1.dcm")
    np.testing.assert_allclose(out2, _minmax(_window(anatomy, center, width)), atol=1e-6)
    np.testing.assert_allclose(out1, out2, atol=1e-6)
    assert out2[np.unravel_index(np.argmax(anatomy), anatomy.shape)] == 1.0  # dense = bright
    inverse = dicom_slice(4095 - anatomy, slope=1, intercept=0, signed=False, BitsStored=12, HighBit=11,
                          PresentationLUTShape="INVERSE", Modality="DX")
    inverse.save_as(tmp_path / "inv.dcm", enforce_file_format=True)
    np.testing.assert_allclose(read_xray(tmp_path / "inv.dcm"), _minmax(anatomy), atol=1e-6)


def test_xray_real_monochrome1_radiograph():
    path = os.path.join(DICOMDIR_TESTS, "77654033", "CR1", "6154")
    ds = pydicom.dcmread(path)
    values = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    expected = _minmax(-_window(values, float(ds.WindowCenter), float(ds.WindowWidth)))
    np.testing.assert_allclose(read_xray(path), expected, atol=1e-5)


def test_xray_errors(tmp_path):
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(tmp_path / "ok.png")
    blob = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    frames = [Image.fromarray(np.full((4, 4), v, np.uint8)) for v in (0, 255)]
    frames[0].save(tmp_path / "stack.tif", save_all=True, append_images=frames[1:])
    Image.fromarray(np.full((4, 4), 7, np.uint8)).save(tmp_path / "blank.png")
    cases = [
        ("missing.png", "no such file"),
        ("cut.png", "cut.png"),
        ("junk.png", "not a readable image"),
        ("stack.tif", "2 frames"),
        ("blank.png", "blank"),
    ]
    for name, message in cases:
        with pytest.raises(InputError, match=message):
            read_xray(tmp_path / name)
    with pytest.raises(InputError, match="multi-frame"):
        read_xray(get_testdata_file("rtdose.dcm"))
    with pytest.raises(InputError, match="a folder"):
        read_xray(tmp_path)
