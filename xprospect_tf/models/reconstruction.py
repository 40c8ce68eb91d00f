"""The XprospeCT reconstruction model: two X-rays -> a CT volume (Paulson et al., 2024).

Layout (``docs/architecture.md`` has the layer-by-layer table)::

    frontal ap[z, x] --2D UNet encoder--> bottleneck --Connection-A--> 3D coronal decoder
                          └── skips ──Connection-B (depth y)──────────────┘   (z, x, y)
    lateral lat[z, y] --2D UNet encoder--> bottleneck --Connection-A--> 3D sagittal decoder
                          └── skips ──Connection-B (depth x)──────────────┘   (z, y, x)
    bottom scale: Connection-C(coronal, sagittal); every other scale:
    Connection-D(coronal, sagittal, up-sampled fusion) [+ BackProjection if projinj]
    -> 3D fusion decoder -> 1x1x1 Conv3D + sigmoid -> "ct" (z, x, y, 1) in [0, 1]
"""

import logging
import math

import keras

from xprospect_tf.checks import INT32_LIMIT, check_levels, check_model_size, check_positive_int, default_levels
from xprospect_tf.errors import ConfigError, TensorSizeError
from xprospect_tf.layers import (
    BackProjection, ConnectionA, ConnectionB, ConnectionC, ConvBlock, downsample, selu_conv,
)
from xprospect_tf.training.precision import OUTPUT_DTYPE, precision_scope

log = logging.getLogger(__name__)

FILTER_CAP = 8  # filters stop doubling at FILTER_CAP * base_filters


def level_filters(base_filters, levels):
    """Channels at each scale 0..levels: ``base_filters * 2**i``, capped at 8 * base_filters.

    Example:
        >>> level_filters(16, 5)
        [16, 32, 64, 128, 128, 128]
    """
    return [min(base_filters * 2**i, FILTER_CAP * base_filters) for i in range(levels + 1)]


def build_reconstruction_model(size=64, dense_units=512, projinj=False, base_filters=16,
                               levels=None, output_mean=None, name=None):
    """Build the XprospeCT UNet-Dense (optionally ProjInj) model as a functional ``keras.Model``.

    Paulson et al., 2024, Table 1 rows "64-Dense", "512-Dense", "512-Dense MAE"
    (``dense_units`` 64/512) and "512-ProjInj" (section 4.4, ``projinj=True``);
    sections 3.2-3.3 give the structure, and the depth, filter counts, pooling
    and up-sampling are ours (``docs/architecture.md``, "The paper's protocol").
    Two 2D UNet encoders (coronal on the frontal image, sagittal on the
    lateral) feed 3D decoders through Connection-A (dense bottleneck) and
    Connection-B (skips expanded along the projection axis); a fusion decoder
    joins them with Connection-C/D. SELU + lecun_normal throughout, no batch
    norm; a 1x1x1 sigmoid convolution gives the volume in [0, 1].

    Args:
        size: side of the input images and output cube; a power of two >= 16.
        dense_units: units of Connection-A's bottleneck Dense layer.
        projinj: inject the back-projected X-rays into the fusion decoder at
            every scale (the "ProjInj" model).
        base_filters: channels at full resolution; doubled per level, capped
            at 8 * base_filters.
        levels: down-sampling levels; ``None`` gives log2(size) - 2 (a 4^3 bottleneck grid).
        output_mean: the training volumes' mean voxel value, in (0, 1). The
            output convolution's bias starts at its logit, so the untrained
            model predicts that value everywhere rather than sigmoid(0) = 0.5
            (ours; the paper does not say how its output layer starts). In a
            chest CT window most voxels are air near 0: starting at 0.5 costs
            the first epochs (and, at higher learning rates, kills the SELU
            units), see ``docs/table1-recipe.md``. ``None``: a zero bias.
        name: model name; ``None`` gives e.g. ``"xprospect_512_dense"``.

    Returns:
        A ``keras.Model`` with inputs ``[frontal (size, size, 1), lateral (size, size, 1)]``
        and output ``"ct"`` of shape ``(size, size, size, 1)`` in ``vol[z, x, y]`` order.

    Raises:
        ConfigError: an argument is out of range (the message names it).
        TensorSizeError: a Connection-A Dense kernel would exceed 2^31-1 elements.

    Example:
        >>> model = build_reconstruction_model(size=16, dense_units=8, base_filters=2)
        >>> model.output_shape
        (None, 16, 16, 16, 1)
    """
    levels = _validated_levels(size, dense_units, projinj, base_filters, levels)
    bias = _logit_initializer(output_mean)
    filters = level_filters(base_filters, levels)
    _check_dense_kernels(size, levels, filters[-1], dense_units)
    name = name or f"xprospect_{dense_units}_{'projinj' if projinj else 'dense'}"

    frontal = keras.Input((size, size, 1), name="frontal")
    lateral = keras.Input((size, size, 1), name="lateral")
    coronal = _branch(frontal, "coronal", filters, dense_units)
    sagittal = _branch(lateral, "sagittal", filters, dense_units)
    images = (frontal, lateral) if projinj else None
    ct = _fusion_decoder(coronal, sagittal, images, filters, bias)

    model = keras.Model([frontal, lateral], ct, name=name)
    log.info("built %s: size %d, %d levels, filters %s, %d parameters",
             name, size, levels, filters, model.count_params())
    return model


