"""The CycleGAN ResNet generator (Zhu et al., 2017) used for style transfer.

XprospeCT (Paulson et al., 2024, section 3.1) trains one CycleGAN per view to turn
mean-CT projections into images that look like real radiographs. The generator
is CycleGAN's ResNet generator: reflection padding, a 7x7 convolution, two
stride-2 down-samplings, residual blocks, two transposed-convolution
up-samplings and a 7x7 output convolution. Instance normalization is
``keras.layers.GroupNormalization(groups=-1)`` (one group per channel). The
output is a sigmoid, since the images are float32 in [0, 1], shape ``(H, W, 1)``.
"""

import keras
from keras import ops

from xprospect_tf.checks import check_style_size
from xprospect_tf.errors import ConfigError

UPSAMPLING = ("transpose", "resize")
"""The generator's up-sampling choices (the registry behind ``style.upsampling``):
CycleGAN's stride-2 transposed convolutions, or 2x resize + convolution."""


@keras.saving.register_keras_serializable(package="xprospect_tf")
class ReflectionPadding2D(keras.layers.Layer):
    """Pad the two spatial axes of ``(B, H, W, C)`` by reflection (no edge repeat).

    Args:
        padding: int or ``(pad_rows, pad_cols)``; each must be smaller than the
            padded axis (a reflection cannot reach past the opposite edge).
        **kwargs: passed to ``keras.layers.Layer``.

    Call arguments:
        inputs: a ``(B, H, W, C)`` tensor.

    Returns:
        a ``(B, H + 2 * pad_rows, W + 2 * pad_cols, C)`` tensor.

    Example:
        >>> tuple(ReflectionPadding2D(1)(keras.ops.zeros((1, 4, 4, 1))).shape)
        (1, 6, 6, 1)
    """

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        pad = (padding, padding) if isinstance(padding, int) else tuple(padding)
        if len(pad) != 2 or any(int(p) < 0 for p in pad):
            raise ConfigError(
                f"ReflectionPadding2D: padding must be an int >= 0 or a pair of them, got {padding!r}"
            )
        self.padding = tuple(int(p) for p in pad)

    def call(self, inputs):
        rows, cols = self.padding
        return ops.pad(inputs, [[0, 0], [rows, rows], [cols, cols], [0, 0]], mode="reflect")

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        rows, cols = self.padding
        return (
            batch,
            None if height is None else height + 2 * rows,
            None if width is None else width + 2 * cols,
            channels,
        )

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package="xprospect_tf")
class AddToLogit(keras.layers.Layer):
    """``sigmoid(logit(image) + delta)``: a change of an image in [0, 1] made in logit space.

    The head of the ``residual`` generator: with ``delta = 0`` the image passes
    unchanged (clipped to ``[EPS, 1 - EPS]``), and any ``delta`` keeps the
    output in (0, 1) and the image's own structure as the starting point.

    Call arguments:
        inputs: ``[image, delta]``, two tensors of the same shape.

    Example:
        >>> x = keras.ops.convert_to_tensor([[0.2, 0.7]])
        >>> [round(float(v), 4) for v in keras.ops.convert_to_numpy(AddToLogit()([x, keras.ops.zeros_like(x)]))[0]]
        [0.2, 0.7]
    """

    EPS = 1e-3

    def call(self, inputs):
        image, delta = inputs
        image = ops.clip(image, self.EPS, 1.0 - self.EPS)
        return ops.sigmoid(ops.log(image) - ops.log1p(-image) + delta)


def default_residual_blocks(size):
    """CycleGAN's number of residual blocks: 6 for images up to 128, 9 above.

    Args:
        size: image side in pixels.

    Returns:
        6 or 9.

    Example:
        >>> default_residual_blocks(256)
        9
    """
    return 9 if size > 128 else 6


