"""``xprospect train / table1 / export / predict`` end to end on tiny phantoms.

The model settings are shrunk with --set (size 16, base_filters 2, 1 epoch,
run eagerly) so a whole row takes seconds; what is checked is the wiring:
files written, metrics against an independent recomputation, orientation of
the NIfTI written by predict, exit codes.
"""

import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from pipelines.cli import main
from tests.helpers import TINY_ROW as TINY
from tests.helpers import read_json
from xprospect_tf.data.prepared import load_case


@pytest.fixture(scope="module")
def data_dir(phantom_dataset):
    """Six 16^3 phantoms, two test cases (shared, read-only)."""
    return phantom_dataset


@pytest.fixture(scope="module")
def run_dir(tiny_run):
    """A finished tiny 64-Dense run on ``data_dir`` (shared, read-only)."""
    return tiny_run


def _results(run_dir):
    return read_json(os.path.join(run_dir, "results.json"))


def test_train_writes_a_complete_run_folder(run_dir, data_dir):
    for name in ("config.json", "model.keras", "history.csv", "results.json", "example_prediction.npz",
                 "learning_curve.png"):
        assert os.path.exists(os.path.join(run_dir, name)), name
    res = _results(run_dir)
    assert res["config"]["data"]["size"] == 16 and res["config"]["model"]["dense_units"] == 64
    with open(os.path.join(data_dir, "manifest.json")) as f:
        test_ids = sorted(c["id"] for c in json.load(f)["cases"] if c["split"] == "test")
    assert sorted(c["case_id"] for c in res["per_case"]) == test_ids and len(test_ids) == 2
    assert res["parameters"] > 0 and res["loss"] == "mse" and res["optimizer"] == "adam"


def test_reported_metrics_match_an_independent_recomputation(run_dir, data_dir):
    from xprospect_tf.export import load_keras_model

    res = _results(run_dir)
    model = load_keras_model(os.path.join(run_dir, "model.keras"))
    for case in res["per_case"]:
        c = load_case(data_dir, case["case_id"])
        pred = model.predict_on_batch({"frontal": c["ap"][None, ..., None],
                                       "lateral": c["lateral"][None, ..., None]})[0, ..., 0]
        mse = float(np.mean((pred.astype(np.float64) - c["ct"]) ** 2))
        assert case["mse"] == pytest.approx(mse, rel=1e-4)
        assert case["psnr"] == pytest.approx(10 * np.log10(1.0 / mse), rel=1e-4)


def test_rerun_with_same_seed_reproduces_the_numbers(run_dir, data_dir, tmp_path):
    out = str(tmp_path / "again")
    assert main(["train", "--row", "64-Dense", "--out", out, "--data", data_dir, *TINY]) == 0
    a, b = _results(run_dir), _results(out)
    assert [c["mse"] for c in a["per_case"]] == pytest.approx([c["mse"] for c in b["per_case"]], rel=1e-5)


def test_baseline_rows_need_no_training(data_dir, tmp_path):
    out = str(tmp_path / "mean")
    assert main(["train", "--row", "Mean volume", "--out", out, "--data", data_dir, "--set", "size=16"]) == 0
    res = _results(out)
    assert res["parameters"] == 0
    # the mean-volume prediction is the voxel-wise mean of the training CTs
    with open(os.path.join(data_dir, "manifest.json")) as f:
        train_ids = [c["id"] for c in json.load(f)["cases"] if c["split"] == "train"]
    expected = np.mean([load_case(data_dir, i)["ct"] for i in train_ids], axis=0)
    # the baseline is saved as a Keras model that plain keras.models.load_model reads
    import keras

    model = keras.models.load_model(os.path.join(out, "model.keras"))
    case = load_case(data_dir, res["per_case"][0]["case_id"])
    pred = model.predict_on_batch({"frontal": case["ap"][None, ..., None], "lateral": case["lateral"][None, ..., None]})
    np.testing.assert_allclose(pred[0, ..., 0], expected, atol=1e-6)


def test_dry_run_reports_and_flags_a_too_large_batch(tmp_path, capsys):
    unused = str(tmp_path / "unused")
    assert main(["train", "--row", "512-Dense", "--out", unused, "--dry-run", *TINY]) == 0
    report = capsys.readouterr().out
    assert "parameters" in report and "GiB" in report
    status = main(["train", "--row", "512-Dense", "--out", unused, "--dry-run", *TINY,
                   "--set", "train.batch_size=1000000"])
    assert status != 0
    assert "limit" in capsys.readouterr().err
    assert not os.path.exists(unused)


