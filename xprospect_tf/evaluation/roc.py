"""ROC analysis of a binary classifier, as X-ray2CTPA reports it (numpy, scipy).

Cahan et al. 2024 (X-ray2CTPA), "Statistical Analysis" and the Table 3
discussion, classify pulmonary embolism from CXRs, real and generated CTPAs
with a stratified sixfold cross-validation and report, on each test split:

- the ROC AUC with a 95% confidence interval by DeLong's method
  (DeLong, DeLong & Clarke-Pearson, Biometrics 44:837, 1988);
- an operating point chosen on the *validation* split by Youden's J
  (sensitivity + specificity - 1; Youden, Cancer 3:32, 1950);
- accuracy, sensitivity, specificity, PPV and NPV at that threshold.

This module is those pieces, plus DeLong's test of two correlated AUCs (two
classifiers scored on the same cases) and :func:`roc_curve` for plotting.
Labels are 0/1 with 1 the positive class (PE); a higher score means "more
likely positive", and a case is called positive when ``score >= threshold``.
The DeLong variance uses the structural components (placement values) computed
from midranks in O(n log n), the fast algorithm of Sun & Xu (IEEE Signal
Processing Letters 21:1389, 2014); ties count 1/2 throughout, as in the
Mann-Whitney U statistic.

Example (one fold of the protocol):
    >>> rng = np.random.default_rng(0)
    >>> labels = np.repeat([0, 1], 60)
    >>> scores = labels + rng.normal(0, 1, 120)
    >>> folds = stratified_kfold(labels, k=6, seed=0)
    >>> test, val = folds[0], folds[1]
    >>> t = youden_threshold(labels[val], scores[val])
    >>> auc, low, high, se = delong_auc_ci(labels[test], scores[test])
    >>> low < auc < high
    True
    >>> sorted(operating_point(labels[test], scores[test], t))[:3]
    ['accuracy', 'fn', 'fp']
"""

import math

import numpy as np
from scipy import stats

from xprospect_tf.errors import ConfigError, InputError

DEFAULT_FOLDS = 6  # the paper's "stratified sixfold cross-validation"


# -- input checks ------------------------------------------------------------------------------


def _labels(labels, both_classes=True):
    """``labels`` as an int64 array of 0/1, or an InputError naming the problem."""
    y = np.asarray(labels)
    if y.ndim != 1:
        raise InputError(
            f"labels must be a 1-D array with one 0/1 label per case; got shape {y.shape}"
        )
    if y.size == 0:
        raise InputError("labels is empty; pass one 0/1 label per case")
    if y.dtype == bool:
        return y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.number):
        raise InputError(
            f"labels must be numbers 0/1 (1 = positive); got dtype {y.dtype}: "
            "map the classes to 0/1 first"
        )
    bad = ~((y == 0) | (y == 1))
    if bad.any():
        examples = ", ".join(str(v) for v in np.unique(y[bad])[:5])
        raise InputError(
            f"labels must be 0 (negative) or 1 (positive); {int(bad.sum())} of {y.size} "
            f"are not (e.g. {examples}): map the classes to 0/1"
        )
    y = y.astype(np.int64)
    if both_classes and y.min() == y.max():
        raise InputError(
            f"labels hold only class {int(y[0])} ({y.size} cases); ROC analysis needs both "
            "positive (1) and negative (0) cases: use a larger or stratified split"
        )
    return y


def _scores(scores, n, name="scores"):
    """``scores`` as a float64 array of ``n`` finite values, or an InputError."""
    try:
        s = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InputError(f"{name} must be numbers, one per case: {err}") from None
    if s.ndim != 1:
        raise InputError(f"{name} must be a 1-D array with one score per case; got shape {s.shape}")
    if s.size != n:
        raise InputError(
            f"{name} has {s.size} values but labels has {n}; pass one score per labelled case"
        )
    bad = ~np.isfinite(s)
    if bad.any():
        raise InputError(
            f"{name} has {int(bad.sum())} non-finite values (NaN or inf), the first at index "
            f"{int(np.flatnonzero(bad)[0])}; drop those cases or fix the classifier's output"
        )
    return s


def _at_least_two_per_class(y):
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if min(n_pos, n_neg) < 2:
        raise InputError(
            f"DeLong's variance needs at least 2 positive and 2 negative cases; got {n_pos} "
            f"positive and {n_neg} negative: evaluate on a larger split"
        )


# -- AUC and its DeLong variance ---------------------------------------------------------------


