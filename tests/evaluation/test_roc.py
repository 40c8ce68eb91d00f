"""ROC analysis (xprospect_tf.evaluation.roc) against independent references.

References: brute-force pair counting and loops written here from the
definitions; the published outputs of the R package pROC on its aSAH data; a
Monte Carlo estimate of the AUC's sampling spread; scikit-learn where it is
installed.
"""

import ast
import inspect
import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from xprospect_tf.errors import ConfigError, InputError
from xprospect_tf.evaluation import roc as R

# -- the aSAH data of the R package pROC (Robin et al., BMC Bioinformatics 12:77, 2011) --------
# 113 patients after aneurysmal subarachnoid hemorrhage (Turck et al., Intensive Care Med
# 36:107, 2010). Read here from pROC's own data/aSAH.RData (github.com/xrobin/pROC, commit
# ee2877e858bcd2757c05ce797ea64ade2c05885b; file SHA-256
# 245b3fa7d237660842051507e4e0ae9d12da29aeb80ae68e6cbcd45d9442d6d7), rows in pROC's order.
# outcome: 1 = "Poor" (pROC's cases), 0 = "Good" (controls); wfns is the WFNS grade 1-5;
# s100b and ndka are the two biomarkers.
ASAH_POOR = (
    "00001101001011001011101000000000100110110000000001100010001010011101101111000110100000010"
    "000000000001111110001000"
)
ASAH_WFNS = (
    "11113254125255125225211112121134214541425511241125521251222151125214524414121421232421451"
    "154221113125225552445111"
)
ASAH_S100B = [
    0.13, 0.14, 0.1, 0.04, 0.13, 0.1, 0.47, 0.16, 0.18, 0.1, 0.12, 0.1, 0.44, 0.71, 0.04, 0.08,
    0.49, 0.04, 0.07, 0.33, 0.09, 0.09, 0.07, 0.11, 0.07, 0.17, 0.07, 0.11, 0.13, 0.19, 0.05,
    0.16, 0.41, 0.14, 0.34, 0.35, 0.48, 0.09, 0.96, 0.25, 0.5, 0.46, 0.16, 0.07, 0.43, 0.45,
    0.11, 0.08, 0.09, 0.86, 0.52, 0.08, 0.06, 0.13, 2.07, 0.1, 0.14, 0.15, 0.07, 0.06, 0.77,
    0.05, 0.09, 0.3, 0.03, 0.09, 0.04, 0.23, 0.7, 0.09, 0.27, 0.71, 0.08, 0.26, 0.08, 0.16,
    0.09, 0.13, 0.1, 0.08, 0.11, 0.33, 0.11, 0.28, 0.07, 0.1, 0.32, 0.22, 0.07, 0.05, 0.24,
    0.38, 0.1, 0.15, 0.08, 0.14, 0.1, 0.07, 0.04, 0.19, 0.56, 0.14, 0.58, 0.32, 0.82, 0.74,
    0.15, 0.47, 0.17, 0.44, 0.15, 0.5, 0.48,
]
ASAH_NDKA = [
    3.01, 8.54, 8.09, 10.42, 17.4, 12.75, 6.0, 13.2, 15.54, 6.01, 15.96, 17.86, 5.18, 8.9,
    13.41, 20.75, 11.6, 16.11, 32.37, 54.82, 32.41, 49.94, 40.34, 9.47, 6.29, 12.53, 6.54, 6.3,
    80.3, 12.8, 9.8, 9.81, 9.85, 18.21, 5.03, 14.04, 21.93, 8.02, 7.42, 8.38, 6.59, 9.63, 13.12,
    7.96, 14.34, 41.43, 7.63, 7.06, 12.59, 13.56, 3.87, 9.44, 7.66, 12.98, 419.19, 27.19, 22.27,
    9.95, 21.22, 11.73, 10.4, 58.83, 6.39, 11.09, 12.22, 13.67, 17.21, 22.63, 12.9, 9.7, 21.57,
    8.23, 72.57, 15.54, 10.51, 10.6, 14.57, 5.19, 9.63, 4.61, 21.48, 17.3, 12.71, 9.44, 11.07,
    19.46, 10.83, 5.37, 11.97, 7.75, 9.83, 10.55, 28.49, 8.53, 12.57, 12.9, 46.83, 11.68, 12.67,
    9.01, 9.57, 34.06, 11.72, 14.26, 47.61, 11.67, 24.58, 10.33, 13.87, 15.89, 22.43, 6.79,
    13.45,
]


