"""The cross-validation protocol and Table 3's statistics, against independent recomputations."""

import csv
import io
import itertools

import numpy as np
import pytest
from scipy import stats

from xprospect_tf.errors import ConfigError, InputError
from xprospect_tf.evaluation import classification as cls
from xprospect_tf.evaluation import roc


def _brute_auc(y, s):
    pos, neg = s[y == 1], s[y == 0]
    return np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg)])


@pytest.mark.parametrize("k", [3, 4, 6])
def test_cv_splits_partition_and_stratify(k, rng):
    y = rng.permutation(np.r_[np.zeros(20, int), np.ones(13, int)])
    splits = cls.cv_splits(y, k, seed=3)
    folds = roc.stratified_kfold(y, k, seed=3)
    tests = np.concatenate([s["test"] for s in splits])
    assert sorted(tests.tolist()) == list(range(y.size))  # every case tested once
    for i, s in enumerate(splits):
        assert set(s["train"]) | set(s["val"]) | set(s["test"]) == set(range(y.size))
        assert not (set(s["train"]) & set(s["val"]) or set(s["train"]) & set(s["test"])
                    or set(s["val"]) & set(s["test"]))
        np.testing.assert_array_equal(s["test"], folds[i])
        np.testing.assert_array_equal(s["val"], folds[(i + 1) % k])
        assert y[s["val"]].min() == 0 and y[s["val"]].max() == 1


def test_cv_splits_errors():
    with pytest.raises(ConfigError, match="at least 3 folds"):
        cls.cv_splits([0, 1] * 5, 2)
    with pytest.raises(InputError, match="class 1 has 2 cases"):
        cls.cv_splits([0] * 10 + [1] * 2, 3)


def test_cross_validate_never_trains_on_test_and_thresholds_on_val(rng):
    y = rng.permutation(np.r_[np.zeros(15, int), np.ones(12, int)])
    noise = rng.normal(0, 1, y.size)
    seen = []

    def fit_and_score(name, fold, train, val, test):
        seen.append((name, fold, set(train), set(val), set(test)))
        return y[val] + noise[val], y[test] + noise[test]

    out = cls.cross_validate(y, fit_and_score, k=3, seed=1, inputs=("CT", "X-ray"))
    for name, fold, train, val, test in seen:
        assert not train & test and not val & test and not train & val
    np.testing.assert_allclose(out["scores"]["CT"], y + noise)
    splits = cls.cv_splits(y, 3, 1)
    for i, s in enumerate(splits):
        assert (out["fold"][s["test"]] == i).all()
        assert out["thresholds"]["X-ray"][i] == roc.youden_threshold(y[s["val"]], (y + noise)[s["val"]])


def test_summarize_against_brute_force(rng):
    y = rng.permutation(np.r_[np.zeros(18, int), np.ones(12, int)])
    s = np.round(y * 0.8 + rng.normal(0, 0.7, y.size), 1)  # ties included
    fold = np.arange(y.size) % 3
    thresholds = [0.2, 0.5, 0.35]
    r = cls.summarize(y, s, fold, thresholds)
    fold_aucs = [_brute_auc(y[fold == i], s[fold == i]) for i in range(3)]
    assert r["auc"] == pytest.approx(np.mean(fold_aucs)) and r["pooled_auc"] == pytest.approx(_brute_auc(y, s))
    # the mean of 3 independent estimates: its variance is the sum of the folds' DeLong variances / 9
    fold_se = [roc.delong_auc_ci(y[fold == i], s[fold == i])[3] for i in range(3)]
    se = np.sqrt(np.sum(np.square(fold_se))) / 3
    assert r["auc_se"] == pytest.approx(se)
    z = 1.959964
    assert (r["auc_low"], r["auc_high"]) == pytest.approx((r["auc"] - z * se, min(1.0, r["auc"] + z * se)))
    called = s >= np.array(thresholds)[fold]
    tp, fp = int((called & (y == 1)).sum()), int((called & (y == 0)).sum())
    tn, fn = int((~called & (y == 0)).sum()), int((~called & (y == 1)).sum())
    assert (r["tp"], r["fp"], r["tn"], r["fn"]) == (tp, fp, tn, fn)
    assert r["sensitivity"] == tp / (tp + fn) and r["specificity"] == tn / (tn + fp)
    assert r["ppv"] == tp / (tp + fp) and r["npv"] == tn / (tn + fn) and r["accuracy"] == (tp + tn) / y.size
    assert r["fold_auc"] == pytest.approx(fold_aucs) and r["fold_auc_std"] == pytest.approx(np.std(fold_aucs))


