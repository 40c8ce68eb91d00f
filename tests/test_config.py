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


def test_rows_are_in_the_papers_table1_order_then_diffusion_then_baselines(exp):
    # the paper's Table 1, top to bottom (Paulson et al., 2024, section 4)
    paper_order = ["64-Dense", "64-Dense-Styled-Inputs", "512-Dense", "512-Dense MAE", "512-ProjInj"]
    assert exp.row_names == paper_order + ["Diffusion-Frontal", "Diffusion-Biplanar", "Mean volume",
                                           "Back-projection"]
    assert exp.resolve("64-Dense-Styled-Inputs", "paper").inputs == "styled"


def test_paper_preset_uses_the_papers_data_settings(exp):
    cfg = exp.resolve("512-Dense", "paper")
    assert cfg.data.size == 128
    assert cfg.data.window == (-1000.0, 1000.0)
    assert cfg.data.test_count == 30


def test_precedence_defaults_row_preset_override(exp):
    base = exp.resolve("64-Dense", "smoke")
    assert base.data.size == exp.presets["smoke"]["data"]["size"]  # preset beats defaults
    assert base.model.dense_units == 64  # row beats defaults
    over = exp.resolve("64-Dense", "smoke", ["size=16", "train.batch_size=3", "window=[-100, 900]"])
    assert over.data.size == 16 and over.train.batch_size == 3
    assert over.data.window == (-100.0, 900.0)
    assert over.model == base.model


def test_exponent_notation_without_a_dot_is_a_number(exp):
    # YAML 1.1 (PyYAML) reads 1e-3 as a string; the number fields take it as 0.001
    cfg = exp.resolve("64-Dense", "smoke", ["train.learning_rate=1e-3", "style.learning_rate=2E-4"])
    assert cfg.train.learning_rate == 0.001 and cfg.style.learning_rate == 0.0002


def test_round_trip_through_dict(exp):
    cfg = exp.resolve("512-ProjInj", "smoke")
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.data.size = 3


@pytest.mark.parametrize(
    "item, fragment",
    [
        ("size=abc", "data.size = 'abc' is not a valid integer"),
        ("train.learning_rate=1e-3x", "train.learning_rate = '1e-3x' is not a valid number"),
        ("train.learning_rate=nan", "train.learning_rate = nan: use a finite number"),
        ("nope=1", "unknown setting 'nope'"),
        ("loss=l1", "train.loss = 'l1' is not one of mse, mae"),
        ("window=[900, -100]", "low < high"),
        ("train.batch_size=0", "train.batch_size = 0: use a positive integer"),
        ("style.epochs=-1", "style.epochs = -1: use a positive integer"),
        ("test_fraction=1.5", "data.test_fraction = 1.5: use a number < 1"),
        ("inputs=xray", "inputs = 'xray' is not one of mean, drr, styled"),
        ("upsampling=bilinear", "style.upsampling = 'bilinear' is not one of transpose, resize"),
        ("data.loss=mse", "unknown key 'loss'"),
        ("size", "key=value"),
        ("projinj=maybe", "boolean"),
    ],
)
def test_bad_overrides_name_the_setting(exp, item, fragment):
    with pytest.raises(ConfigError) as info:
        exp.resolve("64-Dense", "smoke", [item])
    assert fragment in str(info.value) and item in str(info.value)  # the setting and the --set item


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


# -- where a rule lives: choices from the registries, ambiguous keys, cross-field checks ------------


def test_choices_come_from_the_registries(exp, monkeypatch):
    from xprospect_tf.data import prepared
    from xprospect_tf.models import baselines, reconstruction
    from xprospect_tf.models.cyclegan import generator
    from xprospect_tf.training import losses, optimizers, strategy

    for item in ("loss=huber", "optimizer=sgd", "strategy=tpu", "architecture=vit",
                 "inputs=sketch", "upsampling=bilinear"):
        with pytest.raises(ConfigError, match="is not one of"):
            exp.resolve("64-Dense", "smoke", [item])
    monkeypatch.setitem(losses.LOSSES, "huber", object)
    monkeypatch.setitem(optimizers.OPTIMIZERS, "sgd", object)
    monkeypatch.setattr(strategy, "STRATEGIES", (*strategy.STRATEGIES, "tpu"))
    monkeypatch.setitem(reconstruction.MODEL_BUILDERS, "vit", object)
    monkeypatch.setitem(prepared.INPUT_FIELDS, "sketch", ("a", "b"))
    monkeypatch.setattr(generator, "UPSAMPLING", (*generator.UPSAMPLING, "bilinear"))
    cfg = exp.resolve("64-Dense", "smoke", ["loss=huber", "optimizer=sgd", "strategy=tpu",
                                            "architecture=vit", "inputs=sketch", "upsampling=bilinear"])
    assert (cfg.train.loss, cfg.train.optimizer, cfg.train.strategy) == ("huber", "sgd", "tpu")
    assert (cfg.model.architecture, cfg.inputs, cfg.style.upsampling) == ("vit", "sketch", "bilinear")
    assert exp.resolve("Mean volume", "smoke").model.architecture in baselines.BASELINES


