import math

import numpy as np
import pytest
from skimage import metrics as skm

from xprospect_tf.errors import InputError
from xprospect_tf.evaluation import metrics as M


def _pair(rng, shape=(16, 18, 20)):
    truth = rng.random(shape)
    pred = np.clip(truth + 0.1 * rng.standard_normal(shape), 0, 1)
    return pred, truth


def test_mse_mae_psnr_match_skimage_and_numpy(rng):
    pred, truth = _pair(rng)
    assert M.mse(pred, truth) == pytest.approx(skm.mean_squared_error(truth, pred), rel=1e-12)
    assert M.mae(pred, truth) == pytest.approx(np.abs(pred - truth).sum() / pred.size, rel=1e-12)
    assert M.psnr(pred, truth) == pytest.approx(
        skm.peak_signal_noise_ratio(truth, pred, data_range=1.0), rel=1e-12
    )
    assert M.psnr(pred * 2, truth * 2, data_range=2.0) == pytest.approx(M.psnr(pred, truth))


def test_psnr_identical_is_inf(rng):
    v = rng.random((4, 4, 4))
    assert M.psnr(v, v) == math.inf


@pytest.mark.parametrize("shape", [(16, 16, 16), (12, 20, 15)])
def test_ssim3d_matches_skimage(rng, shape):
    pred, truth = _pair(rng, shape)
    expected = skm.structural_similarity(
        truth, pred, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
    )
    assert M.ssim3d(pred, truth) == pytest.approx(expected, abs=1e-10)
    assert M.ssim3d(truth, truth) == pytest.approx(1.0)
    assert M.ssim3d(pred, truth) < 0.99


def test_ssim3d_rejects_small_volume_and_shape_mismatch(rng):
    with pytest.raises(InputError, match="at least 11"):
        M.ssim3d(rng.random((8, 16, 16)), rng.random((8, 16, 16)))
    with pytest.raises(InputError, match="shape"):
        M.mse(np.zeros((4, 4)), np.zeros((4, 5)))


def test_case_metrics_and_summarize(rng):
    cases = [M.case_metrics(*_pair(rng)) for _ in range(3)]
    assert list(cases[0]) == ["mse", "mae", "psnr", "ssim"]
    summary = M.summarize(cases)
    for k in M.METRICS:
        values = [c[k] for c in cases]
        assert summary[k] == pytest.approx((np.mean(values), np.std(values)))
    with pytest.raises(InputError):
        M.summarize([])
    with pytest.raises(InputError, match="case 1"):
        M.summarize([{"mse": 1.0}, {"mae": 1.0}])


def test_own_case_match_against_a_brute_force_count(rng):
    from xprospect_tf.evaluation.metrics import own_case_match

    truths = [rng.random((6, 6, 6)) for _ in range(5)]
    preds = [truths[i] + 0.05 * rng.standard_normal((6, 6, 6)) for i in (0, 1, 2)] + [truths[0], truths[1]]
    hits, ratios = 0, []
    for i, p in enumerate(preds):
        d = [float(np.mean((p - t) ** 2)) for t in truths]
        hits += all(d[i] < d[j] for j in range(5) if j != i)
        ratios.append(np.mean([d[j] for j in range(5) if j != i]) / max(d[i], 1e-12))
    rate, margin = own_case_match(preds, truths)
    assert rate == hits / 5 == 0.6
    assert np.isclose(margin, np.mean(ratios))
