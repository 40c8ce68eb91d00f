"""``xprospect_tf.training.style``: train (or reuse) a style CycleGAN run, its config, its generator."""

import dataclasses
import os

import pytest

from tests.helpers import PHANTOM_FOV, SIZE, read_json
from xprospect_tf.config import StyleConfig
from xprospect_tf.errors import ConfigError, InputError
from xprospect_tf.training.style import (
    domain_b_spec,
    load_style_generator,
    style_run_config,
    train_style_model,
)

TINY = StyleConfig(epochs=1, batch_size=2, filters=4, n_residual=1)


@pytest.fixture(scope="module")
def lateral_run(tmp_path_factory, phantom_dataset):
    """A lateral style run trained once on the shared phantoms (3 train cases); the first call's result."""
    out = str(tmp_path_factory.mktemp("style") / "lateral")
    return train_style_model(phantom_dataset, "lateral", out, TINY, run_eagerly=True)


def test_first_call_trains_and_writes_the_run(lateral_run, phantom_dataset):
    out = lateral_run["run_dir"]
    assert not lateral_run["reused"] and lateral_run["train_time_s"] > 0
    assert lateral_run["generator"] == os.path.join(out, "generator.keras") and os.path.getsize(lateral_run["generator"])
    assert read_json(os.path.join(out, "config.json")) == lateral_run["config"]
    assert lateral_run["config"] == style_run_config(phantom_dataset, "lateral", TINY)
    assert "g_loss" in lateral_run["history"]


def test_second_call_reuses_and_other_settings_are_refused(lateral_run, phantom_dataset):
    out = lateral_run["run_dir"]
    before = os.path.getmtime(os.path.join(out, "generator.keras"))
    result = train_style_model(phantom_dataset, "lateral", out, TINY, run_eagerly=True)
    assert result["reused"] and result["train_time_s"] is None and "g_loss" in result["history"]
    assert os.path.getmtime(os.path.join(out, "generator.keras")) == before
    with pytest.raises(ConfigError, match="epochs differ"):
        train_style_model(phantom_dataset, "lateral", out, dataclasses.replace(TINY, epochs=2))
    with pytest.raises(ConfigError, match="ema_momentum differ"):
        train_style_model(phantom_dataset, "lateral", out, dataclasses.replace(TINY, ema_momentum=0.9))
    assert os.path.getmtime(os.path.join(out, "generator.keras")) == before  # refused: untouched


def test_generator_holds_the_moving_averages_and_the_checkpoint_the_raw_weights(lateral_run):
    """generator.keras = the EMA that last.keras's generator optimizer holds (the paper's average), not the raw weights."""
    import keras
    import numpy as np

    out = lateral_run["run_dir"]
    generator = keras.models.load_model(os.path.join(out, "generator.keras"), compile=False)
    last = keras.models.load_model(os.path.join(out, "last.keras"))  # the training state after the last epoch
    n = len(last.g_ab.trainable_variables)  # g_ab's variables come first in the generator optimizer's list
    averages = [np.array(v) for v in last.g_optimizer._model_variables_moving_average[:n]]  # Keras' own store
    exported = [np.array(v) for v in generator.trainable_variables]
    raw = [np.array(v) for v in last.g_ab.trainable_variables]
    assert [a.shape for a in averages] == [e.shape for e in exported]
    for got, expected in zip(exported, averages):
        np.testing.assert_array_equal(got, expected)
    assert max(np.abs(e - r).max() for e, r in zip(exported, raw)) > 1e-7  # the raw weights differ


def test_load_style_generator_checks_view_and_size(lateral_run, tmp_path):
    out = lateral_run["run_dir"]
    generator = load_style_generator(out, "lateral", SIZE)
    assert tuple(generator.input_shape) == (None, SIZE, SIZE, 1)
    with pytest.raises(ConfigError, match=f"a lateral style model for {SIZE} px images.*frontal view"):
        load_style_generator(out, "frontal", SIZE)
    with pytest.raises(ConfigError, match="32 px"):
        load_style_generator(out, "lateral", 32)
    with pytest.raises(InputError, match="no trained style model.*--view frontal"):
        load_style_generator(str(tmp_path), "frontal", SIZE)


def test_style_run_config_reads_the_dataset_and_the_style_settings(phantom_dataset):
    style = dataclasses.replace(TINY, domain_b="default", seed=3)
    config = style_run_config(phantom_dataset, "frontal", style)
    assert (config["view"], config["data"]) == ("frontal", os.path.abspath(phantom_dataset))
    assert (config["size"], config["fov_mm"]) == (SIZE, PHANTOM_FOV)
    assert config["domain_b"] == "phantom-drr:3"  # the dataset's 3 train cases
    assert (config["filters"], config["disc_filters"], config["seed"]) == (4, 8, 3)
    with pytest.raises(ConfigError, match="view"):
        style_run_config(phantom_dataset, "axial", style)


@pytest.mark.parametrize("spec, n_train, expected", [
    ("default", 4, "phantom-drr:4"),
    (None, 7, "phantom-drr:7"),
    ("phantom-drr:9", 4, "phantom-drr:9"),
    ("/data/chexpert/valid.csv", 4, "/data/chexpert/valid.csv"),
])
def test_domain_b_spec(spec, n_train, expected):
    assert domain_b_spec(spec, n_train) == expected


class Interrupted(Exception):
    """Stands for a kill: raised right after a backup is written."""


def test_an_interrupted_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, phantom_dataset, monkeypatch):
    """Killed after epoch 1's, epoch 2's and the final backup (before generator.keras), then run to the end:
    the weights are bit-identical to an uninterrupted run's.

    4 domain-A and 5 domain-B images in batches of 3: an epoch is 2 steps (6
    images of each domain), so epochs straddle the passes over both domains;
    with ema_every=2 the weights are reset to their average at each epoch's end.
    """
    import keras
    import numpy as np

    from xprospect_tf.training import callbacks

    style = dataclasses.replace(TINY, epochs=3, batch_size=3, domain_b="phantom-drr:5", ema_every=2)
    reference = train_style_model(phantom_dataset, "frontal", str(tmp_path / "reference"), style,
                                  run_eagerly=True)
    save = callbacks.AtomicBackupAndRestore.save
    out = str(tmp_path / "resumed")
    for kill_after in (1, 2, 3):
        def save_then_die(self, epoch, kill_after=kill_after):
            save(self, epoch)
            if epoch == kill_after:
                raise Interrupted(epoch)

        monkeypatch.setattr(callbacks.AtomicBackupAndRestore, "save", save_then_die)
        with pytest.raises(Interrupted):
            train_style_model(phantom_dataset, "frontal", out, style, run_eagerly=True)
        assert not os.path.exists(os.path.join(out, "generator.keras"))
    monkeypatch.setattr(callbacks.AtomicBackupAndRestore, "save", save)
    resumed = train_style_model(phantom_dataset, "frontal", out, style, run_eagerly=True)
    assert not resumed["reused"] and not os.path.exists(os.path.join(out, "backup"))
    for name in ("generator.keras", "last.keras"):
        expected = keras.models.load_model(os.path.join(reference["run_dir"], name), compile=False)
        got = keras.models.load_model(os.path.join(out, name), compile=False)
        for a, b in zip(got.get_weights(), expected.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    with open(os.path.join(out, "history.csv")) as f:
        assert [line.split(",")[0] for line in f.read().splitlines()[1:]] == ["0", "1", "2"]
