"""Tests of the CheXpert CSV index (pairs and single-view lists)."""

import csv
import os
import time

import pytest

from xprospect_tf.data.chexpert import chexpert_images, chexpert_pairs
from xprospect_tf.errors import ConfigError, InputError

LABELS = [
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion",
    "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
    "Pleural Other", "Fracture", "Support Devices",
]
HEADER = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA"] + LABELS
PREFIX = "CheXpert-v1.0-small/train"

# (patient, study, file, Frontal/Lateral, AP/PA)
ROWS = [
    ("patient00001", "study1", "view1_frontal.jpg", "Frontal", "AP"),  # frontal only: no pair
    ("patient00002", "study1", "view2_frontal.jpg", "Frontal", "PA"),  # view1 wins over view2
    ("patient00002", "study1", "view1_frontal.jpg", "Frontal", "AP"),
    ("patient00002", "study1", "view3_lateral.jpg", "Lateral", ""),
    ("patient00002", "study2", "view1_frontal.jpg", "Frontal", "PA"),
    ("patient00002", "study2", "view3_lateral.jpg", "Lateral", ""),  # view2 lateral wins
    ("patient00002", "study2", "view2_lateral.jpg", "Lateral", ""),
    ("patient00003", "study1", "view1_lateral.jpg", "Lateral", ""),  # lateral only: no pair
    ("patient00004", "study1", "view1_frontal.jpg", "Frontal", "AP"),  # AP only: not with PA
    ("patient00004", "study1", "view2_lateral.jpg", "Lateral", ""),
    ("patient00005", "study1", "view1_frontal.jpg", "Frontal", "PA"),  # same study name, other patient
    ("patient00005", "study1", "view2_lateral.jpg", "Lateral", ""),
]


def write_csv(path, rows, header=HEADER):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for patient, study, name, view, appa in rows:
            row = {"Path": f"{PREFIX}/{patient}/{study}/{name}", "Sex": "Female", "Age": "68",
                   "Frontal/Lateral": view, "AP/PA": appa}
            writer.writerow([row.get(column, "1.0") for column in header])
    return str(path)


@pytest.fixture
def chexpert_csv(tmp_path):
    folder = tmp_path / "data" / "CheXpert-v1.0-small"
    folder.mkdir(parents=True)
    return write_csv(folder / "train.csv", ROWS)


def _rel(pairs, root):
    return [tuple(os.path.relpath(p, root).replace(os.sep, "/") for p in pair) for pair in pairs]


def _p(patient, study, name):
    return f"{PREFIX}/{patient}/{study}/{name}"


def test_pairs_any_frontal(chexpert_csv, tmp_path):
    pairs = chexpert_pairs(chexpert_csv)
    root = str(tmp_path / "data")  # default root: the CSV's parent's parent
    assert all(os.path.isabs(p) and p.startswith(root) for pair in pairs for p in pair)
    assert _rel(pairs, root) == [
        (_p("patient00002", "study1", "view1_frontal.jpg"), _p("patient00002", "study1", "view3_lateral.jpg")),
        (_p("patient00002", "study2", "view1_frontal.jpg"), _p("patient00002", "study2", "view2_lateral.jpg")),
        (_p("patient00004", "study1", "view1_frontal.jpg"), _p("patient00004", "study1", "view2_lateral.jpg")),
        (_p("patient00005", "study1", "view1_frontal.jpg"), _p("patient00005", "study1", "view2_lateral.jpg")),
    ]


def test_pairs_pa_only_and_explicit_root(chexpert_csv):
    pairs = chexpert_pairs(chexpert_csv, frontal="PA", root="/images")
    assert _rel(pairs, "/images") == [
        (_p("patient00002", "study1", "view2_frontal.jpg"), _p("patient00002", "study1", "view3_lateral.jpg")),
        (_p("patient00002", "study2", "view1_frontal.jpg"), _p("patient00002", "study2", "view2_lateral.jpg")),
        (_p("patient00005", "study1", "view1_frontal.jpg"), _p("patient00005", "study1", "view2_lateral.jpg")),
    ]


def test_images_by_view(chexpert_csv):
    frontals = chexpert_images(chexpert_csv, view="frontal", root="r")
    laterals = chexpert_images(chexpert_csv, view="lateral", root="r")
    assert frontals == [os.path.join("r", _p(*row[:3])) for row in ROWS if row[3] == "Frontal"]
    assert laterals == [os.path.join("r", _p(*row[:3])) for row in ROWS if row[3] == "Lateral"]


def test_bad_inputs(tmp_path, chexpert_csv):
    bad = write_csv(tmp_path / "bad.csv", ROWS[:2], header=[c for c in HEADER if c != "AP/PA"])
    with pytest.raises(InputError, match="bad.csv.*missing column\\(s\\) AP/PA"):
        chexpert_pairs(bad)
    with pytest.raises(InputError, match="nope.csv"):
        chexpert_pairs(tmp_path / "nope.csv")
    with pytest.raises(ConfigError, match="frontal='lateral'"):
        chexpert_pairs(chexpert_csv, frontal="lateral")
    with pytest.raises(ConfigError, match="view='ap'"):
        chexpert_images(chexpert_csv, view="ap")


def test_full_size_csv_is_fast(tmp_path):
    patients = 80_000  # about 220k rows, like train.csv
    labels = ",1.0" * len(LABELS)
    lines = [",".join(HEADER)]
    for patient in range(patients):
        for study in range(1, 2 + patient % 2):
            folder = f"{PREFIX}/patient{patient:05d}/study{study}"
            lines.append(f"{folder}/view1_frontal.jpg,Male,50,Frontal,{'AP' if patient % 3 else 'PA'}{labels}")
            if patient % 4:
                lines.append(f"{folder}/view2_lateral.jpg,Male,50,Lateral,{labels}")
    path = tmp_path / "train.csv"
    path.write_text("\n".join(lines) + "\n")
    start = time.perf_counter()
    pairs = chexpert_pairs(path)
    elapsed = time.perf_counter() - start
    assert len(lines) - 1 > 200_000
    assert len(pairs) == sum(1 + p % 2 for p in range(patients) if p % 4)
    assert elapsed < 10.0, f"{elapsed:.1f} s for {len(lines) - 1} rows"