def test_count_is_a_data_and_a_style_setting(exp):
    with pytest.raises(ConfigError, match="write data.count or style.count"):
        exp.resolve("64-Dense", "smoke", ["count=12"])
    cfg = exp.resolve("64-Dense", "smoke", ["data.count=12", "style.count=7"])
    assert (cfg.data.count, cfg.style.count) == (12, 7)
    assert exp.resolve("64-Dense-Styled-Inputs", "paper").style.count == 2390  # the paper's CheXpert pairs


@pytest.mark.parametrize("item", ["style.domain_b_count=5", "domain_b_count=5"])
def test_the_renamed_domain_b_count_names_its_new_name(exp, item):
    with pytest.raises(ConfigError, match="style.domain_b_count was renamed style.count: write count"):
        exp.resolve("64-Dense", "smoke", [item])


def test_the_renamed_key_in_a_yaml_names_file_line_and_new_name(tmp_path):
    path = _write(tmp_path, "version: 1\ndefaults:\n  style:\n    domain_b_count: 100\nrows: []\n")
    with pytest.raises(ConfigError) as info:
        load_experiments(path)
    assert f"{path}:4: unknown key 'domain_b_count'; style.domain_b_count was renamed style.count" in str(info.value)


def test_a_stored_run_config_with_the_old_name_reads_as_the_new(exp):
    stored = exp.resolve("64-Dense", "smoke").to_dict()
    del stored["style"]["count"]
    stored["style"]["domain_b_count"] = None  # what runs written before the rename hold
    assert RunConfig.from_dict(stored).style.count is None  # old runs' null ("all") kept


@pytest.mark.parametrize("key", ["epochs", "batch_size", "learning_rate"])
def test_ambiguous_bare_key_names_both_sections(exp, key):
    with pytest.raises(ConfigError) as info:
        exp.resolve("64-Dense", "smoke", [f"{key}=2"])
    assert f"write train.{key} or style.{key}" in str(info.value)
    cfg = exp.resolve("64-Dense", "smoke", [f"train.{key}=2", f"style.{key}=3"])
    assert (getattr(cfg.train, key), getattr(cfg.style, key)) == (2, 3)