def test_summarize_matches_scikit_learn_where_installed(rng):
    metrics = pytest.importorskip("sklearn.metrics")
    y = rng.integers(0, 2, 40)
    y[:2] = [0, 1]
    s = rng.normal(0, 1, 40) + y
    r = cls.summarize(y, s, np.zeros(40, int), [0.3])
    assert r["auc"] == pytest.approx(metrics.roc_auc_score(y, s))
    tn, fp, fn, tp = metrics.confusion_matrix(y, s >= 0.3).ravel()
    assert (r["tp"], r["fp"], r["tn"], r["fn"]) == (tp, fp, tn, fn)


def test_compare_is_delong_on_the_same_cases(rng):
    y = np.r_[np.zeros(10, int), np.ones(10, int)]
    scores = {name: y * w + rng.normal(0, 1, 20) for name, w in zip(cls.INPUTS, (2.0, 0.2, 1.0))}
    out = cls.compare(y, scores)
    assert [(c["a"], c["b"]) for c in out] == list(cls.COMPARISONS)
    ref = roc.delong_test(y, scores["Generated CT"], scores["X-ray"])
    assert {k: out[0][k] for k in ref} == ref


def test_fold_wise_comparison_averages_the_folds_differences(rng):
    y = np.tile([0, 1], 15)
    fold = np.arange(30) % 3
    a, b = y * 1.5 + rng.normal(0, 1, 30), y * 0.5 + rng.normal(0, 1, 30)
    shifted = a + fold * 10.0  # another scale per fold: fold-wise statistics do not see it
    out = cls.compare(y, {"CT": shifted, "X-ray": b}, [("CT", "X-ray")], fold=fold)[0]
    per_fold = [roc.delong_test(y[fold == i], a[fold == i], b[fold == i]) for i in range(3)]
    assert out["difference"] == pytest.approx(np.mean([f["difference"] for f in per_fold]))
    assert out["se"] == pytest.approx(np.sqrt(np.sum([f["se"] ** 2 for f in per_fold])) / 3)
    assert out["p"] == pytest.approx(2 * stats.norm.sf(abs(out["difference"] / out["se"])))
    assert roc.roc_auc(y, shifted) != pytest.approx(out["auc_a"])  # pooling would mix the scales


def test_csv_and_markdown_tables_carry_the_numbers(rng):
    y = np.r_[np.zeros(6, int), np.ones(6, int)]
    fold = np.arange(12) % 3
    summaries = {name: cls.summarize(y, rng.normal(0, 1, 12) + y, fold, [0.0, 0.1, 0.2]) for name in cls.INPUTS}
    rows = list(csv.DictReader(io.StringIO(cls.table3_csv(summaries))))
    assert [r["input"] for r in rows] == list(cls.INPUTS)
    for r in rows:
        assert float(r["auc"]) == summaries[r["input"]]["auc"] and int(r["tp"]) == summaries[r["input"]]["tp"]
    md = cls.to_markdown(cls.table3_records(summaries))
    assert md.count("\n") == 5 and f"{summaries['CT']['auc']:.3f}" in md


def test_roc_figure_has_one_curve_per_input(rng):
    y = np.r_[np.zeros(5, int), np.ones(5, int)]
    fig = cls.roc_figure(y, {"CT": y + rng.normal(0, 1, 10), "X-ray": rng.normal(0, 1, 10)})
    assert len(fig.axes[0].lines) == 3  # two curves and the chance diagonal
