"""Atomic writes leave either the old file or the complete new one."""

import os

import pytest

from xprospect_tf.files import atomic_path, write_json


def test_atomic_path_keeps_suffix_and_renames(tmp_path):
    target = tmp_path / "sub" / "vol.nii.gz"
    with atomic_path(target) as tmp:
        assert tmp.endswith(".nii.gz") and not os.path.exists(target)
        with open(tmp, "w") as f:
            f.write("data")
    assert target.read_text() == "data"
    assert os.listdir(target.parent) == ["vol.nii.gz"]


def test_failure_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "results.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("crash")
    assert target.read_text().strip().startswith("{")
    assert os.listdir(tmp_path) == ["results.json"]


def test_atomic_files_get_the_usual_permissions(tmp_path):
    target = tmp_path / "a.txt"
    write_json(target, [1])
    mask = os.umask(0)
    os.umask(mask)
    assert (os.stat(target).st_mode & 0o777) == (0o666 & ~mask)
