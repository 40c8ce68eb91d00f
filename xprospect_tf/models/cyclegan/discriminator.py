"""The PatchGAN discriminator (Isola et al., 2017) of the style-transfer CycleGAN.

A 70x70-style PatchGAN as in CycleGAN, used by XprospeCT (Paulson et al., 2024,
section 3.1): 4x4 convolutions, ``n_layers`` of them with stride 2, LeakyReLU
0.2, instance normalization (``GroupNormalization(groups=-1)``) on every layer
but the first, then a stride-1 4x4 convolution and a 1-channel 4x4 convolution
giving one real/fake score per patch (no activation: the least-squares GAN loss
compares the scores with 1 and 0).

"same" padding is used, so the patch map side is ``size // 2**n_layers``
(8x8 for 64, 32x32 for 256; the original's zero-padding-1 variant gives 30x30
for 256). For small images the number of stride-2 layers is reduced so that the
patch map stays at least 2x2: 3 layers for 16 and above, 2 for 8 (see
:func:`effective_layers`).
"""

import keras

from xprospect_tf.errors import ConfigError

MIN_PATCHES = 2
MAX_FILTER_MULTIPLIER = 8


def effective_layers(size, n_layers):
    """Number of stride-2 layers used for ``size``: ``n_layers``, or fewer for small images.

    Args:
        size: image side in pixels.
        n_layers: requested number of stride-2 convolutions.

    Returns:
        the largest ``n <= n_layers`` with ``size // 2**n >= 2`` (at least 1).

    Example:
        >>> effective_layers(64, 3), effective_layers(16, 4), effective_layers(8, 3)
        (3, 3, 2)
    """
    n = n_layers
    while n > 1 and size // 2**n < MIN_PATCHES:
        n -= 1
    return n


def build_patchgan_discriminator(size=64, filters=64, n_layers=3, name=None):
    """Build a PatchGAN discriminator for ``(size, size, 1)`` images.

    Section 3.1 of XprospeCT (Paulson et al., 2024): one discriminator per
    domain (mean-CT projections, real X-rays) and per view.

    Args:
        size: image side (at least 4).
        filters: channels of the first convolution (doubled per layer, capped
            at 8x).
        n_layers: stride-2 convolutions (3 = the 70x70 PatchGAN); reduced for
            small images by :func:`effective_layers`.
        name: the model's name (``"patchgan_discriminator"`` if ``None``).

    Returns:
        a functional ``keras.Model`` mapping ``(B, size, size, 1)`` to a patch
        score map ``(B, size // 2**n, size // 2**n, 1)``, ``n = effective_layers(size, n_layers)``.

    Example:
        >>> d = build_patchgan_discriminator(size=16, filters=4)
        >>> tuple(d(keras.ops.zeros((2, 16, 16, 1))).shape)
        (2, 2, 2, 1)
    """
    _check_discriminator_args(size, filters, n_layers)
    n = effective_layers(size, n_layers)
    inputs = keras.Input((size, size, 1), name="image")
    x = keras.layers.Conv2D(filters, 4, strides=2, padding="same", name="conv0")(inputs)
    x = keras.layers.LeakyReLU(0.2, name="conv0_lrelu")(x)
    for i in range(1, n + 1):
        stride = 2 if i < n else 1
        x = _conv_norm_lrelu(x, filters * min(2**i, MAX_FILTER_MULTIPLIER), stride, f"conv{i}")
    outputs = keras.layers.Conv2D(1, 4, padding="same", name="patch_scores")(x)
    return keras.Model(inputs, outputs, name=name or "patchgan_discriminator")


def _conv_norm_lrelu(x, filters, strides, name):
    x = keras.layers.Conv2D(filters, 4, strides=strides, padding="same", name=name)(x)
    x = keras.layers.GroupNormalization(groups=-1, name=f"{name}_norm")(x)
    return keras.layers.LeakyReLU(0.2, name=f"{name}_lrelu")(x)


def _check_discriminator_args(size, filters, n_layers):
    if not isinstance(size, int) or size < 2 * MIN_PATCHES:
        raise ConfigError(f"discriminator image size: got {size!r}; use an integer >= 4")
    if not isinstance(filters, int) or filters < 1:
        raise ConfigError(f"discriminator filters: got {filters!r}; use a positive integer")
    if not isinstance(n_layers, int) or n_layers < 1:
        raise ConfigError(f"discriminator n_layers: got {n_layers!r}; use an integer >= 1")
