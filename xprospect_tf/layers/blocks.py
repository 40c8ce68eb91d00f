"""Convolution block and resampling helpers shared by the 2D encoders and 3D decoders.

One implementation serves 2D and 3D (``spatial_dims``), as MONAI does. Every
convolution uses SELU with ``lecun_normal`` initialization and no batch
normalization: SELU networks self-normalize (Klambauer et al., 2017). XprospeCT
(Paulson et al., 2024) uses SELU "in every experiment" (the note under its Table 1:
faster and better training than ReLU followed by batch normalization); the kernel
size, two convolutions per block and ``lecun_normal`` are ours.
"""

import math

import keras
import numpy as np
from keras import ops

KERNEL_INITIALIZER = "lecun_normal"
ACTIVATION = "selu"

_CONV = {2: keras.layers.Conv2D, 3: keras.layers.Conv3D}
_POOL = {2: keras.layers.MaxPooling2D, 3: keras.layers.MaxPooling3D}
_UPSAMPLE = {2: keras.layers.UpSampling2D, 3: keras.layers.UpSampling3D}


UPSAMPLED_TAPS = np.array([[0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]], np.float32)
"""Per axis, the 4 taps of a stride-2 transposed convolution as sums of the 3 taps ``k0, k1, k2``
of a 'same' convolution applied after 2x nearest up-sampling: ``[k2, k1 + k2, k0 + k1, k0]``.

Output ``o = 2i + p`` of the up-sampled convolution reads the low-resolution inputs ``i - 1`` (with
``k0``) and ``i`` (with ``k1 + k2``) for parity ``p = 0``, ``i`` (``k0 + k1``) and ``i + 1`` (``k2``) for
``p = 1``; the transposed convolution ('same', stride 2, 4 taps) multiplies input ``i`` by tap
``o - 2i + 1`` at output ``o``, which gives these four sums. Zero padding at high resolution is
zero padding at low resolution, so the borders are exact too."""

UPSAMPLED_MIN_POSITIONS = 8**3
"""A :class:`ConvBlock` with an ``upsampled`` input runs its first convolution's share of that input
as a transposed convolution on the low-resolution tensor when it has at least this many positions
(8^3 in 3D), and up-samples, concatenates and convolves (the definition) below that. Measured on
2 shared CPU cores (TF 2.21, float32, forward + backward of the first convolution, median of 7):
a 4^3 x 64 input with 32 skip channels -> 32 filters took 12.1 ms the definition's way and 14.0 ms
(batch 4: 20.4 vs 29.3 ms) transposed; 8^3 x 32 with 16 skip channels -> 16 filters 8.4 vs 8.7 ms
(batch 4: 39.9 vs 31.0 ms); 16^3 x 16 + 8 -> 8 89 vs 29 ms; 32^3 x 16 + 16 -> 16 806 vs 416 ms."""


def upsampled_conv_kernel(kernel):
    """The kernel of the stride-2 transposed convolution that equals 2x nearest up-sampling
    followed by a 'same' convolution with ``kernel``.

    Along each spatial axis the 3 taps become the 4 sums :data:`UPSAMPLED_TAPS`, so every output
    voxel costs ``2**d`` taps per input channel instead of ``3**d`` (the 8 parity classes of the
    up-sampled grid each see a 2x2x2 kernel of summed taps; the transposed convolution computes
    them all and interleaves them).

    Args:
        kernel: a ``(3,) * d + (in_channels, out_channels)`` convolution kernel, ``d`` = 2 or 3.

    Returns:
        A ``(4,) * d + (out_channels, in_channels)`` kernel for ``keras.ops.conv_transpose``
        with ``strides=2, padding="same"``.

    Example:
        >>> tuple(upsampled_conv_kernel(keras.ops.ones((3, 3, 3, 2, 5))).shape)
        (4, 4, 4, 5, 2)
    """
    d = len(kernel.shape) - 2
    if tuple(kernel.shape[:d]) != (3,) * d:
        raise ValueError(f"upsampled_conv_kernel needs a 3-tap kernel along every axis, got {tuple(kernel.shape)}")
    taps = ops.convert_to_tensor(UPSAMPLED_TAPS, dtype=kernel.dtype)
    out = kernel
    for _ in range(d):  # the first remaining spatial axis becomes the 4 sums, moved last
        out = ops.tensordot(out, taps, axes=[[0], [1]])
    # now (in, out, 4, ..., 4): move the spatial axes first, then (out_channels, in_channels)
    return ops.transpose(out, tuple(range(2, d + 2)) + (1, 0))