def roc_auc(labels, scores):
    """Area under the ROC curve: the Mann-Whitney U statistic over ``n1 * n0``.

    The fraction of (positive, negative) pairs in which the positive case scores
    higher, a tie counting 1/2; computed from average ranks in O(n log n).

    Args:
        labels: 1-D array of 0/1 (1 = positive), both classes present.
        scores: 1-D array of finite scores, one per case, higher = more positive.

    Returns:
        float in [0, 1].

    Example:
        >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        0.75
        >>> roc_auc([0, 1], [0.5, 0.5])
        0.5
    """
    y = _labels(labels)
    s = _scores(scores, y.size)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    ranks = stats.rankdata(s)  # average ranks: a tie shares its ranks, i.e. counts 1/2
    u = ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _placements(y, s):
    """DeLong's structural components from midranks (Sun & Xu 2014).

    Returns ``(v10, v01)``: for each positive case the fraction of negatives it
    outscores, for each negative case the fraction of positives that outscore it
    (ties 1/2). Their means are both the AUC.
    """
    pos, neg = s[y == 1], s[y == 0]
    m, n = pos.size, neg.size
    combined = stats.rankdata(np.concatenate([pos, neg]))
    v10 = (combined[:m] - stats.rankdata(pos)) / n
    v01 = 1.0 - (combined[m:] - stats.rankdata(neg)) / m
    return v10, v01


def _delong_covariance(y, score_list):
    """AUCs and their DeLong covariance matrix for scores on the same cases."""
    parts = [_placements(y, s) for s in score_list]
    v10 = np.stack([p[0] for p in parts])
    v01 = np.stack([p[1] for p in parts])
    s10 = np.atleast_2d(np.cov(v10, ddof=1))
    s01 = np.atleast_2d(np.cov(v01, ddof=1))
    return v10.mean(axis=1), s10 / v10.shape[1] + s01 / v01.shape[1]


def _fold_delong_covariance(y, score_list, fold):
    """AUCs averaged over folds and the covariance matrix of those averages.

    Each fold's AUCs and DeLong covariance come from its own test cases; the folds' cases are
    disjoint, so their estimates are independent and ``cov(mean) = sum_f cov_f / k^2``.
    """
    fold = np.asarray(fold).reshape(-1)
    if fold.size != y.size:
        raise ConfigError(f"fold: {fold.size} values for {y.size} cases; give the fold of every case")
    aucs, covs = [], []
    for f in np.unique(fold):
        mine = fold == f
        _at_least_two_per_class(y[mine])
        a, c = _delong_covariance(y[mine], [s[mine] for s in score_list])
        aucs.append(a)
        covs.append(c)
    return np.mean(aucs, axis=0), np.sum(covs, axis=0) / len(covs) ** 2


def _auc_covariance(y, score_list, fold):
    return _delong_covariance(y, score_list) if fold is None else _fold_delong_covariance(y, score_list, fold)


def delong_auc_ci(labels, scores, level=0.95, fold=None):
    """ROC AUC with DeLong's standard error and normal confidence interval.

    ``var = S10 / n1 + S01 / n0``, with ``S10`` and ``S01`` the sample variances
    (``n - 1`` denominators) of the positive and negative placement values
    (DeLong et al. 1988); the interval ``auc -/+ z se`` is clipped to [0, 1].
    This is pROC's ``ci.auc(..., method = "delong")``.

    With ``fold`` (cross-validation: each case scored by the model of the fold that tested
    it) the AUC is the mean of the folds' AUCs and its variance the sum of the folds' DeLong
    variances over ``k^2`` (the folds' test cases are disjoint). Scores of different folds
    come from different models and need not share a scale, so they are never ranked
    against each other.

    Args:
        labels: 1-D array of 0/1, at least 2 cases of each class (of each fold).
        scores: 1-D array of finite scores, one per case.
        level: confidence level, in (0, 1).
        fold: optional 1-D array, the fold of each case.

    Returns:
        ``(auc, low, high, se)`` as floats. A perfectly separating (or
        constant-placement) score has ``se = 0`` and ``low = high = auc``.

    Example:
        >>> auc, low, high, se = delong_auc_ci([0, 0, 0, 1, 1, 1], [1, 2, 4, 3, 5, 6])
        >>> round(auc, 4), round(low, 4), round(high, 4), round(se, 4)
        (0.8889, 0.5809, 1.0, 0.1571)
    """
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level must be a confidence level in (0, 1), e.g. 0.95; got {level}")
    y = _labels(labels)
    s = _scores(scores, y.size)
    _at_least_two_per_class(y)
    aucs, cov = _auc_covariance(y, [s], fold)
    auc = float(aucs[0])
    se = math.sqrt(max(float(cov[0, 0]), 0.0))
    z = stats.norm.ppf(0.5 + level / 2.0)
    return auc, float(max(0.0, auc - z * se)), float(min(1.0, auc + z * se)), se


