"""Train/val/test splits of prepared datasets: the paper's 80/20 train/validation split of the
cases left after the test cases (drawn first, exactly as before validation splits existed)."""

import json
import os

import numpy as np
import pytest

from tests.helpers import ids_of, make_ct_folder, prepare
from xprospect_tf.data import prepared
from xprospect_tf.errors import ConfigError, InputError

IDS = [f"case-{i:03d}" for i in range(100)]


def old_test_ids(ids, n_test, seed):
    """The test cases as the train/test-only version drew them: the first ``n_test`` of a
    ``default_rng(seed)`` permutation of the sorted ids."""
    ids = sorted(ids)
    return {ids[i] for i in np.random.default_rng(seed).permutation(len(ids))[:n_test]}


def by_split(splits):
    return {s: {k for k, v in splits.items() if v == s} for s in ("train", "val", "test")}


@pytest.mark.parametrize("n, test_kw, val_fraction", [
    (100, {}, 0.2),  # 20 test (20%), 16 val, 64 train
    (100, {"test_count": 30}, 0.2),  # the paper: 30 test cases, 80/20 of the rest
    (37, {"test_fraction": 0.1}, 0.25),
    (10, {"test_count": 2}, 0.5),
    (7, {"test_count": 1}, 0.1),  # round(0.6) = 1 val case
])
@pytest.mark.parametrize("seed", [0, 3])
def test_splits_are_disjoint_cover_every_case_and_have_the_asked_sizes(n, test_kw, val_fraction, seed):
    ids = IDS[:n]
    splits = prepared.assign_splits(ids, seed=seed, val_fraction=val_fraction, **test_kw)
    parts = by_split(splits)
    assert set(splits) == set(ids) and sum(len(p) for p in parts.values()) == n  # a partition
    n_test = test_kw.get("test_count", round(test_kw.get("test_fraction", 0.2) * n))
    n_val = round(val_fraction * (n - n_test))
    assert (len(parts["test"]), len(parts["val"]), len(parts["train"])) == (n_test, n_val, n - n_test - n_val)
    assert prepared.split_sizes(n, val_fraction=val_fraction, **test_kw) == (n - n_test - n_val, n_val, n_test)
    # the test cases are those of the version without validation splits, whatever val_fraction
    assert parts["test"] == old_test_ids(ids, n_test, seed)
    no_val = prepared.assign_splits(ids, seed=seed, val_fraction=0, **test_kw)
    assert by_split(no_val)["test"] == parts["test"] and by_split(no_val)["val"] == set()
    assert prepared.assign_splits(list(reversed(ids)), seed=seed, val_fraction=val_fraction, **test_kw) == splits


def test_the_train_val_division_is_a_function_of_the_non_test_cases():
    splits = prepared.assign_splits(IDS, test_count=30, seed=1)
    non_test = [k for k, v in splits.items() if v != "test"]
    assert prepared.divide_train_val(non_test, 0.2, seed=1) == {k: splits[k] for k in non_test}
    # deterministic, seeded, and a smaller fraction holds out a subset of a larger one's cases
    vals = {s: by_split(prepared.divide_train_val(non_test, 0.2, seed=s))["val"] for s in range(4)}
    assert len({tuple(sorted(v)) for v in vals.values()}) > 1
    assert by_split(prepared.divide_train_val(non_test, 0.1, seed=2))["val"] < vals[2]
    assert prepared.divide_train_val(non_test, 0.0, seed=1) == {k: "train" for k in non_test}


def test_write_prepared_assigns_the_splits_and_load_prepared_reads_val(ct_dataset):
    manifest = prepared.read_manifest(ct_dataset)
    expected = prepared.assign_splits(manifest.ids(), test_count=1, seed=0, val_fraction=0.2)
    assert {c["id"]: c["split"] for c in manifest.cases} == expected
    assert manifest.val_fraction == 0.2 and manifest.counts() == {"train": 2, "val": 1, "test": 1}
    assert ids_of(prepared.load_prepared(ct_dataset, "val", with_ids=True)) == manifest.ids("val")
    assert ids_of(prepared.load_prepared(ct_dataset, "train", with_ids=True)) == manifest.ids("train")
    assert prepared.batches_per_epoch(ct_dataset, "val", 4) == 1
    (ap, lateral), ct = next(iter(prepared.load_prepared(ct_dataset, "val", batch_size=2)))
    np.testing.assert_array_equal(ct.numpy()[0, ..., 0], prepared.load_case(ct_dataset, manifest.ids("val")[0])["ct"])