# -- the functional graph --------------------------------------------------------


def _encoder(image, prefix, filters):
    """2D UNet encoder: the skip feature at each scale 0..L-1 and the bottleneck."""
    skips, x = [], image
    for i, f in enumerate(filters[:-1]):
        x = ConvBlock(f, spatial_dims=2, name=f"{prefix}_encoder_{i}")(x)
        skips.append(x)
        x = downsample(2, name=f"{prefix}_down_{i}")(x)
    bottleneck = ConvBlock(filters[-1], spatial_dims=2, name=f"{prefix}_encoder_{len(skips)}")(x)
    return skips, bottleneck


def _branch(image, prefix, filters, dense_units):
    """One view's encoder and 3D decoder; returns its volume at each scale 0..L."""
    skips, bottleneck = _encoder(image, prefix, filters)
    x = ConnectionA(dense_units, grid_size=bottleneck.shape[1], filters=filters[-1],
                    name=f"{prefix}_connection_a")(bottleneck)
    volumes = [x]
    for i in reversed(range(len(skips))):
        skip = ConnectionB(filters[i], name=f"{prefix}_connection_b_{i}")(skips[i])
        # x up-sampled, concatenated with the skip, convolved; the up-sampled tensor is never made
        x = ConvBlock(filters[i], spatial_dims=3, upsampled=0, name=f"{prefix}_decoder_{i}")([x, skip])
        volumes.append(x)
    return volumes[::-1]


def _projections(images, level):
    """The back-projected X-rays at ``level``'s scale (ProjInj) as a list: empty without ProjInj."""
    if images is None:
        return []
    return [BackProjection(pool_size=2**level, name=f"projinj_{level}")(list(images))]


def _fusion_decoder(coronal, sagittal, images, filters, bias_initializer):
    """Fuse the branch volumes bottom-up (Connection-C, then Connection-D) into the CT volume.

    Connection-D at scale i, the Connection-C fusion concatenated with the up-sampled previous
    fusion output, is split: ``connection_c_i`` fuses the branches, and the fusion block
    ``fusion_i`` up-samples the previous output and concatenates (then the back-projections),
    so the up-sampled tensor is never made."""
    bottom = len(filters) - 1
    x = ConnectionC(name="connection_c")([coronal[bottom], sagittal[bottom]])
    projected = _projections(images, bottom)
    if projected:
        x = keras.layers.Concatenate(name=f"projinj_concat_{bottom}")([x, *projected])
    x = ConvBlock(filters[bottom], spatial_dims=3, name=f"fusion_{bottom}")(x)
    for i in reversed(range(bottom)):
        fused = ConnectionC(name=f"connection_c_{i}")([coronal[i], sagittal[i]])
        x = ConvBlock(filters[i], spatial_dims=3, upsampled=1, name=f"fusion_{i}")([fused, x, *_projections(images, i)])
    return selu_conv(1, 3, name="ct", kernel_size=1, activation="sigmoid",
                     bias_initializer=bias_initializer, dtype=OUTPUT_DTYPE)(x)


