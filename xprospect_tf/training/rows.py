"""A Table 1 row's Keras model, built from its resolved configuration.

One function per question a workflow asks of a row: which model it trains
(built and compiled: the row's architecture, loss, optimizer and metric), and
which model stands for a baseline row. Both return models with the same
inputs (``frontal``, ``lateral``) and output (``ct``), so evaluation, export
and prediction treat every row alike.
"""

import contextlib


def build_compiled_model(config, strategy=None):
    """Build and compile the Keras model of a trained row.

    Args:
        config: the row's :class:`~xprospect_tf.config.RunConfig`.
        strategy: a ``tf.distribute`` strategy to build under (``None``: the default).

    Returns:
        a compiled ``keras.Model``: ``config.model`` at ``config.data.size``,
        ``config.train``'s loss and optimizer, PSNR as a metric.

    Example:
        >>> from xprospect_tf.config import load_experiments
        >>> cfg = load_experiments().resolve("64-Dense", "smoke")
        >>> model = build_compiled_model(cfg)
        >>> model.loss.name, type(model.optimizer).__name__  # optimizer names get suffixes (adam_2)
        ('mean_squared_error', 'Adam')
    """
    from xprospect_tf.models.reconstruction import build_model
    from xprospect_tf.training.losses import get_loss
    from xprospect_tf.training.metrics import PSNR
    from xprospect_tf.training.optimizers import get_optimizer

    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = build_model(config.model, config.data.size)
        model.compile(
            optimizer=get_optimizer(config.train.optimizer, config.train.learning_rate),
            loss=get_loss(config.train.loss),
            metrics=[PSNR(name="psnr")],
            run_eagerly=config.train.run_eagerly,
        )
    return model


def is_baseline(config):
    """Whether the row is a baseline (a model computed without training)."""
    from xprospect_tf.models.baselines import BASELINES

    return config.model.architecture in BASELINES


def build_baseline_model(config, train):
    """The Keras model of a baseline row.

    Args:
        config: the row's :class:`~xprospect_tf.config.RunConfig`.
        train: the training split, ``((ap, lateral), ct)`` elements (the
            mean-volume baseline averages its volumes).

    Returns:
        a ``keras.Model`` with the reconstruction model's inputs and output.
    """
    from xprospect_tf.models.baselines import build_baseline

    return build_baseline(config.model.architecture, config.data.size, train)
