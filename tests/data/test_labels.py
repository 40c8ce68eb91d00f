"""Labels: phantom datasets prepared with findings (manifest), and labels CSVs for real datasets."""

import json
import os

import numpy as np
import pytest

from pipelines.cli import main
from xprospect_tf.data.labels import read_labels_csv
from xprospect_tf.data.phantom import phantom_findings, phantom_volume
from xprospect_tf.data.prepared import (
    Manifest,
    PhantomFindings,
    case_arrays,
    load_case,
    phantom_sources,
    write_prepared,
)
from xprospect_tf.errors import ConfigError, InputError

SIZE = 16


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """Eight 16^3 phantoms with hard findings (radius 3-6 mm, contrast 300 HU)."""
    out = str(tmp_path_factory.mktemp("labelled") / "ds")
    write_prepared(phantom_sources(8, 4, PhantomFindings((3, 6), 300)), out, size=SIZE, test_count=0,
                   val_fraction=0, workers=1, progress=False)
    return out


def test_manifest_records_labels_findings_and_settings(labelled):
    manifest = Manifest.read(labelled)
    sources = {s.case_id: s.seed for s in phantom_sources(8, 4)}
    expected = {i: int(phantom_findings(seed, (3, 6))["nodule"]) for i, seed in sources.items()}
    assert manifest.labels() == expected and 0 < sum(expected.values()) < 8
    assert manifest.findings == {"nodule_radius_mm": [3.0, 6.0], "nodule_contrast_hu": 300.0}
    with open(os.path.join(labelled, "manifest.json")) as f:
        raw = json.load(f)
    for entry in raw["cases"]:
        finding = phantom_findings(sources[entry["id"]], (3, 6))
        assert entry["finding"]["nodule"] == bool(entry["label"]) == finding["nodule"]
        assert entry["source"].endswith(":findings")


def test_cases_hold_the_phantom_drawn_with_its_finding(labelled):
    manifest = Manifest.read(labelled)
    case_id = next(i for i, label in manifest.labels().items() if label == 1)
    seed = {s.case_id: s.seed for s in phantom_sources(8, 4)}[case_id]
    volume = phantom_volume(SIZE, seed, findings=True, nodule_radius_mm=(3, 6), nodule_contrast_hu=300)
    plain = case_arrays(phantom_volume(SIZE, seed), SIZE)["ct"]
    expected = case_arrays(volume, SIZE)["ct"]
    stored = load_case(labelled, case_id)["ct"]
    np.testing.assert_allclose(stored, expected, atol=5e-5)  # stored quantized (records.CT_LEVELS)
    assert np.abs(stored - plain).max() > 0.005  # the nodule: over 10 HU at 25 mm voxels


def test_a_dataset_without_findings_has_no_labels(tmp_path):
    out = str(tmp_path / "plain")
    write_prepared(phantom_sources(3), out, size=8, test_count=1, val_fraction=0, workers=1, progress=False)
    manifest = Manifest.read(out)
    assert manifest.findings is None and all("label" not in c for c in manifest.cases)
    with pytest.raises(InputError, match="--labels"):
        manifest.labels()


def test_resuming_with_other_finding_settings_is_refused(tmp_path):
    out = str(tmp_path / "ds")
    kw = dict(size=8, test_count=0, val_fraction=0, workers=1, progress=False)
    write_prepared(phantom_sources(2, 0, PhantomFindings()), out, **kw)
    with pytest.raises(ConfigError, match="findings"):
        write_prepared(phantom_sources(2, 0, PhantomFindings((3, 4))), out, **kw)


def test_phantoms_cli_with_findings(tmp_path, capsys):
    out = str(tmp_path / "ds")
    assert main(["data", "phantoms", "--out", out, "--count", "4", "--size", "8", "--test-count", "0",
                 "--val-fraction", "0", "--workers", "1", "--findings", "--nodule-radius", "4", "7",
                 "--nodule-contrast", "250"]) == 0
    manifest = Manifest.read(out)
    assert manifest.findings == {"nodule_radius_mm": [4.0, 7.0], "nodule_contrast_hu": 250.0}
    assert set(manifest.labels()) == set(manifest.ids())


@pytest.mark.parametrize("extra, message", [
    (["--nodule-radius", "4", "7"], "add --findings"),
    (["--findings", "--nodule-radius", "7", "4"], "nodule radius"),
    (["--findings", "--nodule-contrast", "-5"], "nodule contrast"),
])
def test_phantoms_cli_bad_finding_options_exit_2_and_write_nothing(tmp_path, capsys, extra, message):
    out = str(tmp_path / "ds")
    assert main(["data", "phantoms", "--out", out, "--count", "2", "--size", "8", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not os.path.exists(out)


# -- labels CSV -------------------------------------------------------------------------------


def _csv(tmp_path, text, name="labels.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_csv_labels_read_with_header_variants(tmp_path):
    path = _csv(tmp_path, "\ufeffID,Label,extra\nb,TRUE,x\na,0,y\n\nc,negative,z\n")
    assert read_labels_csv(path, ["a", "b", "c"]) == {"a": 0, "b": 1, "c": 0}
    assert read_labels_csv(_csv(tmp_path, "label,case_id\n1,z\n", "b.csv")) == {"z": 1}


@pytest.mark.parametrize("text, ids, message", [
    (None, None, "not found"),
    ("", None, "empty"),
    ("case,diagnosis\na,1\n", None, "header must name"),
    ("case_id,label\n", None, "no cases"),
    ("case_id,label\na,2\n", None, ":2: label '2'"),
    ("case_id,label\na,\n", None, "is not 0 or 1"),
    ("case_id,label\n,1\n", None, ":2: empty case id"),
    ("case_id,label\na,1\nb,0\na,0\n", None, ":4: case 'a' is labelled twice"),
    ("case_id,label\na,1\nb,0\nzz,1\n", ["a", "b"], "not in the dataset (e.g. zz)"),
    ("case_id,label\na,1\n", ["a", "b"], "have no label (e.g. b)"),
])
def test_csv_errors_name_the_file_and_the_problem(tmp_path, text, ids, message):
    path = str(tmp_path / "missing.csv") if text is None else _csv(tmp_path, text)
    with pytest.raises(InputError) as err:
        read_labels_csv(path, ids)
    assert path in str(err.value) and message in str(err.value)


def test_csv_path_that_is_a_folder(tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        read_labels_csv(str(tmp_path))


def test_load_prepared_attaches_each_cases_label(tmp_path):
    from xprospect_tf.data.prepared import load_prepared, read_manifest, write_prepared

    folder = str(tmp_path / "ds")
    write_prepared("phantom:4", folder, size=8, test_count=1, val_fraction=0, workers=1, progress=False)
    ids = read_manifest(folder).ids("train")
    labels = {case_id: i % 2 for i, case_id in enumerate(ids)}
    got = [(x[2], case_id) for x, _, case_id in
           load_prepared(folder, "train", with_ids=True, labels=labels).as_numpy_iterator()]
    assert [float(label) for label, _ in got] == [float(labels[c.decode()]) for _, c in got]
    unlabelled = {ids[0]: 1}
    got = [float(x[2]) for x, _ in load_prepared(folder, "train", labels=unlabelled).as_numpy_iterator()]
    assert sorted(got) == sorted([1.0] + [-1.0] * (len(ids) - 1))
