import os

import keras
import numpy as np
import pytest

import xprospect_tf  # noqa: F401  (registers the package's Keras objects)
from xprospect_tf.models.baselines import BASELINES, build_baseline


def _pairs(rng, n, s):
    ap = rng.random((n, s, s, 1), dtype=np.float32)
    lat = rng.random((n, s, s, 1), dtype=np.float32)
    ct = rng.random((n, s, s, s, 1), dtype=np.float32)
    return ap, lat, ct


def test_back_projection_baseline_is_the_mean_of_the_two_smears(rng):
    ap, lat, _ = _pairs(rng, 3, 8)
    model = build_baseline("back-projection", 8, None)
    got = model.predict_on_batch({"frontal": ap, "lateral": lat})
    # ap[z, x] is constant along y, lat[z, y] along x
    expected = (ap[:, :, :, None, 0] + lat[:, :, None, :, 0]) / 2
    np.testing.assert_allclose(got[..., 0], expected, atol=1e-7)


def test_mean_volume_baseline_predicts_the_training_mean_for_any_input(rng):
    ap, lat, ct = _pairs(rng, 5, 8)
    train = [((ap[i:i + 2], lat[i:i + 2]), ct[i:i + 2]) for i in range(0, 5, 2)]  # uneven batches
    model = build_baseline("mean-volume", 8, train)
    got = model.predict_on_batch({"frontal": ap[:3], "lateral": lat[:3]})
    assert got.shape == (3, 8, 8, 8, 1)
    for i in range(3):
        np.testing.assert_allclose(got[i], ct.astype(np.float64).mean(axis=0), atol=1e-6)


@pytest.mark.parametrize("architecture", sorted(BASELINES))
def test_baselines_reload_with_plain_keras_load_model(architecture, rng, tmp_path):
    ap, lat, ct = _pairs(rng, 2, 8)
    model = build_baseline(architecture, 8, [((ap, lat), ct)])
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    again = keras.models.load_model(path)
    x = {"frontal": ap, "lateral": lat}
    np.testing.assert_allclose(again.predict_on_batch(x), model.predict_on_batch(x), atol=0)
    assert [t.name for t in again.inputs] == ["frontal", "lateral"]
