"""Tests of the style-transfer metrics against scipy / skimage / numpy references."""

import numpy as np
import pytest
import scipy.fft
import scipy.ndimage
import scipy.stats
from skimage.metrics import structural_similarity

from xprospect_tf.errors import InputError
from xprospect_tf.evaluation.style_metrics import (
    histogram_distance,
    radial_power_spectrum,
    spectrum_distance,
    ssim2d_mean,
    style_report,
)


@pytest.mark.parametrize("params_a, params_b", [((2, 5), (5, 2)), ((1, 1), (2, 2)), ((3, 3), (3, 3))],
                         ids=["skewed", "flat-vs-peaked", "same"])
def test_histogram_distance_matches_exact_wasserstein(rng, params_a, params_b):
    a = rng.beta(*params_a, size=(3, 24, 24))
    b = rng.beta(*params_b, size=(5, 24, 24, 1))
    bins = 64
    exact = scipy.stats.wasserstein_distance(a.ravel(), b.ravel())
    assert abs(histogram_distance(a, b, bins=bins) - exact) <= 1.0 / bins


def test_histogram_distance_of_a_shift_is_the_shift(rng):
    a = rng.random((4, 16, 16)) * 0.5
    assert histogram_distance(a, a) == 0.0
    np.testing.assert_allclose(histogram_distance(a, a + 0.3, bins=100), 0.3, atol=0.01)
    assert histogram_distance(a, a + 0.3) == pytest.approx(histogram_distance(a + 0.3, a))


def _reference_spectrum(images):
    """Ring-averaged power with explicit loops (independent of the vectorized code)."""
    n, h, w = images.shape
    rings = {}
    for image in images:
        power = np.abs(scipy.fft.fft2(image - image.mean())) ** 2 / (h * w)
        for i in range(h):
            for j in range(w):
                fy = (i - h if i > (h - 1) // 2 else i) / h
                fx = (j - w if j > (w - 1) // 2 else j) / w
                r = int(round(np.hypot(fy, fx) * min(h, w)))
                if r <= min(h, w) // 2:
                    rings.setdefault(r, []).append(power[i, j])
    return np.array([np.mean(rings[r]) for r in sorted(rings)])


@pytest.mark.parametrize("shape", [(2, 16, 16), (1, 12, 20), (3, 15, 15)])
def test_radial_power_spectrum_matches_loop_reference(rng, shape):
    images = rng.random(shape)
    np.testing.assert_allclose(radial_power_spectrum(images), _reference_spectrum(images),
                               rtol=1e-10, atol=1e-20)


def test_radial_power_spectrum_of_a_cosine_peaks_at_its_frequency():
    n, k = 32, 5
    x = np.arange(n)
    image = np.broadcast_to(np.cos(2 * np.pi * k * x / n), (n, n))
    spectrum = radial_power_spectrum(image[..., None][None])
    assert int(np.argmax(spectrum)) == k
    assert spectrum[k] > 1e6 * np.delete(spectrum, k).max()


def test_spectrum_distance_separates_smooth_from_noisy(rng):
    noise_a, noise_b = rng.random((4, 32, 32)), rng.random((4, 32, 32))
    smooth = scipy.ndimage.gaussian_filter(noise_a, sigma=(0, 2, 2))
    assert spectrum_distance(noise_a, noise_a) == 0.0
    assert spectrum_distance(noise_a, 10 * noise_a) == pytest.approx(2.0, abs=1e-6)
    assert spectrum_distance(smooth, noise_b) > 5 * spectrum_distance(noise_a, noise_b)
    with pytest.raises(InputError, match="same image size"):
        spectrum_distance(noise_a, noise_b[:, :16, :16])


def test_ssim2d_mean_is_the_mean_of_skimage_pairs(rng):
    a = rng.random((3, 24, 24, 1))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    pairs = zip(a[..., 0], b[..., 0])
    expected = np.mean([structural_similarity(x, y, data_range=1.0) for x, y in pairs])
    assert ssim2d_mean(a, b) == pytest.approx(expected)
    assert ssim2d_mean(a, a) == pytest.approx(1.0)
    assert ssim2d_mean(a[0, ..., 0], b[0, ..., 0]) == pytest.approx(
        structural_similarity(a[0, ..., 0], b[0, ..., 0], data_range=1.0))
    with pytest.raises(InputError, match="same shape"):
        ssim2d_mean(a, b[:2])


@pytest.mark.parametrize("bad", [np.zeros((2, 3, 4, 5)), np.zeros(7), np.zeros((0, 4, 4))])
def test_bad_image_arrays_raise(bad):
    with pytest.raises(InputError, match="expected images"):
        histogram_distance(bad, np.zeros((1, 4, 4)))


def test_style_report_detects_a_styling_step(rng):
    targets = scipy.ndimage.gaussian_filter(rng.random((4, 32, 32)), (0, 1, 1)) * 0.5 + 0.4
    sources = rng.random((4, 32, 32)) * 0.3
    stylized = scipy.ndimage.gaussian_filter(sources, (0, 1, 1)) + 0.4  # same blur, same brightness
    report = style_report(sources, stylized, targets)
    assert report["histogram_stylized"] < report["histogram_source"] / 2
    assert report["spectrum_stylized"] < report["spectrum_source"] / 2
    assert 0.0 < report["ssim"] <= 1.0
