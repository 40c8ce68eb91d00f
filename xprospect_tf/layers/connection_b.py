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


SUMMED_MIN_DEPTH = 16
"""Connection-B runs the summed-kernel 2D convolutions when the new axis has at least this many
slices, and repeats then convolves in 3D below that, where it is faster on a CPU. Measured
2026-11-22 on 2 shared CPU cores (TF 2.21, float32, forward + backward of the layer alone, median
of 40 interleaved): 8^2 x 32 -> 8^3 x 32 (batch 2) 4.4 ms repeated vs 6.1 ms summed; 8^2 x 64 ->
8^3 x 64 6.2 vs 10.1 ms; 16^2 x 16 -> 16^3 x 16 (batch 2) 6.7 vs 6.3 ms; 32^2 x 8 -> 32^3 x 8
(batch 2) 22.4 vs 9.1 ms; 64^2 x 16 -> 64^3 x 16 128 vs 33 ms."""


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
    about ``1/depth`` of the arithmetic. Below :data:`SUMMED_MIN_DEPTH` slices, where that
    is slower, it repeats and convolves.

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
        self.match = selu_conv(filters, 2, name="match", kernel_size=1, dtype=self.dtype_policy)
        self.mix = selu_conv(filters, 3, name="mix", dtype=self.dtype_policy)

    def _depth(self, input_shape):
        return self.depth if self.depth is not None else input_shape[2]

    def build(self, input_shape):
        self.match.build(input_shape)
        self.mix.build(self.compute_output_shape(input_shape)[:-1] + (self.filters,))
        self.built = True

    def _ranges(self, input_shape):
        return depth_kernel_ranges(self._depth(input_shape), self.mix.kernel_size[2])

    def _summed(self, input_shape):
        """Whether ``call`` runs the summed-kernel 2D convolutions (:data:`SUMMED_MIN_DEPTH`)."""
        depth = self._depth(input_shape)
        return depth is None or depth >= SUMMED_MIN_DEPTH

    def call(self, inputs):
        x = self.match(inputs)
        if not self._summed(inputs.shape):
            return self.mix(ops.repeat(ops.expand_dims(x, 3), self._depth(inputs.shape), axis=3))
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
        2D convolution per distinct depth slice, or the Conv3D below :data:`SUMMED_MIN_DEPTH`
        (:mod:`xprospect_tf.training.flops` uses it)."""
        _, h, w, c_in = self.match.get_build_config()["input_shape"]
        kh, kw, kd = self.mix.kernel_size
        if self._summed((None, h, w, c_in)):
            slices, taps = len(self._ranges((None, h, w, c_in))[0]), kh * kw
        else:  # the repeated tensor's every slice, through the whole 3D kernel
            slices, taps = self._depth((None, h, w, c_in)), kh * kw * kd
        return 2 * h * w * self.filters * (c_in + slices * taps * self.filters)

    def internal_output_shapes(self, input_shape):
        """The matched 2D feature and the distinct depth slices before their repetition, or the
        repeated tensor below :data:`SUMMED_MIN_DEPTH` (for the tensor-size guard)."""
        b, h, w, _ = input_shape
        slices = len(self._ranges(input_shape)[0]) if self._summed(input_shape) else self._depth(input_shape)
        return [(b, h, w, self.filters), (b, h, w, slices, self.filters)]

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, depth=self.depth)
        return config
