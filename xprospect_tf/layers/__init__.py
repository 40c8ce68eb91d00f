"""Keras layers of the XprospeCT reconstruction model (Paulson et al., 2024).

Importing this package registers every layer with Keras' serialization
(package ``xprospect_tf``), so ``keras.saving.load_model`` can rebuild saved
models that use them.
"""

from xprospect_tf.layers.back_projection import BackProjection
from xprospect_tf.layers.blocks import ConvBlock, downsample, selu_conv, upsample
from xprospect_tf.layers.connection_a import ConnectionA
from xprospect_tf.layers.connection_b import ConnectionB
from xprospect_tf.layers.connection_c import ConnectionC, sagittal_to_canonical
from xprospect_tf.layers.connection_d import ConnectionD

__all__ = [
    "BackProjection",
    "ConnectionA",
    "ConnectionB",
    "ConnectionC",
    "ConnectionD",
    "ConvBlock",
    "downsample",
    "sagittal_to_canonical",
    "selu_conv",
    "upsample",
]
