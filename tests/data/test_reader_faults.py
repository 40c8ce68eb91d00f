"""Readers refuse garbage (issue #8): one row per bad input a user reported.

Each bad file is built in ``tmp_path`` from real offline data (pydicom's CT series
and radiographs, nibabel's NIfTI files) or from a small CT-like volume, and must
raise an :class:`InputError` whose message names the file and the rule it breaks.
Real CT files must still read.
"""

import os
import shutil
import struct

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from xprospect_tf.data import readers
from xprospect_tf.data.readers import read_volume, read_xray
from xprospect_tf.data.volume import canonical_affine
from xprospect_tf.errors import InputError

PYDICOM_DATA = os.path.dirname(get_testdata_file("CT_small.dcm"))
CT5N = os.path.join(PYDICOM_DATA, "dicomdirtests", "98892001", "CT5N")
CR_FILE = os.path.join(PYDICOM_DATA, "dicomdirtests", "77654033", "CR1", "6154")
LAST_SLICE = "3353"  # the most inferior slice of CT5N: losing it leaves an even 4-slice stack
ROWS_TAG = b"\x28\x00\x10\x00"  # (0028,0010) Rows, little endian
PIXEL_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010) PixelData


def ct_like(shape=(10, 12, 14), seed=0):
    """A small CT-like volume in HU: air around a soft-tissue body with two lungs and bone."""
    rng = np.random.default_rng(seed)
    hu = np.full(shape, -1000.0)
    hu[:, 2:-2, 2:-2] = 40.0
    hu[:, 3:6, 4:-4] = -850.0
    hu[:, -6:-3, 4:-4] = -850.0
    hu[:, shape[1] // 2, 3:5] = 1200.0
    return (hu + rng.normal(0, 10, shape)).astype(np.float32)


def save_nifti(path, data, spacing=(1.0, 1.0, 1.0), affine=None):
    """Save ``data`` with an sform only (a qform cannot hold a singular or NaN affine)."""
    affine = canonical_affine(spacing) if affine is None else affine
    img = nib.Nifti1Image(np.asarray(data, np.float32), None)
    img.set_sform(affine, code=1)
    nib.save(img, str(path))
    return str(path)


def copy_series(tmp_path):
    folder = str(tmp_path / "CT5N")
    shutil.copytree(CT5N, folder)
    return folder


def rewrite(path, change):
    blob = bytearray(open(path, "rb").read())
    blob = change(blob)
    with open(path, "wb") as f:
        f.write(bytes(blob))


# ----------------------------------------------------------------------------- builders
# Each returns (path given to the reader, the file the message must name, message regex).


def series_truncated_before_rows(tmp_path):
    folder = copy_series(tmp_path)
    victim = os.path.join(folder, LAST_SLICE)
    rewrite(victim, lambda b: b[: b.find(ROWS_TAG) - 100])
    return folder, victim, "without its image attributes.*truncated or corrupt"


def series_truncated_before_pixels(tmp_path):
    folder = copy_series(tmp_path)
    victim = os.path.join(folder, LAST_SLICE)
    rewrite(victim, lambda b: b[: b.find(PIXEL_TAG)])
    return folder, victim, "no PixelData"


def series_truncated_in_pixels(tmp_path):
    folder = copy_series(tmp_path)
    victim = os.path.join(folder, LAST_SLICE)
    rewrite(victim, lambda b: b[: len(b) - 7])
    return folder, victim, "cannot decode the DICOM pixel data"


def series_truncated_in_preamble(tmp_path):
    folder = copy_series(tmp_path)
    victim = os.path.join(folder, LAST_SLICE)
    rewrite(victim, lambda b: b[:100])
    return folder, victim, "damaged DICOM file"


def series_empty_slice_file(tmp_path):
    folder = copy_series(tmp_path)
    victim = os.path.join(folder, LAST_SLICE)
    open(victim, "wb").close()
    return folder, victim, "damaged DICOM file"


def series_corrupt_dicm_marker(tmp_path):
    folder = copy_series(tmp_path)
    victim = os.path.join(folder, LAST_SLICE)

    def flip(b):
        b[129] ^= 0xFF
        return b

    rewrite(victim, flip)
    return folder, victim, "damaged DICOM file"


def series_slice_relabelled_mr(tmp_path):
    folder = copy_series(tmp_path)
    victim = os.path.join(folder, LAST_SLICE)
    ds = pydicom.dcmread(victim)
    ds.Modality = "MR"
    ds.save_as(victim)
    return folder, victim, "Modality MR in series"


def series_negative_pixel_spacing(tmp_path):
    folder = copy_series(tmp_path)
    victim = os.path.join(folder, LAST_SLICE)
    ds = pydicom.dcmread(victim)
    ds.PixelSpacing = [-0.488281, 0.488281]
    ds.save_as(victim)
    return folder, victim, "PixelSpacing.*must be positive"


def series_nan_slope(tmp_path):
    folder = copy_series(tmp_path)
    victim = os.path.join(folder, LAST_SLICE)
    ds = pydicom.dcmread(victim)
    ds.RescaleSlope = "NaN"
    ds.save_as(victim)
    return folder, victim, "RescaleSlope"


def series_ct_without_intercept(tmp_path):
    folder = copy_series(tmp_path)
    for name in os.listdir(folder):
        ds = pydicom.dcmread(os.path.join(folder, name))
        ds.RescaleIntercept = "0"
        ds.save_as(os.path.join(folder, name))
    return folder, folder, "not a CT in HU"


def series_huge_slice_step(tmp_path):
    folder = copy_series(tmp_path)
    for i, name in enumerate(sorted(os.listdir(folder))):
        ds = pydicom.dcmread(os.path.join(folder, name))
        ds.ImagePositionPatient = [0, 0, f"{-i * 1e29:.6g}"]
        ds.save_as(os.path.join(folder, name))
    return folder, folder, "voxel spacing"


def _nifti(name, data, spacing=(1.0, 1.0, 1.0), affine=None):
    def build(tmp_path):
        path = save_nifti(tmp_path / name, data, spacing, affine)
        return path, path, MESSAGES[name]

    return build


MESSAGES = {
    "one_slice.nii": "1 x 12 x 14 voxels.*at least 4",
    "two_slices.nii.gz": "2 x 12 x 14 voxels.*at least 4",
    "cube2.nii": "2 x 2 x 2 voxels",
    "zero_spacing.nii.gz": "singular",
    "tiny_spacing.nii": "singular|voxel spacing",
    "huge_spacing.nii.gz": r"voxel spacing \(1e\+30",
    "thick_slices.nii": r"voxel spacing \(60\.0, 1\.0, 1\.0\)",
    "nan.nii.gz": "1 voxel.*NaN or infinite",
    "mr_like.nii": "not a CT in HU",
    "no_intercept.nii.gz": "not a CT in HU",
    "float_max.nii": r"values from .*3\.403e\+38",
}
_NAN = ct_like()
_NAN[3, 4, 5] = np.nan
_MR = np.random.default_rng(1).uniform(0, 1000, (10, 12, 14))
_FLOAT_MAX = ct_like()
_FLOAT_MAX[0, 0, 0] = np.finfo(np.float32).max

VOLUME_CASES = {
    "dicom slice truncated before Rows (end of stack)": series_truncated_before_rows,
    "dicom slice truncated before PixelData": series_truncated_before_pixels,
    "dicom slice truncated inside PixelData": series_truncated_in_pixels,
    "dicom slice truncated inside the preamble": series_truncated_in_preamble,
    "dicom slice emptied": series_empty_slice_file,
    "dicom slice with a corrupt DICM marker": series_corrupt_dicm_marker,
    "dicom slice relabelled MR": series_slice_relabelled_mr,
    "dicom negative PixelSpacing": series_negative_pixel_spacing,
    "dicom NaN RescaleSlope": series_nan_slope,
    "dicom CT without its intercept": series_ct_without_intercept,
    "dicom 1e29 mm slice step": series_huge_slice_step,
    "nifti 1 slice": _nifti("one_slice.nii", ct_like((1, 12, 14))),
    "nifti 2 slices": _nifti("two_slices.nii.gz", ct_like((2, 12, 14))),
    "nifti 2x2x2": _nifti("cube2.nii", np.full((2, 2, 2), -1000.0)),
    "nifti zero spacing": _nifti("zero_spacing.nii.gz", ct_like(), (0.0, 1.0, 1.0)),
    "nifti 1e-7 mm spacing": _nifti("tiny_spacing.nii", ct_like(), (1e-7, 1.0, 1.0)),
    "nifti 1e30 mm spacing": _nifti("huge_spacing.nii.gz", ct_like(), (1e30, 1.0, 1.0)),
    "nifti 60 mm slices": _nifti("thick_slices.nii", ct_like(), (60.0, 1.0, 1.0)),
    "nifti NaN voxel": _nifti("nan.nii.gz", _NAN),
    "nifti MR-like 0..1000": _nifti("mr_like.nii", _MR),
    "nifti CT without its -1024 intercept": _nifti("no_intercept.nii.gz", ct_like() + 1024),
    "nifti float32 max voxel": _nifti("float_max.nii", _FLOAT_MAX),
}


@pytest.mark.parametrize("case", sorted(VOLUME_CASES))
def test_bad_volume_is_refused_naming_the_file(tmp_path, case):
    given, named, message = VOLUME_CASES[case](tmp_path)
    with pytest.raises(InputError, match=message) as err:
        read_volume(given)
    assert named in str(err.value)


def test_nifti_nan_spacing_and_negative_npz_spacing(tmp_path):
    path = save_nifti(tmp_path / "nan_affine.nii", ct_like())
    blob = bytearray(open(path, "rb").read())
    struct.pack_into("<f", blob, 312, np.nan)  # srow_z[0]: the sform's z column turns NaN
    with open(path, "wb") as f:
        f.write(bytes(blob))
    with pytest.raises(InputError, match="nan_affine.nii: the orientation matrix"):
        read_volume(path)
    file_order = ct_like().transpose(0, 2, 1)
    for name, spacing, message in [("neg.npz", [-1.0, 1.0, 1.0], "3 positive numbers"),
                                   ("huge.npz", [1e30, 1.0, 1.0], "voxel spacing")]:
        np.savez(tmp_path / name, ct=file_order, spacing=spacing)
        with pytest.raises(InputError, match=message) as err:
            read_volume(tmp_path / name)
        assert name in str(err.value)


def test_nifti_header_claiming_more_data_than_the_file_holds(tmp_path):
    for name in ("big.nii", "big.nii.gz"):
        path = save_nifti(tmp_path / name, ct_like())
        img = nib.load(path)
        img.header.set_data_shape((30000, 30000, 30000))
        raw = bytearray(img.header.binaryblock)
        data = open(path, "rb").read() if name.endswith(".nii") else None
        if data is not None:  # patch the header in place, keep the (short) data
            with open(path, "wb") as f:
                f.write(bytes(raw) + data[len(raw):])
        else:
            nib.save(nib.Nifti1Image(ct_like(), canonical_affine((1, 1, 1))), path)
            import gzip
            with gzip.open(path, "rb") as f:
                body = f.read()
            with gzip.open(path, "wb") as f:
                f.write(bytes(raw) + body[len(raw):])
        with pytest.raises(InputError, match="declares .*truncated or its header is corrupt") as err:
            read_volume(path)
        assert path in str(err.value)


def test_zero_voxel_nifti_is_refused(tmp_path):
    path = str(tmp_path / "empty.nii")
    save_nifti(path, ct_like())
    blob = bytearray(open(path, "rb").read())
    struct.pack_into("<h", blob, 42, 0)  # dim[1] = 0: a zero-voxel volume
    with open(path, "wb") as f:
        f.write(bytes(blob))
    with pytest.raises(InputError, match="empty.nii") as err:
        read_volume(path)
    assert "0 x" in str(err.value) or "x 0" in str(err.value)


# ----------------------------------------------------------------------------- what still reads


def test_real_ct_series_still_reads_with_foreign_files(tmp_path):
    folder = copy_series(tmp_path)
    reference = read_volume(CT5N)
    (tmp_path / "CT5N" / "README").write_text("exported by the scanner\n" * 10)
    (tmp_path / "CT5N" / "notes.txt").write_text("")  # foreign, even empty, with a non-DICOM name
    (tmp_path / "CT5N" / ".DS_Store").write_bytes(b"\0" * 200)
    shutil.copy(get_testdata_file("DICOMDIR"), os.path.join(folder, "DICOMDIR"))  # DICOM, no image
    vol = read_volume(folder)
    np.testing.assert_array_equal(vol.hu, reference.hu)
    assert vol.spacing == reference.spacing and reference.shape == (5, 16, 16)


def test_real_ct_slices_stacked_pass_the_hu_rules(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    folder = tmp_path / "small"
    folder.mkdir()
    z0 = float(ds.ImagePositionPatient[2])
    for i in range(8):
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1], z0 - 5.0 * i]
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(str(folder / f"s{i}.dcm"))
    vol = read_volume(str(folder))
    assert vol.shape[0] == 8 and vol.spacing[0] == pytest.approx(5.0)
    np.testing.assert_array_equal(vol.hu[3], vol.hu[0])
    assert sorted(vol.hu[0].ravel().tolist()) == sorted(hu.ravel().tolist())


