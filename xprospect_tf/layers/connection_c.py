"""Connection-C: fuse the coronal and sagittal branch volumes in canonical (z, x, y) order."""

import keras
from keras import ops


def sagittal_to_canonical(volume):
    """Swap axes 2 and 3 of a ``(b, z, y, x, c)`` sagittal-branch volume -> ``(b, z, x, y, c)``.

    Example:
        >>> tuple(sagittal_to_canonical(keras.ops.zeros((1, 4, 3, 5, 2))).shape)
        (1, 4, 5, 3, 2)
    """
    return ops.transpose(volume, (0, 1, 3, 2, 4))


@keras.saving.register_keras_serializable(package="xprospect_tf")
class ConnectionC(keras.layers.Layer):
    """Average the coronal volume with the axis-swapped sagittal volume.

    XprospeCT (Paulson et al., 2024, section 3.3, "Connection-C"): the sagittal branch
    expands its 2D features along ``x``, so its volume is ``(b, z, y, x, c)``;
    swapping axes 2 and 3 makes it orthogonal to the coronal branch's
    ``(b, z, x, y, c)`` volume, and the two are averaged. No weights.

    Args:
        **kwargs: passed to ``keras.layers.Layer``.

    Call arguments:
        inputs: ``[coronal, sagittal]``, shapes ``(b, z, x, y, c)`` and ``(b, z, y, x, c)``.

    Example:
        >>> cor, sag = keras.ops.zeros((1, 4, 4, 2, 3)), keras.ops.ones((1, 4, 2, 4, 3))
        >>> tuple(ConnectionC()([cor, sag]).shape)
        (1, 4, 4, 2, 3)
    """

    def call(self, inputs):
        coronal, sagittal = inputs
        return (coronal + sagittal_to_canonical(sagittal)) / 2.0

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])
