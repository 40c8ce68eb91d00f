"""``xprospect bench model``: one JSON line under TensorFlow and under JAX (without TensorFlow)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from pipelines.bench import measure_model
from pipelines.cli import main
from xprospect_tf.config import load_experiments
from xprospect_tf.training.flops import forward_flops
from xprospect_tf.training.guard import tensor_size_report
from xprospect_tf.training.rows import build_compiled_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARGS = ["bench", "model", "--row", "64-Dense", "--preset", "smoke", "--size", "16", "--batch", "2", "--steps", "2",
        "--base-filters", "4", "--train"]
OVERRIDES = ["size=16", "train.batch_size=2", "base_filters=4"]
NO_TENSORFLOW = "import sys; sys.modules['tensorflow'] = None\n"  # any import of it fails, as on a JAX-only GPU machine
CLI = "import sys; from pipelines.cli import main; sys.exit(main(sys.argv[1:]))"


def _bench(backend):
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=ROOT)
    code = (NO_TENSORFLOW if backend == "jax" else "") + CLI
    proc = subprocess.run([sys.executable, "-c", code, *ARGS], env=env, capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout  # the JSON line alone on stdout
    return json.loads(lines[0])


@pytest.fixture(scope="module")
def reference():
    """The same row built here, independently of the benchmark's process."""
    cfg = load_experiments().resolve("64-Dense", "smoke", OVERRIDES)
    model = build_compiled_model(cfg)
    return {"parameters": model.count_params(), "gflops": forward_flops(model) / 1e9,
            "guard_gib": tensor_size_report(model, 2).training_bytes / 2**30}


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_bench_model_prints_the_figures_of_the_row(backend, reference):
    if backend == "jax":
        pytest.importorskip("jax")
    r = _bench(backend)
    import importlib

    assert r["backend"] == backend
    assert r["backend_version"] == importlib.import_module(backend).__version__
    assert r["keras"] == keras.__version__
    assert r["device"].startswith("cpu: ") and r["device"].endswith(f"{os.cpu_count()} cores")
    assert (r["row"], r["size"], r["batch"], r["base_filters"], r["precision"], r["mode"]) == (
        "64-Dense", 16, 2, 4, "float32", "train")
    assert r["parameters"] == reference["parameters"]
    assert r["forward_gflops"] == pytest.approx(reference["gflops"], abs=1e-4) and r["forward_gflops"] > 0
    assert r["guard_training_gib"] == pytest.approx(reference["guard_gib"], abs=1e-3)
    assert r["train_flops_factor"] == 3 and r["steps"] == 2
    assert 0 < r["step_s_min"] <= r["step_s_median"] <= r["step_s_max"]
    assert r["trace_compile_s"] > 0 and r["build_s"] > 0
    assert r["volumes_per_s"] == pytest.approx(2 / r["step_s_median"], rel=1e-2)
    assert r["achieved_gflop_s"] == pytest.approx(r["forward_gflops"] * 3 * r["volumes_per_s"], rel=1e-2)
    assert 0.1 < r["peak_rss_gib"] < 64
    assert r["peak_accelerator_gib"] is None  # no GPU here


def test_predict_of_a_diffusion_row_times_one_denoiser_call():
    cfg = load_experiments().resolve("Diffusion-Frontal", "smoke", [
        "size=16", "base_filters=2", "embed_dim=8", "encoder_filters=2", "discriminator_filters=2",
        "model.precision=mixed_bfloat16"])
    r = measure_model(cfg, "predict", steps=1)
    denoiser = build_compiled_model(cfg).denoiser
    assert r["mode"] == "predict" and r["train_flops_factor"] is None and r["precision"] == "mixed_bfloat16"
    assert "denoiser.predict_on_batch" in r["measured"] and "20 DDIM steps" in r["measured"]
    assert r["forward_gflops"] == pytest.approx(forward_flops(denoiser) / 1e9, abs=1e-4)
    assert r["achieved_gflop_s"] == pytest.approx(r["forward_gflops"] * r["volumes_per_s"], rel=1e-2)
    assert np.isfinite(r["step_s_median"]) and r["step_s_median"] > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--row", "Nope"], "no row named 'Nope'; rows are: 64-Dense"),
        (["--size", "24"], "data.size = 24: the reconstruction model needs a power of two"),
        (["--row", "Mean volume"], "row 'Mean volume' is a baseline computed without a trained model"),
        (["--precision", "float16"], "model.precision = 'float16' is not one of float32"),
        (["--steps", "0"], "--steps = 0: use a positive integer"),
        (["--batch", "0"], "--batch = 0: use a positive integer"),
        (["--base-filters", "0"], "model.base_filters = 0: use a positive integer"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_status_2(args, message, capsys):
    assert main(["bench", "model", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_bench_train_runs_bench_model_per_size_and_reports_a_failed_size(capsys):
    assert main(["bench", "train", "--size", "24"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("size 24: failed: xprospect: error: ") and "data.size = 24" in out
