"""Connection-D: Connection-C fusion concatenated with the fusion decoder's previous output."""

import keras
from keras import ops

from xprospect_tf.layers.connection_c import ConnectionC


@keras.saving.register_keras_serializable(package="xprospect_tf")
class ConnectionD(keras.layers.Layer):
    """Concatenate ``ConnectionC([coronal, sagittal])`` with the previous fusion layer.

    XprospeCT (Paulson et al., 2024, section 3.3, "Connection-D"): at every scale above the
    bottleneck, the fusion decoder's up-sampled output is joined (channel
    concatenation) with the Connection-C average of the two branch decoders
    at that scale. No weights.

    Args:
        **kwargs: passed to ``keras.layers.Layer``.

    Call arguments:
        inputs: ``[coronal, sagittal, previous]`` with shapes ``(b, z, x, y, c)``,
            ``(b, z, y, x, c)`` and ``(b, z, x, y, p)``.

    Returns:
        ``(b, z, x, y, c + p)``: the fused branches first, then ``previous``.

    Example:
        >>> cor, sag, prev = (keras.ops.zeros((1, 4, 4, 4, c)) for c in (2, 2, 3))
        >>> tuple(ConnectionD()([cor, sag, prev]).shape)
        (1, 4, 4, 4, 5)
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.fuse = ConnectionC(name="fuse")

    def build(self, input_shape):
        self.fuse.build(input_shape[:2])
        self.built = True

    def call(self, inputs):
        coronal, sagittal, previous = inputs
        return ops.concatenate([self.fuse([coronal, sagittal]), previous], axis=-1)

    def compute_output_shape(self, input_shape):
        fused, previous = tuple(input_shape[0]), tuple(input_shape[2])
        return fused[:-1] + (fused[-1] + previous[-1],)
