"""The networks of the diffusion rows: a 3D denoising UNet, an X-ray encoder and a 3D discriminator.

X-ray2CTPA (Cahan et al., 2024, "Methods") encodes the X-ray to a 512-vector
(a frozen BiomedCLIP image encoder) and conditions the 3D denoising U-net "by
concatenation of the CXR embedding throughout the 3D U-net layers, rather than
applying it as concatenation to the noise". Here the X-ray embedding is
concatenated with the timestep embedding and that joint vector modulates every
residual block of every level (a scale and a shift after its second group
normalization), as in Medical Diffusion's 3D U-net that X-ray2CTPA builds on.
No pretrained weights can be downloaded, so the default encoder is a small
trainable 2D CNN (ours); any Keras model mapping the view images to a vector
can take its place (:class:`~xprospect_tf.models.diffusion.DiffusionModel`'s ``encoder``).

All layers are Keras core layers or the registered :class:`TimestepEmbedding`,
written with ``keras.ops`` only, so the models run under TensorFlow and JAX.
"""

import math

import keras
from keras import ops

from xprospect_tf.training.precision import OUTPUT_DTYPE

ACTIVATION = "silu"
GROUPS = 8  # group normalization groups (fewer when a width is not divisible)
VIEWS = ("frontal", "lateral")
CONDITIONS = {"frontal": ("frontal",), "biplanar": ("frontal", "lateral")}
"""``diffusion.views`` -> the X-rays the encoder reads."""


@keras.saving.register_keras_serializable(package="xprospect_tf")
class TimestepEmbedding(keras.layers.Layer):
    """Sinusoidal embedding of integer diffusion steps (Vaswani et al., 2017; DDPM).

    ``emb[:, i] = sin(t * f_i)``, ``emb[:, dim/2 + i] = cos(t * f_i)``,
    ``f_i = max_period ** (-i / (dim/2))``.

    Args:
        dim: embedding width (even).
        max_period: the slowest frequency's period.

    Call arguments:
        t: ``(batch,)`` steps (any numeric dtype).

    Example:
        >>> import numpy as np
        >>> e = np.asarray(TimestepEmbedding(4)(np.array([0.0, 1.0])))
        >>> e[0].tolist(), bool(np.isclose(e[1, 0], np.sin(1.0)))
        ([0.0, 0.0, 1.0, 1.0], True)
    """

    def __init__(self, dim, max_period=10000.0, **kwargs):
        super().__init__(**kwargs)
        if dim % 2:
            raise ValueError(f"TimestepEmbedding: dim must be even, got {dim}")
        self.dim = int(dim)
        self.max_period = float(max_period)

    def call(self, t):
        half = self.dim // 2
        freqs = ops.exp(-math.log(self.max_period) * ops.arange(half, dtype="float32") / half)
        args = ops.cast(ops.reshape(t, (-1, 1)), "float32") * freqs[None, :]
        return ops.concatenate([ops.sin(args), ops.cos(args)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dim)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "max_period": self.max_period}


def _norm(channels, name):
    return keras.layers.GroupNormalization(groups=math.gcd(GROUPS, channels), epsilon=1e-5, name=name)


def _res_block(x, emb, filters, name):
    """GN -> SiLU -> conv -> GN -> (1 + scale) * h + shift from ``emb`` -> SiLU -> conv, plus a skip."""
    h = _norm(x.shape[-1], f"{name}_norm1")(x)
    h = keras.layers.Activation(ACTIVATION, name=f"{name}_act1")(h)
    h = keras.layers.Conv3D(filters, 3, padding="same", name=f"{name}_conv1")(h)
    h = _norm(filters, f"{name}_norm2")(h)
    scale_shift = keras.layers.Dense(2 * filters, name=f"{name}_film")(emb)
    scale_shift = keras.layers.Reshape((1, 1, 1, 2 * filters), name=f"{name}_film_grid")(scale_shift)
    h = Modulation(name=f"{name}_modulate")([h, scale_shift])
    h = keras.layers.Activation(ACTIVATION, name=f"{name}_act2")(h)
    h = keras.layers.Conv3D(filters, 3, padding="same", kernel_initializer="zeros", name=f"{name}_conv2")(h)
    if x.shape[-1] != filters:
        x = keras.layers.Conv3D(filters, 1, name=f"{name}_skip")(x)
    return keras.layers.Add(name=f"{name}_add")([x, h])


@keras.saving.register_keras_serializable(package="xprospect_tf")
class Modulation(keras.layers.Layer):
    """Feature-wise modulation: ``h * (1 + scale) + shift``, ``[scale, shift]`` split from one tensor.

    Call arguments:
        inputs: ``[h, scale_shift]``; ``scale_shift`` has twice ``h``'s channels
            and broadcasts over its spatial axes.

    Example:
        >>> import numpy as np
        >>> np.asarray(Modulation()([np.ones((1, 2, 1)), np.array([[[1.0, 3.0]]])])).tolist()
        [[[5.0], [5.0]]]
    """

    def call(self, inputs):
        h, scale_shift = inputs
        scale, shift = ops.split(scale_shift, 2, axis=-1)
        return h * (1.0 + scale) + shift

    def compute_output_shape(self, input_shape):
        return input_shape[0]


