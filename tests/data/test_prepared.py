"""Prepared datasets: write -> manifest -> tf.data round trip, splits, resume, failures, extra fields."""

import json
import os

import numpy as np
import pytest

from tests.helpers import FOV, SIZE, WINDOW, ids_of, make_ct_folder, prepare
from xprospect_tf.data import prepared
from xprospect_tf.errors import ConfigError, InputError

HALF_STEP = 0.5 / prepared.CT_LEVELS


def test_manifest_lists_cases_settings_and_split(ct_dataset, ct_folder):
    manifest = prepared.read_manifest(ct_dataset)
    assert isinstance(manifest, prepared.Manifest) and manifest.path == ct_dataset
    assert manifest.complete and manifest.failed == [] and manifest.split_seed == 0
    assert (manifest.size, manifest.window, manifest.fov_mm) == (SIZE, WINDOW, FOV)
    assert manifest.spacing_mm == pytest.approx(FOV / SIZE)
    assert [c["id"] for c in manifest.cases] == manifest.ids() == ["ct0", "ct1", "ct2", "ct3"]
    assert manifest.counts() == {"train": 2, "val": 1, "test": 1} and manifest.val_fraction == 0.2
    for case in manifest.cases:
        assert case["source"] == os.path.join(ct_folder, case["id"] + ".nii.gz")
        assert case["original_shape"] == [20, 20, 20]
        assert case["original_spacing"] == pytest.approx([2.0, 2.0, 2.0])
        assert manifest.file(case["id"]) == os.path.join(ct_dataset, "cases", case["id"] + ".tfrecord")
        assert os.path.isfile(manifest.file(case["id"]))
    # the file on disk keeps the format every reader of format version 1 knows
    with open(os.path.join(ct_dataset, prepared.MANIFEST)) as f:
        raw = json.load(f)
    assert list(raw) == ["format_version", "size", "window", "fov_mm", "spacing_mm", "split_seed",
                         "val_fraction", "complete", "cases", "failed"]
    assert (raw["format_version"], raw["size"], raw["window"], raw["fov_mm"]) == (1, SIZE, list(WINDOW), FOV)
    assert raw == manifest.to_dict()
    assert [list(c) for c in raw["cases"]] == [
        ["id", "source", "original_spacing", "original_shape", "file", "fields", "split"]] * 4


def test_round_trip_equals_arrays_written(ct_dataset, ct_folder):
    from xprospect_tf.data.readers import read_volume

    ds = prepared.load_prepared(ct_dataset, "all", with_ids=True)
    seen = []
    for (ap, lateral), ct, case_id in ds.as_numpy_iterator():
        case_id = case_id.decode()
        seen.append(case_id)
        ref = prepared.case_arrays(read_volume(os.path.join(ct_folder, case_id + ".nii.gz")), SIZE, WINDOW, FOV)
        assert ap.shape == lateral.shape == (SIZE, SIZE, 1) and ct.shape == (SIZE,) * 3 + (1,)
        assert ap.dtype == lateral.dtype == ct.dtype == np.float32
        np.testing.assert_array_equal(ap[..., 0], ref["ap"])
        np.testing.assert_array_equal(lateral[..., 0], ref["lateral"])
        # uint16 storage: error at most half a quantization step, far below 1 HU (1/2000)
        error = np.abs(ct[..., 0] - ref["ct"]).max()
        assert error <= HALF_STEP * 1.001 and error < (1 / 2000) / 50
        # the stored X-rays are the mean-CT projections of the stored volume (numpy reference)
        np.testing.assert_allclose(ap[..., 0], ct[..., 0].mean(axis=2), atol=2 * HALF_STEP)
        np.testing.assert_allclose(lateral[..., 0], ct[..., 0].mean(axis=1), atol=2 * HALF_STEP)
        assert 0.0 <= ct.min() and ct.max() <= 1.0 and ct.std() > 0.05
    assert sorted(seen) == ["ct0", "ct1", "ct2", "ct3"]


