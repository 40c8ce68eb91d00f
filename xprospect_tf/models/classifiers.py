"""Small binary classifiers for the X-ray2CTPA classification protocol (its Table 3).

Cahan et al. (2024) classify pulmonary embolism from the real CTPA (a
DenseNet3D-121 on the latents of their 2D VAE), from the chest X-ray (a
RadImageNet ResNet-50) and from the generated CTPA. Neither network fits a
2-core smoke run, and neither has pretrained weights offline; these are this
project's small stand-ins, one convolutional tower implementation for 2D and
3D (``dims``):

- ``cnn3d``: one 3D tower on the CT volume (input ``ct``, ``(S, S, S, 1)``);
- ``cnn2d``: one 2D tower per X-ray view (inputs ``frontal`` and ``lateral``,
  ``(S, S, 1)`` each, separate weights: the views see different anatomy),
  their features concatenated.

Each tower is ``levels`` (default 3) x (3^d convolution, batch normalization,
ReLU, 2^d max pooling) and a global average over places (ours). Measured on
32^3 phantoms with a 48-60 mm lung mass (320 training cases, 160 held out, 20
epochs): this tower 0.98 held-out AUC; the same with a global max 0.75; two
levels, a 1^d convolution and a global max (a local detector, the previous
default) 0.53 while fitting the training cases (training AUC 1). With fewer
than a few hundred cases every 3D tower tried memorized the anatomy of each
case (docs/classification.md). The head is one sigmoid unit, ``score``: the
probability of the positive class. Names map to builders in :data:`CLASSIFIERS` (the choices of
``classify.ct_classifier`` / ``classify.xray_classifier``); each builder's
``inputs`` attribute says what it reads (:data:`VOLUME` or :data:`XRAYS`).
"""

import math

import keras

VOLUME = "volume"
XRAYS = "xrays"


def _tower(x, dims, filters, levels, name):
    conv = keras.layers.Conv3D if dims == 3 else keras.layers.Conv2D
    pool = keras.layers.MaxPooling3D if dims == 3 else keras.layers.MaxPooling2D
    for i in range(levels):
        width = min(filters * 2**i, 4 * filters)
        x = conv(width, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"{name}_norm{i}")(x)
        x = keras.layers.Activation("relu", name=f"{name}_relu{i}")(x)
        x = pool(2, name=f"{name}_pool{i}")(x)
    mean = keras.layers.GlobalAveragePooling3D if dims == 3 else keras.layers.GlobalAveragePooling2D
    return mean(name=f"{name}_mean")(x)


def _levels(size, levels):
    if levels is None:
        levels = max(1, min(3, int(math.log2(size)) - 2))  # see the module
    if size < 2**levels:
        raise ValueError(f"size {size} is too small for {levels} pooling levels")
    return int(levels)


def _head(features, dropout):
    if dropout:
        features = keras.layers.Dropout(dropout, name="dropout")(features)
    return keras.layers.Dense(1, activation="sigmoid", name="score")(features)


def build_cnn3d(size, filters=8, levels=None, dropout=0.0, name="cnn3d"):
    """A small 3D CNN scoring a CT volume.

    Args:
        size: cube side ``S`` of the volume (at least ``2**levels``).
        filters: channels of the first level (doubling per level, at most 4x).
        levels: convolution + pooling levels (default ``min(3, log2(S) - 2)``).
        dropout: dropout rate before the output unit.
        name: the model's name.

    Returns:
        a ``keras.Model``: input ``{"ct": (batch, S, S, S, 1)}`` -> ``score`` ``(batch, 1)`` in (0, 1).

    Example:
        >>> model = build_cnn3d(16, filters=2)
        >>> tuple(model({"ct": keras.ops.zeros((3, 16, 16, 16, 1))}).shape)
        (3, 1)
    """
    volume = keras.Input((size, size, size, 1), name="ct")
    features = _tower(volume, 3, filters, _levels(size, levels), "ct")
    return keras.Model({"ct": volume}, _head(features, dropout), name=name)


def build_cnn2d(size, filters=8, levels=None, dropout=0.0, name="cnn2d"):
    """A small 2D CNN scoring an X-ray pair: one tower per view, features concatenated.

    Args:
        size: side ``S`` of both X-ray images.
        filters, levels, dropout, name: as in :func:`build_cnn3d`.

    Returns:
        a ``keras.Model``: inputs ``frontal`` and ``lateral`` ``(batch, S, S, 1)`` ->
        ``score`` ``(batch, 1)`` in (0, 1).

    Example:
        >>> model = build_cnn2d(16, filters=2)
        >>> x = keras.ops.zeros((3, 16, 16, 1))
        >>> tuple(model({"frontal": x, "lateral": x}).shape)
        (3, 1)
    """
    frontal = keras.Input((size, size, 1), name="frontal")
    lateral = keras.Input((size, size, 1), name="lateral")
    n = _levels(size, levels)
    features = keras.layers.Concatenate(name="views")([_tower(frontal, 2, filters, n, "frontal"),
                                                       _tower(lateral, 2, filters, n, "lateral")])
    return keras.Model({"frontal": frontal, "lateral": lateral}, _head(features, dropout), name=name)


build_cnn3d.inputs = VOLUME
build_cnn2d.inputs = XRAYS

CLASSIFIERS = {"cnn3d": build_cnn3d, "cnn2d": build_cnn2d}
"""Classifier backbones by name: ``builder(size, filters=..., levels=..., dropout=...)``; the
builder's ``inputs`` is :data:`VOLUME` (a CT: real or generated) or :data:`XRAYS` (the pair)."""


def classifiers_for(inputs):
    """The names of the classifiers that read ``inputs`` (:data:`VOLUME` or :data:`XRAYS`).

    Example:
        >>> classifiers_for(VOLUME), classifiers_for(XRAYS)
        (('cnn3d',), ('cnn2d',))
    """
    return tuple(name for name, build in CLASSIFIERS.items() if build.inputs == inputs)


def build_classifier(name, size, **kwargs):
    """The classifier ``name`` of :data:`CLASSIFIERS` at ``size``; ``kwargs`` go to its builder.

    Example:
        >>> sorted(i.name for i in build_classifier("cnn2d", 16, filters=2).inputs)
        ['frontal', 'lateral']
    """
    if name not in CLASSIFIERS:
        from xprospect_tf.errors import ConfigError

        raise ConfigError(f"classifier {name!r} is not one of {', '.join(CLASSIFIERS)}")
    return CLASSIFIERS[name](size, **kwargs)
