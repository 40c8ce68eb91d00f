"""Back-projection of the two X-rays into a volume, for projection injection (ProjInj)."""

import keras
from keras import ops

from xprospect_tf.errors import ConfigError

COMBINE_MODES = ("channels", "mean")


@keras.saving.register_keras_serializable(package="xprospect_tf")
class BackProjection(keras.layers.Layer):
    """Smear the frontal image along ``y`` and the lateral along ``x``, at 1/``pool_size`` scale.

    XprospeCT (Paulson et al., 2024, section 4.4, "512-ProjInj"): "a simplified
    version of back projection with the orthogonal X-ray images" is injected
    into the model. Where and how is ours: the X-rays are back-projected through
    the volume and concatenated into the fusion decoder at every scale, so each
    scale sees the raw projections directly. The images are average-pooled by ``pool_size``
    first; since a smear is constant along its depth axis, this equals
    average-pooling the full-size back-projected volume.

    Args:
        pool_size: down-sampling factor of the output (1: full size).
        combine: ``"channels"`` keeps the two smeared images as separate
            channels (the default; the next convolution learns how to mix
            them); ``"mean"`` averages them (the plain back-projection).
        **kwargs: passed to ``keras.layers.Layer``.

    Call arguments:
        inputs: ``[frontal, lateral]`` with shapes ``(b, z, x, c)`` (``ap[z, x]``)
            and ``(b, z, y, c)`` (``lat[z, y]``).

    Returns:
        ``(b, z/p, x/p, y/p, 2c)`` for ``"channels"`` (frontal first), or
        ``(b, z/p, x/p, y/p, c)`` for ``"mean"``.

    Example:
        >>> ap, lat = keras.ops.ones((1, 8, 8, 1)), keras.ops.zeros((1, 8, 8, 1))
        >>> tuple(BackProjection(pool_size=2)([ap, lat]).shape)
        (1, 4, 4, 4, 2)
    """

    def __init__(self, pool_size=1, combine="channels", **kwargs):
        super().__init__(**kwargs)
        if combine not in COMBINE_MODES:
            raise ConfigError(
                f"BackProjection combine={combine!r}: use one of {', '.join(COMBINE_MODES)}"
            )
        if not isinstance(pool_size, int) or pool_size < 1:
            raise ConfigError(f"BackProjection pool_size={pool_size!r}: use a positive integer")
        self.pool_size = pool_size
        self.combine = combine

    def _pool(self, image):
        if self.pool_size == 1:
            return image
        return ops.average_pool(image, self.pool_size, strides=self.pool_size, padding="valid")

    def call(self, inputs):
        frontal, lateral = (self._pool(image) for image in inputs)
        depth_y, depth_x = lateral.shape[2], frontal.shape[2]
        frontal = ops.repeat(ops.expand_dims(frontal, 3), depth_y, axis=3)
        lateral = ops.repeat(ops.expand_dims(lateral, 2), depth_x, axis=2)
        if self.combine == "mean":
            return (frontal + lateral) / 2.0
        return ops.concatenate([frontal, lateral], axis=-1)

    def compute_output_shape(self, input_shape):
        (b, z, x, c), (_, _, y, _) = input_shape
        p = self.pool_size
        channels = c if self.combine == "mean" else (None if c is None else 2 * c)
        return (b, z // p, x // p, y // p, channels)

    def get_config(self):
        config = super().get_config()
        config.update(pool_size=self.pool_size, combine=self.combine)
        return config