@pytest.mark.parametrize("kw, message", [
    ({"val_fraction": 1.0}, r"val_fraction=1.0: must be in \[0, 1\) \(--val-fraction\)"),
    ({"val_fraction": -0.2}, r"val_fraction=-0.2: must be in \[0, 1\)"),
    # 4 sources, 1 test: round(0.1 x 3) = 0 validation cases
    ({"val_fraction": 0.1}, r"val_fraction=0.1 leaves no validation case among the 3 non-test case\(s\) of 4 "
                            r"sources \(--val-fraction\).*val_fraction=0 for no validation split"),
    # round(0.9 x 3) = 3: nothing left to train on
    ({"val_fraction": 0.9}, r"val_fraction=0.9 leaves no training case among the 3 non-test"),
])
def test_a_val_fraction_that_empties_a_split_is_refused_before_any_work(tmp_path, ct_folder, kw, message):
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=message):
        prepare([ct_folder], str(out), test_count=1, **kw)
    assert not out.exists()


def test_failures_that_leave_no_val_case_are_refused_and_the_cases_kept(tmp_path):
    folder = tmp_path / "cts"
    make_ct_folder(str(folder), count=3)
    (folder / "broken.nii.gz").write_bytes(b"not a NIfTI file")
    out = str(tmp_path / "out")
    # 4 sources: 3 non-test, 1 val; 3 cases prepared: 2 non-test, round(0.4) = 0 val
    with pytest.raises(ConfigError, match="no validation case among the 2 non-test case.*of 3 cases prepared"):
        prepare([str(folder)], out, test_count=1)
    kept = prepared.read_manifest(out)
    assert not kept.complete and kept.ids() == ["ct0", "ct1", "ct2"]
    manifest = prepare([str(folder)], out, test_count=1, val_fraction=0)  # resumes: nothing read again
    assert manifest.complete and manifest.counts() == {"train": 2, "val": 0, "test": 1}


def test_split_prepared_redraws_train_and_val_and_keeps_the_test_cases(fresh_copy, ct_dataset, ct_folder,
                                                                       monkeypatch):
    out = fresh_copy(ct_dataset)
    original = prepared.read_manifest(out).to_dict()
    none = prepared.split_prepared(out, 0)
    assert none.counts() == {"train": 3, "val": 0, "test": 1} and none.val_fraction == 0.0
    assert none.ids("test") == prepared.read_manifest(ct_dataset).ids("test")
    assert prepared.split_prepared(out, 0.2).to_dict() == original  # the split write_prepared draws
    # write_prepared run again with another val_fraction divides again without preparing a case
    monkeypatch.setattr(prepared.writer, "write_case", lambda *a, **k: pytest.fail("prepared again"))
    again = prepare([ct_folder], out, test_count=1, val_fraction=0.5)
    assert again.counts() == {"train": 1, "val": 2, "test": 1} and again.ids("test") == none.ids("test")
    with pytest.raises(ConfigError, match="val_fraction=0.9 leaves no training case among 3 non-test cases"):
        prepared.split_prepared(out, 0.9)
    with pytest.raises(ConfigError, match=r"val_fraction=1: must be in \[0, 1\)"):
        prepared.split_prepared(out, 1)
    assert prepared.read_manifest(out).counts() == again.counts()  # a refused split changes nothing
    missing = os.path.join(out, "nothing-here")
    with pytest.raises(InputError, match="not a prepared dataset"):
        prepared.split_prepared(missing, 0.2)
    assert not os.path.exists(missing)


def test_a_dataset_of_an_older_version_is_named_with_the_command_that_splits_it(fresh_copy, ct_dataset):
    out = fresh_copy(ct_dataset)
    path = os.path.join(out, prepared.MANIFEST)
    with open(path) as f:
        data = json.load(f)
    del data["val_fraction"]  # what the train/test-only version wrote
    data["cases"] = [{**c, "split": "train" if c["split"] == "val" else c["split"]} for c in data["cases"]]
    with open(path, "w") as f:
        json.dump(data, f)
    old = prepared.read_manifest(out)
    assert old.val_fraction == 0.0 and old.counts() == {"train": 3, "val": 0, "test": 1}
    with pytest.raises(ConfigError, match=r"prepared with val_fraction=0, not val_fraction=0.2; use this dataset "
                                          r"with --set val_fraction=0, or .*: xprospect data split .* "
                                          r"--val-fraction 0.2"):
        old.check_matches(val_fraction=0.2)
    with pytest.raises(InputError, match="no validation .*xprospect data split"):
        prepared.load_prepared(out, "val")
    prepared.split_prepared(out, 0.2)
    assert prepared.read_manifest(out).to_dict() == prepared.read_manifest(ct_dataset).to_dict()
