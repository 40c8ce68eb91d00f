"""``xprospect classify`` end to end at tiny size, its numbers recomputed from predictions.csv.

The generator row is the "Mean volume" baseline (no training: seconds): every
generated CT is the same volume, so the generated-CT classifier gives every
case of a fold the same score and each fold's AUC must be exactly 0.5, an
independent check of the wiring (the pooled AUC need not be: the folds' constant
scores differ, and their class mixes differ by a case). 16^3, 18 labelled phantoms, 3 folds, one
classifier epoch.
"""

import csv
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from pipelines.cli import main
from xprospect_tf.data.phantom import phantom_findings
from xprospect_tf.data.prepared import Manifest, phantom_sources
from xprospect_tf.evaluation import classification as cls
from xprospect_tf.evaluation import roc

TINY = ["--set", "size=16", "--set", "data.count=6", "--set", "data.test_count=2",
        "--set", "classify.cases=18", "--set", "classify.classifier_epochs=1",
        "--set", "classify.classifier_filters=2", "--set", "classify.classifier_batch_size=6", "--folds", "3",
        "--eager"]
ROW = ["--row", "Mean volume"]
COLUMNS = {"CT": "score_ct", "X-ray": "score_xray", "Generated CT": "score_generated_ct"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("classify") / "out")
    assert main(["classify", *ROW, "--out", out, *TINY]) == 0
    return out


def _read(out):
    with open(os.path.join(out, "predictions.csv")) as f:
        predictions = list(csv.DictReader(f))
    with open(os.path.join(out, "table3.csv")) as f:
        table = {r["input"]: r for r in csv.DictReader(f)}
    with open(os.path.join(out, "classification.json")) as f:
        info = json.load(f)
    with open(os.path.join(out, "delong.json")) as f:
        delong = json.load(f)
    return predictions, table, info, delong


def test_writes_every_output(run):
    for name in ("table3.md", "table3.csv", "predictions.csv", "delong.json", "roc_curves.png",
                 "classification.json", "data/manifest.json", "generator/model.keras",
                 "generator-data/manifest.json"):
        assert os.path.exists(os.path.join(run, name)), name
    text = open(os.path.join(run, "table3.md")).read()
    assert "disjoint generator" in text and "mean of the folds' AUCs" in text and "DeLong" in text
    rows = [re.match(r"\| ([^|]+) \| \d\.\d{3} \[\d\.\d\d-\d\.\d\d\] \|", line) for line in text.splitlines()]
    assert [m.group(1) for m in rows if m] == ["CT", "X-ray", "Generated CT"]


def test_labels_and_folds_are_the_phantoms_and_the_stratified_folds(run):
    predictions, _, info, _ = _read(run)
    seeds = {s.case_id: s.seed for s in phantom_sources(18, 1)}  # classify.cases_seed: 1
    assert [p["case_id"] for p in predictions] == sorted(seeds)
    y = np.array([int(p["label"]) for p in predictions])
    assert y.tolist() == [int(phantom_findings(seeds[p["case_id"]], (5.0, 12.0))["nodule"]) for p in predictions]
    folds = roc.stratified_kfold(y, 3, seed=0)
    for i, fold in enumerate(folds):
        assert {int(predictions[j]["fold"]) for j in fold} == {i + 1}
    assert info["positives"] == int(y.sum()) and info["generator"]["protocol"] == "disjoint"


def test_generator_phantoms_are_not_classification_cases(run):
    def sources(folder):
        return {c["source"] for c in Manifest.read(os.path.join(run, folder)).cases}

    assert len(sources("generator-data")) == 6 and len(sources("data")) == 18
    assert not sources("generator-data") & sources("data")


def test_table3_numbers_recomputed_from_predictions(run):
    predictions, table, info, delong = _read(run)
    y = np.array([int(p["label"]) for p in predictions])
    fold = np.array([int(p["fold"]) - 1 for p in predictions])
    scores = {name: np.array([float(p[col]) for p in predictions]) for name, col in COLUMNS.items()}
    for name, s in scores.items():
        fold_auc = [roc.roc_auc(y[fold == k], s[fold == k]) for k in range(3)]
        auc, low, high, se = roc.delong_auc_ci(y, s, fold=fold)
        row = table[name]
        assert float(row["auc"]) == pytest.approx(np.mean(fold_auc)) == pytest.approx(auc)
        assert float(row["auc_low"]) == pytest.approx(low) and float(row["auc_high"]) == pytest.approx(high)
        assert float(row["pooled_auc"]) == pytest.approx(roc.roc_auc(y, s))
        called = s >= np.array(info["thresholds"][name])[fold]
        tp, tn = int((called & (y == 1)).sum()), int((~called & (y == 0)).sum())
        assert (int(row["tp"]), int(row["tn"])) == (tp, tn)
        assert float(row["accuracy"]) == pytest.approx((tp + tn) / y.size)
    for k in range(3):  # one constant volume: one score per fold, so each fold's AUC is exactly 0.5
        assert np.ptp(scores["Generated CT"][fold == k]) == 0
    assert info["summaries"]["Generated CT"]["fold_auc"] == [0.5, 0.5, 0.5]
    for c in delong["comparisons"]:
        ref = roc.delong_test(y, scores[c["a"]], scores[c["b"]], fold=fold)
        assert c["p"] == pytest.approx(ref["p"]) and c["difference"] == pytest.approx(ref["difference"])
    assert [(c["a"], c["b"]) for c in delong["comparisons"]] == list(cls.COMPARISONS)