def delong_test(labels, scores_a, scores_b, fold=None):
    """DeLong's test that two classifiers scored on the same cases have equal AUCs.

    ``z = (auc_a - auc_b) / se`` with ``se^2 = var_a + var_b - 2 cov_ab`` from
    the placement values of both scores (DeLong et al. 1988); the p-value is
    two-sided. This is pROC's ``roc.test(..., method = "delong", paired = TRUE)``.

    Args:
        labels: 1-D array of 0/1, at least 2 cases of each class.
        scores_a: the first classifier's scores, one per case.
        scores_b: the second classifier's scores for the same cases, same order.
        fold: optional fold of each case: the folds' AUC differences averaged, their
            variances summed over ``k^2`` (as in :func:`delong_auc_ci`).

    Returns:
        dict with ``auc_a``, ``auc_b``, ``difference`` (``auc_a - auc_b``),
        ``se`` (of the difference), ``z`` and ``p``. When ``se`` is 0 (identical
        placements): ``z = 0, p = 1`` if the AUCs are equal, else ``z = +/-inf,
        p = 0``.

    Example:
        >>> r = delong_test([0, 0, 0, 1, 1, 1], [1, 2, 3, 4, 5, 6], [1, 2, 4, 3, 5, 6])
        >>> round(r["difference"], 4), round(r["z"], 4), round(r["p"], 4)
        (0.1111, 0.7071, 0.4795)
    """
    y = _labels(labels)
    a = _scores(scores_a, y.size, "scores_a")
    b = _scores(scores_b, y.size, "scores_b")
    _at_least_two_per_class(y)
    aucs, cov = _auc_covariance(y, [a, b], fold)
    difference = float(aucs[0] - aucs[1])
    se = math.sqrt(max(float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1]), 0.0))
    if se > 0.0:
        z = difference / se
    else:
        z = 0.0 if difference == 0.0 else math.copysign(math.inf, difference)
    p = float(2.0 * stats.norm.sf(abs(z)))
    return {
        "auc_a": float(aucs[0]),
        "auc_b": float(aucs[1]),
        "difference": difference,
        "se": se,
        "z": float(z),
        "p": min(p, 1.0),
    }


# -- the curve and an operating point ------------------------------------------------------------


def _curve_counts(y, s):
    """Distinct scores, high to low, with the true and false positives at each."""
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), s.size - 1]  # end of each run of equal scores
    tps = np.cumsum(y_sorted)[last]
    fps = last + 1 - tps
    return s_sorted[last], tps, fps


def roc_curve(labels, scores):
    """ROC curve points for plotting, one per distinct score.

    Args:
        labels: 1-D array of 0/1, both classes present.
        scores: 1-D array of finite scores, one per case.

    Returns:
        ``(fpr, tpr, thresholds)``: arrays of length ``distinct scores + 1``.
        ``thresholds`` decrease from ``inf`` (nothing called positive: the point
        (0, 0)) through every distinct score; ``fpr[i]``/``tpr[i]`` are the
        fractions of negatives/positives with ``score >= thresholds[i]``, ending
        at (1, 1). The trapezoidal area under these points equals
        :func:`roc_auc` (a tie is a diagonal segment, i.e. counts 1/2).

    Example:
        >>> fpr, tpr, thr = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        >>> fpr.tolist(), tpr.tolist()
        ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
        >>> thr.tolist()
        [inf, 0.8, 0.4, 0.35, 0.1]
    """
    y = _labels(labels)
    s = _scores(scores, y.size)
    thresholds, tps, fps = _curve_counts(y, s)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    fpr = np.r_[0.0, fps / n_neg]
    tpr = np.r_[0.0, tps / n_pos]
    return fpr, tpr, np.r_[np.inf, thresholds]


