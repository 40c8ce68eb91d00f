"""Distribution strategy by name (TensorFlow only).

``mirrored`` replicates the model on several devices (GPUs, or logical CPUs in
tests) and averages gradients across replicas each step; Keras splits each
global batch across the replicas, so the global batch is the per-replica batch
times the number of replicas.
"""

import logging

from xprospect_tf.errors import ConfigError

log = logging.getLogger(__name__)

STRATEGIES = ("default", "mirrored")


def get_strategy(name="default", devices=None):
    """Return a ``tf.distribute`` strategy.

    Args:
        name: ``"default"`` (the current strategy, a single device) or
            ``"mirrored"`` (``tf.distribute.MirroredStrategy``).
        devices: for ``"mirrored"``, the devices to replicate on (e.g.
            ``["/gpu:0", "/gpu:1"]``); None uses all visible GPUs (or the CPU).

    Returns:
        a ``tf.distribute.Strategy``; build and compile the model under its ``scope()``.

    Example:
        >>> import keras
        >>> strategy = get_strategy("mirrored", devices=["/cpu:0"])
        >>> with strategy.scope():
        ...     model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        ...     model.compile("adam", "mse")
        >>> strategy.num_replicas_in_sync
        1
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ConfigError(f"train.strategy: unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    if name == "default":
        if devices:
            raise ConfigError("train.strategy: devices can only be given with strategy 'mirrored'")
        return tf.distribute.get_strategy()
    cross_device_ops = None  # NCCL all-reduce between GPUs
    if not tf.config.list_logical_devices("GPU"):
        # CPU replicas (tests): collective all-reduce keys collide when a process creates
        # several MirroredStrategy objects; reducing on one device avoids collectives.
        cross_device_ops = tf.distribute.ReductionToOneDevice()
    strategy = tf.distribute.MirroredStrategy(devices=devices, cross_device_ops=cross_device_ops)
    log.info("MirroredStrategy on %d replica(s)", strategy.num_replicas_in_sync)
    return strategy


def global_batch_size(per_replica, strategy):
    """The batch size to feed ``fit``: ``per_replica * strategy.num_replicas_in_sync``.

    Example:
        >>> global_batch_size(2, get_strategy())
        2
    """
    return int(per_replica) * int(strategy.num_replicas_in_sync)
