"""Optimizers by name (XprospeCT's Table 1 uses Adam or Nadam; X-ray2CTPA trains with AdamW)."""

import keras

from xprospect_tf.errors import ConfigError

OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "nadam": keras.optimizers.Nadam,
    "adamw": keras.optimizers.AdamW,  # Keras' default weight decay (0.004)
}
PASS_THROUGH = ("use_ema", "ema_momentum", "ema_overwrite_frequency", "clipnorm", "global_clipnorm")


def get_optimizer(name, learning_rate, **kwargs):
    """Return a new Keras optimizer for ``name``.

    Args:
        name: ``"adam"``, ``"nadam"`` or ``"adamw"``.
        learning_rate: the learning rate (a float or a Keras schedule).
        **kwargs: any of ``use_ema``, ``ema_momentum``, ``ema_overwrite_frequency``,
            ``clipnorm``, ``global_clipnorm``, passed to the optimizer.

    Returns:
        a ``keras.optimizers.Optimizer``.

    Example:
        >>> get_optimizer("nadam", 1e-4, clipnorm=1.0).clipnorm
        1.0
    """
    if name not in OPTIMIZERS:
        raise ConfigError(
            f"train.optimizer: unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}"
        )
    unknown = sorted(set(kwargs) - set(PASS_THROUGH))
    if unknown:
        raise ConfigError(
            f"get_optimizer: unsupported option(s) {', '.join(unknown)}; "
            f"supported: {', '.join(PASS_THROUGH)}"
        )
    return OPTIMIZERS[name](learning_rate=learning_rate, **kwargs)