def test_dry_run_names_the_limit_and_the_largest_batch_that_fits(capsys):
    # 512-ProjInj at 16^3, base_filters 2: the widest tensor is the fusion block's full-size input
    # (the up-sampled previous output is never made), 16^3 x (2 + 2 back-projection channels) = 16,384
    # elements per sample, so 2^31 - 1 elements hold 131,071 samples and 131,072 x 16,384 = 2^31 is one too many
    fits = (2**31 - 1) // (16**3 * (2 + 2))
    assert fits == 131_071
    row = ["train", "--row", "512-ProjInj", "--dry-run", *TINY]
    assert main([*row, "--set", f"train.batch_size={fits}"]) == 0
    out = capsys.readouterr().out
    assert "limit checked: TensorFlow's limit of 2,147,483,647 (2^31-1) elements per tensor" in out
    assert '"2^32 parameters per layer"' in out
    assert f"largest batch size that fits: {fits:,}" in out
    assert main([*row, "--set", f"train.batch_size={fits + 1}"]) == 1
    err = capsys.readouterr().err
    assert "2,147,483,647 (2^31-1) elements per tensor" in err and "fusion_0" in err
    assert f"the largest batch size that fits is {fits:,}: reduce train.batch_size to {fits} or less" in err


def test_mirrored_strategy_trains_on_two_logical_cpus(phantom_datasets, tmp_path, caplog):
    import tensorflow as tf

    assert len(tf.config.list_logical_devices("CPU")) == 2  # tests/conftest.py splits the CPU
    # 4 train and 4 val cases: whole batches of 2 per replica. (Keras 3.15 with MirroredStrategy
    # fails on a first batch that does not divide evenly among the replicas, and TensorFlow's
    # CPU convolutions on a replica's empty share of a short last batch.)
    data_dir = phantom_datasets(10, 2, val_fraction=0.5)
    out = str(tmp_path / "mirrored")
    with caplog.at_level("INFO", logger="xprospect_tf.training.rows"):
        assert main(["train", "--row", "64-Dense", "--out", out, "--data", data_dir,
                     "--strategy", "mirrored", *TINY, "--set", "val_fraction=0.5"]) == 0
    assert "batch 2 on each of 2 replica(s)" in caplog.text  # the guard checks one replica's batch
    assert os.path.exists(os.path.join(out, "model.keras"))


def test_table1_generates_the_table_from_result_files(data_dir, tmp_path):
    out = str(tmp_path / "table")
    rows = ["Mean volume", "Back-projection", "64-Dense"]
    assert main(["table1", "--rows", *rows, "--out", out, "--data", data_dir, *TINY]) == 0
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)["rows"]
    md = open(os.path.join(out, "table1.md")).read()
    csv_lines = open(os.path.join(out, "table1.csv")).read().strip().splitlines()
    assert len(csv_lines) == 1 + len(rows)
    for r in results:
        assert f"| {r['row']} |" in md
        assert f"{r['summary']['mse'][0]:.5f}" in md
        assert os.path.exists(os.path.join(out, r["example_image"]))
    for fig in ("axial_examples.png", "figure4_renderings.png", "learning_curves.png", "64-dense/learning_curve.png"):
        assert os.path.getsize(os.path.join(out, fig)) > 1000
    # a second run reuses the rows' results instead of retraining
    before = os.path.getmtime(os.path.join(out, "64-dense", "results.json"))
    assert main(["table1", "--rows", *rows, "--out", out, "--data", data_dir, *TINY]) == 0
    assert os.path.getmtime(os.path.join(out, "64-dense", "results.json")) == before


