"""Fuzz the readers (issue #8): a damaged file is refused or read as something sane.

Copies of real offline files -- pydicom's 5-slice CT series (one slice mutated
per case, the folder read with ``read_volume``), that series written as NIfTI
(``.nii`` and ``.nii.gz``), pydicom's CR radiograph and CT_small relabelled DX,
and PNG/JPEG radiographs -- are mutated with a fixed seed: truncated at a random
offset, random bytes flipped, a random range zeroed, or a header field
overwritten with a hostile value (0, -1, NaN, 1e30, 1e-7, 32767, ...). Every read
must either raise an :class:`XprospectError` or return a sane result (finite,
HU within the CT limits with air present, spacing 0.05-50 mm, at least 4 voxels
per axis; X-rays 2D float32 in [0, 1], at least 8 pixels a side), and finish
within a per-file time limit (``signal.alarm``).

The default suite runs ``FAST_CASES`` cases; ``-m slow`` runs ``SLOW_CASES``.
"""

import gzip
import io
import os
import shutil
import signal
import struct
import warnings

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from xprospect_tf.data.readers import read_volume, read_xray
from xprospect_tf.data.volume import Volume, write_nifti
from xprospect_tf.errors import XprospectError

FAST_CASES = 320
SLOW_CASES = 3200
SECONDS_PER_FILE = 10
PYDICOM_DATA = os.path.dirname(get_testdata_file("CT_small.dcm"))
CT5N = os.path.join(PYDICOM_DATA, "dicomdirtests", "98892001", "CT5N")
CR_FILE = os.path.join(PYDICOM_DATA, "dicomdirtests", "77654033", "CR1", "6154")
HOSTILE_FLOATS = [0.0, -0.0, -1.0, 1e-7, 1e30, -1e30, np.nan, np.inf, -np.inf, 3.4e38, 32767.0]
HOSTILE_INTS = [0, 1, -1, 2, 7, 0x7FFF, -0x8000, 0xFFFF, 0x7FFFFFFF]
# NIfTI-1 header fields (offset, struct format): dim, datatype, bitpix, pixdim, vox_offset,
# scl_slope, scl_inter, qform/sform codes, quaternion and offsets, sform rows.
NIFTI_FIELDS = ([(40 + 2 * i, "<h") for i in range(8)] + [(70, "<h"), (72, "<h")]
                + [(76 + 4 * i, "<f") for i in range(8)] + [(108, "<f"), (112, "<f"), (116, "<f")]
                + [(252, "<h"), (254, "<h")] + [(256 + 4 * i, "<f") for i in range(18)])
DICOM_FIELDS = ["PixelSpacing", "ImagePositionPatient", "ImageOrientationPatient", "RescaleSlope",
                "RescaleIntercept", "Rows", "Columns", "Modality", "SeriesInstanceUID", "BitsAllocated",
                "BitsStored", "PixelRepresentation", "WindowCenter", "WindowWidth",
                "PhotometricInterpretation", "SamplesPerPixel", "NumberOfFrames", "SliceThickness"]
HOSTILE_TEXT = ["0", "-1", "1e30", "1e-7", "nan", "inf", "-1e30", "abc", "", "32767", "MR", "CT",
                "MONOCHROME1", "RGB"]


# ----------------------------------------------------------------------------- seeds


def _series_seed(folder):
    shutil.copytree(CT5N, folder)
    return folder


def _nifti_seed(folder, name):
    """pydicom's real CT series written as NIfTI (int16 with scl_slope/inter, like scanners)."""
    os.makedirs(folder, exist_ok=True)
    vol = read_volume(CT5N)
    # pad to 8 slices of the same real data so that a few lost slices still leave a volume
    hu = np.concatenate([vol.hu, vol.hu[:3]], axis=0)
    return write_nifti(Volume(hu, vol.spacing, vol.origin), os.path.join(folder, name), dtype=np.int16)


def _image_seed(folder, name):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    chest = np.clip(np.linspace(0, 255, 48)[None, :] + rng.normal(0, 30, (40, 48)), 0, 255)
    path = os.path.join(folder, name)
    if name.endswith(".png") and "16" in name:
        Image.fromarray((chest * 257).astype(np.uint16)).save(path)
    else:
        Image.fromarray(chest.astype(np.uint8)).save(path)
    return path


def _dicom_xray_seed(folder, name):
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    if name == "cr.dcm":
        shutil.copy(CR_FILE, path)
    else:
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.Modality = "DX"
        ds.save_as(path)
    return path


