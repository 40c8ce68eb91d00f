"""X-ray-conditioned 3D denoising diffusion: the X-ray2CTPA approach (Cahan et al., 2024).

- :mod:`.schedule`: noise schedules and the sampler's coefficients (numpy);
- :mod:`.unet`: the 3D denoising UNet, the default X-ray encoder, the 3D discriminator;
- :mod:`.diffusion_model`: :class:`DiffusionModel` (training loss, DDPM/DDIM sampling).
"""

from xprospect_tf.models.diffusion.diffusion_model import PREDICTIONS, DiffusionModel
from xprospect_tf.models.diffusion.schedule import SCHEDULES
from xprospect_tf.models.diffusion.unet import (
    CONDITIONS, Modulation, TimestepEmbedding, build_denoiser, build_discriminator, build_xray_encoder,
)

__all__ = [
    "CONDITIONS", "DiffusionModel", "Modulation", "PREDICTIONS", "SCHEDULES", "TimestepEmbedding",
    "build_denoiser", "build_diffusion_model", "build_diffusion_row", "build_discriminator", "build_xray_encoder",
]


def build_diffusion_model(size, views=("frontal", "lateral"), channels=(16, 32, 64), embed_dim=128,
                          encoder_filters=16, attention=True, encoder=None, latent_channels=None,
                          autoencoder_filters=16, projection_injection=False, **kwargs):
    """Build a :class:`DiffusionModel` with the default networks at cube side ``size``.

    Args:
        size: cube side and X-ray side.
        views: the X-rays conditioning it: ``("frontal",)`` (X-ray2CTPA) or
            ``("frontal", "lateral")`` (XprospeCT's input).
        channels: the denoiser's widths per level.
        embed_dim: width of the X-ray embedding.
        encoder_filters: the default encoder's first width.
        attention: self-attention at the denoiser's coarsest level.
        encoder: any Keras model from the view images (a dict keyed by view) to
            a ``(batch, embed_dim)`` vector, instead of the default
            :func:`build_xray_encoder` (e.g. a pretrained image model with a head).
        latent_channels: latent mode: channels of the slice autoencoder's latents
            (compression 8 in-plane, :mod:`.autoencoder`); ``None``: pixel space.
        autoencoder_filters: the slice autoencoder's first width.
        projection_injection: also give the denoiser the X-rays back-projected
            through the volume at every level (ours; see :func:`build_denoiser`).
        **kwargs: :class:`DiffusionModel`'s other arguments.

    Example:
        >>> model = build_diffusion_model(8, views=("frontal",), channels=(4, 8), embed_dim=8,
        ...                               encoder_filters=4)
        >>> model.views, model.size
        (('frontal',), 8)
    """
    views = tuple(views)
    encoder = encoder or build_xray_encoder(size, views, filters=encoder_filters, embed_dim=embed_dim)
    grid, in_channels = size, 1
    if latent_channels:
        from xprospect_tf.models.diffusion.autoencoder import COMPRESSION, build_slice_autoencoder

        kwargs["latent_encoder"], kwargs["latent_decoder"] = build_slice_autoencoder(
            size, latent_channels, filters=autoencoder_filters)
        grid, in_channels = (size, size // COMPRESSION, size // COMPRESSION), latent_channels
    denoiser = build_denoiser(grid, channels=channels, condition_dim=int(encoder.outputs[0].shape[-1]),
                              attention=attention, in_channels=in_channels,
                              projection_channels=len(views) if projection_injection else 0)
    return DiffusionModel(encoder, denoiser, views=views, **kwargs)


def build_diffusion_row(config, regressor=None):
    """The :class:`DiffusionModel` of a diffusion row's :class:`~xprospect_tf.config.RunConfig`.

    The denoiser's widths per level are the UNet rows' (:func:`~xprospect_tf.models.level_filters`
    of ``model.base_filters`` over ``model.levels`` down-samplings); its layers compute in
    ``model.precision``; the rest is ``config.diffusion``. ``regressor``: the trained model of
    the row ``diffusion.residual_of`` names (residual mode; ``None``: none, or a
    size-only build when that setting is given).

    Example:
        >>> from xprospect_tf.config import load_experiments
        >>> cfg = load_experiments().resolve("Diffusion-Frontal", "smoke")
        >>> model = build_diffusion_row(cfg)
        >>> model.views, model.size
        (('frontal',), 32)
    """
    from xprospect_tf.checks import default_levels
    from xprospect_tf.models.reconstruction import level_filters
    from xprospect_tf.training.precision import precision_scope

    size, d, m = config.data.size, config.diffusion, config.model
    levels = m.levels or default_levels(size)
    with precision_scope(m.precision):
        return build_diffusion_model(
            size, views=CONDITIONS[d.views], channels=level_filters(m.base_filters, levels),
            embed_dim=d.embed_dim, encoder_filters=d.encoder_filters, attention=d.attention,
            schedule=d.schedule, timesteps=d.timesteps, snr_shift=d.snr_shift, standardize=d.standardize,
            prediction=d.prediction, sample_steps=d.sample_steps,
            eta=d.eta, guidance=d.guidance, condition_dropout=d.condition_dropout,
            perceptual_weight=d.perceptual_weight, adversarial_weight=d.adversarial_weight,
            discriminator_filters=d.discriminator_filters, seed=config.train.seed,
            classification_weight=d.classification_weight, classifier_filters=d.classifier_filters,
            latent_channels=d.latent_channels if d.latent else None,
            projection_injection=d.projection_injection, regressor=regressor,
            name=config.row.lower().replace(" ", "_").replace("-", "_"))
