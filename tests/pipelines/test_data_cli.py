"""``xprospect data ...``: exit codes, error messages, outputs; preview orientation."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pipelines.cli import main
from tests.data.test_prepared import FOV, SIZE, make_ct_folder, write_nifti, body_hu

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMMON = ["--size", str(SIZE), "--fov", str(FOV), "--workers", "1"]


@pytest.fixture(scope="module")
def ct_folder(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("cts"))
    make_ct_folder(folder, count=3)
    return folder


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, ct_folder):
    out = str(tmp_path_factory.mktemp("ds") / "ds")
    assert main(["data", "prepare", ct_folder, "--out", out, "--test-count", "1", *COMMON]) == 0
    return out


def read_png(path):
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img)


def test_prepare_writes_a_dataset(dataset, capsys):
    with open(os.path.join(dataset, "manifest.json")) as f:
        manifest = json.load(f)
    assert [c["split"] for c in manifest["cases"]].count("test") == 1
    assert len(manifest["cases"]) == 3 and manifest["size"] == SIZE and manifest["fov_mm"] == FOV


def test_prepare_with_a_corrupt_input_exits_nonzero_after_writing_the_others(tmp_path, capsys):
    folder = tmp_path / "cts"
    make_ct_folder(str(folder), count=2)
    (folder / "zz_broken.nii").write_bytes(b"\0" * 100)
    out = tmp_path / "out"
    assert main(["data", "prepare", str(folder), "--out", str(out), *COMMON]) == 1
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
    argv = ["data", "phantoms", "--out", str(out), "--count", "3", "--seed", "2", "--test-count", "1",
            "--size", str(SIZE), "--workers", "1"]
    assert main(argv) == 0
    with open(out / "manifest.json") as f:
        manifest = json.load(f)
    assert [c["id"] for c in manifest["cases"]] == ["phantom-0000", "phantom-0001", "phantom-0002"]
    assert manifest["fov_mm"] == 400.0 and manifest["split_seed"] == 0
    assert "3 cases (1 test)" in capsys.readouterr().out


@pytest.mark.parametrize("source", ["dataset", "nifti"])
def test_preview_writes_a_png(source, dataset, tmp_path):
    path = dataset if source == "dataset" else write_nifti(str(tmp_path / "ct.nii.gz"), body_hu(5))
    png = tmp_path / "preview.png"
    assert main(["data", "preview", path, "--out", str(png), *COMMON[:4]]) == 0
    image = read_png(png)
    assert image.ndim == 3 and image.shape[0] > 200 and image.std() > 10
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp.png")] == []


def test_preview_panels_are_shown_radiologically():
    from xprospect_tf.evaluation.figures import preview_figure, preview_panels

    vol = np.zeros((8, 8, 8), np.float32)  # mid slices: z = x = y = 4
    vol[4, 1, 2] = 1.0  # axial marker: patient right (x=1), anterior (y=2)
    vol[1, 2, 4] = 1.0  # coronal marker: superior (z=1), right (x=2)
    vol[1, 4, 2] = 1.0  # sagittal marker: superior (z=1), anterior (y=2)
    ap, lateral = vol.mean(axis=2), vol.mean(axis=1)
    panels = {name: (image, letters) for name, image, letters in
              preview_panels(vol, ap, lateral, ap, lateral)}
    # right and anterior on the image's left, anterior and superior at the top
    for name, (row, col) in {"axial": (2, 1), "coronal": (1, 2), "sagittal": (1, 2)}.items():
        assert np.argwhere(panels[name][0] == 1.0).tolist() == [[row, col]], name
    np.testing.assert_array_equal(panels["mean-CT frontal"][0], ap)
    np.testing.assert_array_equal(panels["DRR lateral"][0], lateral)
    assert panels["axial"][1] == ("R", "L", "A", "P")
    assert panels["coronal"][1] == panels["mean-CT frontal"][1] == ("R", "L", "S", "I")
    assert panels["sagittal"][1] == panels["mean-CT lateral"][1] == ("A", "P", "S", "I")
    fig = preview_figure(vol, ap, lateral, ap, lateral, title="t")
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == 7
    assert {t.get_text() for t in drawn[0].texts} == {"R", "L", "A", "P"}


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


def test_ensure_dataset_refuses_a_dataset_of_other_settings(dataset):
    from pipelines.common import ensure_dataset
    from xprospect_tf.config import DataConfig
    from xprospect_tf.errors import ConfigError

    same = DataConfig(source=dataset, size=SIZE, fov_mm=FOV)
    assert ensure_dataset(same) == dataset
    with pytest.raises(ConfigError, match=f"{dataset}: prepared with size={SIZE}, not size=32.*--set size={SIZE}"):
        ensure_dataset(DataConfig(source=dataset, size=32, fov_mm=FOV))
    with pytest.raises(ConfigError, match=r"prepared with window=\[-1000,1000\], not window=\[-100,900\]"):
        ensure_dataset(DataConfig(source=dataset, size=SIZE, window=(-100.0, 900.0), fov_mm=FOV))
    with pytest.raises(ConfigError, match=f"prepared with fov_mm={FOV:g}, not fov_mm=400"):
        ensure_dataset(DataConfig(source=dataset, size=SIZE))
