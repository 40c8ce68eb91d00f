"""Lose nothing, ever: every command refuses to delete or overwrite what a user owns,
takes one writer per folder, leaves nothing behind when it did nothing, and reports
every mistake as one line with exit status 2 (an unexpected error: one line, exit 3,
the traceback in a file)."""

import os
import shutil
import subprocess
import sys

import pytest

from pipelines.cli import main
from tests.helpers import TINY_ROW as TINY

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _user_folder(path):
    os.makedirs(path)
    with open(os.path.join(path, "thesis.txt"), "w") as f:
        f.write("precious")
    return str(path)


def _intact(path):
    with open(os.path.join(path, "thesis.txt")) as f:
        return sorted(os.listdir(path)) == ["thesis.txt"] and f.read() == "precious"


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("xprospect:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_export_never_deletes_a_users_folder(tiny_run, tmp_path, capsys):
    mine = _user_folder(tmp_path / "E")
    assert main(["export", tiny_run, "--out", mine]) == 2
    _one_line_error(capsys, "holds other files", "--overwrite")
    assert _intact(mine)
    assert main(["export", tiny_run, "--out", mine, "--overwrite"]) == 0  # replaced only when asked
    assert "model.keras" in os.listdir(mine)
    assert main(["export", tiny_run, "--out", mine]) == 0  # an earlier export is this tool's own


def test_train_never_writes_phantoms_into_a_users_folder(tmp_path, capsys):
    mine = _user_folder(tmp_path / "mydata")
    out = str(tmp_path / "run")
    assert main(["train", "--row", "64-Dense", "--out", out, "--data", mine, *TINY]) == 2
    _one_line_error(capsys, "mydata", "holds other files")
    assert _intact(mine)
    assert not os.path.exists(out)  # a refused command leaves nothing behind


@pytest.mark.parametrize("argv", [
    ["data", "phantoms", "--count", "3", "--size", "16", "--out", "{file}"],
    ["train", "--row", "Mean volume", "--set", "size=16", "--out", "{file}"],
    ["table1", "--rows", "Mean volume", "--set", "size=16", "--out", "{file}"],
    ["data", "phantoms", "--count", "3", "--size", "16", "--out", "{file}/sub"],
])
def test_an_output_that_is_a_file_is_refused(argv, tmp_path, capsys):
    target = tmp_path / "O"
    target.write_text("x")
    assert main([a.replace("{file}", str(target)) for a in argv]) == 2
    _one_line_error(capsys, str(target))
    assert target.read_text() == "x"


def test_file_outputs_are_not_overwritten_unasked(tiny_run, phantom_dataset, tmp_path, capsys):
    existing = tmp_path / "ct.nii.gz"
    existing.write_text("a CT the user made")
    args = ["predict", tiny_run, "--frontal", "a.png", "--lateral", "b.png", "--out", str(existing)]
    assert main(args) == 2
    _one_line_error(capsys, "ct.nii.gz", "exists")
    assert existing.read_text() == "a CT the user made"
    png = tmp_path / "p.png"
    png.write_text("mine")
    assert main(["data", "preview", phantom_dataset, "--out", str(png)]) == 2
    _one_line_error(capsys, "p.png", "exists")
    assert main(["data", "preview", phantom_dataset, "--out", str(png), "--overwrite"]) == 0
    assert png.read_bytes().startswith(b"\x89PNG")


def test_a_locked_folder_is_refused_with_its_holder_named(tmp_path, capsys):
    folder = tmp_path / "ds"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from xprospect_tf.outputs import folder_lock\n"
         "with folder_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)", str(folder)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["data", "phantoms", "--count", "3", "--size", "16", "--val-fraction", "0",
                     "--out", str(folder)]) == 2
        _one_line_error(capsys, "in use by pid", str(holder.pid))
        assert os.listdir(folder) == [".xprospect.lock"]  # nothing written beside the holder's lock
    finally:
        holder.kill()
        holder.wait()
    # the operating system released the killed holder's lock: the folder is usable again
    assert main(["data", "phantoms", "--count", "3", "--size", "16", "--test-count", "1", "--val-fraction", "0",
                 "--workers", "1", "--out", str(folder)]) == 0
    assert not os.path.exists(folder / ".xprospect.lock")


def test_a_prepare_that_prepared_nothing_leaves_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not a nifti file")
    out = tmp_path / "ds"
    assert main(["data", "prepare", str(bad), "--out", str(out), "--size", "16", "--workers", "1",
                 "--val-fraction", "0"]) == 2  # (with one source, the default 0.2 would leave no val case)
    _one_line_error(capsys, "no input could be prepared", "bad.nii.gz")
    assert not os.path.exists(out)


def test_dry_run_needs_no_out_and_train_without_out_is_one_line(capsys):
    assert main(["train", "--row", "64-Dense", "--dry-run", "--set", "size=16", "--set", "base_filters=2"]) == 0
    capsys.readouterr()
    assert main(["train", "--row", "64-Dense", "--set", "size=16"]) == 2
    _one_line_error(capsys, "--out")


def test_bad_experiments_files_and_run_configs_are_one_line(tiny_run, tmp_path, capsys):
    binary = tmp_path / "x.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    for path in (str(tmp_path), str(binary)):
        assert main(["train", "--row", "64-Dense", "--dry-run", "--experiments", path]) == 2
        _one_line_error(capsys, path)
    broken = tmp_path / "run"
    shutil.copytree(tiny_run, broken)
    (broken / "config.json").write_text('{"row": "64-Dense"}')
    assert main(["export", str(broken), "--out", str(tmp_path / "e")]) == 2
    _one_line_error(capsys, "config.json", "damaged")
    (broken / "config.json").write_text("{not json")
    assert main(["export", str(broken), "--out", str(tmp_path / "e")]) == 2
    _one_line_error(capsys, "config.json", "unreadable")
    assert not os.path.exists(tmp_path / "e")


def test_a_damaged_record_during_training_is_one_line(phantom_dataset, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(phantom_dataset, data)
    for name in sorted(os.listdir(data / "cases"))[:3]:
        record = data / "cases" / name
        record.write_bytes(record.read_bytes()[:100])  # truncated, as by a full disk
    assert main(["train", "--row", "64-Dense", "--out", str(tmp_path / "run"), "--data", str(data), *TINY]) == 2
    _one_line_error(capsys, "could not be read", "data prepare")


def test_an_unexpected_error_is_one_line_with_the_traceback_in_a_file(monkeypatch, capsys):
    import pipelines.data

    def broken(args):
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(pipelines.data, "run_phantoms", broken)
    assert main(["data", "phantoms", "--out", "x"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("xprospect: internal error: RuntimeError: something nobody expected\n")
    path = err.strip().rsplit(" ", 1)[-1]  # "... written to PATH"
    with open(path) as f:
        text = f.read()
    assert "Traceback" in text and "something nobody expected" in text
    os.remove(path)
