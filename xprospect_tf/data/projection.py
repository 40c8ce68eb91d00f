"""X-ray images from CT volumes, and back from X-rays to a volume.

Canonical orientation (``vol[z, x, y]``): the frontal image ``ap[z, x]`` is a
projection along ``y`` (column 0 = patient right), the lateral image
``lat[z, y]`` a projection along ``x`` (column 0 = anterior). Functions accept
batched arrays ``(..., z, x, y)`` as well; all outputs are float32 in ``[0, 1]``.
"""

import numpy as np

from xprospect_tf.checks import DEFAULT_FOV_MM
from xprospect_tf.errors import ConfigError, InputError

MU_WATER_PER_MM = 0.02
FULL_SCALE_MM = DEFAULT_FOV_MM
"""DRR display scale: the water-equivalent path (mm) shown as white. It is the
default field of view, so a chest does not saturate, but it is a constant of the
display, not the dataset's ``fov_mm``: DRR intensities stay comparable between
datasets prepared at different fields of view."""


def mean_projections(vol01):
    """The paper's "mean CT" X-rays: means of the normalized volume along rays.

    XprospeCT, section 3.1: the CT scans "were averaged along the coronal and sagittal
    axis" to give anterior-posterior and lateral images: frontal = mean over depth
    ``y``, lateral = mean over ``x``. Averaging the windowed [0, 1] volume (rather
    than HU) is ours; the paper does not say which.

    Args:
        vol01: array ``(..., z, x, y)`` in ``[0, 1]``.

    Returns:
        ``(ap, lateral)``: float32 arrays ``(..., z, x)`` and ``(..., z, y)``.

    Example:
        >>> ap, lat = mean_projections(np.zeros((4, 5, 6)))
        >>> ap.shape, lat.shape
        ((4, 5), (4, 6))
    """
    vol = _volume_array(vol01, "mean_projections")
    return vol.mean(axis=-1, dtype=np.float32), vol.mean(axis=-2, dtype=np.float32)


def attenuation(hu, mu_water=MU_WATER_PER_MM):
    """Linear attenuation coefficient (1/mm) from Hounsfield units.

    ``mu = mu_water * (1 + HU / 1000)``, clipped at 0 (so air and padding below
    -1000 HU do not attenuate). This treats every tissue as water of a given
    density: bone's stronger photo-electric absorption is ignored.

    Args:
        hu: array in HU.
        mu_water: attenuation of water in 1/mm.

    Returns:
        float32 array of ``hu``'s shape.

    Example:
        >>> round(float(attenuation(np.array(0.0))), 6)
        0.02
    """
    hu = np.asarray(hu, dtype=np.float32)
    return np.maximum(np.float32(mu_water) * (1.0 + hu / 1000.0), 0.0).astype(np.float32)


def drr(hu, spacing_mm, mu_water=MU_WATER_PER_MM, full_scale_mm=FULL_SCALE_MM, gamma=1.0):
    """Parallel-beam digitally reconstructed radiographs (frontal and lateral).

    Beer-Lambert: a ray keeps the fraction ``I / I0 = exp(-p)`` of its photons,
    where ``p`` is the line integral (in mm) of :func:`attenuation` along ``y``
    (frontal) or ``x`` (lateral). A radiograph displays the log signal
    ``p = -ln(I / I0)``, attenuating tissue bright. The display mapping is fixed,
    not fitted to the image, so intensities are comparable between cases::

        image = clip(p / (mu_water * full_scale_mm), 0, 1) ** gamma

    i.e. 1.0 (white) is ``full_scale_mm`` of water on the ray (the default,
    :data:`FULL_SCALE_MM` = 400 mm, is the default field of view, so it does not
    saturate a chest).

    Args:
        hu: array ``(..., z, x, y)`` in HU.
        spacing_mm: voxel size in mm, a number or ``(sz, sx, sy)``.
        mu_water: attenuation of water in 1/mm; 0.02 is about right for the
            60-70 keV mean energy of a chest radiograph.
        full_scale_mm: water-equivalent thickness shown as 1.0.
        gamma: display gamma (< 1 brightens soft tissue).

    Returns:
        ``(ap, lateral)``: float32 arrays ``(..., z, x)`` and ``(..., z, y)`` in ``[0, 1]``.

    Example:
        >>> ap, lat = drr(np.zeros((2, 10, 10)), 10.0)   # 100 mm of water
        >>> round(float(ap[0, 0]), 3)   # 0.02 * 100 / (0.02 * 400)
        0.25
    """
    for name, value in (("mu_water", mu_water), ("full_scale_mm", full_scale_mm), ("gamma", gamma)):
        if not (np.isfinite(value) and value > 0):
            raise ConfigError(f"drr: {name}={value!r} must be a positive number")
    mu = attenuation(_volume_array(hu, "drr"), mu_water)
    _, sx, sy = _spacing3(spacing_mm)
    full = np.float32(mu_water * full_scale_mm)
    path_ap = mu.sum(axis=-1, dtype=np.float32) * np.float32(sy)
    path_lat = mu.sum(axis=-2, dtype=np.float32) * np.float32(sx)
    return tuple(
        (np.clip(p / full, 0.0, 1.0) ** np.float32(gamma)).astype(np.float32)
        for p in (path_ap, path_lat)
    )


def back_projection(ap, lateral):
    """Smear the two X-rays back through the volume and average them.

    XprospeCT, section 4.4, describes ProjInj's input only as "a simplified version
    of back projection with the orthogonal X-ray images"; this smear-and-average is
    our reading of it, and the "Back-projection" baseline that uses it alone is ours:
    ``vol[z, x, y] = (ap[z, x] + lateral[z, y]) / 2``.
    For a volume that is constant along both ray directions (it depends on
    ``z`` only) this inverts :func:`mean_projections`.

    Args:
        ap: frontal image ``(..., z, x)`` in ``[0, 1]``.
        lateral: lateral image ``(..., z, y)`` in ``[0, 1]``, same leading shape.

    Returns:
        float32 volume ``(..., z, x, y)`` in ``[0, 1]``.

    Example:
        >>> back_projection(np.ones((4, 5)), np.zeros((4, 6))).shape
        (4, 5, 6)
    """
    ap = np.asarray(ap, dtype=np.float32)
    lateral = np.asarray(lateral, dtype=np.float32)
    if ap.ndim < 2 or ap.shape[:-1] != lateral.shape[:-1]:
        raise InputError(
            f"back_projection: frontal image {ap.shape} and lateral image {lateral.shape} must be "
            "(..., z, x) and (..., z, y) with the same rows z; drop any channel axis first"
        )
    return ((ap[..., :, :, None] + lateral[..., :, None, :]) * np.float32(0.5)).astype(np.float32)


def _volume_array(vol, where):
    vol = np.asarray(vol, dtype=np.float32)
    if vol.ndim < 3:
        raise InputError(f"{where}: expected a volume (..., z, x, y), got shape {vol.shape}")
    return vol


def _spacing3(spacing_mm):
    try:
        spacing = np.broadcast_to(np.asarray(spacing_mm, dtype=float), (3,))
    except (TypeError, ValueError):
        spacing = np.full(3, np.nan)
    if not np.all(np.isfinite(spacing) & (spacing > 0)):
        raise ConfigError(f"spacing_mm={spacing_mm!r}: must be positive voxel sizes in mm")
    return tuple(float(s) for s in spacing)