def test_drr_inputs_and_load_case(ct_dataset, ct_folder):
    from xprospect_tf.data.readers import read_volume

    case = prepared.load_case(ct_dataset, "ct2")
    ref = prepared.case_arrays(read_volume(os.path.join(ct_folder, "ct2.nii.gz")), SIZE, WINDOW, FOV)
    assert case["case_id"] == "ct2"
    for name in prepared.BASE_FIELDS:
        np.testing.assert_array_equal(case[name], ref[name])
    np.testing.assert_allclose(case["ct"], ref["ct"], atol=HALF_STEP * 1.001)
    ds = prepared.load_prepared(ct_dataset, "all", inputs="drr", with_ids=True)
    for (ap, lateral), _, case_id in ds.as_numpy_iterator():
        if case_id == b"ct2":
            np.testing.assert_array_equal(ap[..., 0], ref["drr_ap"])
            np.testing.assert_array_equal(lateral[..., 0], ref["drr_lateral"])
    with pytest.raises(InputError, match="no case 'nope'"):
        prepared.load_case(ct_dataset, "nope")


def test_reads_tf_gfile_urls(ct_dataset):
    url = "file://" + os.path.abspath(ct_dataset)
    assert prepared.read_manifest(url).size == SIZE
    assert prepared.read_manifest(url).file("ct0") == url + "/cases/ct0.tfrecord"
    assert sorted(ids_of(prepared.load_prepared(url, "all", with_ids=True))) == ["ct0", "ct1", "ct2", "ct3"]
    np.testing.assert_array_equal(prepared.load_case(url, "ct0")["ct"], prepared.load_case(ct_dataset, "ct0")["ct"])


