"""Validation during ``fit`` (the paper's 80/20 train/validation split): the val split is
evaluated after every epoch, ``best.keras`` follows ``val_loss`` (``loss`` without a val
split), and the test split is not read before the final evaluation."""

import csv
import json
import logging
import os

import numpy as np
import pytest

from xprospect_tf.config import load_experiments
from xprospect_tf.data import prepared
from xprospect_tf.errors import ConfigError
from xprospect_tf.training import rows

EPOCHS = 3
TINY = ["size=16", "base_filters=2", f"train.epochs={EPOCHS}", "train.batch_size=2", "run_eagerly=true"]


def config(*extra):
    return load_experiments().resolve("64-Dense", "smoke", TINY + list(extra))


def history_rows(run_dir):
    with open(os.path.join(run_dir, "history.csv"), newline="") as f:
        return list(csv.DictReader(f))


def val_mse(model_path, data_dir, case_ids):
    """The mean over ``case_ids`` of the voxel MSE of the model's prediction (numpy, float64)."""
    from xprospect_tf.export import load_keras_model

    model = load_keras_model(model_path)
    errors = []
    for case_id in case_ids:
        c = prepared.load_case(data_dir, case_id)
        pred = model.predict_on_batch({"frontal": c["ap"][None, ..., None], "lateral": c["lateral"][None, ..., None]})
        errors.append(np.mean((pred[0, ..., 0].astype(np.float64) - c["ct"]) ** 2))
    return float(np.mean(errors))


@pytest.fixture(scope="module")
def validated_run(tmp_path_factory, phantom_dataset):
    """``fit_row`` for 3 epochs on the shared phantoms (3 train, 1 val, 2 test), recording the
    splits it reads and the callbacks it uses."""
    from xprospect_tf.training import callbacks

    run_dir = str(tmp_path_factory.mktemp("validated") / "run")
    read, used = [], []
    load, count, standard = prepared.load_prepared, prepared.batches_per_epoch, callbacks.standard_callbacks

    def load_recorded(path, split="train", **kw):
        read.append(split)
        return load(path, split, **kw)

    def count_recorded(path, split, *args, **kw):
        read.append(split)
        return count(path, split, *args, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(prepared, "load_prepared", load_recorded)
        mp.setattr(prepared, "batches_per_epoch", count_recorded)
        mp.setattr(callbacks, "standard_callbacks", lambda *a, **kw: used.extend(standard(*a, **kw)) or used)
        rows.fit_row(config(), run_dir, phantom_dataset)
    return run_dir, read, used


def test_history_holds_the_validation_loss_of_every_epoch(validated_run, phantom_dataset):
    run_dir, _, _ = validated_run
    history = history_rows(run_dir)
    assert [int(r["epoch"]) for r in history] == list(range(EPOCHS))
    for r in history:
        assert np.isfinite([float(r[k]) for k in ("loss", "psnr", "val_loss", "val_psnr")]).all()
    # val_loss is the final model's MSE on the val case, recomputed independently
    val_ids = prepared.read_manifest(phantom_dataset).ids("val")
    assert len(val_ids) == 1
    last = val_mse(os.path.join(run_dir, "model.keras"), phantom_dataset, val_ids)
    assert float(history[-1]["val_loss"]) == pytest.approx(last, rel=1e-4)


def test_the_best_checkpoint_follows_val_loss(validated_run, phantom_dataset):
    run_dir, _, _ = validated_run
    val_loss = [float(r["val_loss"]) for r in history_rows(run_dir)]
    with open(os.path.join(run_dir, "best.keras.json")) as f:
        best = json.load(f)
    assert best["monitor"] == "val_loss"
    assert best["epoch"] == int(np.argmin(val_loss)) and best["best"] == pytest.approx(min(val_loss), rel=1e-6)
    val_ids = prepared.read_manifest(phantom_dataset).ids("val")
    assert val_mse(os.path.join(run_dir, "best.keras"), phantom_dataset, val_ids) == pytest.approx(best["best"], rel=1e-4)
    # the same checkpoint callback, given an epoch whose training loss is better but its
    # validation loss worse, keeps the model; the other way round, it saves
    _, _, used = validated_run
    (checkpoint,) = [c for c in used if getattr(c, "filepath", "").endswith("best.keras")]
    checkpoint.on_epoch_end(EPOCHS, {"loss": 1e-9, "val_loss": 1e9})
    with open(os.path.join(run_dir, "best.keras.json")) as f:
        assert json.load(f) == best
    checkpoint.on_epoch_end(EPOCHS + 1, {"loss": 1e9, "val_loss": 1e-9})
    with open(os.path.join(run_dir, "best.keras.json")) as f:
        assert json.load(f) == {"epoch": EPOCHS + 1, "monitor": "val_loss", "best": 1e-9}


def test_fit_reads_train_and_val_never_test(validated_run):
    _, read, _ = validated_run
    assert set(read) == {"train", "val"}


def test_without_a_val_split_fit_monitors_the_training_loss(phantom_datasets, tmp_path, caplog):
    data_dir = phantom_datasets(5, 1, val_fraction=0)
    run_dir = str(tmp_path / "run")
    with caplog.at_level(logging.INFO, logger="xprospect_tf.training.rows"):
        rows.fit_row(config("train.epochs=1", "val_fraction=0"), run_dir, data_dir)
    assert "no validation split (data.val_fraction = 0)" in caplog.text and "training loss" in caplog.text
    history = history_rows(run_dir)
    # Keras' CSVLogger keeps val_ columns, with no value
    assert len(history) == 1 and history[0]["val_loss"] == "NA" and np.isfinite(float(history[0]["loss"]))
    with open(os.path.join(run_dir, "best.keras.json")) as f:
        assert json.load(f)["monitor"] == "loss"


def test_a_dataset_split_with_another_val_fraction_is_refused_before_training(phantom_dataset, tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError, match="prepared with val_fraction=0.2, not val_fraction=0.5.*xprospect data split"):
        rows.fit_row(config("val_fraction=0.5"), str(run_dir), phantom_dataset)
    assert not run_dir.exists()


def test_the_kept_model_is_the_epoch_with_the_lowest_val_loss(validated_run, phantom_dataset):
    run_dir, _, _ = validated_run
    val_loss = [float(r["val_loss"]) for r in history_rows(run_dir)]
    val_ids = prepared.read_manifest(phantom_dataset).ids("val")
    kept = val_mse(os.path.join(run_dir, "model.keras"), phantom_dataset, val_ids)
    assert kept == pytest.approx(min(val_loss), rel=1e-4)
    if int(np.argmin(val_loss)) != len(val_loss) - 1:  # the last epoch's weights were not kept
        assert kept != pytest.approx(val_loss[-1], rel=1e-4)