@pytest.mark.parametrize("pad", [-1024.0, -2000.0, -3024.0, -32768.0])
def test_ct_with_scanner_padding_and_metal_reads(tmp_path, pad):
    hu = ct_like((12, 16, 16))
    hu[:, :3, :3] = pad  # corners outside the reconstruction circle
    hu[5, 8, 8] = 25000.0  # extended-scale metal
    path = save_nifti(tmp_path / "padded.nii.gz", hu, (2.5, 0.7, 0.7))
    np.testing.assert_allclose(read_volume(path).hu, hu[:, ::1, ::1], atol=1e-3)


def test_ct_cropped_to_the_body_keeps_its_lungs(tmp_path):
    hu = ct_like((10, 12, 14))[:, 2:-2, 2:-2]  # no air around: lungs are 30 % of it
    path = save_nifti(tmp_path / "cropped.nii", hu)
    np.testing.assert_allclose(read_volume(path).hu, hu, atol=1e-3)


def test_check_hu_false_reads_a_ct_without_air(tmp_path):
    bone = np.random.default_rng(0).uniform(200, 2000, (8, 8, 8))  # a CT cropped to a femur
    path = save_nifti(tmp_path / "bone.nii", bone)
    with pytest.raises(InputError, match="check_hu=False"):
        read_volume(path)
    np.testing.assert_allclose(read_volume(path, check_hu=False).hu, bone, rtol=1e-6)
    two = save_nifti(tmp_path / "two.nii", bone[:2])  # size and spacing rules always apply
    with pytest.raises(InputError, match="at least 4"):
        read_volume(two, check_hu=False)