def _asah():
    poor = np.array([int(c) for c in ASAH_POOR])
    markers = {
        "wfns": np.array([int(c) for c in ASAH_WFNS], dtype=float),
        "s100b": np.array(ASAH_S100B),
        "ndka": np.array(ASAH_NDKA),
    }
    assert poor.size == 113 and poor.sum() == 41 and all(v.size == 113 for v in markers.values())
    return poor, markers


# Published values: pROC's own test suite at the commit above (tests/testthat/test-auc.R,
# test-var.R, test-cov.R, test-ci.auc.R, test-roc.test.R), for roc(aSAH$outcome, marker), i.e.
# direction "<" (Poor scores higher), DeLong's method, paired roc.test, 95% level.
PROC_AUC = {"wfns": 0.823678861788618, "ndka": 0.611957994579946}
PROC_VAR = {"wfns": 0.00146991470882363, "ndka": 0.0031908105493913, "s100b": 0.00266868245717244}
PROC_COV = {
    ("wfns", "ndka"): -0.000532967856762438,
    ("ndka", "s100b"): -0.000756164938056579,
    ("s100b", "wfns"): 0.00119615567376754,
}
PROC_CI_NDKA = (0.501244999271703, 0.611957994579946, 0.722670989888189)
# roc.test(first, second): Z, two-sided p, and the 95% CI of AUC(first) - AUC(second).
PROC_TEST = {
    ("wfns", "s100b"): (2.20898359144091, 0.0271757822291882, 0.0104061769564846, 0.174214419249478),
    ("wfns", "ndka"): (2.79777591868904, 0.00514557970691098, 0.0634011709339876, 0.3600405634833566),
    ("ndka", "s100b"): (-1.39077002573558, 0.164295175223054, -0.2876917446341914, 0.0488706064228094),
}
Z95 = 1.959963984540054


# -- independent references written from the definitions -----------------------------------


def _psi(x, y):
    """Mann-Whitney kernel: 1 if the positive scores higher, 1/2 on a tie, 0 otherwise."""
    return 1.0 if x > y else (0.5 if x == y else 0.0)


def _brute_auc(labels, scores):
    pos = [s for s, l in zip(scores, labels) if l == 1]
    neg = [s for s, l in zip(scores, labels) if l == 0]
    return sum(_psi(x, y) for x in pos for y in neg) / (len(pos) * len(neg))


def _brute_components(labels, scores):
    """DeLong et al. (1988): V10(X_i) = mean_j psi(X_i, Y_j), V01(Y_j) = mean_i psi(X_i, Y_j)."""
    pos = [s for s, l in zip(scores, labels) if l == 1]
    neg = [s for s, l in zip(scores, labels) if l == 0]
    v10 = [sum(_psi(x, y) for y in neg) / len(neg) for x in pos]
    v01 = [sum(_psi(x, y) for x in pos) / len(pos) for y in neg]
    return v10, v01


def _brute_cov(labels, scores_a, scores_b):
    """DeLong's covariance of two AUCs: S10_ab / m + S01_ab / n, sample covariances."""
    a10, a01 = _brute_components(labels, scores_a)
    b10, b01 = _brute_components(labels, scores_b)
    auc_a, auc_b = sum(a10) / len(a10), sum(b10) / len(b10)
    m, n = len(a10), len(a01)
    s10 = sum((a - auc_a) * (b - auc_b) for a, b in zip(a10, b10)) / (m - 1)
    s01 = sum((a - auc_a) * (b - auc_b) for a, b in zip(a01, b01)) / (n - 1)
    return s10 / m + s01 / n


