"""Per-case image-quality metrics of a predicted CT volume (numpy).

The paper's Table 1 reports one number per row: the test MSE ("Test Accuracy
MSE (± 0.001)", on volumes scaled to [0, 1]). MAE, PSNR and 3D SSIM, and the
standard deviation over test cases beside each mean, are ours (common in
X-ray-to-CT work). Every metric compares the predicted and the true normalized
volume (values in [0, 1]) for each test case; the table gives the mean and
standard deviation over the test set. These functions work on one case at a
time; :func:`summarize` aggregates them.
"""

import math

import numpy as np
from scipy import ndimage

from xprospect_tf.errors import InputError

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # the Gaussian window reaches 3.5 sigma: 11 voxels for sigma 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
METRICS = ("mse", "mae", "psnr", "ssim")


def _pair(pred, truth):
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if pred.shape != truth.shape:
        raise InputError(
            f"prediction shape {pred.shape} differs from ground-truth shape {truth.shape}; "
            "compare volumes of the same size"
        )
    return pred, truth


def mse(pred, truth):
    """Mean squared error between two volumes.

    Args:
        pred: predicted volume.
        truth: ground-truth volume of the same shape.

    Returns:
        float.

    Example:
        >>> mse(np.zeros(4), np.full(4, 0.5))
        0.25
    """
    pred, truth = _pair(pred, truth)
    return float(np.mean((pred - truth) ** 2))


def mae(pred, truth):
    """Mean absolute error between two volumes.

    Example:
        >>> mae(np.zeros(4), np.full(4, 0.5))
        0.5
    """
    pred, truth = _pair(pred, truth)
    return float(np.mean(np.abs(pred - truth)))


def psnr(pred, truth, data_range=1.0):
    """Peak signal-to-noise ratio in dB: ``10 log10(data_range^2 / MSE)``.

    Args:
        pred: predicted volume.
        truth: ground-truth volume.
        data_range: the span of possible values (1 for volumes in [0, 1]).

    Returns:
        float; ``inf`` for identical volumes.

    Example:
        >>> round(psnr(np.zeros(4), np.full(4, 0.1)), 6)
        20.0
    """
    err = mse(pred, truth)
    if err == 0:
        return math.inf
    return float(10.0 * np.log10(data_range**2 / err))


def ssim3d(pred, truth, data_range=1.0):
    """Mean structural similarity over a 3D volume (Wang et al. 2004, in 3D).

    Local means, variances and covariance are Gaussian-weighted (sigma 1.5,
    truncated at 3.5 sigma, reflecting borders), with population covariance and
    constants ``C1 = (0.01 R)^2``, ``C2 = (0.03 R)^2``. The SSIM map is averaged
    after cropping the half-window at every border, as
    ``skimage.metrics.structural_similarity(..., gaussian_weights=True,
    use_sample_covariance=False)`` does.

    Args:
        pred: predicted volume (any number of dimensions, at least 11 per side).
        truth: ground-truth volume of the same shape.
        data_range: the span of possible values ``R``.

    Returns:
        float in [-1, 1]; 1 for identical volumes.

    Example:
        >>> v = np.random.default_rng(0).random((16, 16, 16))
        >>> ssim3d(v, v)
        1.0
    """
    pred, truth = _pair(pred, truth)
    radius = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    if min(pred.shape) < 2 * radius + 1:
        raise InputError(
            f"ssim3d needs volumes of at least {2 * radius + 1} voxels per side; got {pred.shape}"
        )

    def smooth(a):
        return ndimage.gaussian_filter(a, SSIM_SIGMA, mode="reflect", truncate=SSIM_TRUNCATE)

    ux, uy = smooth(pred), smooth(truth)
    vx = smooth(pred * pred) - ux * ux
    vy = smooth(truth * truth) - uy * uy
    vxy = smooth(pred * truth) - ux * uy
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    ssim_map = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    inner = tuple(slice(radius, n - radius) for n in ssim_map.shape)
    return float(ssim_map[inner].mean())


def case_metrics(pred, truth):
    """All Table 1 metrics of one case (volumes in [0, 1]).

    Returns:
        dict with keys ``mse``, ``mae``, ``psnr``, ``ssim``.

    Example:
        >>> v = np.random.default_rng(0).random((12, 12, 12))
        >>> sorted(case_metrics(v * 0.9, v))
        ['mae', 'mse', 'psnr', 'ssim']
    """
    return {
        "mse": mse(pred, truth),
        "mae": mae(pred, truth),
        "psnr": psnr(pred, truth),
        "ssim": ssim3d(pred, truth),
    }


def summarize(per_case):
    """Mean and (population) standard deviation of each metric over cases.

    Args:
        per_case: list of dicts metric -> value, e.g. from :func:`case_metrics`;
            non-numeric entries (such as a ``case_id``) are ignored.

    Returns:
        dict metric -> ``(mean, std)``, metrics in the order of the first case.

    Example:
        >>> summarize([{"mse": 1.0}, {"mse": 3.0}])
        {'mse': (2.0, 1.0)}
    """
    if not per_case:
        raise InputError("summarize: no cases to summarize; evaluate at least one test case")
    keys = [k for k, v in per_case[0].items() if isinstance(v, (int, float, np.number))]
    for i, case in enumerate(per_case):
        if not set(keys) <= set(case):
            raise InputError(f"summarize: case {i} has metrics {sorted(case)}, expected {sorted(keys)}")
    out = {}
    for k in keys:
        values = np.array([case[k] for case in per_case], dtype=np.float64)
        out[k] = (float(values.mean()), float(values.std()))
    return out


def own_case_match(preds, truths):
    """How often a prediction is closer (MSE) to its own case's truth than to every other case's.

    A check that a model's output depends on its input: a model that ignores the
    X-rays (the mean volume) scores about ``1 / N`` or, predicting the same volume for
    all, 0 (ties count against it); one that captures each patient scores 1.

    Args:
        preds, truths: sequences of N volumes of one shape (case ``i`` in both at ``i``).

    Returns:
        ``(rate, margin)``: the share of cases whose own truth is strictly the nearest,
        and the mean over cases of (mean MSE to the other truths) / (MSE to the own truth).

    Example:
        >>> truths = [np.zeros(4), np.ones(4), np.full(4, 2.0)]
        >>> own_case_match([t + 0.1 for t in truths], truths)[0]
        1.0
        >>> own_case_match([np.ones(4)] * 3, truths)[0]  # one volume for all: only case 1 matches
        0.3333333333333333
    """
    preds = np.asarray([np.asarray(p, dtype=np.float64).ravel() for p in preds])
    truths = np.asarray([np.asarray(t, dtype=np.float64).ravel() for t in truths])
    if preds.shape != truths.shape or len(preds) < 2:
        raise InputError(f"own_case_match: needs at least 2 predictions and truths of one shape, got "
                         f"{preds.shape} and {truths.shape}")
    d = ((preds[:, None, :] - truths[None, :, :]) ** 2).mean(axis=-1)  # d[i, j] = MSE(pred_i, truth_j)
    own = np.diag(d)
    others = d[~np.eye(len(d), dtype=bool)].reshape(len(d), -1)
    rate = float(np.mean(own < others.min(axis=1)))
    margin = float(np.mean(others.mean(axis=1) / np.maximum(own, 1e-12)))
    return rate, margin
