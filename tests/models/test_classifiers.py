"""The classification backbones: shapes, registry, saving, and that they learn an easy separable task."""

import numpy as np
import pytest

import keras
from xprospect_tf.evaluation.roc import roc_auc
from xprospect_tf.models.classifiers import (
    CLASSIFIERS,
    VOLUME,
    XRAYS,
    build_classifier,
    classifiers_for,
)
from xprospect_tf.training.classifiers import classifier_scores, fit_classifier


def _inputs(name, n, size, rng):
    if CLASSIFIERS[name].inputs == VOLUME:
        return {"ct": rng.random((n, size, size, size, 1), dtype=np.float32)}
    return {"frontal": rng.random((n, size, size, 1), dtype=np.float32),
            "lateral": rng.random((n, size, size, 1), dtype=np.float32)}


@pytest.mark.parametrize("name, size, filters, levels", [
    ("cnn3d", 16, 2, None), ("cnn3d", 8, 3, 1), ("cnn2d", 16, 2, None), ("cnn2d", 32, 2, 3),
])
def test_output_is_one_probability_per_case(name, size, filters, levels, rng):
    model = build_classifier(name, size, filters=filters, levels=levels)
    scores = np.asarray(model(_inputs(name, 3, size, rng)))
    assert scores.shape == (3, 1) and np.all((scores > 0) & (scores < 1))
    # width doubles per level, capped at 4x; one tower per view for the X-ray pair
    convs = [layer for layer in model.layers if "conv" in layer.name]
    n_levels = levels or min(3, int(np.log2(size)) - 2)
    assert len(convs) == n_levels * (2 if name == "cnn2d" else 1)
    assert max(c.filters for c in convs) == filters * min(2 ** (n_levels - 1), 4)


def test_registry_kinds_and_unknown_name():
    assert classifiers_for(VOLUME) == ("cnn3d",) and classifiers_for(XRAYS) == ("cnn2d",)
    from xprospect_tf.errors import ConfigError

    with pytest.raises(ConfigError, match="cnn3d"):
        build_classifier("densenet121", 16)
    with pytest.raises(ValueError, match="too small"):
        build_classifier("cnn3d", 8, levels=4)


def test_save_and_reload_give_the_same_scores(tmp_path, rng):
    model = build_classifier("cnn2d", 16, filters=2)
    x = _inputs("cnn2d", 2, 16, rng)
    path = str(tmp_path / "clf.keras")
    model.save(path)
    np.testing.assert_allclose(keras.models.load_model(path).predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)


def _blob_task(name, n, size, rng):
    """Noise; the positives carry a bright 2-voxel blob at a random place (one view for X-rays)."""
    y = np.arange(n) % 2
    x = _inputs(name, n, size, rng)
    key = "ct" if "ct" in x else "frontal"
    for i in np.flatnonzero(y):
        corner = rng.integers(0, size - 2, x[key].ndim - 2)
        index = (i, *(slice(c, c + 2) for c in corner), 0)
        x[key][index] += 1.5
    return x, y


@pytest.mark.parametrize("name", ["cnn3d", "cnn2d"])
def test_learns_an_easy_separable_task(name, rng):
    size = 8 if name == "cnn3d" else 16
    x, y = _blob_task(name, 48, size, rng)
    train, test = np.arange(32), np.arange(32, 48)
    take = lambda index: {k: v[index] for k, v in x.items()}  # noqa: E731
    model = fit_classifier(name, size, take(train), y[train], filters=4, epochs=25, batch_size=8,
                           learning_rate=3e-3, seed=0)
    scores = classifier_scores(model, take(test))
    assert roc_auc(y[test], scores) >= 0.9  # held-out cases, new blob places