def _counts(labels, scores, threshold):
    tp = fp = tn = fn = 0
    for label, score in zip(labels, scores):
        if score >= threshold:
            if label == 1:
                tp += 1
            else:
                fp += 1
        elif label == 1:
            fn += 1
        else:
            tn += 1
    return tp, fp, tn, fn


def _tied_data(rng, n, levels):
    """Labels with both classes and mildly informative scores with many ties: integers in
    [0, levels] (or, for ``levels=None``, a rounded normal shifted by 0.8 for positives)."""
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]
    if levels is None:
        return labels, np.round(labels * 0.8 + rng.normal(0, 1, n))
    return labels, (rng.integers(0, levels, n) + labels * rng.integers(0, 2, n)).astype(float)


# -- AUC -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n, levels", [(7, 2), (40, 3), (150, None), (301, 12)])
def test_roc_auc_equals_brute_force_pair_count_with_ties(n, levels):
    rng = np.random.default_rng(n)
    labels, scores = _tied_data(rng, n, levels)
    assert len(np.unique(scores)) < n  # ties present
    assert R.roc_auc(labels, scores) == pytest.approx(_brute_auc(labels, scores), abs=1e-12)


def test_roc_auc_of_reference_cases():
    assert R.roc_auc([0, 1], [0.0, 1.0]) == 1.0
    assert R.roc_auc([1, 0], [0.0, 1.0]) == 0.0
    assert R.roc_auc([0, 0, 1, 1], [3, 3, 3, 3]) == 0.5
    assert R.roc_auc(np.array([False, True, True]), [0.2, 0.1, 0.3]) == 0.5  # bool labels


def test_roc_auc_matches_sklearn(rng):
    sk = pytest.importorskip("sklearn.metrics")
    labels, scores = _tied_data(rng, 500, 7)
    assert R.roc_auc(labels, scores) == pytest.approx(sk.roc_auc_score(labels, scores), abs=1e-12)


# -- the ROC curve -------------------------------------------------------------------------


def test_roc_curve_points_equal_counts_at_each_threshold(rng):
    labels, scores = _tied_data(rng, 60, 5)
    fpr, tpr, thresholds = R.roc_curve(labels, scores)
    assert thresholds[0] == np.inf and (fpr[0], tpr[0]) == (0.0, 0.0)
    assert thresholds[1:].tolist() == sorted(set(scores.tolist()), reverse=True)
    n_pos, n_neg = int(labels.sum()), int((labels == 0).sum())
    for t, f, s in zip(thresholds, fpr, tpr):
        tp, fp, _, _ = _counts(labels, scores, t)
        assert (f, s) == (fp / n_neg, tp / n_pos)
    assert (fpr[-1], tpr[-1]) == (1.0, 1.0)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert area == pytest.approx(_brute_auc(labels, scores), abs=1e-12)


def test_roc_curve_matches_sklearn(rng):
    sk = pytest.importorskip("sklearn.metrics")
    labels, scores = _tied_data(rng, 200, 9)
    fpr, tpr, thresholds = R.roc_curve(labels, scores)
    ref_fpr, ref_tpr, ref_thr = sk.roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr, atol=1e-12)
    np.testing.assert_allclose(tpr, ref_tpr, atol=1e-12)
    np.testing.assert_allclose(thresholds[1:], ref_thr[1:])  # sklearn's first is inf or max + 1


# -- DeLong: published pROC values ------------------------------------------------------------


