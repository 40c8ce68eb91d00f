"""Two honest baselines that need no training (Table 1's reference rows), as Keras models.

- ``mean-volume``: predict the training set's mean CT for every case. A model that
  does not beat it has learned nothing from the X-rays.
- ``back-projection``: the simplified back-projection of the two X-rays (the
  frontal image smeared along ``y``, the lateral along ``x``, averaged): the
  :class:`~xprospect_tf.layers.BackProjection` layer with ``combine="mean"``.
  It is exact for a volume that is constant along both ray directions.

Both are built like the reconstruction model (inputs ``frontal`` and
``lateral``, output ``ct``), so they are evaluated, saved, exported and
served through the same code as a trained row. Neither paper reports them:
they are this project's reference points.
"""

import keras
import numpy as np
from keras import ops

from xprospect_tf.layers import BackProjection


@keras.saving.register_keras_serializable(package="xprospect_tf")
class ConstantVolume(keras.layers.Layer):
    """Output one stored volume for every case of the batch (the mean-volume baseline).

    The volume is a non-trainable weight (set it with ``set_weights``), so it
    is saved with the model.

    Args:
        size: cube side ``S``.
        **kwargs: passed to ``keras.layers.Layer``.

    Call arguments:
        inputs: ``[frontal, lateral]``; only their batch size is used.

    Returns:
        ``(batch, S, S, S, 1)``.

    Example:
        >>> layer = ConstantVolume(4)
        >>> tuple(layer([keras.ops.zeros((2, 4, 4, 1))] * 2).shape)
        (2, 4, 4, 4, 1)
    """

    def __init__(self, size, **kwargs):
        super().__init__(**kwargs)
        self.size = int(size)

    def build(self, input_shape):
        self.volume = self.add_weight(
            shape=(self.size,) * 3 + (1,), initializer="zeros", trainable=False, name="volume")

    def call(self, inputs):
        batch = ops.shape(inputs[0])[0]
        return ops.broadcast_to(self.volume[None], (batch,) + (self.size,) * 3 + (1,))

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0],) + (self.size,) * 3 + (1,)

    def get_config(self):
        return {**super().get_config(), "size": self.size}


def mean_volume(dataset):
    """Voxel-wise mean of the ``ct`` volumes of a ``((ap, lateral), ct)`` dataset.

    Args:
        dataset: an iterable (e.g. ``tf.data.Dataset``, batched or not) of
            ``((ap, lateral), ct)`` with ``ct`` shaped ``(..., S, S, S, 1)``.

    Returns:
        float32 array ``(S, S, S, 1)``, accumulated in float64.

    Example:
        >>> ones = ((None, np.ones((2, 2, 2, 2, 1))),)
        >>> float(mean_volume(ones).mean())
        1.0
    """
    total, count = None, 0
    for _, ct in dataset:
        ct = np.asarray(ct, dtype=np.float64)
        batch = ct.reshape((-1,) + ct.shape[-4:])
        total = batch.sum(axis=0) if total is None else total + batch.sum(axis=0)
        count += batch.shape[0]
    if not count:
        raise ValueError("mean_volume: the dataset is empty")
    return (total / count).astype(np.float32)


def _inputs(size):
    return [keras.Input((size, size, 1), name="frontal"), keras.Input((size, size, 1), name="lateral")]


def build_mean_volume_model(size, train):
    """The mean-volume baseline: outputs the mean CT of ``train`` for any X-rays.

    Args:
        size: cube side.
        train: the training set, ``((ap, lateral), ct)`` elements (see :func:`mean_volume`).

    Returns:
        a ``keras.Model`` named ``mean_volume``.
    """
    inputs = _inputs(size)
    layer = ConstantVolume(size, name="ct")
    model = keras.Model(inputs, layer(inputs), name="mean_volume")
    layer.set_weights([mean_volume(train)])
    return model


def build_back_projection_model(size, train=None):
    """The back-projection baseline: the mean of the two X-rays smeared through the cube.

    Args:
        size: cube side.
        train: unused (the baseline learns nothing); accepted so every
            baseline builder has the same signature.

    Returns:
        a ``keras.Model`` named ``back_projection``.
    """
    inputs = _inputs(size)
    return keras.Model(inputs, BackProjection(combine="mean", name="ct")(inputs), name="back_projection")


BASELINES = {
    "mean-volume": build_mean_volume_model,
    "back-projection": build_back_projection_model,
}
"""Baseline name (``model.architecture``) -> builder ``(size, train) -> keras.Model``."""


def build_baseline(architecture, size, train):
    """Build the baseline ``architecture`` names (see :data:`BASELINES`)."""
    return BASELINES[architecture](size, train)
