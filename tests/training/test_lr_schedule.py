"""``train.lr_schedule``: a cosine decay that spans the run's epochs x steps, saved with the model."""

import math
import os

import numpy as np
import pytest

from xprospect_tf.config import load_experiments
from xprospect_tf.data import prepared
from xprospect_tf.errors import ConfigError
from xprospect_tf.training import rows

TINY = ["size=16", "base_filters=2", "train.epochs=2", "train.batch_size=2", "run_eagerly=true",
        "train.learning_rate=0.002"]


def test_cosine_decays_to_zero_over_the_whole_run(tmp_path, phantom_dataset):
    from xprospect_tf.export import load_keras_model

    cfg = load_experiments().resolve("512-Dense MAE", "smoke", TINY + ["train.lr_schedule=cosine"])
    run_dir = str(tmp_path / "run")
    model = rows.fit_row(cfg, run_dir, phantom_dataset)
    steps = math.ceil(len(prepared.read_manifest(phantom_dataset).ids("train")) / 2)
    optimizer = model.optimizer
    assert int(optimizer.iterations) == 2 * steps
    schedule = optimizer._learning_rate
    for step in (0, steps, 2 * steps):  # the cosine formula, independently
        expected = 0.002 * 0.5 * (1 + math.cos(math.pi * step / (2 * steps)))
        assert float(schedule(step)) == pytest.approx(expected, abs=1e-9)
    assert float(optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)  # at the run's last step
    reloaded = load_keras_model(os.path.join(run_dir, "model.keras"))
    assert float(reloaded.optimizer._learning_rate(steps)) == pytest.approx(0.001, rel=1e-6)


def test_constant_is_the_default_and_unknown_names_are_refused(caplog):
    cfg = load_experiments().resolve("64-Dense", "smoke", TINY)
    assert cfg.train.lr_schedule == "constant" and rows.learning_rate(cfg.train, 7) == 0.002
    with pytest.raises(ConfigError, match="lr_schedule"):
        load_experiments().resolve("64-Dense", "smoke", TINY + ["train.lr_schedule=step"])
    cosine = load_experiments().resolve("64-Dense", "smoke", TINY + ["train.lr_schedule=cosine"])
    assert rows.learning_rate(cosine.train) == 0.002  # no steps known (a notebook): constant, with a warning
    assert "steps_per_epoch=N" in caplog.text
    assert np.isfinite(float(rows.learning_rate(cosine.train, 3)(1)))
