"""Model code is backend-agnostic: a model saved under TensorFlow predicts the same under JAX.

JAX is part of the ``test`` extra, so CI runs these on every change; elsewhere
they are skipped where JAX is not installed. The JAX processes run with
TensorFlow blocked, as on a GPU machine that has JAX but no TensorFlow.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NO_TENSORFLOW = "import sys; sys.modules['tensorflow'] = None\n"  # any import of it fails

LOAD_UNDER_JAX = NO_TENSORFLOW + """
import sys, numpy as np, keras
import xprospect_tf  # registers the package's Keras objects
assert keras.backend.backend() == "jax"
d = np.load(sys.argv[1]); m = keras.models.load_model(sys.argv[2])
np.save(sys.argv[3], m.predict({"frontal": d["frontal"], "lateral": d["lateral"]}, verbose=0))
"""


def test_tensorflow_saved_model_predicts_the_same_under_jax(tmp_path):
    pytest.importorskip("jax")
    from xprospect_tf.models.reconstruction import build_reconstruction_model

    model = build_reconstruction_model(size=16, dense_units=64, projinj=True, base_filters=2)
    rng = np.random.default_rng(0)
    x = {k: rng.random((2, 16, 16, 1), dtype=np.float32) for k in ("frontal", "lateral")}
    np.savez(tmp_path / "x.npz", **x)
    model.save(tmp_path / "m.keras")
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=ROOT)
    subprocess.run([sys.executable, "-c", LOAD_UNDER_JAX, str(tmp_path / "x.npz"), str(tmp_path / "m.keras"),
                    str(tmp_path / "p.npy")], check=True, env=env, timeout=300)
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), model.predict(x, verbose=0), atol=1e-5)


FIT_UNDER_JAX = NO_TENSORFLOW + """
import numpy as np, keras
from xprospect_tf.config import load_experiments
from xprospect_tf.training.rows import build_compiled_model
assert keras.backend.backend() == "jax"
cfg = load_experiments().resolve("512-ProjInj", "smoke", ["size=16", "base_filters=2"])
model = build_compiled_model(cfg)
rng = np.random.default_rng(0)
x = {k: rng.random((2, 16, 16, 1), dtype=np.float32) for k in ("frontal", "lateral")}
y = rng.random((2, 16, 16, 16, 1), dtype=np.float32)
first = model.evaluate(x, y, verbose=0)[0]
model.fit(x, y, epochs=5, verbose=0)
last = model.evaluate(x, y, verbose=0)[0]
assert last < first, (first, last)
print("fit ok", first, last)
"""


def test_a_row_builds_compiles_and_fits_under_jax_without_tensorflow():
    pytest.importorskip("jax")
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-c", FIT_UNDER_JAX], env=env, capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "fit ok" in proc.stdout


DIFFUSION_UNDER_JAX = NO_TENSORFLOW + """
import sys, numpy as np, keras
from xprospect_tf.config import load_experiments
from xprospect_tf.training.rows import build_compiled_model
assert keras.backend.backend() == "jax"
cfg = load_experiments().resolve("Diffusion-Biplanar", "smoke", [
    "size=16", "base_filters=2", "embed_dim=8", "encoder_filters=2", "discriminator_filters=2",
    "diffusion.timesteps=20", "diffusion.sample_steps=3"])
regressor = build_compiled_model(load_experiments().resolve("512-ProjInj", "smoke", ["size=16", "base_filters=2"]))
model = build_compiled_model(cfg, regressor=regressor)  # residual mode; AdamW with use_ema, l1 + perceptual + adversarial
rng = np.random.default_rng(0)
x = (rng.random((2, 16, 16, 1), dtype=np.float32), rng.random((2, 16, 16, 1), dtype=np.float32))
y = rng.random((2, 16, 16, 16, 1), dtype=np.float32)
history = model.fit(x, y, epochs=2, verbose=0).history
assert {"l1", "perceptual", "adversarial", "discriminator"} <= set(history), history
assert all(np.isfinite(v).all() for v in history.values()), history
a = model.sample(x, seed=1)
model.save(sys.argv[1])
b = keras.models.load_model(sys.argv[1]).sample(x, seed=1)
assert np.allclose(a, b, atol=1e-6) and a.shape == (2, 16, 16, 16, 1)
assert not {id(v) for v in regressor.weights} & {id(v) for v in model.trainable_variables}
print("diffusion ok")
"""


def test_a_diffusion_row_fits_samples_and_reloads_under_jax(tmp_path):
    pytest.importorskip("jax")
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", DIFFUSION_UNDER_JAX, str(tmp_path / "d.keras")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "diffusion ok" in done.stdout
