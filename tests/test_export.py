import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from xprospect_tf.errors import InputError
from xprospect_tf.export import export_model, load_keras_model

S = 8


def _model():
    keras.utils.set_random_seed(0)
    frontal = keras.Input((S, S, 1), name="frontal")
    lateral = keras.Input((S, S, 1), name="lateral")
    # different weights per input, so swapping frontal and lateral would show
    x = keras.layers.Concatenate()([keras.layers.Flatten()(frontal), keras.layers.Flatten()(lateral)])
    x = keras.layers.Reshape((S, S, S, 1))(keras.layers.Dense(S**3)(x))
    ct = keras.layers.Conv3D(1, 3, padding="same", activation="sigmoid", name="ct")(x)
    return keras.Model({"frontal": frontal, "lateral": lateral}, ct)


FRESH = """
import json, sys
import numpy as np, tensorflow as tf
a = json.loads(sys.argv[1])
x = {k: tf.constant(np.load(a[k])) for k in ("frontal", "lateral")}
served = tf.saved_model.load(a["saved_model"]).signatures["serving_default"]
spec = served.structured_input_signature[1]
assert sorted(spec) == ["frontal", "lateral"], spec
assert all(s.shape.as_list() == [None, %d, %d, 1] and s.dtype == tf.float32 for s in spec.values()), spec
out = served(**x)
assert list(out) == ["ct"], list(out)
np.save(a["out_sm"], out["ct"].numpy())
assert "xprospect_tf" not in sys.modules
from xprospect_tf.export import load_keras_model
model = load_keras_model(a["keras"])
np.save(a["out_keras"], np.asarray(model.predict(dict(x), verbose=0)))
""" % (S, S)


def test_export_reloads_in_fresh_process(tmp_path, rng):
    model = _model()
    paths = export_model(model, tmp_path / "export")
    assert paths == {"keras": str(tmp_path / "export" / "model.keras"),
                     "saved_model": str(tmp_path / "export" / "saved_model")}
    assert sorted(os.listdir(tmp_path)) == ["export"]  # no temp folders left
    x = {k: rng.random((3, S, S, 1), dtype=np.float32) for k in ("frontal", "lateral")}
    expected = np.asarray(model.predict(x, verbose=0))
    args = dict(paths, out_sm=str(tmp_path / "sm.npy"), out_keras=str(tmp_path / "k.npy"))
    for k, v in x.items():
        np.save(tmp_path / f"{k}.npy", v)
        args[k] = str(tmp_path / f"{k}.npy")
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", FRESH, json.dumps(args)], env=env,
                          capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert np.load(tmp_path / "sm.npy").shape == (3, S, S, S, 1)
    np.testing.assert_allclose(np.load(tmp_path / "sm.npy"), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "k.npy"), expected, rtol=1e-5, atol=1e-6)


def test_export_replaces_an_earlier_export_but_never_a_users_folder(tmp_path):
    out = tmp_path / "export"
    export_model(_model(), out)
    (out / "stale.txt").write_text("old")  # an earlier export, with a leftover
    export_model(_model(), out)
    assert sorted(os.listdir(out)) == ["model.keras", "saved_model"]
    assert sorted(os.listdir(tmp_path)) == ["export"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("precious")
    with pytest.raises(InputError, match="mine: holds other files \\(thesis.txt\\)"):
        export_model(_model(), mine)
    assert sorted(os.listdir(mine)) == ["thesis.txt"] and (mine / "thesis.txt").read_text() == "precious"
    export_model(_model(), mine, overwrite=True)  # only when asked
    assert sorted(os.listdir(mine)) == ["model.keras", "saved_model"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        export_model(_model(), tmp_path / "file")


def test_load_keras_model_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_keras_model(tmp_path / "missing.keras")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(InputError, match="bad.keras.*cannot load"):
        load_keras_model(bad)
    with pytest.raises(InputError, match="model.keras: model file not found"):
        load_keras_model(tmp_path)  # a folder without model.keras


def test_load_keras_model_from_file_or_export_folder(tmp_path, rng):
    model = _model()
    x = {k: rng.random((2, S, S, 1), dtype=np.float32) for k in ("frontal", "lateral")}
    expected = np.asarray(model.predict(x, verbose=0))
    model.save(tmp_path / "m.keras")
    (tmp_path / "folder").mkdir()
    model.save(tmp_path / "folder" / "model.keras")
    for path in (tmp_path / "m.keras", tmp_path / "folder"):
        got = np.asarray(load_keras_model(path).predict(x, verbose=0))
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_export_carries_the_run_config_into_the_saved_model(tmp_path):
    config = {"row": "x", "data": {"window": [-100.0, 900.0], "fov_mm": 350.0}}
    paths = export_model(_model(), tmp_path / "export", config=config)
    for path in (tmp_path / "export" / "config.json",
                 os.path.join(paths["saved_model"], "assets.extra", "config.json")):
        with open(path) as f:
            assert json.load(f) == config


PLAIN_KERAS = """
import sys, keras, numpy as np
import xprospect_tf
model = keras.models.load_model(sys.argv[1])
x = {k: np.zeros((1, 16, 16, 1), np.float32) for k in ("frontal", "lateral")}
print(model.predict_on_batch(x).shape)
"""


def test_importing_the_package_lets_plain_keras_load_its_models(tmp_path):
    from xprospect_tf.models.reconstruction import build_reconstruction_model

    path = str(tmp_path / "model.keras")
    build_reconstruction_model(size=16, dense_units=4, base_filters=2, projinj=True).save(path)
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", PLAIN_KERAS, path], env=env, capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(__file__)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("(1, 16, 16, 16, 1)")