def test_rules_are_the_documented_constants():
    assert readers.MIN_VOXELS_PER_AXIS == 4
    assert readers.SPACING_RANGE_MM == (0.05, 50.0)
    assert readers.HU_LIMITS == (-32768.0, 32767.0)
    assert (readers.AIR_HU, readers.AIR_FRACTION) == (-500.0, 0.01)
    assert readers.XRAY_MIN_PIXELS == 8


def test_two_series_message_gives_library_and_cli_advice(tmp_path):
    folder = tmp_path / "study"
    shutil.copytree(CT5N, folder / "a")
    for name in os.listdir(folder / "a"):
        ds = pydicom.dcmread(str(folder / "a" / name))
        ds.SeriesInstanceUID = "1.2.3.4"
        os.makedirs(folder / "b", exist_ok=True)
        ds.save_as(str(folder / "b" / name))
    with pytest.raises(InputError, match=r"series=<UID>.*\(CLI: --series <UID>\)") as err:
        read_volume(folder)
    assert str(folder) in str(err.value) and "1.2.3.4" in str(err.value)
    assert read_volume(folder, series="1.2.3.4").shape == (5, 16, 16)


# ----------------------------------------------------------------------------- X-rays


def _relabelled(tmp_path, source, modality):
    ds = pydicom.dcmread(source)
    path = str(tmp_path / f"{modality or 'none'}.dcm")
    if modality is None:
        del ds.Modality
    else:
        ds.Modality = modality
    ds.save_as(path)
    return path


