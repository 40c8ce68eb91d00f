"""Connection-B: a 2D skip feature map expanded along a new depth axis into 3D."""

import keras
from keras import ops

from xprospect_tf.layers.blocks import selu_conv


@keras.saving.register_keras_serializable(package="xprospect_tf")
class ConnectionB(keras.layers.Layer):
    """1x1 Conv2D to ``filters`` -> repeat along a new axis 3 -> 3^3 Conv3D.

    XprospeCT (Paulson et al., 2024, section 3.3, "Connection-B"): the skip
    connection of a 2D encoder level is lifted to 3D so it can be concatenated
    with the 3D decoder at the same scale, a Conv2D matching the channels and a
    Conv3D working on the expanded tensor (the paper's); the kernel sizes and the
    repetition along the new axis are ours. The new axis is the projection direction of
    the view: depth ``y`` for the coronal (frontal) branch, whose output is
    ``(b, z, x, y, c)``; depth ``x`` for the sagittal (lateral) branch, whose
    output is ``(b, z, y, x, c)`` until Connection-C swaps axes 2 and 3.

    Args:
        filters: channels of the Conv2D and Conv3D (the decoder's channels).
        depth: length of the new axis; ``None`` uses the input's width (a cube).
        **kwargs: passed to ``keras.layers.Layer``.

    Call arguments:
        inputs: a ``(batch, rows, cols, channels)`` tensor.

    Example:
        >>> tuple(ConnectionB(4)(keras.ops.zeros((1, 8, 8, 2))).shape)
        (1, 8, 8, 8, 4)
    """

    def __init__(self, filters, depth=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.depth = depth
        self.match = selu_conv(filters, 2, name="match", kernel_size=1)
        self.mix = selu_conv(filters, 3, name="mix")

    def _depth(self, input_shape):
        return self.depth if self.depth is not None else input_shape[2]

    def build(self, input_shape):
        self.match.build(input_shape)
        self.mix.build(self.compute_output_shape(input_shape)[:-1] + (self.filters,))
        self.built = True

    def call(self, inputs):
        x = self.match(inputs)
        x = ops.repeat(ops.expand_dims(x, 3), self._depth(inputs.shape), axis=3)
        return self.mix(x)

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        return (b, h, w, self._depth(input_shape), self.filters)

    def internal_output_shapes(self, input_shape):
        """The matched 2D feature and its repetition along depth (for the tensor-size guard)."""
        b, h, w, _ = input_shape
        return [(b, h, w, self.filters), self.compute_output_shape(input_shape)]

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, depth=self.depth)
        return config