def test_auc_variance_and_ci_match_proc_on_asah():
    poor, markers = _asah()
    for name, marker in markers.items():
        auc, low, high, se = R.delong_auc_ci(poor, marker)
        if name in PROC_AUC:
            assert auc == pytest.approx(PROC_AUC[name], abs=1e-12)
        assert se**2 == pytest.approx(PROC_VAR[name], rel=1e-10)
        assert (low, high) == pytest.approx((auc - Z95 * se, auc + Z95 * se), abs=1e-12)
    low, auc, high = PROC_CI_NDKA
    got = R.delong_auc_ci(poor, markers["ndka"])
    assert got[:3] == pytest.approx((auc, low, high), abs=1e-10)
    # The printout of roc(aSAH$outcome, aSAH$s100b, ci = TRUE) as quoted by others:
    # "Area under the curve: 0.7314", "95% CI: 0.6301-0.8326 (DeLong)" (it also follows
    # from the published variance above).
    auc, low, high, _ = R.delong_auc_ci(poor, markers["s100b"])
    assert (round(auc, 4), round(low, 4), round(high, 4)) == (0.7314, 0.6301, 0.8326)


@pytest.mark.parametrize("first, second", list(PROC_TEST))
def test_delong_test_matches_proc_roc_test_on_asah(first, second):
    poor, markers = _asah()
    z, p, diff_low, diff_high = PROC_TEST[(first, second)]
    got = R.delong_test(poor, markers[first], markers[second])
    assert got["z"] == pytest.approx(z, rel=1e-10)
    assert got["p"] == pytest.approx(p, rel=1e-9)
    assert got["difference"] == pytest.approx((diff_low + diff_high) / 2, abs=1e-12)
    assert got["se"] == pytest.approx((diff_high - diff_low) / (2 * Z95), rel=1e-10)
    assert got["auc_a"] - got["auc_b"] == pytest.approx(got["difference"], abs=1e-15)
    # var(a - b) = var(a) + var(b) - 2 cov(a, b), all three published separately
    cov = PROC_COV.get((first, second), PROC_COV.get((second, first)))
    assert got["se"] ** 2 == pytest.approx(PROC_VAR[first] + PROC_VAR[second] - 2 * cov, rel=1e-9)
    flipped = R.delong_test(poor, markers[second], markers[first])
    assert flipped["z"] == pytest.approx(-got["z"], rel=1e-12)
    assert flipped["p"] == pytest.approx(got["p"], rel=1e-12)


def test_delong_test_of_identical_scores_is_z0_p1():
    poor, markers = _asah()
    got = R.delong_test(poor, markers["wfns"], markers["wfns"])
    assert (got["difference"], got["se"], got["z"], got["p"]) == (0.0, 0.0, 0.0, 1.0)


# -- DeLong: the structural components from their definition, and the sampling spread -------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_delong_variance_equals_structural_components_by_definition(seed):
    rng = np.random.default_rng(seed)
    labels, a = _tied_data(rng, 90, 6)
    b = np.round(a + rng.normal(0, 1.5, a.size))  # correlated with a, with ties
    _, _, _, se_a = R.delong_auc_ci(labels, a)
    _, _, _, se_b = R.delong_auc_ci(labels, b)
    assert se_a**2 == pytest.approx(_brute_cov(labels, a, a), rel=1e-12)
    assert se_b**2 == pytest.approx(_brute_cov(labels, b, b), rel=1e-12)
    test = R.delong_test(labels, a, b)
    var_diff = _brute_cov(labels, a, a) + _brute_cov(labels, b, b) - 2 * _brute_cov(labels, a, b)
    assert test["se"] ** 2 == pytest.approx(var_diff, rel=1e-10)
    assert test["auc_a"] == pytest.approx(_brute_auc(labels, a), abs=1e-12)
    assert test["p"] == pytest.approx(2 * stats.norm.sf(abs(test["z"])), rel=1e-12)


def test_delong_se_and_ci_coverage_match_monte_carlo():
    """Binormal scores, negatives N(0, 1), positives N(1, 1): true AUC = Phi(1 / sqrt 2).
    Over 2,000 samples of 50 + 70 cases the mean DeLong SE is within 8% of the AUC's
    observed spread (Monte Carlo error of that spread about 1.6%), and the 95% interval
    covers the true AUC in 93-97% of samples (binomial SD 0.5%)."""
    rng = np.random.default_rng(11)
    true_auc = stats.norm.cdf(1 / math.sqrt(2))
    labels = np.repeat([0, 1], [70, 50])
    aucs, ses, covered = [], [], 0
    for _ in range(2000):
        scores = rng.normal(0, 1, labels.size) + labels
        auc, low, high, se = R.delong_auc_ci(labels, scores)
        aucs.append(auc)
        ses.append(se)
        covered += low <= true_auc <= high
    spread = np.std(aucs, ddof=1)
    assert np.mean(ses) == pytest.approx(spread, rel=0.08)
    assert np.mean(aucs) == pytest.approx(true_auc, abs=0.005)
    assert 0.93 <= covered / 2000 <= 0.97


