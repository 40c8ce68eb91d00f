"""Latent mode: a 2D autoencoder applied slice by slice, the diffusion running on the stacked latents.

X-ray2CTPA (Cahan et al., 2024, "Methods") feeds the CT "slice by slice" to a
frozen, pretrained 2D VAE (kl-f8: compression 8 in-plane) and concatenates the
compressed slices into the 3D latent the diffusion model works on. No
pretrained weights can be downloaded here, so the autoencoder is trained on the
row's own training slices first (ours: a plain deterministic autoencoder with an
L1 reconstruction loss, no KL term), then frozen while the diffusion trains.
"""

import math

import keras
from keras import ops

from xprospect_tf.models.diffusion.unet import ACTIVATION, _norm

COMPRESSION = 8  # in-plane, the paper's kl-f8


@keras.saving.register_keras_serializable(package="xprospect_tf")
class SliceWise(keras.layers.Layer):
    """Apply a 2D model to every axial slice: ``(B, D, H, W, C) -> (B, D, h, w, c)``.

    Args:
        model: a Keras model on ``(H, W, C)`` images.

    Example:
        >>> import numpy as np
        >>> pool = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.AveragePooling2D(2)])
        >>> tuple(SliceWise(pool)(np.ones((2, 3, 4, 4, 1))).shape)
        (2, 3, 2, 2, 1)
    """

    def __init__(self, model, **kwargs):
        super().__init__(**kwargs)
        self.model = model

    def call(self, x):
        batch, depth = ops.shape(x)[0], ops.shape(x)[1]
        y = self.model(ops.reshape(x, (-1, *x.shape[2:])))
        return ops.reshape(y, (batch, depth, *y.shape[1:]))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], *self.model.output_shape[1:])

    def get_config(self):
        return {**super().get_config(), "model": keras.saving.serialize_keras_object(self.model)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        return cls(**config)


def build_slice_autoencoder(size, latent_channels=4, filters=16, compression=COMPRESSION):
    """The 2D slice encoder ``(size, size, 1) -> (size/c, size/c, latent_channels)`` and its decoder.

    Encoder: a 3x3 convolution, then per halving a stride-2 3x3 convolution with
    group normalization and SiLU (widths ``filters``, doubling), and a 1x1
    convolution to the latent channels. Decoder: the mirror, with nearest
    up-sampling, ending in a linear 3x3 convolution (images in [-1, 1]).

    Returns:
        ``(encoder, decoder)``, functional ``keras.Model``s.

    Example:
        >>> enc, dec = build_slice_autoencoder(16, latent_channels=2, filters=4)
        >>> enc.output_shape, dec.output_shape
        ((None, 2, 2, 2), (None, 16, 16, 1))
    """
    halvings = int(round(math.log2(compression)))
    if 2**halvings != compression or size % compression:
        raise ValueError(f"build_slice_autoencoder: compression {compression} must be a power of two "
                         f"dividing the size {size}")
    image = keras.Input((size, size, 1), name="slice")
    h = keras.layers.Conv2D(filters, 3, padding="same", name="enc_stem")(image)
    for i in range(halvings):
        width = filters * 2 ** min(i + 1, 3)
        h = keras.layers.Conv2D(width, 3, strides=2, padding="same", name=f"enc_down{i}")(h)
        h = _norm(width, f"enc_norm{i}")(h)
        h = keras.layers.Activation(ACTIVATION, name=f"enc_act{i}")(h)
    latent = keras.layers.Conv2D(latent_channels, 1, name="enc_latent")(h)
    encoder = keras.Model(image, latent, name="slice_encoder")

    code = keras.Input((size // compression, size // compression, latent_channels), name="latent")
    h = keras.layers.Conv2D(filters * 2 ** min(halvings, 3), 3, padding="same", name="dec_stem")(code)
    for i in reversed(range(halvings)):
        width = filters * 2 ** min(i, 3)
        h = keras.layers.UpSampling2D(2, name=f"dec_up{i}")(h)
        h = keras.layers.Conv2D(width, 3, padding="same", name=f"dec_conv{i}")(h)
        h = _norm(width, f"dec_norm{i}")(h)
        h = keras.layers.Activation(ACTIVATION, name=f"dec_act{i}")(h)
    out = keras.layers.Conv2D(1, 3, padding="same", name="dec_out")(h)
    decoder = keras.Model(code, out, name="slice_decoder")
    return encoder, decoder
