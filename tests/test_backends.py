"""Model code is backend-agnostic: a model saved under TensorFlow predicts the same under JAX.

Runs only where JAX is installed (not in CI: `pip install "jax[cpu]"` to run it).
"""

import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LOAD_UNDER_JAX = """
import sys, numpy as np, keras
import xprospect_tf.layers  # registers the custom layers
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