def _transposes(low_shape):
    """Whether a block's up-sampled input of ``low_shape`` (with batch and channels) is large
    enough for the transposed convolution (:data:`UPSAMPLED_MIN_POSITIONS`)."""
    spatial = tuple(low_shape)[1:-1]
    return None in spatial or math.prod(spatial) >= UPSAMPLED_MIN_POSITIONS


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
    """``convs`` x (3^d convolution + SELU), then optional AlphaDropout; optionally fed by
    a half-resolution input that it up-samples.

    The UNet building block of XprospeCT (Paulson et al., 2024; SELU is the
    paper's, the block's layout ours): 'same' padding keeps the spatial shape, ``lecun_normal`` initialization
    and SELU keep activations self-normalized, so there is no batch norm.
    AlphaDropout is the dropout that preserves SELU's self-normalization.

    With ``upsampled`` set, the block is a decoder step: its inputs are a list of tensors, the
    one at index ``upsampled`` at half the resolution of the others, and it computes what 2x
    nearest up-sampling of that input, concatenation of the list in order and the block would
    (the same weights: the first convolution's kernel has all the concatenated channels).
    The up-sampled tensor is never made (ours, issue #11): the first convolution's share of
    those channels is a stride-2 transposed convolution of the low-resolution tensor with
    summed taps (:func:`upsampled_conv_kernel`, 2^d instead of 3^d taps per output voxel),
    added to the 'same' convolution of the other inputs. Below :data:`UPSAMPLED_MIN_POSITIONS`
    low-resolution positions, where that is slower, the block up-samples and concatenates.

    Args:
        filters: output channels of every convolution.
        spatial_dims: 2 for images ``(b, h, w, c)``, 3 for volumes ``(b, d, h, w, c)``.
        convs: number of convolutions (2, as in a UNet).
        dropout: AlphaDropout rate after the last convolution (0 disables it).
        upsampled: ``None`` (one input tensor), or the index, in the list of inputs, of the
            half-resolution one.
        **kwargs: passed to ``keras.layers.Layer``.

    Call arguments:
        inputs: a ``(batch, *spatial, channels)`` tensor; with ``upsampled``, a list of them,
            ``inputs[upsampled]`` with half the spatial size of the others.
        training: whether dropout is active.

    Example:
        >>> tuple(ConvBlock(4, spatial_dims=2)(keras.ops.zeros((1, 8, 8, 1))).shape)
        (1, 8, 8, 4)
        >>> low, skip = keras.ops.zeros((1, 4, 4, 4, 3)), keras.ops.zeros((1, 8, 8, 8, 2))
        >>> tuple(ConvBlock(4, spatial_dims=3, upsampled=0)([low, skip]).shape)
        (1, 8, 8, 8, 4)
    """

    def __init__(self, filters, spatial_dims=2, convs=2, dropout=0.0, upsampled=None, **kwargs):
        super().__init__(**kwargs)
        _check_spatial_dims(spatial_dims)
        self.filters = filters
        self.spatial_dims = spatial_dims
        self.convs = convs
        self.dropout = dropout
        self.upsampled = upsampled
        self.conv_layers = [
            selu_conv(filters, spatial_dims, name=f"conv_{i}", dtype=self.dtype_policy) for i in range(convs)
        ]
        self.dropout_layer = (keras.layers.AlphaDropout(dropout, name="dropout", dtype=self.dtype_policy)
                              if dropout else None)

    def concatenated_shape(self, input_shape):
        """The shape of the tensor the first convolution reads: with ``upsampled``, the inputs
        up-sampled and concatenated (the tensor the block never makes)."""
        if self.upsampled is None:
            return tuple(input_shape)
        shapes = [tuple(s) for s in input_shape]
        low = shapes[self.upsampled]
        spatial = tuple(None if n is None else 2 * n for n in low[1:-1])
        return (low[0],) + spatial + (sum(s[-1] for s in shapes),)

    def build(self, input_shape):
        shape = self.concatenated_shape(input_shape)
        for conv in self.conv_layers:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
        self.built = True

    def call(self, inputs, training=None):
        first, *rest = self.conv_layers
        x = first(inputs) if self.upsampled is None else self._upsampled_first_conv(list(inputs))
        for conv in rest:
            x = conv(x)
        if self.dropout_layer is not None:
            x = self.dropout_layer(x, training=training)
        return x

    def transposes(self, input_shape):
        """Whether the first convolution runs on the low-resolution input (a transposed
        convolution, see :data:`UPSAMPLED_MIN_POSITIONS`) rather than on its up-sampled copy."""
        return self.upsampled is not None and _transposes(input_shape[self.upsampled])

    def _upsampled_first_conv(self, inputs):
        """The first convolution (with its activation) of the up-sampled, concatenated inputs."""
        conv = self.conv_layers[0]
        low = inputs.pop(self.upsampled)
        if not _transposes(low.shape):
            for axis in range(1, self.spatial_dims + 1):
                low = ops.repeat(low, 2, axis=axis)
            inputs.insert(self.upsampled, low)
            return conv(ops.concatenate(inputs, axis=-1))
        start = sum(t.shape[-1] for t in inputs[:self.upsampled])
        stop = start + low.shape[-1]
        kernel = conv.kernel  # (3,) * d + (all concatenated channels, filters)
        x = ops.conv_transpose(low, upsampled_conv_kernel(kernel[..., start:stop, :]), strides=2, padding="same")
        if inputs:
            full = inputs[0] if len(inputs) == 1 else ops.concatenate(inputs, axis=-1)
            others = ops.concatenate([kernel[..., :start, :], kernel[..., stop:, :]], axis=-2)
            x = x + ops.conv(full, others, padding="same")
        return conv.activation(x + conv.bias)

    def compute_output_shape(self, input_shape):
        return tuple(self.concatenated_shape(input_shape)[:-1]) + (self.filters,)

    def internal_output_shapes(self, input_shape):
        """Shapes of the tensors made inside the block besides its output (for the
        tensor-size guard): every convolution but the last and, with ``upsampled``, the
        up-sampled concatenation, or the full-resolution inputs' concatenation and the
        first convolution's two terms."""
        shapes = [self.compute_output_shape(input_shape)] * (self.convs - 1)
        if self.upsampled is None:
            return shapes
        if not self.transposes(input_shape):
            return shapes + [self.concatenated_shape(input_shape)]
        full = [tuple(s) for i, s in enumerate(input_shape) if i != self.upsampled]
        if len(full) > 1:
            shapes.append(full[0][:-1] + (sum(s[-1] for s in full),))
        return shapes + [self.compute_output_shape(input_shape)] * min(2, len(full) + 1)

    def transient_output_shapes(self, input_shape):
        """Of :meth:`internal_output_shapes`, those freed inside ``call`` (for the guard's
        memory estimate): the first convolution's two summed terms, which back-propagation
        does not keep (the gradient of a sum reads neither term)."""
        if not self.transposes(input_shape):
            return []
        full = len(input_shape) - 1
        return [self.compute_output_shape(input_shape)] * min(2, full + 1)

    def flops(self):
        """Forward FLOPs of one sample (``2 * MACs``), as computed: with ``upsampled``, the
        first convolution's low-resolution channels cost 2^d taps per output voxel instead
        of 3^d (:mod:`xprospect_tf.training.flops` uses it)."""
        from xprospect_tf.training.flops import layer_flops

        total = sum(layer_flops(conv) for conv in self.conv_layers)
        input_shape = self.get_build_config()["input_shape"]
        if not self.transposes(input_shape):
            return total
        first = self.conv_layers[0]
        positions = math.prod(self.compute_output_shape(input_shape)[1:-1])
        low_channels = input_shape[self.upsampled][-1]
        saved_taps = 3**self.spatial_dims - 2**self.spatial_dims
        return total - 2 * positions * saved_taps * low_channels * first.filters

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, spatial_dims=self.spatial_dims,
            convs=self.convs, dropout=self.dropout, upsampled=self.upsampled,
        )
        return config
