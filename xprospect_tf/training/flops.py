"""Forward FLOPs of a built Keras model, counted from its layers' shapes.

Like the tensor-size guard (:mod:`.guard`), this walks a built model; it goes
into nested models and into the sublayers of composite layers (ConvBlock,
Connection-A/B, ...), each layer once. It counts the multiply-adds of the layers
that hold nearly all of them, as ``2 * MACs``:

- ``Conv1D/2D/3D`` (also depthwise and grouped): ``output positions x kernel volume
  x in_channels / groups x out_channels``, i.e. the kernel's elements at every
  output position;
- ``Conv1D/2D/3DTranspose``: the kernel's elements at every *input* position (each
  input voxel is scattered through the whole kernel);
- ``Dense``: ``in_features x units`` at every position of the input's leading
  (non-batch) axes.

Not counted: biases, activations, normalization, pooling, up-sampling,
concatenation, additions (element-wise work, a few FLOPs per activation),
separable convolutions (not used here) and attention (``MultiHeadAttention``'s
projections and products; the diffusion denoiser has one block of it at its
coarsest level).
A layer that computes differently from its sublayers' shapes (Connection-B runs
2D convolutions with its Conv3D's kernel) reports its own count through a
``flops()`` method, and its sublayers are then not walked.
Figures are per sample: the batch axis is left out.
"""

import math

import keras


def layer_flops(layer):
    """Forward FLOPs (``2 * MACs``) of one sample through ``layer``; 0 for a layer not counted.

    Args:
        layer: a built Keras layer (its input shape is the one it was built with).

    Example:
        >>> conv = keras.layers.Conv2D(4, 3, padding="same")
        >>> conv.build((None, 8, 8, 2))
        >>> layer_flops(conv) == 2 * (8 * 8) * (3 * 3) * 2 * 4
        True
    """
    kernel = getattr(layer, "kernel", None)
    if kernel is None or not layer.built:
        return 0
    input_shape = tuple(layer.get_build_config()["input_shape"])
    if isinstance(layer, _TRANSPOSED):
        positions = math.prod(input_shape[1:-1])
    elif isinstance(layer, _CONVOLUTIONS):
        positions = math.prod(layer.compute_output_shape(input_shape)[1:-1])
    elif isinstance(layer, keras.layers.Dense):
        positions = math.prod(input_shape[1:-1])
    else:
        return 0
    return 2 * positions * math.prod(kernel.shape)


_TRANSPOSED = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)
_CONVOLUTIONS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
                 keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)


def forward_flops(model):
    """Forward FLOPs of one sample through a built model: :func:`layer_flops` summed over
    every layer inside it (nested models and composite layers' sublayers included).

    Args:
        model: a built ``keras.Model`` (or layer).

    Returns:
        an int.

    Example:
        >>> model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(4), keras.layers.Dense(3)])
        >>> forward_flops(model) == 2 * (10 * 4 + 4 * 3)
        True
    """
    seen = set()

    def walk(layer):
        if id(layer) in seen:
            return 0
        seen.add(id(layer))
        if callable(getattr(layer, "flops", None)):
            return int(layer.flops())
        return layer_flops(layer) + sum(walk(child) for child in layer._flatten_layers(include_self=False,
                                                                                           recursive=False))

    return walk(model)
