"""An interrupted ``xprospect train`` resumes, and ends with the same numbers as an uninterrupted run.

Each run is a subprocess killed with SIGKILL at a chosen moment (after an
epoch's backup is written, or in the middle of writing one), then run again
with the same command; the final model and test metrics must equal those of
an uninterrupted run bit for bit, and history.csv must list each epoch once.
"""

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from xprospect_tf.data.prepared import phantom_sources, write_prepared

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EPOCHS = 4
# 3 training cases (and 1 validation case) in batches of 2 and 3 steps per epoch: epochs straddle
# passes over the data
TINY = ["--row", "64-Dense", "--set", "size=16", "--set", "base_filters=2", "--set", f"train.epochs={EPOCHS}",
        "--set", "train.batch_size=2", "--set", "train.steps_per_epoch=3", "--eager"]

DRIVER = textwrap.dedent("""
    import os, signal, sys

    import keras

    from xprospect_tf.training import callbacks

    mode, _, at = os.environ.get("KILL_AT", "").partition(":")
    save = callbacks.AtomicBackupAndRestore.save
    save_weights = keras.Model.save_weights

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def half_written(self, path, *args, **kwargs):  # what a kill in the middle of the write leaves
        save_weights(self, path, *args, **kwargs)
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
        die()

    def killing_save(self, epoch):
        if mode == "during" and epoch == int(at):
            keras.Model.save_weights = half_written
        save(self, epoch)
        if mode == "after" and epoch == int(at):
            die()

    callbacks.AtomicBackupAndRestore.save = killing_save

    from pipelines.cli import main

    sys.exit(main(sys.argv[1:]))
""")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("data") / "phantoms-16")
    write_prepared(phantom_sources(6, seed=0), out, size=16, test_count=2, workers=1, progress=False)
    return out


def train(tmp_path, out, data_dir, kill_at="", extra=()):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "KILL_AT": kill_at, "PYTHONPATH": os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(driver), "train", "--out", str(out), "--data", data_dir, *TINY,
                           *extra], env=env, capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


def weights_digest(path):
    import keras

    model = keras.saving.load_model(path, compile=False)
    digest = hashlib.sha256()
    for w in model.get_weights():
        digest.update(w.tobytes())
    return digest.hexdigest()


def history(out):
    with open(os.path.join(out, "history.csv")) as f:
        text = f.read()
    return text.count("epoch,"), [int(r["epoch"]) for r in csv.DictReader(text.splitlines())]


def per_case_mse(out):
    with open(os.path.join(out, "results.json")) as f:
        return [(c["case_id"], c["mse"]) for c in json.load(f)["per_case"]]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir):
    tmp = tmp_path_factory.mktemp("reference")
    rc, log = train(tmp, tmp / "run", data_dir)
    assert rc == 0, log
    return tmp / "run"


def test_killed_runs_resume_to_the_uninterrupted_result(tmp_path, data_dir, reference):
    out = tmp_path / "run"
    for kill_at in ("after:1", "during:2", "after:3"):  # epochs done when killed: 1, 2 (mid-backup), 3
        rc, log = train(tmp_path, out, data_dir, kill_at)
        assert rc == -signal.SIGKILL, log
        if kill_at == "during:2":  # the half-written backup is a temporary file; the last good one stays
            names = os.listdir(out / "backup")
            assert [n for n in names if ".tmp" in n] and "epoch-00002.json" not in names
            assert "epoch-00001.json" in names
    assert "removed 1 temporary file" in log
    rc, log = train(tmp_path, out, data_dir)
    assert rc == 0, log
    assert "resuming at epoch 4" in log

    assert per_case_mse(out) == per_case_mse(reference)  # exactly
    assert weights_digest(out / "model.keras") == weights_digest(reference / "model.keras")
    assert history(out) == (1, list(range(EPOCHS)))
    with open(out / "history.csv") as f, open(reference / "history.csv") as g:
        assert f.read() == g.read()  # the same losses, epoch by epoch
    assert not os.path.exists(out / "backup")  # finished: nothing left to resume
    assert not [n for n in os.listdir(out) if ".tmp" in n]


def test_a_finished_run_is_not_retrained_unless_asked(tmp_path, data_dir, reference):
    out = tmp_path / "run"
    rc, log = train(tmp_path, out, data_dir)
    assert rc == 0, log
    with open(out / "history.csv") as f:
        rows = f.read()
    mtime = os.stat(out / "results.json").st_mtime_ns

    rc, log = train(tmp_path, out, data_dir)
    assert rc == 0, log
    assert "already trained and evaluated" in log
    with open(out / "history.csv") as f:
        assert f.read() == rows
    assert os.stat(out / "results.json").st_mtime_ns == mtime

    rc, log = train(tmp_path, out, data_dir, extra=["--retrain"])
    assert rc == 0, log
    assert os.stat(out / "results.json").st_mtime_ns != mtime
    assert history(out) == (1, list(range(EPOCHS)))
    assert per_case_mse(out) == per_case_mse(reference)
