"""Connection-B: a 2D skip feature map expanded along a new depth axis into 3D."""

import keras
from keras import ops

from xprospect_tf.layers.blocks import selu_conv


def depth_kernel_ranges(depth, kernel_depth):
    """The kernel taps along depth that a 'same' convolution applies to each slice of
    a tensor repeated ``depth`` times along that axis.

    Every tap of a slice reads the same 2D map unless it falls in the zero padding,
    so slice ``d`` is a 2D convolution with the kernel summed over the taps
    ``lo:hi``. Interior slices share one range; only the ``kernel_depth // 2``
    slices at each end differ.

    Args:
        depth: length of the repeated axis.
        kernel_depth: kernel size along it (odd; 'same' pads ``kernel_depth // 2`` each side).

    Returns:
        ``(ranges, slice_of)``: the distinct ``(lo, hi)`` tap ranges in order of first
        use, and for each slice ``0..depth-1`` the index of its range.

    Example:
        >>> depth_kernel_ranges(5, 3)
        ([(1, 3), (0, 3), (0, 2)], [0, 1, 1, 1, 2])
        >>> depth_kernel_ranges(1, 3)
        ([(1, 2)], [0])
    """
    pad = (kernel_depth - 1) // 2
    per_slice = [(max(0, pad - d), min(kernel_depth, depth + pad - d)) for d in range(depth)]
    ranges = list(dict.fromkeys(per_slice))
    return ranges, [ranges.index(r) for r in per_slice]


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

    The repeated tensor is never made (ours, issue #11): a 3D convolution of a
    tensor constant along depth is a 2D convolution with the kernel summed along
    depth, except where 'same' zero padding cuts the kernel (the first and last
    slice for a 3^3 kernel, see :func:`depth_kernel_ranges`). So ``call`` runs
    2D convolutions with the summed kernels of the Conv3D ``mix`` for the few
    distinct slices and repeats their activations along depth: the same output
    and weights (``mix`` keeps its 3^3 kernel, checkpoints load unchanged) for
    about ``1/depth`` of the arithmetic.

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

    def _ranges(self, input_shape):
        return depth_kernel_ranges(self._depth(input_shape), self.mix.kernel_size[2])

    def call(self, inputs):
        x = self.match(inputs)
        ranges, slice_of = self._ranges(inputs.shape)
        kernel = self.mix.kernel  # (3, 3, 3, c, c); kernel axis 2 runs along the data's axis 3
        slices = [ops.conv(x, ops.sum(kernel[:, :, lo:hi], axis=2), padding="same") for lo, hi in ranges]
        y = self.mix.activation(ops.stack(slices, axis=3) + self.mix.bias)
        return ops.take(y, slice_of, axis=3)

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        return (b, h, w, self._depth(input_shape), self.filters)

    def flops(self):
        """Forward FLOPs of one sample (``2 * MACs``), as computed: the 1x1 ``match`` and one
        2D convolution per distinct depth slice (:mod:`xprospect_tf.training.flops` uses it)."""
        _, h, w, c_in = self.match.get_build_config()["input_shape"]
        kh, kw = self.mix.kernel_size[:2]
        ranges = len(self._ranges((None, h, w, c_in))[0])
        return 2 * h * w * self.filters * (c_in + ranges * kh * kw * self.filters)

    def internal_output_shapes(self, input_shape):
        """The matched 2D feature and the distinct depth slices before their repetition
        (for the tensor-size guard)."""
        b, h, w, _ = input_shape
        return [(b, h, w, self.filters), (b, h, w, len(self._ranges(input_shape)[0]), self.filters)]

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, depth=self.depth)
        return config