def test_ci_is_clipped_to_unit_interval_and_widens_with_level():
    labels, scores = [0, 0, 0, 1, 1, 1], [1, 2, 4, 3, 5, 6]
    auc, low, high, se = R.delong_auc_ci(labels, scores)
    assert auc + Z95 * se > 1 and high == 1.0 and low == pytest.approx(auc - Z95 * se)
    assert R.delong_auc_ci([0, 0, 1, 1], [1, 2, 3, 4]) == (1.0, 1.0, 1.0, 0.0)
    poor, markers = _asah()
    auc, low95, high95, se = R.delong_auc_ci(poor, markers["ndka"])
    _, low99, high99, _ = R.delong_auc_ci(poor, markers["ndka"], level=0.99)
    assert high99 - low99 == pytest.approx(2 * stats.norm.ppf(0.995) * se, rel=1e-12)
    assert low99 < low95 < auc < high95 < high99


# -- Youden's J and the operating point ------------------------------------------------------


@pytest.mark.parametrize("seed, levels", [(0, 4), (1, 10), (2, None), (3, 2)])
def test_youden_threshold_is_the_highest_maximizer_of_a_brute_force_scan(seed, levels):
    rng = np.random.default_rng(seed)
    labels, scores = _tied_data(rng, 80, levels)
    n_pos, n_neg = int(labels.sum()), int((labels == 0).sum())
    j = {}
    for t in set(scores.tolist()):
        tp, fp, tn, fn = _counts(labels, scores, t)
        j[t] = Fraction(tp, n_pos) + Fraction(tn, n_neg) - 1  # exact: ties are ties
    best = max(j.values())
    expected = max(t for t, v in j.items() if v == best)
    assert R.youden_threshold(labels, scores) == expected


def test_youden_tie_rule_prefers_the_more_specific_threshold():
    # t = 0.6: sens 2/3, spec 1 -> J = 2/3; t = 0.3: sens 1, spec 2/3 -> J = 2/3 too.
    labels, scores = [0, 0, 1, 0, 1, 1], [0.1, 0.2, 0.3, 0.4, 0.6, 0.7]
    assert R.youden_threshold(labels, scores) == 0.6
    # a useless (reversed) score: every threshold has J <= 0; the lowest score (J = 0) wins
    assert R.youden_threshold([1, 1, 0, 0], [1, 2, 3, 4]) == 1.0


def test_youden_on_asah_s100b_gives_procs_best_operating_point():
    # pROC: coords(roc(aSAH$outcome, aSAH$s100b), "best") -> threshold 0.205,
    # specificity 0.8055556, sensitivity 0.6341463 (man/coords_transpose.Rd; test-coords.R).
    # pROC reports the midpoint between two observed scores; ours is the upper one.
    poor, markers = _asah()
    s100b = markers["s100b"]
    t = R.youden_threshold(poor, s100b)
    assert t == s100b[s100b > 0.205].min() and s100b[s100b < t].max() < 0.205
    point = R.operating_point(poor, s100b, t)
    assert point["specificity"] == pytest.approx(0.8055556, abs=1e-7)
    assert point["sensitivity"] == pytest.approx(0.6341463, abs=1e-7)


