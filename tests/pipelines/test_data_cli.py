"""``xprospect data ...``: exit codes, error messages, outputs; preview orientation."""

import json
import os
import subprocess
import sys

import pytest

from pipelines.cli import main
from tests.helpers import FOV, SIZE, body_hu, make_ct_folder, read_json, read_png, write_ct

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMMON = ["--size", str(SIZE), "--fov", str(FOV), "--workers", "1"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, ct_folder):
    """The shared four-CT folder prepared through ``xprospect data prepare``."""
    out = str(tmp_path_factory.mktemp("ds") / "ds")
    assert main(["data", "prepare", ct_folder, "--out", out, "--test-count", "1", *COMMON]) == 0
    return out


def test_prepare_writes_a_dataset(dataset, ct_folder, capsys):
    manifest = read_json(os.path.join(dataset, "manifest.json"))
    assert [c["split"] for c in manifest["cases"]].count("test") == 1
    assert [c["id"] for c in manifest["cases"]] == ["ct0", "ct1", "ct2", "ct3"]
    assert [c["source"] for c in manifest["cases"]] == [os.path.join(ct_folder, f"ct{i}.nii.gz") for i in range(4)]
    assert manifest["size"] == SIZE and manifest["fov_mm"] == FOV


def test_prepare_with_a_corrupt_input_exits_nonzero_after_writing_the_others(tmp_path, capsys):
    folder = tmp_path / "cts"
    make_ct_folder(str(folder), count=2)
    (folder / "zz_broken.nii").write_bytes(b"\0" * 100)
    out = tmp_path / "out"
    assert main(["data", "prepare", str(folder), "--out", str(out), *COMMON, "--val-fraction", "0"]) == 1
    err = capsys.readouterr().err
    assert "1 input(s) failed" in err and "zz_broken.nii" in err and "Traceback" not in err
    with open(out / "manifest.json") as f:
        assert [c["id"] for c in json.load(f)["cases"]] == ["ct0", "ct1"]