@pytest.mark.parametrize("modality", ["CT", "MR", "PT", "NM", "US", "MG", "OT"])
def test_xray_refuses_non_radiograph_modalities(tmp_path, modality):
    path = _relabelled(tmp_path, CR_FILE, modality)
    with pytest.raises(InputError, match=f"Modality {modality}, not a radiograph") as err:
        read_xray(path)
    assert path in str(err.value)


def test_xray_refuses_real_ct_and_mr_files():
    for name, modality in [("CT_small.dcm", "CT"), ("MR_small.dcm", "MR")]:
        with pytest.raises(InputError, match=f"Modality {modality}, not a radiograph") as err:
            read_xray(get_testdata_file(name))
        assert name in str(err.value)


@pytest.mark.parametrize("modality", ["CR", "DX", "RG", None])
def test_xray_accepts_radiograph_modalities(tmp_path, modality):
    out = read_xray(_relabelled(tmp_path, CR_FILE, modality))
    np.testing.assert_array_equal(out, read_xray(CR_FILE))
    assert out.min() == 0.0 and out.max() == 1.0


def _png_bytes(tmp_path):
    noise = np.random.default_rng(0).integers(0, 255, (32, 32)).astype(np.uint8)  # incompressible
    Image.fromarray(noise).save(tmp_path / "ok.png")
    return (tmp_path / "ok.png").read_bytes()