def test_export_then_predict_writes_a_correctly_oriented_nifti(run_dir, data_dir, tmp_path):
    from PIL import Image

    export_dir = str(tmp_path / "export")
    assert main(["export", run_dir, "--out", export_dir]) == 0
    c = load_case(data_dir, "phantom-0000")
    x = {"frontal": c["ap"][None, ..., None], "lateral": c["lateral"][None, ..., None]}
    np.savez(tmp_path / "x.npz", **x)
    # the SavedModel serves the trained reconstruction model in a process that never imports xprospect_tf
    serve = ("import sys, numpy as np, tensorflow as tf; d = np.load(sys.argv[1]); "
             "f = tf.saved_model.load(sys.argv[2]).signatures['serving_default']; "
             "np.save(sys.argv[3], f(frontal=tf.constant(d['frontal']), lateral=tf.constant(d['lateral']))['ct'].numpy()); "
             "assert not any(m.startswith('xprospect_tf') for m in sys.modules)")
    subprocess.run([sys.executable, "-c", serve, str(tmp_path / "x.npz"),
                    os.path.join(export_dir, "saved_model"), str(tmp_path / "served.npy")],
                   check=True, cwd=str(tmp_path), env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    from xprospect_tf.export import load_keras_model

    expected = load_keras_model(os.path.join(export_dir, "model.keras")).predict_on_batch(x)
    np.testing.assert_allclose(np.load(tmp_path / "served.npy"), expected, rtol=1e-5, atol=1e-6)
    paths = {}
    for view in ("ap", "lateral"):
        paths[view] = str(tmp_path / f"{view}.png")
        Image.fromarray((c[view] * 255).astype(np.uint8)).save(paths[view])
    out = str(tmp_path / "ct.nii.gz")
    assert main(["predict", export_dir, "--frontal", paths["ap"], "--lateral", paths["lateral"],
                 "--out", out]) == 0
    img = nib.load(out)
    assert img.shape == (16, 16, 16)
    assert nib.aff2axcodes(img.affine) == ("I", "L", "P")
    from xprospect_tf.data.readers import read_volume

    back = read_volume(out, check_hu=False)  # our reader maps it back (a 1-epoch model predicts no air)
    np.testing.assert_allclose(back.hu, img.get_fdata(), atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(img.affine[:3, :3], axis=0), 400.0 / 16)
    hu = img.get_fdata()
    assert -1000.0 <= hu.min() and hu.max() <= 1000.0
    centre = img.affine @ np.array([7.5, 7.5, 7.5, 1.0])
    np.testing.assert_allclose(centre[:3], 0.0, atol=1e-6)  # cube centred on the world origin
    assert os.path.exists(str(tmp_path / "ct_preview.png"))


def test_predict_rejects_missing_model_and_bad_output(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "none"), "--frontal", "a.png", "--lateral", "b.png",
                 "--out", str(tmp_path / "ct.nii.gz")]) == 2
    assert "no trained model" in capsys.readouterr().err
    assert main(["predict", str(tmp_path), "--frontal", "a.png", "--lateral", "b.png",
                 "--out", str(tmp_path / "ct.png")]) == 2
    assert ".nii" in capsys.readouterr().err


def test_predict_refuses_to_guess_the_window_of_a_model_without_its_config(run_dir, tmp_path, capsys):
    import shutil

    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copyfile(os.path.join(run_dir, "model.keras"), lone / "model.keras")
    for model in (str(lone), str(lone / "model.keras")):
        assert main(["predict", model, "--frontal", "a.png", "--lateral", "b.png",
                     "--out", str(tmp_path / "ct.nii.gz")]) == 2
        err = capsys.readouterr().err
        assert "no config.json" in err and "window" in err
    assert not os.path.exists(tmp_path / "ct.nii.gz")


def test_styled_row_trains_style_models_then_the_reconstruction(data_dir, fresh_copy, tmp_path):
    from xprospect_tf.data.prepared import read_manifest

    data = fresh_copy(data_dir)  # styling adds fields to the dataset
    out = str(tmp_path / "styled")
    tiny_style = ["--set", "style.epochs=1", "--set", "style.filters=4", "--set", "style.n_residual=1",
                  "--set", "style.batch_size=2"]
    assert main(["train", "--row", "64-Dense-Styled-Inputs", "--out", out, "--data", data,
                 *TINY, *tiny_style]) == 0
    import keras

    for view in ("frontal", "lateral"):  # the style models run at the row's data.size (16 here)
        style_run = os.path.join(out, f"style-{view}")
        assert read_json(os.path.join(style_run, "config.json"))["size"] == 16
        generator = keras.models.load_model(os.path.join(style_run, "generator.keras"), compile=False)
        assert generator.input_shape == generator.output_shape == (None, 16, 16, 1)
    assert all({"styled_ap", "styled_lateral"} <= set(c["fields"]) for c in read_manifest(data).cases)
    res = _results(out)
    assert res["inputs"] == "styled" and res["config"]["style"]["epochs"] == 1


@pytest.mark.parametrize("argv, message", [
    (["--row", "64-Dense", "--set", "sise=3"], "unknown setting 'sise'"),
    (["--row", "1024-Dense"], "no row named '1024-Dense'"),
    (["--row", "64-Dense", "--set", "source=/no/such/prepared"], "not a prepared dataset"),
])
def test_bad_settings_exit_2_with_a_message_and_no_output(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert main(["train", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_a_run_folder_of_other_settings_is_refused(run_dir, data_dir, capsys):
    assert main(["train", "--row", "64-Dense", "--out", run_dir, "--data", data_dir, *TINY,
                 "--set", "dense_units=32"]) == 2
    assert "other settings" in capsys.readouterr().err
    assert _results(run_dir)["config"]["model"]["dense_units"] == 64  # untouched