def test_per_fold_generators_with_a_labels_csv(run, tmp_path):
    cohort = os.path.join(run, "data")
    flipped = {i: 1 - v for i, v in Manifest.read(cohort).labels().items()}  # the CSV wins over the manifest
    labels = tmp_path / "labels.csv"
    labels.write_text("case_id,label\n" + "".join(f"{i},{v}\n" for i, v in flipped.items()))
    out = str(tmp_path / "per-fold")
    assert main(["classify", *ROW, "--out", out, "--data", cohort, "--labels", str(labels), *TINY,
                 "--set", "classify.generator=per-fold"]) == 0
    predictions, table, info, _ = _read(out)
    assert {p["case_id"]: int(p["label"]) for p in predictions} == flipped
    assert info["generator"]["runs"] == ["generator-fold-1", "generator-fold-2", "generator-fold-3"]
    for k in (1, 2, 3):  # each fold's generator trained without its test fold
        manifest = Manifest.read(os.path.join(out, f"generator-fold-{k}-data"))
        tested = {p["case_id"] for p in predictions if int(p["fold"]) == k}
        assert set(manifest.ids("test")) == tested and not tested & set(manifest.ids("train"))
    assert json.load(open(os.path.join(out, "classification.json")))["summaries"]["Generated CT"]["fold_auc"] \
        == [0.5, 0.5, 0.5]
    assert not os.path.exists(os.path.join(out, "data"))  # --data: the cohort is not copied


@pytest.mark.parametrize("extra, message", [
    (["--labels", "labels.csv"], "--labels goes with --data"),
    (["--folds", "2"], "classify.folds = 2: use a number >= 3"),
    (["--set", "classify.cases=4"], "fewer than the k=3 folds"),
    (["--set", "classify.cases_seed=0"], "classify.cases_seed = 0 equals data.phantom_seed"),
    (["--set", "classify.ct_classifier=cnn2d"], "classify.ct_classifier = 'cnn2d' is not one of cnn3d"),
    (["--row", "No such row"], "no row named"),
])
def test_bad_settings_exit_2_and_leave_nothing(tmp_path, capsys, extra, message):
    out = str(tmp_path / "out")
    argv = ["classify", *ROW, "--out", out, *TINY, *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not os.path.exists(out)


def test_bad_labels_and_datasets_exit_2(run, phantom_dataset, tmp_path, capsys):
    cohort = os.path.join(run, "data")
    bad = tmp_path / "bad.csv"
    bad.write_text("case_id,label\nnot-a-case,1\n")
    cases = [
        (["--data", cohort, "--labels", str(bad), "--set", "classify.generator=per-fold"], "not in the dataset"),
        (["--data", phantom_dataset, "--set", "data.test_count=2"], "have no 0/1 label"),
        (["--data", phantom_dataset, "--labels", str(bad)], "not in the dataset"),
    ]
    for extra, message in cases:
        out = str(tmp_path / "out")
        assert main(["classify", *ROW, "--out", out, *TINY, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err, err
        assert not os.path.exists(out)


def test_real_data_needs_per_fold_generators(phantom_dataset, tmp_path, capsys):
    ids = Manifest.read(phantom_dataset).ids()
    labels = tmp_path / "labels.csv"
    labels.write_text("case_id,label\n" + "".join(f"{i},{n % 2}\n" for n, i in enumerate(ids)))
    assert main(["classify", *ROW, "--out", str(tmp_path / "o"), "--data", phantom_dataset, "--labels",
                 str(labels), *TINY]) == 2
    assert "classify.generator=per-fold" in capsys.readouterr().err


def test_subprocess_error_is_one_line_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pipelines", "classify", *ROW, "--out", str(tmp_path / "o"),
                             "--folds", "1"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "classify.folds = 1: use a number >= 3" in result.stderr.strip().splitlines()[-1]
