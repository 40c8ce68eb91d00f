"""Measured checks that style transfer works (XprospeCT, Paulson et al., 2024, section 3.1).

Styling should move mean-CT projections towards real radiographs (domain B) in
intensity distribution and texture, while keeping the anatomy:

- :func:`histogram_distance`: Wasserstein-1 distance between the pooled pixel
  intensity distributions of two image sets (in intensity units);
- :func:`spectrum_distance`: RMS difference of the log10 radially averaged power
  spectra of two image sets (texture and sharpness);
- :func:`ssim2d_mean`: mean SSIM of paired images (structure kept);
- :func:`style_report`: the three together, before and after styling.

Images are numpy arrays ``(N, H, W)``, ``(N, H, W, 1)`` or a single ``(H, W)``,
intensities in [0, 1].
"""

import numpy as np
import scipy.stats
from skimage.metrics import structural_similarity

from xprospect_tf.errors import InputError


def histogram_distance(images_a, images_b, bins=64, value_range=(0.0, 1.0)):
    """Wasserstein-1 distance between the intensity histograms of two image sets.

    Pixels of each set are pooled into a ``bins``-bin histogram over
    ``value_range`` (values outside are clipped into the end bins); the distance
    is the earth mover's distance between the two histograms, placed at the bin
    centres. It approximates the exact W1 of the pixel values to within one bin
    width.

    Args:
        images_a: first image set (any number of images, any size).
        images_b: second image set.
        bins: number of histogram bins.
        value_range: ``(low, high)`` intensity range of the histograms.

    Returns:
        float, in intensity units (0 for identical distributions).

    Example:
        >>> a = np.random.default_rng(0).random((4, 16, 16))
        >>> round(histogram_distance(a, np.clip(a + 0.25, 0, 1.5), value_range=(0, 1.5)), 2)
        0.25
    """
    low, high = (float(v) for v in value_range)
    if not high > low or int(bins) < 1:
        raise InputError(f"histogram_distance: need bins >= 1 and low < high, got bins={bins}, "
                         f"value_range={value_range}")
    edges = np.linspace(low, high, int(bins) + 1)
    centres = 0.5 * (edges[:-1] + edges[1:])
    hist_a = _histogram(images_a, edges, "images_a")
    hist_b = _histogram(images_b, edges, "images_b")
    return float(scipy.stats.wasserstein_distance(centres, centres, hist_a, hist_b))


def radial_power_spectrum(images):
    """Mean radially averaged power spectrum of an image set.

    For each image the mean is removed, the 2D power ``|FFT|^2 / (H * W)`` is
    computed and averaged over rings of integer radius ``r`` (frequency
    ``r / min(H, W)`` cycles per pixel, ``r = 0`` = DC) up to the Nyquist
    radius ``min(H, W) // 2``.

    Args:
        images: ``(N, H, W)``, ``(N, H, W, 1)`` or ``(H, W)``.

    Returns:
        float64 array ``(min(H, W) // 2 + 1,)``: the mean power per radius.

    Example:
        >>> radial_power_spectrum(np.zeros((2, 16, 16))).shape
        (9,)
    """
    stack = _as_stack(images, "images")
    n, height, width = stack.shape
    centred = stack - stack.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(centred)) ** 2 / (height * width)
    radius = _radius_index(height, width)
    n_radii = min(height, width) // 2 + 1
    keep = radius < n_radii
    sums = np.bincount(radius[keep], weights=power.mean(axis=0)[keep], minlength=n_radii)
    counts = np.bincount(radius[keep], minlength=n_radii)
    return sums / np.maximum(counts, 1)


