"""Connection-A: the dense bottleneck that turns 2D encoder features into a small 3D grid."""

import math

import keras

from xprospect_tf.layers.blocks import ACTIVATION, KERNEL_INITIALIZER


@keras.saving.register_keras_serializable(package="xprospect_tf")
class ConnectionA(keras.layers.Layer):
    """Flatten -> Dense(``dense_units``) -> Dense(g^3 * C) -> reshape to ``(g, g, g, C)``.

    XprospeCT (Paulson et al., 2024, sections 3.3 and 4.3, "Connection-A"): the
    paper fixes the dense layer "at the apex" of each UNet, of 64 or 512 neurons
    (Table 1 rows "64-Dense" / "512-Dense"), and an output "reshaped to a uniform
    three-dimensional" tensor "regardless of the input dimensionality". Ours: the
    bottleneck is flattened (so any input rank works) and a second fully
    connected layer's output is reshaped into the first volume of the 3D decoder.

    Args:
        dense_units: units of the first (bottleneck) Dense layer.
        grid_size: side ``g`` of the output cube.
        filters: channels ``C`` of the output volume.
        **kwargs: passed to ``keras.layers.Layer``.

    Call arguments:
        inputs: a ``(batch, ...)`` tensor with known non-batch dimensions.

    Example:
        >>> tuple(ConnectionA(8, grid_size=2, filters=3)(keras.ops.zeros((1, 4, 4, 5))).shape)
        (1, 2, 2, 2, 3)
    """

    def __init__(self, dense_units, grid_size, filters, **kwargs):
        super().__init__(**kwargs)
        self.dense_units = dense_units
        self.grid_size = grid_size
        self.filters = filters
        policy = self.dtype_policy  # the sublayers compute as this layer does, also once reloaded
        self.flatten = keras.layers.Flatten(name="flatten", dtype=policy)
        self.bottleneck = keras.layers.Dense(
            dense_units, activation=ACTIVATION, kernel_initializer=KERNEL_INITIALIZER,
            name="bottleneck", dtype=policy,
        )
        self.expand = keras.layers.Dense(
            grid_size**3 * filters, activation=ACTIVATION,
            kernel_initializer=KERNEL_INITIALIZER, name="expand", dtype=policy,
        )
        self.reshape = keras.layers.Reshape((grid_size,) * 3 + (filters,), name="reshape", dtype=policy)

    def build(self, input_shape):
        flat = (input_shape[0], math.prod(input_shape[1:]))
        self.bottleneck.build(flat)
        self.expand.build((input_shape[0], self.dense_units))
        self.built = True

    def call(self, inputs):
        return self.reshape(self.expand(self.bottleneck(self.flatten(inputs))))

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + (self.grid_size,) * 3 + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(dense_units=self.dense_units, grid_size=self.grid_size, filters=self.filters)
        return config