def _jpeg_bytes(tmp_path):
    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(tmp_path / "ok.jpg")
    return (tmp_path / "ok.jpg").read_bytes()


XRAY_CASES = {
    "empty.png": (lambda t: b"", "not a readable image"),
    "empty.jpg": (lambda t: b"", "not a readable image"),
    "header_only.png": (lambda t: _png_bytes(t)[:40], "not a readable image|cannot read this image"),
    "half.png": (lambda t: _png_bytes(t)[:500], "cannot read this image"),
    "half.jpg": (lambda t: _jpeg_bytes(t)[: len(_jpeg_bytes(t)) // 2], "cannot read this image"),
    "zeroed.png": (lambda t: _png_bytes(t)[:60] + bytes(len(_png_bytes(t)) - 60), "cannot read this image"),
}


@pytest.mark.parametrize("name", sorted(XRAY_CASES))
def test_corrupt_image_files_are_refused(tmp_path, name):
    build, message = XRAY_CASES[name]
    path = tmp_path / name
    path.write_bytes(build(tmp_path))
    with pytest.raises(InputError, match=message) as err:
        read_xray(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("shape", [(1, 1), (1, 50), (50, 3), (7, 7)])
def test_tiny_images_are_refused(tmp_path, shape):
    path = tmp_path / "tiny.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, shape).astype(np.uint8)).save(path)
    with pytest.raises(InputError, match="tiny.png: .*at least 8|tiny.png: the image is blank"):
        read_xray(path)