def _attention(x, heads, name):
    """Self-attention over all voxels of ``x`` (GN, multi-head attention, residual)."""
    d, hgt, w, c = x.shape[1:]
    h = _norm(c, f"{name}_norm")(x)
    h = keras.layers.Reshape((d * hgt * w, c), name=f"{name}_tokens")(h)
    h = keras.layers.MultiHeadAttention(heads, max(c // heads, 1), name=f"{name}_mha")(h, h)
    h = keras.layers.Reshape((d, hgt, w, c), name=f"{name}_grid")(h)
    return keras.layers.Add(name=f"{name}_add")([x, h])


def build_denoiser(size, channels=(16, 32, 64), condition_dim=128, attention=True, heads=4,
                   in_channels=1, projection_channels=0, name="denoiser"):
    """Build the 3D denoising UNet: ``(x_t, t, condition) -> prediction`` (noise or v).

    One residual block per level on the way down and two on the way up (one
    after each skip concatenation), stride-2 convolutions down, nearest
    up-sampling + convolution up, and optional self-attention at the coarsest
    level. The timestep embedding and the condition vector are concatenated
    and modulate every residual block.

    Args:
        size: cube side, or the grid ``(depth, height, width)`` (latent mode:
            slices compressed in-plane). Each down-sampling halves every axis
            longer than the shortest (or all when they are equal); each halved
            axis must be even.
        channels: widths per level, full resolution first.
        condition_dim: width of the condition vector (the X-ray embedding).
        attention: self-attention at the coarsest level (its tokens are
            ``(size / 2 ** (levels - 1)) ** 3`` voxels: 512 at 32^3 with 3 levels).
        heads: attention heads.
        in_channels: channels of ``x_t`` (1 in pixel space).
        projection_channels: > 0: a fourth input ``projection`` (the X-rays
            back-projected on ``x_t``'s grid, this many channels) is average-pooled
            to every level and concatenated to the input of its residual blocks
            (projection injection, ours: XprospeCT's ProjInj applied to the denoiser).
        name: model name.

    Returns:
        a functional ``keras.Model`` with inputs ``x_t (size, size, size, in_channels)``,
        ``t ()`` and ``condition (condition_dim,)``, and an output shaped like ``x_t``.

    Example:
        >>> import numpy as np
        >>> net = build_denoiser(8, channels=(4, 8), condition_dim=6)
        >>> out = net([np.zeros((2, 8, 8, 8, 1)), np.array([3, 500]), np.zeros((2, 6))])
        >>> tuple(out.shape)
        (2, 8, 8, 8, 1)
    """
    channels = tuple(int(c) for c in channels)
    grid = (size,) * 3 if isinstance(size, int) else tuple(int(s) for s in size)
    strides = level_strides(grid, len(channels) - 1)
    x_t = keras.Input((*grid, in_channels), name="x_t")
    t = keras.Input((), name="t")
    condition = keras.Input((condition_dim,), name="condition")
    inputs = [x_t, t, condition]
    projections = []
    if projection_channels:
        projection = keras.Input((*grid, projection_channels), name="projection")
        inputs.append(projection)
        projections, pooled = [projection], projection
        for i, stride in enumerate(strides):
            pooled = keras.layers.AveragePooling3D(stride, name=f"projection_pool{i}")(pooled)
            projections.append(pooled)

    width = 4 * channels[0]
    temb = TimestepEmbedding(channels[0] * 2, name="t_embedding")(t)
    temb = keras.layers.Dense(width, activation=ACTIVATION, name="t_dense1")(temb)
    temb = keras.layers.Dense(width, name="t_dense2")(temb)
    cemb = keras.layers.Dense(width, name="condition_dense")(condition)
    emb = keras.layers.Concatenate(name="embedding")([temb, cemb])
    emb = keras.layers.Activation(ACTIVATION, name="embedding_act")(emb)

    h = keras.layers.Conv3D(channels[0], 3, padding="same", name="stem")(x_t)
    skips = []
    for i, c in enumerate(channels):
        if projections:
            h = keras.layers.Concatenate(name=f"down{i}_projection")([h, projections[i]])
        h = _res_block(h, emb, c, f"down{i}")
        if i == len(channels) - 1 and attention:
            h = _attention(h, heads, "attention")
        skips.append(h)
        if i < len(channels) - 1:
            h = keras.layers.Conv3D(c, 3, strides=strides[i], padding="same", name=f"down{i}_resample")(h)
    h = _res_block(h, emb, channels[-1], "middle")
    for i in reversed(range(len(channels))):
        h = keras.layers.Concatenate(name=f"up{i}_concat")([h, skips[i], *projections[i:i + 1]])
        h = _res_block(h, emb, channels[i], f"up{i}")
        if i > 0:
            h = keras.layers.UpSampling3D(strides[i - 1], name=f"up{i}_resample")(h)
            h = keras.layers.Conv3D(channels[i - 1], 3, padding="same", name=f"up{i}_resample_conv")(h)
    h = _norm(channels[0], "out_norm")(h)
    h = keras.layers.Activation(ACTIVATION, name="out_act")(h)
    out = keras.layers.Conv3D(in_channels, 3, padding="same", name="prediction", dtype=OUTPUT_DTYPE)(h)
    return keras.Model(inputs, out, name=name)


def level_strides(grid, levels):
    """The stride per axis of each of ``levels`` down-samplings of ``grid``: 2 on every axis
    longer than the shortest, or on all when they are equal.

    Example:
        >>> level_strides((32, 32, 32), 2)
        [(2, 2, 2), (2, 2, 2)]
        >>> level_strides((32, 4, 4), 4)  # latent slices: depth first
        [(2, 1, 1), (2, 1, 1), (2, 1, 1), (2, 2, 2)]
    """
    grid, out = list(grid), []
    for _ in range(levels):
        shortest = min(grid)
        stride = tuple(2 if (g > shortest or len(set(grid)) == 1) else 1 for g in grid)
        if any(s == 2 and g % 2 for s, g in zip(stride, grid)):
            raise ValueError(f"build_denoiser: cannot halve the grid {tuple(grid)} {levels} times "
                             "(an odd side); use fewer levels or another size")
        grid = [g // s for g, s in zip(grid, stride)]
        out.append(stride)
    return out


def build_xray_encoder(size, views=VIEWS, filters=16, embed_dim=128, name="xray_encoder"):
    """Build the default X-ray encoder: each view through its own small 2D CNN, joined to one vector.

    Per view: stride-2 3x3 convolutions (width ``filters``, doubling, at most 8x)
    with group normalization and SiLU until 4x4, flattened (not pooled: where
    the lungs, heart and body outline lie is the information); the views'
    vectors are concatenated and a Dense layer gives ``embed_dim``.
    Ours: the paper's encoder is a frozen, pretrained BiomedCLIP (512-d).

    Args:
        size: image side.
        views: the inputs read, a subset of ``("frontal", "lateral")``.
        filters: first convolution's width.
        embed_dim: the embedding width.
        name: model name.

    Returns:
        a functional ``keras.Model`` with one input per view (``(size, size, 1)``,
        named after it) and a ``(embed_dim,)`` output.

    Example:
        >>> import numpy as np
        >>> enc = build_xray_encoder(16, views=("frontal",), filters=4, embed_dim=8)
        >>> tuple(enc({"frontal": np.zeros((2, 16, 16, 1))}).shape)
        (2, 8)
    """
    inputs, vectors = {}, []
    for view in views:
        image = keras.Input((size, size, 1), name=view)
        inputs[view] = image
        h, side, width, i = image, size, filters, 0
        while side > 4:
            h = keras.layers.Conv2D(width, 3, strides=2, padding="same", name=f"{view}_conv{i}")(h)
            h = _norm(width, f"{view}_norm{i}")(h)
            h = keras.layers.Activation(ACTIVATION, name=f"{view}_act{i}")(h)
            side, width, i = (side + 1) // 2, min(width * 2, 8 * filters), i + 1
        vectors.append(keras.layers.Flatten(name=f"{view}_flatten")(h))
    h = vectors[0] if len(vectors) == 1 else keras.layers.Concatenate(name="views")(vectors)
    out = keras.layers.Dense(embed_dim, name="embedding")(h)
    return keras.Model(inputs, out, name=name)


def build_discriminator(size, filters=16, name="discriminator"):
    """A 4-layer 3D patch discriminator on volumes in [-1, 1] (X-ray2CTPA's "4 layered 3D discriminator").

    Three stride-2 4x4x4 convolutions (``filters``, 2x, 4x; LeakyReLU 0.2, group
    normalization after the first) and a 3x3x3 convolution to one logit per patch.
    The widths and kernel sizes are ours (PatchGAN-like).

    Example:
        >>> import numpy as np
        >>> tuple(build_discriminator(16, filters=2)(np.zeros((1, 16, 16, 16, 1))).shape)
        (1, 2, 2, 2, 1)
    """
    volume = keras.Input((size, size, size, 1), name="volume")
    h = volume
    for i, mult in enumerate((1, 2, 4)):
        h = keras.layers.Conv3D(filters * mult, 4, strides=2, padding="same", name=f"conv{i}")(h)
        if i:
            h = _norm(filters * mult, f"norm{i}")(h)
        h = keras.layers.LeakyReLU(0.2, name=f"act{i}")(h)
    logits = keras.layers.Conv3D(1, 3, padding="same", name="logits", dtype=OUTPUT_DTYPE)(h)
    return keras.Model(volume, logits, name=name)