def spectrum_distance(images_a, images_b, eps=1e-10):
    """RMS difference of the log10 radially averaged power spectra of two image sets.

    The DC term (radius 0) is left out, so a brightness offset alone does not
    count (that is :func:`histogram_distance`'s job).

    Args:
        images_a: first image set, all images ``(H, W)``.
        images_b: second image set, same ``(H, W)``.
        eps: added to the power before the log.

    Returns:
        float, in decades (0 for identical spectra; 1 = a 10x power ratio at
        every frequency).

    Example:
        >>> a = np.random.default_rng(0).random((2, 16, 16))
        >>> round(spectrum_distance(a, 10 * a), 6)
        2.0
    """
    spec_a = radial_power_spectrum(images_a)
    spec_b = radial_power_spectrum(images_b)
    if spec_a.shape != spec_b.shape:
        raise InputError("spectrum_distance: images_a and images_b must have the same image size "
                         f"(got {len(spec_a)} and {len(spec_b)} radii); resize one set first")
    diff = np.log10(spec_a[1:] + eps) - np.log10(spec_b[1:] + eps)
    return float(np.sqrt(np.mean(diff**2)))


def ssim2d_mean(a, b, data_range=1.0):
    """Mean SSIM over pairs ``(a[i], b[i])`` (skimage, default 7x7 window).

    Args:
        a: image set ``(N, H, W[, 1])`` or one image ``(H, W)``.
        b: image set of the same shape (``b[i]`` paired with ``a[i]``).
        data_range: intensity range of the images (1.0 for [0, 1]).

    Returns:
        float, mean SSIM (1 for identical images).

    Example:
        >>> x = np.random.default_rng(0).random((2, 16, 16))
        >>> ssim2d_mean(x, x)
        1.0
    """
    stack_a, stack_b = _as_stack(a, "a"), _as_stack(b, "b")
    if stack_a.shape != stack_b.shape:
        raise InputError(f"ssim2d_mean: a and b must be paired images of the same shape, got "
                         f"{stack_a.shape} and {stack_b.shape}")
    scores = [structural_similarity(x, y, data_range=data_range) for x, y in zip(stack_a, stack_b)]
    return float(np.mean(scores))


def style_report(sources, stylized, targets, bins=64):
    """Distances to domain B before and after styling, and structure kept.

    Args:
        sources: mean-CT projections (domain A), ``(N, H, W[, 1])``.
        stylized: ``g_ab(sources)``, same shape, paired with ``sources``.
        targets: real X-rays (domain B), unpaired, same image size.
        bins: histogram bins.

    Returns:
        dict with ``histogram_source``, ``histogram_stylized`` (distance to
        domain B), ``spectrum_source``, ``spectrum_stylized`` and ``ssim``
        (stylized vs. source). Styling works when the ``*_stylized`` distances
        are well below the ``*_source`` ones and ``ssim`` stays high.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> sources, targets = rng.random((2, 16, 16)), rng.random((3, 16, 16)) ** 3
        >>> report = style_report(sources, sources, targets)  # an identity "styling"
        >>> sorted(report)
        ['histogram_source', 'histogram_stylized', 'spectrum_source', 'spectrum_stylized', 'ssim']
        >>> report["histogram_stylized"] == report["histogram_source"], round(report["ssim"], 6)
        (True, 1.0)
    """
    return {
        "histogram_source": histogram_distance(sources, targets, bins),
        "histogram_stylized": histogram_distance(stylized, targets, bins),
        "spectrum_source": spectrum_distance(sources, targets),
        "spectrum_stylized": spectrum_distance(stylized, targets),
        "ssim": ssim2d_mean(stylized, sources),
    }


def _as_stack(images, what):
    array = np.asarray(images, dtype=np.float64)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    elif array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.size == 0:
        raise InputError(f"{what}: expected images (N, H, W), (N, H, W, 1) or (H, W), got shape "
                         f"{np.shape(images)}")
    return array


def _histogram(images, edges, what):
    values = np.clip(_as_stack(images, what).ravel(), edges[0], edges[-1])
    return np.histogram(values, bins=edges)[0].astype(np.float64)


def _radius_index(height, width):
    """Ring index of each FFT bin: frequency (cycles/pixel) times ``min(H, W)``, rounded."""
    fy, fx = np.fft.fftfreq(height), np.fft.fftfreq(width)
    return np.rint(np.hypot(fy[:, None], fx[None, :]) * min(height, width)).astype(np.int64)
