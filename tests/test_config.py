"""experiments.yaml schema: resolution order, overrides, and clear errors."""

import dataclasses
import os

import pytest

from xprospect_tf.config import RunConfig, load_experiments
from xprospect_tf.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = os.path.join(ROOT, "experiments.yaml")

TABLE1_ROWS = ["64-Dense", "512-Dense", "512-Dense MAE", "512-ProjInj"]


@pytest.fixture(scope="module")
def exp():
    return load_experiments(EXPERIMENTS)


def test_table1_rows_follow_the_paper(exp):
    assert set(TABLE1_ROWS) <= set(exp.row_names)
    expected = {  # the paper's Table 1: loss, optimizer, dense units, projection injection
        "64-Dense": ("mse", "adam", 64, False),
        "512-Dense": ("mse", "adam", 512, False),
        "512-Dense MAE": ("mae", "nadam", 512, False),
        "512-ProjInj": ("mae", "nadam", 512, True),
    }
    for name, (loss, opt, units, projinj) in expected.items():
        cfg = exp.resolve(name, "paper")
        assert (cfg.train.loss, cfg.train.optimizer) == (loss, opt)
        assert (cfg.model.dense_units, cfg.model.projinj) == (units, projinj)
        assert cfg.inputs == "mean"


def test_paper_preset_uses_the_papers_data_settings(exp):
    cfg = exp.resolve("512-Dense", "paper")
    assert cfg.data.size == 128
    assert cfg.data.window == (-1000.0, 1000.0)
    assert cfg.data.test_count == 30


def test_precedence_defaults_row_preset_override(exp):
    base = exp.resolve("64-Dense", "smoke")
    assert base.data.size == exp.presets["smoke"]["data"]["size"]  # preset beats defaults
    assert base.model.dense_units == 64  # row beats defaults
    over = exp.resolve("64-Dense", "smoke", ["size=48", "train.batch_size=3", "window=[-100, 900]"])
    assert over.data.size == 48 and over.train.batch_size == 3
    assert over.data.window == (-100.0, 900.0)
    assert over.model == base.model


def test_round_trip_through_dict(exp):
    cfg = exp.resolve("512-ProjInj", "smoke")
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.data.size = 3


@pytest.mark.parametrize(
    "item, fragment",
    [
        ("size=abc", "size"),
        ("nope=1", "unknown setting 'nope'"),
        ("loss=l1", "not one of"),
        ("window=[900, -100]", "low < high"),
        ("batch_size=0", "must be positive"),
        ("data.loss=mse", "unknown key 'loss'"),
        ("size", "key=value"),
        ("projinj=maybe", "boolean"),
    ],
)
def test_bad_overrides_name_the_setting(exp, item, fragment):
    with pytest.raises(ConfigError, match=fragment):
        exp.resolve("64-Dense", "smoke", [item])


def test_unknown_row_and_preset(exp):
    with pytest.raises(ConfigError, match="no row named"):
        exp.resolve("1024-Dense", "smoke")
    with pytest.raises(ConfigError, match="no preset named"):
        exp.resolve("64-Dense", "huge")


def _write(tmp_path, text):
    p = tmp_path / "experiments.yaml"
    p.write_text(text)
    return str(p)


def test_unknown_yaml_key_names_file_and_line(tmp_path):
    path = _write(tmp_path, "version: 1\ndefaults:\n  data:\n    size: 32\n    sise: 32\nrows: []\n")
    with pytest.raises(ConfigError) as info:
        load_experiments(path)
    assert f"{path}:5" in str(info.value) and "'sise'" in str(info.value)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("version: 1\nrows:\n  - name: a\n    model: {dense_units: many}\n", ":4"),
        ("version: 1\nrows:\n  - name: a\n    colour: red\n", "unknown key 'colour'"),
        ("version: 1\nrows:\n  - name: a\n  - name: a\n", "duplicate row"),
        ("version: 1\nextras: {}\n", "unknown key 'extras'"),
        ("version: 1\nrows: [\n", "not valid YAML"),
        ("version: 1\npresets:\n  p:\n    optim: {}\n", "unknown section 'optim'"),
    ],
)
def test_bad_yaml(tmp_path, text, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_experiments(_write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_experiments(str(tmp_path / "none.yaml"))
