"""Reconstruction losses by name (the paper's Table 1 trains with MSE or MAE)."""

import keras

from xprospect_tf.errors import ConfigError

LOSSES = {
    "mse": keras.losses.MeanSquaredError,
    "mae": keras.losses.MeanAbsoluteError,
}


def get_loss(name):
    """Return a new Keras loss for ``name``.

    Args:
        name: ``"mse"`` (mean squared error) or ``"mae"`` (mean absolute error).

    Returns:
        a ``keras.losses.Loss`` instance.

    Example:
        >>> get_loss("mae").name
        'mean_absolute_error'
    """
    if name not in LOSSES:
        raise ConfigError(f"train.loss: unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[name]()