@pytest.mark.parametrize(
    "row, items, fragment",
    [
        ("64-Dense", ["size=24"], "data.size = 24: the reconstruction model needs a power of two"),
        ("64-Dense", ["size=4"], "data.size = 4: the cube side must be at least 8"),
        ("Mean volume", ["size=24"], None),  # a baseline builds no model: any cube side >= 8
        ("64-Dense", ["levels=5"], "model.levels = 5: at size 32 use 1..4"),
        ("64-Dense-Styled-Inputs", ["size=16", "inputs=styled"], None),
        ("Mean volume", ["size=10", "inputs=styled"], "data.size = 10: style transfer needs"),
        ("64-Dense", ["window=[900, -100]"], "data.window = [900.0, -100.0]: use finite [low, high]"),
        ("64-Dense", ["window=[-1000, .inf]"], "data.window = inf: use a finite number"),
        ("64-Dense", ["fov_mm=0"], "data.fov_mm = 0.0: the field of view must be a positive"),
        ("64-Dense", ["data.count=1"], "data.test_count = 8 with data.count = 1 phantoms leaves 0 training"),
        ("64-Dense", ["data.count=8"], "data.test_count = 8 with data.count = 8 phantoms leaves 0 training"),
        ("64-Dense", ["data.count=2", "test_count=null"], "data.test_fraction = 0.2 with data.count = 2 "
                                                     "phantoms leaves 2 training and 0 test"),
        ("64-Dense", ["data.count=9"], "data.val_fraction = 0.2 with data.count = 9 phantoms (8 test) leaves 1 "
                                  "training and 0 validation case(s)"),
        ("64-Dense", ["data.count=9", "val_fraction=0"], None),  # no validation split: fit monitors the loss
        ("64-Dense", ["data.count=13"], None),  # 5 non-test cases: 4 train, 1 val
        ("64-Dense", ["data.count=40", "val_fraction=0.99"], "data.val_fraction = 0.99 with data.count = 40 "
                                                              "phantoms (8 test) leaves 0 training and 32 validation"),
        ("64-Dense", ["val_fraction=1"], "data.val_fraction = 1.0: use a number < 1"),
        ("64-Dense", ["val_fraction=-0.1"], "data.val_fraction = -0.1: use a number >= 0"),
        ("64-Dense", ["data.count=1", "val_fraction=0.5", "source=data/prepared"], None),
        ("64-Dense", ["data.count=1", "source=data/prepared"], None),  # a prepared dataset has its own split
        ("64-Dense", ["train.learning_rate=.nan"], "train.learning_rate = nan: use a finite number"),
        ("64-Dense", ["train.learning_rate=.inf"], "train.learning_rate = inf: use a finite number"),
        ("64-Dense", ["style.learning_rate=-.inf"], "style.learning_rate = -inf: use a finite number"),
        ("64-Dense", ["train.learning_rate=0"], "train.learning_rate = 0.0: use a number > 0"),
    ],
)
def test_cross_field_checks_fail_in_resolve(exp, row, items, fragment):
    if fragment is None:
        exp.resolve(row, "smoke", items)
        return
    with pytest.raises(ConfigError) as info:
        exp.resolve(row, "smoke", items)
    assert fragment in str(info.value)


def test_resolve_fails_before_any_work(tmp_path, monkeypatch):
    """``--set size=24`` used to write a whole dataset before the model build failed."""
    from pipelines.cli import main

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    assert main(["train", "--row", "64-Dense", "--out", str(out), "--experiments", EXPERIMENTS,
                 "--set", "size=24"]) == 2
    assert not out.exists()


def test_a_yaml_cross_field_error_names_the_file_and_row(tmp_path):
    path = _write(tmp_path, "version: 1\npresets: {p: {}}\nrows:\n  - name: a\n    data: {size: 48}\n")
    with pytest.raises(ConfigError) as info:
        load_experiments(path)
    assert f"{path}: row 'a' (preset 'p'): data.size = 48" in str(info.value)


def test_every_field_declares_its_default_and_doc_once():
    from xprospect_tf.config import SECTIONS, StyleConfig, _SCHEMA

    for section in SECTIONS:
        for field in dataclasses.fields(_SCHEMA[section]):
            assert field.metadata["doc"], (section, field.name)
            assert field.default is not dataclasses.MISSING, (section, field.name)
    from xprospect_tf.config import _build

    defaults = load_experiments(EXPERIMENTS).defaults
    for section in SECTIONS:  # experiments.yaml's defaults restate the schema's, all of them
        cls = _SCHEMA[section]
        assert set(defaults[section]) == {f.name for f in dataclasses.fields(cls)}, section
        assert _build(cls, defaults[section]) == cls(), f"experiments.yaml defaults differ from {cls.__name__}"
    assert StyleConfig().cycle_lambda == 20.0 and StyleConfig().ema_momentum == 0.99


def test_style_config_built_in_code_is_validated():
    from xprospect_tf.config import StyleConfig, validated, with_settings

    assert validated(StyleConfig()) == StyleConfig()
    for bad, fragment in ((dict(epochs=0), "style.epochs = 0"), (dict(ema_momentum=1.5), "<= 1"),
                          (dict(learning_rate=float("nan")), "finite"),
                          (dict(upsampling="bilinear"), "not one of")):
        with pytest.raises(ConfigError, match=fragment):
            validated(StyleConfig(**bad))
    with pytest.raises(ConfigError, match="--ema-every: style.ema_every = 0"):
        with_settings(StyleConfig(), {"ema_every": 0}, where=lambda k: "--ema-every")
    assert with_settings(StyleConfig(), {"ema_every": None, "count": 5}).ema_every is None
