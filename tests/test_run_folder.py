"""``xprospect_tf.run_folder``: one rule for reusing, refusing or restarting a run folder."""

import json
import os

import pytest

from tests.helpers import read_json
from xprospect_tf.errors import ConfigError, InputError
from xprospect_tf.run_folder import RunFolder, changed_keys

CONFIG = {"data": {"size": 16, "window": (-1000.0, 1000.0)}, "train": {"epochs": 2, "seed": 0}}


def test_claim_of_a_new_folder_writes_the_config(tmp_path):
    run = RunFolder(tmp_path / "run")
    assert run.read_config() is None
    assert run.claim(CONFIG) is False
    assert read_json(run.config_path) == json.loads(json.dumps(CONFIG))  # tuples stored as lists
    assert run.config_path == os.path.join(str(tmp_path / "run"), "config.json")
    assert run.file("a", "b.keras") == os.path.join(str(tmp_path / "run"), "a", "b.keras")


def test_claim_with_the_same_settings_is_the_same_run(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.claim(CONFIG)
    (tmp_path / "run" / "model.keras").write_text("kept")
    assert run.claim(CONFIG) is True  # a stored list equals a new tuple
    assert RunFolder(str(tmp_path / "run")).claim(json.loads(json.dumps(CONFIG))) is True
    assert (tmp_path / "run" / "model.keras").read_text() == "kept"


def test_claim_with_other_settings_is_refused_naming_the_changed_keys(tmp_path):
    run = RunFolder(tmp_path / "run", kind="style run")
    run.claim(CONFIG)
    other = {**CONFIG, "train": {"epochs": 3, "seed": 1}}
    with pytest.raises(ConfigError) as info:
        run.claim(other)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'run'}: holds a style run of other settings")
    assert "(train.epochs, train.seed differ)" in message and "new --out" in message
    assert read_json(run.config_path)["train"]["epochs"] == 2  # untouched


def test_claim_with_replace_deletes_the_old_run_and_starts_again(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.claim(CONFIG)
    (tmp_path / "run" / "model.keras").write_text("old")
    other = {**CONFIG, "train": {"epochs": 3, "seed": 0}}
    assert run.claim(other, replace=True) is False
    assert os.listdir(tmp_path / "run") == ["config.json"]
    assert read_json(run.config_path)["train"]["epochs"] == 3


def test_claim_without_write_only_checks(tmp_path):
    run = RunFolder(tmp_path / "run")
    assert run.claim(CONFIG, write=False) is False
    assert not (tmp_path / "run").exists()
    run.claim(CONFIG)
    with pytest.raises(ConfigError, match="data.size differ"):
        run.claim({**CONFIG, "data": {"size": 32, "window": [-1000, 1000]}}, write=False)


def test_claim_compares_only_what_compare_returns(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.claim(CONFIG)
    train_only = lambda config: config["train"]  # noqa: E731
    assert run.claim({**CONFIG, "data": {"size": 32}}, compare=train_only) is True
    with pytest.raises(ConfigError, match=r"\(seed differ\)"):
        run.claim({**CONFIG, "train": {"epochs": 2, "seed": 5}}, compare=train_only)


@pytest.mark.parametrize("text, match", [
    ("{broken", "unreadable run configuration"),
    ("", "unreadable run configuration"),
    ("[1, 2]", "not a run configuration"),
])
def test_read_config_of_a_corrupt_file_is_an_input_error(tmp_path, text, match):
    (tmp_path / "config.json").write_text(text)
    run = RunFolder(tmp_path)
    with pytest.raises(InputError, match=match) as info:
        run.read_config()
    assert str(info.value).startswith(str(tmp_path / "config.json")) and "delete the folder" in str(info.value)
    with pytest.raises(InputError):
        run.claim(CONFIG)


def test_require_config_names_the_folder_and_the_fix(tmp_path):
    run = RunFolder(tmp_path / "none", kind="style run")
    with pytest.raises(InputError, match=r"none: not a style run folder \(no config.json\); train the frontal one"):
        run.require_config("train the frontal one")
    run.claim(CONFIG)
    assert run.require_config() == read_json(run.config_path)
    assert repr(run) == f"RunFolder({str(tmp_path / 'none')!r})"


@pytest.mark.parametrize("old, new, expected", [
    ({}, {}, []),
    ({"a": 1}, {"a": 1}, []),
    ({"a": 1}, {"a": 2}, ["a"]),
    ({"a": 1}, {"b": 1}, ["a", "b"]),  # added and removed keys
    ({"b": 1, "a": 1}, {"b": 2, "a": 2}, ["a", "b"]),  # sorted
    ({"t": {"e": 1, "s": 0}}, {"t": {"e": 2, "s": 0}}, ["t.e"]),  # nested: dotted
    ({"t": {"x": {"y": 1}}}, {"t": {"x": {"y": 2}}}, ["t.x.y"]),
    ({"t": {"e": 1}}, {"t": 5}, ["t"]),  # a dict replaced by a value
    ({"w": [1, 2]}, {"w": [1, 3]}, ["w"]),
])
def test_changed_keys(old, new, expected):
    assert changed_keys(old, new) == expected