def youden_threshold(labels, scores):
    """The threshold that maximizes Youden's J = sensitivity + specificity - 1.

    Candidates are the distinct observed scores; a case is called positive when
    ``score >= threshold``. J is compared exactly (as the integer
    ``tp * n0 - fp * n1``). Ties: among thresholds with the same maximal J the
    *highest* is returned, i.e. the most specific one (the paper chose
    thresholds that "ensured high specificities"). The lowest score calls every
    case positive (J = 0), so the maximum is never negative. Any value in
    ``(next lower score, threshold]`` splits these cases the same way; pROC's
    ``coords(..., "best")`` reports the midpoint of that interval instead.

    Args:
        labels: 1-D array of 0/1 of the validation split, both classes present.
        scores: 1-D array of finite scores, one per case.

    Returns:
        float, one of the scores.

    Example:
        >>> youden_threshold([0, 0, 1, 0, 1, 1], [0.1, 0.2, 0.3, 0.4, 0.6, 0.7])
        0.6
    """
    y = _labels(labels)
    s = _scores(scores, y.size)
    thresholds, tps, fps = _curve_counts(y, s)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    j_scaled = tps * n_neg - fps * n_pos  # J * n1 * n0, exact in integers
    return float(thresholds[int(np.argmax(j_scaled))])  # argmax: first = highest threshold


def _ratio(num, den):
    return num / den if den else math.nan


def operating_point(labels, scores, threshold):
    """Confusion counts and the paper's Table 3 rates at one threshold.

    A case is called positive when ``score >= threshold``. A rate whose
    denominator is zero is NaN rather than an error: PPV when no case is
    called positive, NPV when none is called negative, and sensitivity or
    specificity when the split has no positive or no negative case (single-class
    labels are accepted here for that reason).

    Args:
        labels: 1-D array of 0/1 (the test split).
        scores: 1-D array of finite scores, one per case.
        threshold: a number, e.g. from :func:`youden_threshold` on the
            validation split; ``inf`` calls every case negative.

    Returns:
        dict with ``accuracy``, ``sensitivity`` (tp / (tp + fn)), ``specificity``
        (tn / (tn + fp)), ``ppv`` (tp / (tp + fp)), ``npv`` (tn / (tn + fn)) as
        floats in [0, 1] or NaN, and the counts ``tp``, ``fp``, ``tn``, ``fn``
        as ints.

    Example:
        >>> r = operating_point([0, 0, 1, 1, 1], [0.2, 0.6, 0.4, 0.7, 0.9], 0.5)
        >>> r["tp"], r["fp"], r["tn"], r["fn"], r["sensitivity"], r["specificity"]
        (2, 1, 1, 1, 0.6666666666666666, 0.5)
        >>> operating_point([0, 1], [0.2, 0.3], 0.9)["ppv"]
        nan
    """
    y = _labels(labels, both_classes=False)
    s = _scores(scores, y.size)
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise InputError(f"threshold must be a number; got {threshold!r}") from None
    if math.isnan(t):
        raise InputError("threshold is NaN; pass a number, e.g. from youden_threshold")
    called = s >= t
    truth = y == 1
    tp = int(np.sum(called & truth))
    fp = int(np.sum(called & ~truth))
    tn = int(np.sum(~called & ~truth))
    fn = int(np.sum(~called & truth))
    return {
        "accuracy": (tp + tn) / y.size,
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }


# -- cross-validation folds ------------------------------------------------------------------------


def stratified_kfold(labels, k=DEFAULT_FOLDS, seed=0):
    """Split cases into ``k`` folds with each class spread evenly over them.

    Each class's cases are shuffled with ``numpy.random.default_rng(seed)``;
    then the negatives followed by the positives are dealt to folds 0, 1, ...,
    k-1, 0, 1, ... in turn. So every case is in exactly one fold, each fold's
    count of each class differs from another fold's by at most 1, and fold
    sizes differ by at most 1 (the per-fold class counts are those of
    scikit-learn's ``StratifiedKFold``). The same labels and seed give the same
    folds.

    Args:
        labels: 1-D array of 0/1, at least ``k`` cases of each class.
        k: number of folds, at least 2 (the paper: 6).
        seed: integer seed of the shuffle.

    Returns:
        list of ``k`` sorted int64 arrays of case indices.

    Example:
        >>> folds = stratified_kfold([0, 0, 0, 0, 1, 1, 1, 1], k=2, seed=0)
        >>> [len(f) for f in folds], sorted(np.concatenate(folds).tolist())
        ([4, 4], [0, 1, 2, 3, 4, 5, 6, 7])
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise ConfigError(f"k must be an integer number of folds >= 2; got {k!r}")
    y = _labels(labels)
    for cls in (0, 1):
        count = int(np.sum(y == cls))
        if count < k:
            raise InputError(
                f"class {cls} has {count} cases, fewer than the k={k} folds, so some fold would "
                f"have none: use k <= {count} or more cases of class {cls}"
            )
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(np.flatnonzero(y == cls)) for cls in (0, 1)])
    return [np.sort(order[i::k]).astype(np.int64) for i in range(int(k))]