def _header_size(blob, kind):
    if kind == "dicom":
        at = blob.find(b"\xe0\x7f\x10\x00")
        return at if at > 0 else len(blob)
    return {"nifti": 352, "png": 33, "jpeg": 160}[kind]


# ----------------------------------------------------------------------------- mutations


def mutate(blob, rng, header_size, kind=None):
    """(mutated bytes, description) with one random mutation."""
    b = bytearray(blob)
    kind = int(rng.integers(5)) if kind is None else kind
    if kind == 0:
        cut = int(rng.integers(0, len(b)))
        return bytes(b[:cut]), f"truncated at {cut}"
    if kind == 4:
        cut = int(rng.integers(0, min(header_size + 8, len(b))))
        return bytes(b[:cut]), f"truncated in the header at {cut}"
    if kind == 1:
        offsets = rng.integers(0, len(b), size=int(rng.integers(1, 9)))
        for i in offsets:
            b[i] ^= int(rng.integers(1, 256))
        return bytes(b), f"flipped bytes at {sorted(offsets.tolist())}"
    if kind == 2:
        start = int(rng.integers(0, len(b)))
        length = int(rng.integers(1, max(2, len(b) // 4)))
        b[start:start + length] = bytes(len(b[start:start + length]))
        return bytes(b), f"zeroed {length} bytes from {start}"
    offset = int(rng.integers(0, max(1, header_size - 4)))
    if rng.random() < 0.5:
        value = HOSTILE_FLOATS[int(rng.integers(len(HOSTILE_FLOATS)))]
        struct.pack_into("<f", b, offset, value)
        return bytes(b), f"float {value!r} at header offset {offset}"
    value = HOSTILE_INTS[int(rng.integers(len(HOSTILE_INTS)))]
    if -0x8000 <= value <= 0xFFFF and rng.random() < 0.5:
        struct.pack_into("<H" if value >= 0 else "<h", b, offset, value)
    else:
        struct.pack_into("<I" if value >= 0 else "<i", b, offset, value)
    return bytes(b), f"int {value} at header offset {offset}"


def mutate_field(blob, rng, kind):
    """(bytes, description): one header field of a NIfTI or DICOM file set to a hostile value."""
    if kind == "nifti":
        b = bytearray(blob)
        offset, fmt = NIFTI_FIELDS[int(rng.integers(len(NIFTI_FIELDS)))]
        if fmt == "<f":
            value = HOSTILE_FLOATS[int(rng.integers(len(HOSTILE_FLOATS)))]
        else:
            value = [0, 1, -1, 2, 3, 9, 64, 255, 1000, 0x7FFF, -0x8000][int(rng.integers(11))]
        struct.pack_into(fmt, b, offset, value)
        return bytes(b), f"field at {offset} = {value!r}"
    ds = pydicom.dcmread(io.BytesIO(blob))
    name = DICOM_FIELDS[int(rng.integers(len(DICOM_FIELDS)))]
    text = HOSTILE_TEXT[int(rng.integers(len(HOSTILE_TEXT)))]
    value = "\\".join([text] * {"PixelSpacing": 2, "ImagePositionPatient": 3,
                                 "ImageOrientationPatient": 6}.get(name, 1))
    try:
        ds.add_new(pydicom.datadict.tag_for_keyword(name), "LO" if name not in ("Rows", "Columns") else "US",
                   value) if name not in ds else setattr(ds[name], "_value", value)
        out = io.BytesIO()
        ds.save_as(out)
    except Exception:  # noqa: BLE001 -- pydicom refuses to write it: write raw bytes instead
        return mutate(blob, rng, len(blob) // 2, kind=3)
    return out.getvalue(), f"{name} = {value!r}"


# ----------------------------------------------------------------------------- sanity


def assert_sane_volume(vol, what):
    hu = vol.hu
    assert isinstance(vol, Volume) and hu.dtype == np.float32 and hu.ndim == 3, what
    assert min(hu.shape) >= 4, (what, hu.shape)
    assert np.all(np.isfinite(hu)), what
    assert all(0.05 <= s <= 50.0 for s in vol.spacing), (what, vol.spacing)
    assert -32768.0 <= hu.min() and hu.max() <= 32767.0, (what, hu.min(), hu.max())
    assert np.mean(hu <= -500.0) >= 0.01, what
    assert np.all(np.isfinite(vol.origin)), what


def assert_sane_xray(img, what):
    assert img.dtype == np.float32 and img.ndim == 2 and min(img.shape) >= 8, (what, img.shape)
    assert np.all(np.isfinite(img)) and img.min() >= 0.0 and img.max() <= 1.0, what


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def run_fuzz(tmp_path, cases, seed=20240808):
    """Mutate and read ``cases`` files; return {target: [refused, sane]} counts."""
    base = tmp_path / "seeds"
    targets = {
        "dicom-series": ("dicom", _series_seed(str(base / "CT5N"))),
        "nifti": ("nifti", _nifti_seed(str(base), "ct.nii")),
        "nifti-gz": ("nifti", _nifti_seed(str(base), "ct.nii.gz")),
        "dicom-cr": ("dicom", _dicom_xray_seed(str(base), "cr.dcm")),
        "dicom-dx": ("dicom", _dicom_xray_seed(str(base), "dx.dcm")),
        "png8": ("png", _image_seed(str(base), "x8.png")),
        "png16": ("png", _image_seed(str(base), "x16.png")),
        "jpeg": ("jpeg", _image_seed(str(base), "x.jpg")),
    }
    slices = sorted(os.listdir(targets["dicom-series"][1]))
    counts = {name: [0, 0] for name in targets}
    names = sorted(targets)
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for index in range(cases):
            rng = np.random.default_rng([seed, index])
            name = names[index % len(names)]
            kind, seed_path = targets[name]
            work = tmp_path / f"case{index}"
            if name == "dicom-series":
                folder = shutil.copytree(seed_path, str(work))
                victim = os.path.join(folder, slices[int(rng.integers(len(slices)))])
                given = folder
            else:
                work.mkdir()
                victim = given = str(work / os.path.basename(seed_path))
            blob = open(seed_path if name != "dicom-series" else os.path.join(seed_path, os.path.basename(victim)),
                        "rb").read()
            if name == "nifti-gz":  # mutate the NIfTI inside half the time, the gzip stream otherwise
                if rng.random() < 0.5:
                    inner = gzip.decompress(blob)
                    inner, what = (mutate_field(inner, rng, "nifti") if rng.random() < 0.5
                                   else mutate(inner, rng, 352))
                    data = gzip.compress(inner)
                else:
                    data, what = mutate(blob, rng, 10)
            elif kind in ("dicom", "nifti") and rng.random() < 0.4:
                data, what = mutate_field(blob, rng, kind)
            else:
                data, what = mutate(blob, rng, _header_size(blob, kind))
            with open(victim, "wb") as f:
                f.write(data)
            what = f"case {index} {name} {os.path.basename(victim)}: {what}"
            reader = read_volume if name in ("dicom-series", "nifti", "nifti-gz") else read_xray
            signal.alarm(SECONDS_PER_FILE)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = reader(given)
            except XprospectError as err:
                assert str(given) in str(err) or str(victim) in str(err), (what, str(err))
                counts[name][0] += 1
                continue
            except _Timeout:
                pytest.fail(f"{what}: took over {SECONDS_PER_FILE} s")
            except Exception as err:  # noqa: BLE001 -- the point of the test
                pytest.fail(f"{what}: raised {type(err).__name__}: {err}, not an XprospectError")
            finally:
                signal.alarm(0)
            if reader is read_volume:
                assert_sane_volume(result, what)
            else:
                assert_sane_xray(result, what)
            counts[name][1] += 1
            shutil.rmtree(work, ignore_errors=True)
    finally:
        signal.signal(signal.SIGALRM, previous)
    return counts


def _report(counts):
    refused = sum(c[0] for c in counts.values())
    sane = sum(c[1] for c in counts.values())
    print(f"\nfuzzed {refused + sane} files: {refused} refused with an XprospectError, {sane} read sanely")
    for name, (r, s) in sorted(counts.items()):
        print(f"  {name:13s} refused {r:4d}  sane {s:4d}")
    # both outcomes occur for every kind of file: the mutations reach the checks
    assert all(r > 0 and s > 0 for r, s in counts.values()), counts


def test_fuzzed_files_are_refused_or_sane(tmp_path):
    _report(run_fuzz(tmp_path, FAST_CASES))


@pytest.mark.slow
def test_fuzzed_files_are_refused_or_sane_many(tmp_path):
    _report(run_fuzz(tmp_path, SLOW_CASES, seed=7))


def test_mutations_are_deterministic():
    blob = bytes(range(256)) * 4
    a = mutate(blob, np.random.default_rng([1, 2]), 100)
    b = mutate(blob, np.random.default_rng([1, 2]), 100)
    assert a == b and a[0] != blob or "truncated" in a[1]
