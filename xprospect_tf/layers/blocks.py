"""Convolution block and resampling helpers shared by the 2D encoders and 3D decoders.

One implementation serves 2D and 3D (``spatial_dims``), as MONAI does. Every
convolution uses SELU with ``lecun_normal`` initialization and no batch
normalization: SELU networks self-normalize (Klambauer et al., 2017). XprospeCT
(Paulson et al., 2024) uses SELU "in every experiment" (the note under its Table 1:
faster and better training than ReLU followed by batch normalization); the kernel
size, two convolutions per block and ``lecun_normal`` are ours.
"""

import keras

KERNEL_INITIALIZER = "lecun_normal"
ACTIVATION = "selu"

_CONV = {2: keras.layers.Conv2D, 3: keras.layers.Conv3D}
_POOL = {2: keras.layers.MaxPooling2D, 3: keras.layers.MaxPooling3D}
_UPSAMPLE = {2: keras.layers.UpSampling2D, 3: keras.layers.UpSampling3D}


def _check_spatial_dims(spatial_dims):
    if spatial_dims not in _CONV:
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")


def selu_conv(filters, spatial_dims, name, kernel_size=3, activation=ACTIVATION, bias_initializer="zeros",
              dtype=None):
    """A 'same'-padded convolution with SELU and lecun_normal initialization.

    Args:
        filters: number of output channels.
        spatial_dims: 2 (Conv2D) or 3 (Conv3D).
        name: the layer's name.
        kernel_size: kernel side (3 by default; 1 for channel mixing).
        activation: activation (``"selu"`` by default).
        bias_initializer: the bias's Keras initializer (zeros by default).
        dtype: the layer's dtype policy (``None``: Keras' current default policy).

    Returns:
        An unbuilt ``keras.layers.Conv2D`` or ``Conv3D``.

    Example:
        >>> tuple(selu_conv(4, 3, "c")(keras.ops.zeros((1, 8, 8, 8, 2))).shape)
        (1, 8, 8, 8, 4)
    """
    _check_spatial_dims(spatial_dims)
    return _CONV[spatial_dims](
        filters, kernel_size, padding="same", activation=activation,
        kernel_initializer=KERNEL_INITIALIZER, bias_initializer=bias_initializer, name=name, dtype=dtype,
    )


def downsample(spatial_dims, name):
    """A 2x max-pooling layer (the UNet encoder's down-sampling step).

    Args:
        spatial_dims: 2 or 3.
        name: the layer's name.

    Returns:
        An unbuilt ``MaxPooling2D``/``MaxPooling3D`` with pool size 2.

    Example:
        >>> tuple(downsample(2, "down")(keras.ops.zeros((1, 8, 8, 1))).shape)
        (1, 4, 4, 1)
    """
    _check_spatial_dims(spatial_dims)
    return _POOL[spatial_dims](pool_size=2, name=name)


def upsample(spatial_dims, name):
    """A 2x nearest-neighbour up-sampling layer (the decoder's up-sampling step).

    Args:
        spatial_dims: 2 or 3.
        name: the layer's name.

    Returns:
        An unbuilt ``UpSampling2D``/``UpSampling3D`` with factor 2.

    Example:
        >>> tuple(upsample(3, "up")(keras.ops.zeros((1, 4, 4, 4, 1))).shape)
        (1, 8, 8, 8, 1)
    """
    _check_spatial_dims(spatial_dims)
    return _UPSAMPLE[spatial_dims](size=2, name=name)


@keras.saving.register_keras_serializable(package="xprospect_tf")
class ConvBlock(keras.layers.Layer):
    """``convs`` x (3^d convolution + SELU), then optional AlphaDropout.

    The UNet building block of XprospeCT (Paulson et al., 2024; SELU is the
    paper's, the block's layout ours): 'same' padding keeps the spatial shape, ``lecun_normal`` initialization
    and SELU keep activations self-normalized, so there is no batch norm.
    AlphaDropout is the dropout that preserves SELU's self-normalization.

    Args:
        filters: output channels of every convolution.
        spatial_dims: 2 for images ``(b, h, w, c)``, 3 for volumes ``(b, d, h, w, c)``.
        convs: number of convolutions (2, as in a UNet).
        dropout: AlphaDropout rate after the last convolution (0 disables it).
        **kwargs: passed to ``keras.layers.Layer``.

    Call arguments:
        inputs: a ``(batch, *spatial, channels)`` tensor.
        training: whether dropout is active.

    Example:
        >>> tuple(ConvBlock(4, spatial_dims=2)(keras.ops.zeros((1, 8, 8, 1))).shape)
        (1, 8, 8, 4)
    """

    def __init__(self, filters, spatial_dims=2, convs=2, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        _check_spatial_dims(spatial_dims)
        self.filters = filters
        self.spatial_dims = spatial_dims
        self.convs = convs
        self.dropout = dropout
        self.conv_layers = [
            selu_conv(filters, spatial_dims, name=f"conv_{i}") for i in range(convs)
        ]
        self.dropout_layer = keras.layers.AlphaDropout(dropout, name="dropout") if dropout else None

    def build(self, input_shape):
        shape = input_shape
        for conv in self.conv_layers:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
        self.built = True

    def call(self, inputs, training=None):
        x = inputs
        for conv in self.conv_layers:
            x = conv(x)
        if self.dropout_layer is not None:
            x = self.dropout_layer(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def internal_output_shapes(self, input_shape):
        """Shapes of the tensors made inside the block besides its output (for the
        tensor-size guard): every convolution but the last."""
        return [self.compute_output_shape(input_shape)] * (self.convs - 1)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, spatial_dims=self.spatial_dims,
            convs=self.convs, dropout=self.dropout,
        )
        return config
