"""``xprospect style train / apply / evaluate`` end to end on tiny phantoms (16 px, 4 filters, 1 epoch)."""

import dataclasses
import os

import numpy as np
import pytest

from pipelines.cli import build_parser, main
from tests.helpers import copy_tree, read_json
from xprospect_tf.config import StyleConfig
from xprospect_tf.data.prepared import load_case, load_prepared, read_manifest

TINY = ["--epochs", "1", "--filters", "4", "--residual-blocks", "1", "--batch-size", "2", "--eager"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, phantom_dataset):
    """A copy of the shared six-phantom dataset (two test cases): ``style apply`` adds fields to it."""
    return copy_tree(phantom_dataset, tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("style")
    dirs = {view: str(root / view) for view in ("frontal", "lateral")}
    for view, out in dirs.items():
        assert main(["style", "train", "--view", view, "--data", data_dir, "--out", out, *TINY]) == 0
    return dirs


@pytest.fixture(scope="module")
def styled(runs, data_dir):
    assert main(["style", "apply", "--data", data_dir, "--frontal-model", runs["frontal"],
                 "--lateral-model", runs["lateral"]]) == 0
    return data_dir


def test_train_writes_generator_config_history_and_samples(runs, data_dir):
    out = runs["frontal"]
    for name in ("generator.keras", "config.json", "history.csv", "last.keras", "samples/epoch_001.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    config = read_json(os.path.join(out, "config.json"))
    assert config["view"] == "frontal" and config["size"] == 16 and config["filters"] == 4
    assert config["domain_b"] == "phantom-drr:3"  # default: as many phantoms as train cases
    paper = StyleConfig()
    assert (config["learning_rate"], config["cycle_lambda"]) == (paper.learning_rate, paper.cycle_lambda)
    assert (config["ema_momentum"], config["ema_every"], config["seed"]) == (0.99, 100, 0)
    assert list(config) == ["view", "data", "size", "fov_mm", "domain_b", "count", "epochs",
                            "batch_size", "filters", "disc_filters", "n_residual", "upsampling", "residual",
                            "learning_rate", "cycle_lambda", "ema_momentum", "ema_every", "seed"]
    assert set(os.listdir(out)) <= {"backup", "config.json", "generator.keras", "history.csv",
                                    "last.keras", "last.keras.json", "samples"}  # the layout, nothing else
    with open(os.path.join(out, "history.csv")) as f:
        assert len(f.read().strip().splitlines()) == 2  # header + one epoch
    from PIL import Image

    assert Image.open(os.path.join(out, "samples/epoch_001.png")).size[0] > 100


def test_apply_writes_styled_fields_equal_to_the_generators_output(runs, styled):
    import keras

    manifest = read_manifest(styled)
    assert all(set(c["fields"]) == {"styled_ap", "styled_lateral"} for c in manifest.cases)
    generators = {v: keras.models.load_model(os.path.join(runs[v], "generator.keras")) for v in runs}
    for case in manifest.cases:
        c = load_case(styled, case["id"])
        for view, source, field in (("frontal", "ap", "styled_ap"), ("lateral", "lateral", "styled_lateral")):
            expected = np.asarray(generators[view](c[source][None, :, :, None]))[0, :, :, 0]
            np.testing.assert_allclose(c[field], expected, atol=1e-5)
        assert not np.allclose(c["styled_ap"], c["ap"])  # originals kept, styled differ
    (ap, lat), ct = next(iter(load_prepared(styled, "test", inputs="styled", batch_size=2)))
    assert ap.shape == lat.shape == (2, 16, 16, 1) and ct.shape == (2, 16, 16, 16, 1)


def test_apply_refuses_a_swapped_view(runs, data_dir, capsys):
    status = main(["style", "apply", "--data", data_dir, "--frontal-model", runs["lateral"],
                   "--lateral-model", runs["frontal"]])
    assert status == 2 and "a lateral style model" in capsys.readouterr().err


def test_evaluate_writes_metrics_matching_a_recomputation_and_the_figure(styled, tmp_path):
    from xprospect_tf.data.domains import domain_b_images
    from xprospect_tf.evaluation.style_metrics import histogram_distance, ssim2d_mean

    out = str(tmp_path / "eval")
    assert main(["style", "evaluate", "--data", styled, "--out", out]) == 0
    report = read_json(os.path.join(out, "style_metrics.json"))
    assert os.path.getsize(os.path.join(out, "style_figure.png")) > 0
    ids = read_manifest(styled).ids()
    cases = [load_case(styled, i) for i in ids]
    ap = np.stack([c["ap"] for c in cases])
    styled_ap = np.stack([c["styled_ap"] for c in cases])
    target = domain_b_images("phantom-drr:3", "frontal", 16)
    frontal = report["views"]["frontal"]
    assert frontal["n_images"] == 6 and frontal["n_domain_b"] == 3 and report["split"] == "all"
    assert frontal["histogram_source"] == pytest.approx(histogram_distance(ap, target, 64))
    assert frontal["histogram_stylized"] == pytest.approx(histogram_distance(styled_ap, target, 64))
    assert frontal["ssim"] == pytest.approx(ssim2d_mean(styled_ap, ap))
    assert set(report["views"]["lateral"]) >= {"spectrum_source", "spectrum_stylized"}


@pytest.mark.parametrize("spec, message", [("missing", "no such file or folder"), ("", "no X-ray images")])
def test_bad_domain_b_exits_2_with_the_path(tmp_path, data_dir, capsys, spec, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    path = str(tmp_path / spec) if spec else str(empty)
    status = main(["style", "train", "--view", "frontal", "--data", data_dir, "--out",
                   str(tmp_path / "run"), "--domain-b", path, *TINY])
    err = capsys.readouterr().err
    assert status == 2 and path in err and message in err
    assert not os.path.exists(tmp_path / "run" / "config.json")  # a corrected rerun is not refused


def test_style_train_options_are_the_style_config_fields():
    """The CLI's defaults are StyleConfig's: one home, no second copy."""
    args = build_parser().parse_args(["style", "train", "--view", "frontal", "--data", "d", "--out", "o"])
    for field in dataclasses.fields(StyleConfig):
        assert getattr(args, field.name) == getattr(StyleConfig(), field.name), field.name
    args = build_parser().parse_args(["style", "evaluate", "--data", "d", "--out", "o"])
    assert (args.domain_b, args.count) == (StyleConfig().domain_b, StyleConfig().count) == ("default", 2390)


@pytest.mark.parametrize("option, value, message", [
    ("--epochs", "0", "--epochs: style.epochs = 0: use a positive integer"),
    ("--learning-rate", ".nan", "--learning-rate: style.learning_rate = nan: use a finite number"),
    ("--upsampling", "bilinear", "--upsampling: style.upsampling = 'bilinear' is not one of transpose, resize"),
    ("--ema-momentum", "2", "--ema-momentum: style.ema_momentum = 2.0: use a number <= 1"),
    ("--residual-blocks", "many", "--residual-blocks: style.n_residual = 'many' is not a valid integer"),
])
def test_bad_style_options_exit_2_naming_the_option(tmp_path, data_dir, capsys, option, value, message):
    out = tmp_path / "run"
    status = main(["style", "train", "--view", "frontal", "--data", data_dir, "--out", str(out),
                   option, value])
    assert status == 2 and message in capsys.readouterr().err
    assert not out.exists()


def test_options_reach_the_run_config(data_dir, tmp_path):
    from xprospect_tf.training.style import style_run_config

    args = build_parser().parse_args(["style", "train", "--view", "lateral", "--data", data_dir, "--out", "o",
                                      "--ema-every", "null", "--count", "3", "--seed", "5",
                                      "--domain-b", "phantom-drr:7", "--residual-blocks", "2"])
    from pipelines.style import TRAIN, style_from_args

    config = style_run_config(data_dir, "lateral", style_from_args(args, TRAIN))
    assert (config["ema_every"], config["count"], config["seed"]) == (None, 3, 5)
    assert (config["domain_b"], config["n_residual"], config["size"]) == ("phantom-drr:7", 2, 16)