@pytest.mark.parametrize(
    "labels, scores, threshold",
    [
        ([0, 0, 1, 1, 1], [0.2, 0.6, 0.4, 0.7, 0.9], 0.5),
        ([1, 0, 1, 0, 1, 0, 0], [0.5, 0.5, 0.49, 0.1, 0.51, 0.9, 0.3], 0.5),  # scores == threshold
        ([0, 1, 1, 0], [1.0, 2.0, 3.0, 4.0], -np.inf),  # everything positive
    ],
)
def test_operating_point_equals_hand_counts(labels, scores, threshold):
    tp, fp, tn, fn = _counts(labels, scores, threshold)

    def rate(num, den):
        return num / den if den else math.nan

    expected = {
        "accuracy": (tp + tn) / len(labels),
        "sensitivity": rate(tp, tp + fn),
        "specificity": rate(tn, tn + fp),
        "ppv": rate(tp, tp + fp),
        "npv": rate(tn, tn + fn),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }
    got = R.operating_point(labels, scores, threshold)
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        assert got[key] == value or (math.isnan(got[key]) and math.isnan(value)), key


def test_operating_point_of_the_second_example_by_hand():
    # scores >= 0.5: cases 0 (pos), 1 (neg), 4 (pos), 5 (neg) -> tp 2, fp 2; case 2 (pos,
    # 0.49) is a false negative; cases 3 and 6 are true negatives.
    got = R.operating_point([1, 0, 1, 0, 1, 0, 0], [0.5, 0.5, 0.49, 0.1, 0.51, 0.9, 0.3], 0.5)
    assert (got["tp"], got["fp"], got["tn"], got["fn"]) == (2, 2, 2, 1)
    assert (got["ppv"], got["npv"], got["accuracy"]) == (0.5, 2 / 3, 4 / 7)


def test_operating_point_gives_nan_for_empty_denominators():
    none_called = R.operating_point([0, 1, 1], [0.1, 0.2, 0.3], np.inf)  # nothing positive
    assert math.isnan(none_called["ppv"]) and none_called["npv"] == 1 / 3
    assert (none_called["sensitivity"], none_called["specificity"]) == (0.0, 1.0)
    all_called = R.operating_point([0, 1, 1], [0.1, 0.2, 0.3], 0.0)  # nothing negative
    assert math.isnan(all_called["npv"]) and all_called["ppv"] == 2 / 3
    only_negatives = R.operating_point([0, 0, 0], [0.1, 0.5, 0.9], 0.5)  # fp 2, tn 1
    assert math.isnan(only_negatives["sensitivity"])
    assert (only_negatives["specificity"], only_negatives["ppv"], only_negatives["npv"]) == (
        1 / 3,
        0.0,
        1.0,
    )
    only_positives = R.operating_point([1, 1], [0.1, 0.9], 0.5)
    assert math.isnan(only_positives["specificity"]) and only_positives["sensitivity"] == 0.5


# -- stratified k-fold ---------------------------------------------------------------------


def _class_counts(labels, folds):
    return np.array([[int(np.sum(labels[f] == c)) for c in (0, 1)] for f in folds])


@pytest.mark.parametrize("n, n_pos, k", [(898, 305, 6), (40, 7, 6), (23, 11, 5), (12, 6, 2)])
def test_stratified_kfold_is_a_balanced_partition(n, n_pos, k):
    labels = np.zeros(n, dtype=int)
    labels[np.random.default_rng(n).choice(n, n_pos, replace=False)] = 1
    folds = R.stratified_kfold(labels, k=k, seed=3)
    assert len(folds) == k
    every = np.concatenate(folds)
    assert sorted(every.tolist()) == list(range(n))  # each index in exactly one fold
    counts = _class_counts(labels, folds)
    assert (counts.max(axis=0) - counts.min(axis=0) <= 1).all()  # each class spread evenly
    sizes = counts.sum(axis=1)
    assert sizes.max() - sizes.min() <= 1
    assert all(f.dtype == np.int64 and (np.diff(f) > 0).all() for f in folds)


def test_stratified_kfold_default_is_the_papers_sixfold():
    labels = np.r_[np.zeros(593, int), np.ones(305, int)]  # the paper's 898 patients, 34% PE
    folds = R.stratified_kfold(labels)
    counts = _class_counts(labels, folds)
    assert len(folds) == 6
    assert set(counts[:, 1].tolist()) == {50, 51} and set(counts.sum(axis=1).tolist()) == {149, 150}