def _logit_initializer(mean):
    """A bias initializer that makes ``sigmoid(bias) == mean`` (zeros for ``None``).

    Example:
        >>> float(keras.ops.sigmoid(_logit_initializer(0.2)((1,)))[0])  # doctest: +ELLIPSIS
        0.2...
    """
    if mean is None:
        return "zeros"
    mean = float(mean)
    if not 0.0 < mean < 1.0:
        raise ConfigError(f"output_mean = {mean!r}: the mean voxel value must lie strictly between 0 and 1")
    return keras.initializers.Constant(math.log(mean / (1.0 - mean)))


# -- argument checks -------------------------------------------------------------


def _validated_levels(size, dense_units, projinj, base_filters, levels):
    """Check the builder's arguments; return the number of levels to use."""
    check_model_size(size, "size")
    check_positive_int(dense_units, "dense_units")
    check_positive_int(base_filters, "base_filters")
    if not isinstance(projinj, bool):
        raise ConfigError(f"projinj = {projinj!r}: use true or false")
    return check_levels(levels, size, "levels")


def _check_dense_kernels(size, levels, channels, dense_units):
    """Raise TensorSizeError if a Connection-A Dense kernel exceeds 2^31-1 elements (INT32_LIMIT)."""
    grid = size // 2**levels
    features = grid * grid * channels
    largest = max(features * dense_units, dense_units * grid**3 * channels)
    if largest > INT32_LIMIT:
        raise TensorSizeError(
            f"levels = {levels} at size {size}: a Connection-A Dense kernel would hold "
            f"{largest:,} weights (TensorFlow's limit is 2^31-1 elements per tensor); raise levels "
            f"(null gives {default_levels(size)}) or lower dense_units"
        )


# -- configuration -> model ------------------------------------------------------


OUTPUT_BIASES = ("mean", "zero")
"""``model.output_bias`` choices: start the output at the training mean, or at sigmoid(0) = 0.5."""


def _unet_dense(config_model, size, output_mean=None):
    return build_reconstruction_model(
        size=size, dense_units=config_model.dense_units, projinj=config_model.projinj,
        base_filters=config_model.base_filters, levels=config_model.levels,
        output_mean=output_mean if config_model.output_bias == "mean" else None,
    )


MODEL_BUILDERS = {"unet-dense": _unet_dense}
"""Trained architecture name (``model.architecture``) -> builder
``(ModelConfig, size, output_mean=None) -> keras.Model``;
the baselines' builders are :data:`xprospect_tf.models.baselines.BASELINES`."""


def build_model(config_model, size, output_mean=None):
    """Build the Keras model a :class:`~xprospect_tf.config.ModelConfig` names.

    Dispatches on ``config_model.architecture`` through :data:`MODEL_BUILDERS`;
    the layers compute in ``config_model.precision``
    (:func:`~xprospect_tf.training.precision.precision_scope`).

    Args:
        config_model: the row's ``ModelConfig``.
        size: cube side (the row's ``data.size``).
        output_mean: the training volumes' mean voxel value; the output starts
            there when ``config_model.output_bias`` is ``"mean"`` (``None``: 0.5).

    Returns:
        An uncompiled ``keras.Model``.

    Raises:
        ConfigError: the architecture is a baseline (it needs no model) or unknown.

    Example:
        >>> from xprospect_tf.config import ModelConfig
        >>> build_model(ModelConfig(dense_units=8, base_filters=2), 16).name
        'xprospect_8_dense'
    """
    from xprospect_tf.models.baselines import BASELINES

    architecture = config_model.architecture
    if architecture in BASELINES:
        raise ConfigError(
            f"model.architecture = {architecture!r} is a baseline computed without a model "
            f"(it needs no training); only {', '.join(MODEL_BUILDERS)} builds a Keras model"
        )
    if architecture not in MODEL_BUILDERS:
        raise ConfigError(
            f"model.architecture = {architecture!r}: use one of "
            f"{', '.join(list(MODEL_BUILDERS) + list(BASELINES))}"
        )
    with precision_scope(config_model.precision):
        return MODEL_BUILDERS[architecture](config_model, size, output_mean=output_mean)
