"""Training and scoring the small classifiers of the classification protocol (``models.classifiers``)."""

import numpy as np


def fit_classifier(name, size, inputs, labels, *, filters=8, epochs=30, batch_size=8, learning_rate=1e-3,
                   seed=0, run_eagerly=False):
    """Build classifier ``name`` and train it on ``inputs`` with binary cross-entropy (Adam).

    Args:
        name: a key of :data:`~xprospect_tf.models.classifiers.CLASSIFIERS`.
        size: cube / image side of the inputs.
        inputs: ``{"ct": (N, S, S, S, 1)}`` for a volume classifier, ``{"frontal",
            "lateral": (N, S, S, 1)}`` for an X-ray classifier (float32 in [0, 1]).
        labels: ``(N,)`` 0/1.
        filters: the classifier's first-level channels.
        epochs, batch_size, learning_rate: of ``fit`` (cases shuffled every epoch).
        seed: seed of the weights and the shuffling (``keras.utils.set_random_seed``).
        run_eagerly: for debugging.

    Returns:
        the trained ``keras.Model``.

    Example:
        >>> x = np.zeros((4, 8, 8, 8, 1), np.float32); x[2:, 4, 4, 4] = 1.0
        >>> model = fit_classifier("cnn3d", 8, {"ct": x}, [0, 0, 1, 1], filters=2, epochs=1)
        >>> classifier_scores(model, {"ct": x}).shape
        (4,)
    """
    import keras

    from xprospect_tf.models.classifiers import build_classifier

    keras.utils.set_random_seed(int(seed))
    model = build_classifier(name, size, filters=filters)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy",
                  run_eagerly=run_eagerly)
    y = np.asarray(labels, np.float32).reshape(-1, 1)
    model.fit(dict(inputs), y, epochs=int(epochs), batch_size=int(batch_size), shuffle=True, verbose=0)
    return model


def classifier_scores(model, inputs, batch_size=16):
    """The model's scores (probability of the positive class) of every case, as float64 ``(N,)``."""
    return np.asarray(model.predict(dict(inputs), batch_size=batch_size, verbose=0), np.float64).reshape(-1)