def test_stratified_kfold_is_deterministic_for_a_seed_and_shuffles_with_it():
    labels = np.tile([0, 1, 0], 20)
    a = R.stratified_kfold(labels, k=4, seed=7)
    b = R.stratified_kfold(labels, k=4, seed=7)
    c = R.stratified_kfold(labels, k=4, seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_stratified_kfold_class_counts_match_sklearn():
    ms = pytest.importorskip("sklearn.model_selection")
    labels = np.r_[np.zeros(61, int), np.ones(26, int)]
    np.random.default_rng(0).shuffle(labels)
    folds = R.stratified_kfold(labels, k=6, seed=0)
    ref = [test for _, test in ms.StratifiedKFold(6).split(np.zeros(labels.size), labels)]
    np.testing.assert_array_equal(_class_counts(labels, folds), _class_counts(labels, ref))


def test_stratified_kfold_rejects_a_class_smaller_than_k():
    with pytest.raises(InputError, match=r"class 1 has 4 cases, fewer than the k=6 folds"):
        R.stratified_kfold([0] * 20 + [1] * 4, k=6)
    for bad_k in (1, 2.5, True):
        with pytest.raises(ConfigError, match="k must be an integer"):
            R.stratified_kfold([0, 1] * 10, k=bad_k)


# -- input validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "labels, scores, message",
    [
        ([0, 2, 1], [0.1, 0.2, 0.3], r"must be 0 \(negative\) or 1 \(positive\); 1 of 3"),
        ([0, 0.5, 1], [0.1, 0.2, 0.3], "must be 0"),
        ([0, np.nan, 1], [0.1, 0.2, 0.3], "must be 0"),
        (["a", "b"], [0.1, 0.2], "map the classes to 0/1"),
        ([1, 1, 1], [0.1, 0.2, 0.3], "only class 1 .*needs both"),
        ([[0, 1], [1, 0]], [0.1, 0.2], "1-D"),
        ([], [], "empty"),
        ([0, 1, 1], [0.1, 0.2], "scores has 2 values but labels has 3"),
        ([0, 1, 1], [0.1, np.nan, 0.3], "1 non-finite values .* index 1"),
        ([0, 1, 1], [0.1, 0.2, np.inf], "non-finite"),
        ([0, 1], ["x", "y"], "scores must be numbers"),
        ([0, 1], [[0.1], [0.2]], "scores must be a 1-D"),
    ],
)
def test_bad_inputs_raise_input_errors_that_say_what_to_do(labels, scores, message):
    for fn in (R.roc_auc, R.roc_curve, R.youden_threshold, R.delong_auc_ci):
        with pytest.raises(InputError, match=message):
            fn(labels, scores)


def test_delong_rejects_too_few_cases_and_bad_levels():
    with pytest.raises(InputError, match="at least 2 positive and 2 negative .* got 1 positive"):
        R.delong_auc_ci([0, 0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(InputError, match="at least 2 positive"):
        R.delong_test([0, 1, 1], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1])
    with pytest.raises(InputError, match="scores_b has 2 values"):
        R.delong_test([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], [0.3, 0.2])
    for level in (0, 1, 95):
        with pytest.raises(ConfigError, match=r"level must be a confidence level in \(0, 1\)"):
            R.delong_auc_ci([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], level=level)


def test_operating_point_rejects_a_missing_threshold():
    with pytest.raises(InputError, match="threshold is NaN"):
        R.operating_point([0, 1], [0.1, 0.2], float("nan"))
    with pytest.raises(InputError, match="threshold must be a number"):
        R.operating_point([0, 1], [0.1, 0.2], "high")


def test_module_needs_only_numpy_and_scipy():
    tree = ast.parse(inspect.getsource(R))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    assert imported == {"math", "numpy", "scipy", "xprospect_tf.errors"}