def test_batched_dataset_fits_a_keras_model(ct_dataset):
    import keras

    ds = prepared.load_prepared(ct_dataset, "train", batch_size=2, shuffle=True, cache=True, repeat=True)
    (ap_spec, lat_spec), ct_spec = ds.element_spec
    assert ap_spec.shape.as_list() == lat_spec.shape.as_list() == [None, SIZE, SIZE, 1]
    assert ct_spec.shape.as_list() == [None, SIZE, SIZE, SIZE, 1]
    frontal, lateral = keras.Input((SIZE, SIZE, 1)), keras.Input((SIZE, SIZE, 1))
    x = keras.layers.Concatenate()([keras.layers.Flatten()(frontal), keras.layers.Flatten()(lateral)])
    x = keras.layers.Dense(SIZE ** 3, activation="sigmoid")(keras.layers.Dense(4)(x))
    model = keras.Model([frontal, lateral], keras.layers.Reshape((SIZE,) * 3 + (1,))(x))
    model.compile("adam", "mse", run_eagerly=True)
    history = model.fit(ds, epochs=1, steps_per_epoch=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_split_selection_and_shuffle_is_deterministic(ct_dataset):
    manifest = prepared.read_manifest(ct_dataset)
    test_ids = [c["id"] for c in manifest.cases if c["split"] == "test"]
    assert test_ids == manifest.ids("test") == [c["id"] for c in manifest.entries("test")]
    assert ids_of(prepared.load_prepared(ct_dataset, "test", with_ids=True)) == test_ids
    train = ids_of(prepared.load_prepared(ct_dataset, "train", with_ids=True))
    val = ids_of(prepared.load_prepared(ct_dataset, "val", with_ids=True))
    assert val == manifest.ids("val") and len(val) == 1
    assert sorted(train + val + test_ids) == ["ct0", "ct1", "ct2", "ct3"]
    orders = [ids_of(prepared.load_prepared(ct_dataset, "all", shuffle=True, seed=3, with_ids=True))
              for _ in range(2)]
    assert orders[0] == orders[1] and sorted(orders[0]) == ["ct0", "ct1", "ct2", "ct3"]


def test_assign_splits_sizes_and_determinism():
    ids = [f"c{i}" for i in range(10)]
    split = prepared.assign_splits(ids, test_count=3, seed=1)
    assert list(split.values()).count("test") == 3
    assert prepared.assign_splits(reversed(ids), test_count=3, seed=1) == split  # order-free
    assert list(prepared.assign_splits(ids, test_fraction=0.2).values()).count("test") == 2
    assert list(prepared.assign_splits(ids, test_fraction=0.0).values()).count("test") == 0
    seeds = {tuple(sorted(k for k, v in prepared.assign_splits(ids, test_count=3, seed=s).items()
                          if v == "test")) for s in range(5)}
    assert len(seeds) > 1  # the seed matters
    # independent reference: numpy permutation of the sorted ids
    order = np.random.default_rng(1).permutation(10)
    assert {k for k, v in split.items() if v == "test"} == {sorted(ids)[i] for i in order[:3]}


def test_resume_skips_done_cases_and_rewrites_a_deleted_one(fresh_copy, ct_dataset, ct_folder, monkeypatch):
    out = fresh_copy(ct_dataset)
    files = {c: os.path.join(out, "cases", c + ".tfrecord") for c in ("ct0", "ct1", "ct2", "ct3")}
    before = {c: os.stat(f).st_mtime_ns for c, f in files.items()}
    calls = []
    original = prepared.writer.write_case
    monkeypatch.setattr(prepared.writer, "write_case", lambda *a, **k: calls.append(a[1]) or original(*a, **k))
    prepare([ct_folder], out, test_count=1)
    assert calls == []
    os.remove(files["ct2"])
    manifest = prepare([ct_folder], out, test_count=1)
    assert calls == ["ct2"] and os.path.isfile(files["ct2"])
    assert all(os.stat(files[c]).st_mtime_ns == before[c] for c in ("ct0", "ct1", "ct3"))
    assert len(manifest.cases) == 4 and manifest.complete
    assert manifest.to_dict() == prepared.read_manifest(out).to_dict()


def test_other_settings_in_the_same_folder_raise(fresh_copy, ct_dataset, ct_folder):
    out = fresh_copy(ct_dataset)
    with pytest.raises(ConfigError, match="new --out"):
        prepare([ct_folder], out, size=24)
    with pytest.raises(ConfigError, match="new --out"):
        prepare([ct_folder], out, window=(-100, 900))


def test_failed_inputs_are_recorded_and_the_rest_written(tmp_path):
    folder = tmp_path / "cts"
    make_ct_folder(str(folder), count=3)
    (folder / "broken.nii.gz").write_bytes(b"this is not a NIfTI file")
    manifest = prepare([str(folder)], str(tmp_path / "out"), test_count=1, val_fraction=0)
    assert manifest.ids() == ["ct0", "ct1", "ct2"]
    assert len(manifest.failed) == 1
    assert manifest.failed[0]["source"].endswith("broken.nii.gz") and manifest.failed[0]["reason"]
    on_disk = prepared.read_manifest(str(tmp_path / "out"))
    assert on_disk.failed == manifest.failed


def test_invalid_settings_raise_before_writing(tmp_path, ct_folder):
    out = tmp_path / "out"
    for kw in ({"size": 0}, {"size": 12.5}, {"window": (100, -100)}, {"fov_mm": -1},
               {"test_count": 4}, {"workers": 0}):
        with pytest.raises(ConfigError):
            prepare([ct_folder], str(out), **kw)
    with pytest.raises(InputError, match="no such file"):
        prepare([str(tmp_path / "missing.nii.gz")], str(out))
    with pytest.raises(InputError, match="no CT files"):
        prepare([str(tmp_path)], str(out))
    assert not out.exists()


def test_read_manifest_errors(tmp_path):
    with pytest.raises(InputError, match="not a prepared dataset.*xprospect data prepare"):
        prepared.read_manifest(str(tmp_path))
    (tmp_path / "manifest.json").write_text("{broken")
    with pytest.raises(InputError, match="corrupt manifest"):
        prepared.read_manifest(str(tmp_path))
    (tmp_path / "manifest.json").write_text(json.dumps({"format_version": 99, "size": 8, "window": [0, 1],
                                                       "fov_mm": 1.0, "cases": []}))
    with pytest.raises(InputError, match="format version 99"):
        prepared.read_manifest(str(tmp_path))


def test_styled_fields_round_trip(fresh_copy, ct_dataset):
    out = fresh_copy(ct_dataset)
    with pytest.raises(InputError, match="xprospect style"):
        prepared.load_prepared(out, "all", inputs="styled")
    before = prepared.load_case(out, "ct1")
    rng = np.random.default_rng(0)
    styled = {c: {"styled_ap": rng.random((SIZE, SIZE), np.float32),
                  "styled_lateral": rng.random((SIZE, SIZE), np.float32)}
              for c in ("ct0", "ct1", "ct2", "ct3")}
    for case_id, arrays in styled.items():
        entry = prepared.add_case_fields(out, case_id, **arrays)
        assert entry["fields"] == ["styled_ap", "styled_lateral"]
    after = prepared.load_case(out, "ct1")
    for name in ("ct",) + prepared.BASE_FIELDS:
        np.testing.assert_array_equal(after[name], before[name])
    np.testing.assert_array_equal(after["styled_ap"], styled["ct1"]["styled_ap"])
    ds = prepared.load_prepared(out, "all", inputs="styled", with_ids=True)
    for (ap, lateral), _, case_id in ds.as_numpy_iterator():
        np.testing.assert_array_equal(ap[..., 0], styled[case_id.decode()]["styled_ap"])
        np.testing.assert_array_equal(lateral[..., 0], styled[case_id.decode()]["styled_lateral"])
    with pytest.raises(InputError, match="shape"):
        prepared.add_case_fields(out, "ct0", styled_ap=np.zeros((SIZE, SIZE + 1)))
    with pytest.raises(ConfigError):
        prepared.add_case_fields(out, "ct0", ct=np.zeros((SIZE, SIZE)))


def test_expand_sources_finds_cases_in_folders(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "dicom" / "series").mkdir(parents=True)
    (root / "a.nii.gz").write_bytes(b"")
    (root / "sub" / "a.npz").write_bytes(b"")
    (root / "notes.txt").write_text("")
    (root / "dicom" / "series" / "1.dcm").write_bytes(b"")
    pairs = prepared.expand_sources([str(root), str(root / "a.nii.gz")])
    assert [c for c, _ in pairs] == ["a", "dicom_series", "sub_a", "a-2"]
    assert pairs[1][1] == str(root / "dicom" / "series")
    phantoms = prepared.expand_sources(["phantom:3:5"])
    assert [c for c, _ in phantoms] == ["phantom-0000", "phantom-0001", "phantom-0002"]
    assert phantoms == [(s.case_id, s) for s in prepared.phantom_sources(3, seed=5)]
    assert len({s.seed for _, s in phantoms}) == 3
    with pytest.raises(ConfigError, match="phantom:COUNT"):
        prepared.expand_sources(["phantom:x"])


def test_phantom_dataset_in_parallel_processes(tmp_path):
    pytest.importorskip("xprospect_tf.data.phantom")
    manifest = prepare(prepared.phantom_sources(3, seed=1), str(tmp_path / "ph"), workers=2,
                       fov_mm=400.0, test_count=1, val_fraction=0)
    assert manifest.ids() == ["phantom-0000", "phantom-0001", "phantom-0002"]
    assert manifest.failed == []
    case = prepared.load_case(str(tmp_path / "ph"), "phantom-0001")
    assert case["ct"].shape == (SIZE,) * 3 and case["ct"].std() > 0.01


# ----------------------------------------------------------------------------- Manifest

# manifest.json as the writer before the Manifest class (format version 1) wrote it
OLD_MANIFEST = {
    "format_version": 1, "size": 16, "window": [-1000.0, 1000.0], "fov_mm": 40.0, "spacing_mm": 2.5,
    "split_seed": 3, "complete": True,
    "cases": [
        {"id": "a", "source": "/cts/a.nii.gz", "original_spacing": [2.0, 2.0, 2.0],
         "original_shape": [20, 20, 20], "file": "cases/a.tfrecord", "fields": [], "split": "train"},
        {"id": "b", "source": "phantom:seed=7", "original_spacing": [25.0, 25.0, 25.0],
         "original_shape": [16, 16, 16], "file": "cases/b.tfrecord",
         "fields": ["styled_ap", "styled_lateral"], "split": "test"},
        {"id": "c", "source": "/cts/c.nii.gz", "original_spacing": [2.0, 2.0, 2.0],
         "original_shape": [20, 20, 20], "file": "cases/c.tfrecord", "fields": [], "split": "train"},
    ],
    "failed": [{"source": "/cts/broken.nii.gz", "reason": "not a NIfTI file"}],
}


def write_old_manifest(folder, **changes):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump({**OLD_MANIFEST, **changes}, f, indent=2)
    return str(folder)


def test_manifest_ids_per_split_match_assign_splits(ct_dataset):
    manifest = prepared.read_manifest(ct_dataset)
    splits = prepared.assign_splits(["ct0", "ct1", "ct2", "ct3"], test_count=1, seed=manifest.split_seed)
    for split in ("train", "val", "test"):
        assert manifest.ids(split) == sorted(k for k, v in splits.items() if v == split)
        assert [c["id"] for c in manifest.entries(split)] == manifest.ids(split)
    assert manifest.ids("all") == manifest.ids() == sorted(splits)
    assert manifest.case("ct1")["id"] == "ct1"


def test_an_old_manifest_still_reads_and_saves_unchanged(tmp_path):
    folder = write_old_manifest(tmp_path / "old")
    manifest = prepared.Manifest.read(folder)
    assert (manifest.size, manifest.window, manifest.fov_mm, manifest.spacing_mm) == (16, WINDOW, 40.0, 2.5)
    assert (manifest.split_seed, manifest.complete) == (3, True)
    assert manifest.ids("test") == ["b"] and manifest.ids("train") == ["a", "c"]
    assert manifest.failed == OLD_MANIFEST["failed"]
    # written before validation splits: no val case, read as val_fraction 0 (which saving records)
    assert manifest.ids("val") == [] and manifest.val_fraction == 0.0
    saved = {**OLD_MANIFEST, "val_fraction": 0.0}
    assert manifest.to_dict() == saved
    assert prepared.read_manifest(os.path.join(folder, "manifest.json")).to_dict() == saved
    manifest.save()
    with open(os.path.join(folder, "manifest.json")) as f:
        assert json.load(f) == saved


def test_manifest_round_trip_keeps_unknown_keys_and_added_fields(tmp_path):
    manifest = prepared.Manifest(str(tmp_path), 8, window=(-100, 900), fov_mm=200, split_seed=5,
                                 extra={"note": "kept"})
    manifest.put({"id": "b", "file": "cases/b.tfrecord", "fields": [], "split": "train"})
    manifest.put({"id": "a", "file": "cases/a.tfrecord", "fields": [], "split": "test"})
    manifest.put({"id": "b", "file": "cases/b.tfrecord", "fields": [], "split": "test"})  # replaces b
    assert manifest.add_fields("a", ["styled_lateral", "styled_ap"])["fields"] == ["styled_ap", "styled_lateral"]
    manifest.save()
    again = prepared.read_manifest(str(tmp_path))
    assert again.to_dict() == manifest.to_dict()
    assert again.to_dict()["note"] == "kept" and again.window == (-100.0, 900.0) and again.spacing_mm == 25.0
    assert again.ids() == ["a", "b"] and again.ids("test") == ["a", "b"]
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []


def test_manifest_selection_errors(tmp_path):
    manifest = prepared.Manifest.read(write_old_manifest(tmp_path / "ds"))
    with pytest.raises(ConfigError, match=r"split='validation': choose one of \('train', 'val', 'test', 'all'\)"):
        manifest.entries("validation")
    with pytest.raises(ConfigError, match="choose one of"):
        manifest.ids("validation")
    with pytest.raises(InputError, match=r"ds: no validation \('val'\) cases.*val_fraction = 0\).*"
                                         r"xprospect data split .*ds --val-fraction 0.2"):
        manifest.entries("val")
    assert [c["id"] for c in manifest.entries("test", fields=("styled_ap",))] == ["b"]
    with pytest.raises(InputError, match=r"2 'train' case\(s\) \(e.g. a\) lack.*xprospect style"):
        manifest.entries("train", fields=("styled_ap", "styled_lateral"))
    assert [c["id"] for c in manifest.entries("all", fields=("ap", "drr_lateral"))] == ["a", "b", "c"]
    with pytest.raises(InputError, match=r"ds: no case 'zz' in this prepared dataset \(cases: a, b, c"):
        manifest.case("zz")
    with pytest.raises(InputError, match="no case 'zz'"):
        manifest.file("zz")
    only_train = prepared.Manifest.read(write_old_manifest(tmp_path / "train-only", cases=[
        {**c, "split": "train"} for c in OLD_MANIFEST["cases"]]))
    with pytest.raises(InputError, match="no 'test' cases in this prepared dataset"):
        only_train.entries("test")
    assert only_train.ids("test") == []  # ids() is a plain query
    unfinished = prepared.Manifest.read(write_old_manifest(tmp_path / "unfinished", complete=False))
    with pytest.raises(InputError, match="unfinished: preparation was not finished.*same --out"):
        unfinished.entries("train")


def test_val_cases_are_selected_like_the_others(tmp_path):
    cases = [{**c, "split": s} for c, s in zip(OLD_MANIFEST["cases"], ("train", "val", "test"))]
    manifest = prepared.Manifest.read(write_old_manifest(tmp_path / "ds", cases=cases, val_fraction=0.5))
    assert manifest.ids("val") == ["b"] and [c["id"] for c in manifest.entries("val")] == ["b"]
    assert manifest.counts() == {"train": 1, "val": 1, "test": 1} and manifest.val_fraction == 0.5


def test_check_matches_names_the_dataset_and_the_setting(tmp_path):
    manifest = prepared.Manifest.read(write_old_manifest(tmp_path / "ds"))
    manifest.check_matches()
    manifest.check_matches(size=16, window=[-1000, 1000], fov_mm=40)
    with pytest.raises(ConfigError, match=r"ds: prepared with size=16, not size=32; .*--set size=16"):
        manifest.check_matches(size=32, window=(-1000.0, 1000.0))
    with pytest.raises(ConfigError, match=r"window=\[-1000,1000\], not window=\[-100,900\].*--set window="):
        manifest.check_matches(size=16, window=(-100, 900))
    with pytest.raises(ConfigError, match=r"fov_mm=40, not fov_mm=400; use a new --out"):
        manifest.check_matches(fov_mm=400.0, fix="use a new --out folder")
    with pytest.raises(ConfigError, match="window"):  # a bad request is a settings error too
        manifest.check_matches(window=(5, 1))


def test_manifest_read_errors_name_the_file(tmp_path):
    folder = write_old_manifest(tmp_path / "ds", size="big")
    with pytest.raises(InputError, match="manifest.json: corrupt manifest.*prepare it again"):
        prepared.Manifest.read(folder)
    bare = dict(OLD_MANIFEST)
    del bare["cases"]
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump(bare, f)
    with pytest.raises(InputError, match=r"manifest.json: manifest lacks \['cases'\]"):
        prepared.Manifest.read(folder)


def test_prepare_workers_exit_when_their_parent_is_killed(tmp_path):
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    pids = tmp_path / "pids"
    script = tmp_path / "prepare.py"
    script.write_text(textwrap.dedent(f"""
        import os, time
        from xprospect_tf.data.prepared import writer

        original = writer.prepare_case

        def slow_case(task):  # runs in the workers: report the pid, then take long
            with open({str(pids)!r} + "/" + str(os.getpid()), "w"):
                pass
            time.sleep(60)
            return original(task)

        if __name__ == "__main__":
            writer.prepare_case = slow_case
            writer.write_prepared("phantom:4", {str(tmp_path / "ds")!r}, size=8, test_count=1,
                                  workers=2, progress=False)
    """))
    pids.mkdir()
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}
    parent = subprocess.Popen([sys.executable, str(script)], cwd=str(tmp_path), env=env)
    try:
        deadline = time.monotonic() + 120
        while len(os.listdir(pids)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = [int(p) for p in os.listdir(pids)]
        assert len(workers) == 2
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in workers if _alive(p)]
    finally:
        if parent.poll() is None:
            parent.kill()


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by init) is gone for our purpose
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