@pytest.mark.parametrize("argv, message", [
    (["data", "prepare", "{tmp}/missing", "--out", "{tmp}/out"], "no such file or folder"),
    (["data", "prepare", "{cts}", "--out", "{tmp}/out", "--size", "0"], "--size"),
    (["data", "prepare", "{cts}", "--out", "{tmp}/out", "--window", "500", "-500"], "--window"),
    (["data", "prepare", "{cts}", "--out", "{tmp}/out", "--fov", "0"], "--fov"),
    (["data", "preview", "{cts}/ct0.nii.gz", "--out", "{tmp}/out/p.png", "--size", "4"], "--size"),
    (["data", "phantoms", "--out", "{tmp}/out", "--count", "0"], "--count"),
    (["data", "preview", "{tmp}", "--case", "ct0", "--out", "{tmp}/out/p.png"], "xprospect data prepare"),
    (["data", "preview", "{tmp}/missing.nii", "--out", "{tmp}/out/p.png"], "no such file or folder"),
])
def test_user_errors_exit_2_with_a_message_and_no_output(argv, message, tmp_path, ct_folder, capsys):
    argv = [a.format(tmp=tmp_path, cts=ct_folder) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("xprospect: error:") and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_prepare_into_a_folder_with_other_settings_exits_2(dataset, ct_folder, capsys):
    argv = ["data", "prepare", ct_folder, "--out", dataset, "--size", "24", "--fov", str(FOV)]
    assert main(argv) == 2
    assert "new --out" in capsys.readouterr().err


def test_phantoms_command(tmp_path, capsys):
    out = tmp_path / "ph"
    argv = ["data", "phantoms", "--out", str(out), "--count", "4", "--seed", "2", "--test-count", "1",
            "--size", str(SIZE), "--workers", "1"]
    assert main(argv) == 0
    with open(out / "manifest.json") as f:
        manifest = json.load(f)
    assert [c["id"] for c in manifest["cases"]] == [f"phantom-000{i}" for i in range(4)]
    assert manifest["fov_mm"] == 400.0 and manifest["split_seed"] == 0 and manifest["val_fraction"] == 0.2
    assert "4 cases (2 train, 1 val, 1 test)" in capsys.readouterr().out


def test_split_command_holds_validation_cases_out_again(dataset, fresh_copy, capsys):
    out = fresh_copy(dataset)
    test_ids = [c["id"] for c in read_json(os.path.join(dataset, "manifest.json"))["cases"] if c["split"] == "test"]
    assert main(["data", "split", out, "--val-fraction", "0"]) == 0
    assert "4 cases (3 train, 0 val, 1 test), val_fraction 0" in capsys.readouterr().out
    manifest = read_json(os.path.join(out, "manifest.json"))
    assert manifest["val_fraction"] == 0.0 and [c["split"] for c in manifest["cases"]].count("val") == 0
    assert main(["data", "split", out]) == 0  # the default: the paper's 0.2
    assert "(2 train, 1 val, 1 test)" in capsys.readouterr().out
    assert read_json(os.path.join(out, "manifest.json")) == read_json(os.path.join(dataset, "manifest.json"))
    assert [c["id"] for c in read_json(os.path.join(out, "manifest.json"))["cases"] if c["split"] == "test"] == test_ids
    for bad, message in (("1.5", "--val-fraction"), ("0.1", "leaves no validation case")):
        assert main(["data", "split", out, "--val-fraction", bad]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


@pytest.mark.parametrize("source", ["dataset", "nifti"])
def test_preview_writes_a_png(source, dataset, tmp_path):
    path = dataset if source == "dataset" else write_ct(tmp_path / "ct.nii.gz", body_hu(5))
    png = tmp_path / "preview.png"
    assert main(["data", "preview", path, "--out", str(png), *COMMON[:4]]) == 0
    image = read_png(png)
    assert image.ndim == 3 and image.shape[0] > 200 and image.std() > 10
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp.png")] == []


def test_preview_subprocess_prints_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    png = tmp_path / "p.png"
    result = subprocess.run(
        [sys.executable, "-m", "pipelines", "data", "preview", str(tmp_path), "--case", "x", "--out", str(png)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "not a prepared dataset" in result.stderr and "Traceback" not in result.stderr
    assert not png.exists()


def test_series_option_picks_one_series_of_a_folder_holding_two(tmp_path, capsys):
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    ct5n = os.path.join(os.path.dirname(get_testdata_file("CT_small.dcm")), "dicomdirtests", "98892001", "CT5N")
    folder = tmp_path / "two-series"
    folder.mkdir()
    second = generate_uid()
    for name in sorted(os.listdir(ct5n)):
        ds = pydicom.dcmread(os.path.join(ct5n, name))
        first = str(ds.SeriesInstanceUID)
        ds.save_as(str(folder / f"a{name}.dcm"))
        ds.SeriesInstanceUID, ds.SOPInstanceUID = second, generate_uid()
        ds.save_as(str(folder / f"b{name}.dcm"))
    out = tmp_path / "ds"
    common = ["--out", str(out), "--size", "16", "--workers", "1", "--val-fraction", "0"]  # one case
    assert main(["data", "prepare", str(folder), *common]) == 2  # the only input failed: nothing written
    assert "--series" in capsys.readouterr().err
    assert not out.exists()
    assert main(["data", "prepare", str(folder), *common, "--series", first]) == 0
    manifest = read_json(out / "manifest.json")
    assert [c["id"] for c in manifest["cases"]] == ["two-series"] and manifest["failed"] == []


def test_no_hu_check_admits_a_volume_without_air(tmp_path, capsys):
    import numpy as np

    hu = np.full((20, 20, 20), 40.0, np.float32)  # soft tissue only: no air, so not taken for a CT
    write_ct(str(tmp_path / "cropped.nii.gz"), hu)
    common = [str(tmp_path / "cropped.nii.gz"), "--size", "16", "--workers", "1", "--val-fraction", "0"]
    assert main(["data", "prepare", *common, "--out", str(tmp_path / "refused")]) == 2
    assert "air" in capsys.readouterr().err
    assert main(["data", "prepare", *common, "--out", str(tmp_path / "ds"), "--no-hu-check"]) == 0