def build_resnet_generator(size=64, filters=32, n_residual=None, upsampling=UPSAMPLING[0], residual=False,
                           name=None):
    """Build the CycleGAN ResNet generator for ``(size, size, 1)`` images in [0, 1].

    Section 3.1 of XprospeCT (Paulson et al., 2024): the style-transfer network
    that maps mean-CT projections to X-ray-looking images (and back).

    Args:
        size: image side; a multiple of 4 and at least 8 (two 2x down-samplings).
        filters: channels of the first convolution (CycleGAN uses 64); doubled
            at each down-sampling.
        n_residual: residual blocks; ``None`` for CycleGAN's default
            (:func:`default_residual_blocks`).
        upsampling: ``"transpose"`` (CycleGAN's stride-2 transposed convolutions,
            the default) or ``"resize"`` (2x nearest up-sampling then a 3x3
            convolution, which avoids the checkerboard artefacts of transposed
            convolutions; measured better on small images, see the README).
        name: the model's name (``"resnet_generator"`` if ``None``).

    Returns:
        a functional ``keras.Model`` mapping ``(B, size, size, 1)`` to
        ``(B, size, size, 1)`` with values in [0, 1].

    Example:
        >>> g = build_resnet_generator(size=16, filters=4, n_residual=1)
        >>> tuple(g(keras.ops.zeros((2, 16, 16, 1))).shape)
        (2, 16, 16, 1)
    """
    _check_generator_args(size, filters, n_residual)
    if upsampling not in UPSAMPLING:
        raise ConfigError(f"style upsampling={upsampling!r}: choose one of {', '.join(UPSAMPLING)}")
    n_residual = default_residual_blocks(size) if n_residual is None else n_residual
    inputs = keras.Input((size, size, 1), name="image")
    x = ReflectionPadding2D(3, name="stem_pad")(inputs)
    x = _conv_norm_relu(x, filters, 7, 1, "valid", "stem")
    for i in (1, 2):
        x = _conv_norm_relu(x, filters * 2**i, 3, 2, "same", f"down{i}")
    for i in range(n_residual):
        x = _residual_block(x, filters * 4, f"res{i}")
    for i in (1, 2):
        channels = filters * 2 ** (2 - i)
        if upsampling == "resize":
            x = keras.layers.UpSampling2D(2, name=f"up{i}_resize")(x)
            x = keras.layers.Conv2D(channels, 3, padding="same", name=f"up{i}_conv")(x)
        else:
            x = keras.layers.Conv2DTranspose(channels, 3, strides=2, padding="same", name=f"up{i}_conv")(x)
        x = _norm_relu(x, f"up{i}")
    x = ReflectionPadding2D(3, name="head_pad")(x)
    if residual:
        delta = keras.layers.Conv2D(1, 7, kernel_initializer="zeros", name="head_conv")(x)
        outputs = AddToLogit(name="head_add")([inputs, delta])
    else:
        outputs = keras.layers.Conv2D(1, 7, activation="sigmoid", name="head_conv")(x)
    return keras.Model(inputs, outputs, name=name or "resnet_generator")


def _check_generator_args(size, filters, n_residual):
    check_style_size(size, "style transfer image size")
    if not isinstance(filters, int) or filters < 1:
        raise ConfigError(f"generator filters: got {filters!r}; use a positive integer")
    if n_residual is not None and (not isinstance(n_residual, int) or n_residual < 0):
        raise ConfigError(f"generator n_residual: got {n_residual!r}; use an integer >= 0 or None")


def _norm_relu(x, name):
    x = keras.layers.GroupNormalization(groups=-1, name=f"{name}_norm")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _conv_norm_relu(x, filters, kernel, strides, padding, name):
    conv = keras.layers.Conv2D(filters, kernel, strides=strides, padding=padding, name=f"{name}_conv")
    x = conv(x)
    return _norm_relu(x, name)


def _residual_block(x, filters, name):
    y = ReflectionPadding2D(1, name=f"{name}_pad1")(x)
    y = _conv_norm_relu(y, filters, 3, 1, "valid", f"{name}_a")
    y = ReflectionPadding2D(1, name=f"{name}_pad2")(y)
    y = keras.layers.Conv2D(filters, 3, name=f"{name}_b_conv")(y)
    y = keras.layers.GroupNormalization(groups=-1, name=f"{name}_b_norm")(y)
    return keras.layers.Add(name=f"{name}_add")([x, y])
