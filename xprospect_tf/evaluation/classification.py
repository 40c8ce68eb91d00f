"""The X-ray2CTPA classification protocol and its Table 3, from out-of-fold scores.

Cahan et al. (2024), Table 3 and "Statistical Analysis": a classifier on the
real CT, one on the X-ray and one on the generated CT, evaluated with a
stratified six-fold cross-validation; AUC with a 95% CI by DeLong's method; an
operating point chosen by Youden's J on the validation set; accuracy,
specificity, sensitivity, PPV and NPV at it.

What is ours (the text does not fix it):

- fold ``i`` is the test split, fold ``i + 1`` (mod k) the validation split,
  the other ``k - 2`` folds train (:func:`cv_splits`);
- the AUC is the mean of the folds' AUCs (each fold's test cases ranked by
  that fold's model), its 95% CI by DeLong's variance of each fold summed over
  ``k^2`` (the folds' test cases are disjoint); the paper: "the average AUC,
  with a 95% confidence interval, calculated across all folds using the DeLong
  method". The standard deviation of the fold AUCs (the paper's "±") and the
  AUC of the *pooled* out-of-fold scores are reported beside it. Pooling ranks
  the scores of different models against each other: with uncalibrated small
  CNNs it understates the AUC (smoke run: 0.64 pooled against 0.89 averaged
  over folds for the real CT). DeLong's comparison of two inputs is fold-wise
  too;
- accuracy, specificity, sensitivity, PPV and NPV count every case at its own
  fold's threshold, pooled over folds (the sum of the folds' confusion counts).

All statistics come from :mod:`xprospect_tf.evaluation.roc`.
"""

import csv
import io
import math

import numpy as np

from xprospect_tf.errors import ConfigError
from xprospect_tf.evaluation import roc

INPUTS = ("CT", "X-ray", "Generated CT")
"""Table 3's lines, in the paper's order (the real CT, the X-ray, the generated CT)."""

COMPARISONS = (("Generated CT", "X-ray"), ("CT", "X-ray"), ("CT", "Generated CT"))
"""The pairs DeLong's test compares (the first: does the generated CT beat the X-ray?)."""

RATES = ("accuracy", "specificity", "sensitivity", "ppv", "npv")


def cv_splits(labels, k=roc.DEFAULT_FOLDS, seed=0):
    """The ``k`` (train, validation, test) index splits of the cross-validation.

    The folds are :func:`~xprospect_tf.evaluation.roc.stratified_kfold`; split
    ``i`` tests fold ``i``, validates on fold ``(i + 1) % k`` and trains on the
    others. Every case is tested exactly once.

    Args:
        labels: 1-D 0/1 labels, at least ``k`` cases of each class.
        k: number of folds, at least 3 (train, validation and test need one each).
        seed: seed of the folds.

    Returns:
        list of ``k`` dicts ``{"train", "val", "test"}`` of sorted int64 index arrays.

    Example:
        >>> splits = cv_splits([0, 1] * 6, k=3)
        >>> [len(s["train"]) for s in splits], sorted(np.concatenate([s["test"] for s in splits]).tolist())
        ([4, 4, 4], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 3:
        raise ConfigError(f"classify.folds = {k!r}: use at least 3 folds (each fold needs training, "
                          "validation and test cases)")
    folds = roc.stratified_kfold(labels, k, seed)
    return [{"train": np.sort(np.concatenate([folds[j] for j in range(k) if j not in (i, (i + 1) % k)])),
             "val": folds[(i + 1) % k], "test": folds[i]} for i in range(k)]


def cross_validate(labels, fit_and_score, k=roc.DEFAULT_FOLDS, seed=0, inputs=INPUTS, progress=None):
    """Run the protocol: per fold and input, fit on train, threshold on val, score test.

    Args:
        labels: 1-D 0/1 labels of the cases.
        fit_and_score: ``f(input_name, fold, train, val, test) -> (val_scores, test_scores)``;
            trains that input's classifier on the ``train`` indices and scores the
            ``val`` and ``test`` cases (the same cases and folds for every input).
        k, seed: of :func:`cv_splits`.
        inputs: the input names.
        progress: ``f(message)`` called after each fit, or ``None``.

    Returns:
        ``{"fold": (N,) the fold that tested each case, "scores": {input: (N,) out-of-fold
        scores}, "thresholds": {input: [k Youden thresholds, chosen on each fold's val split]}}``.

    Example:
        >>> y = np.array([0, 1] * 9)
        >>> fake = lambda name, fold, train, val, test: (y[val] + 0.1, y[test] + 0.1)
        >>> out = cross_validate(y, fake, k=3, inputs=("CT",))
        >>> out["thresholds"]["CT"], bool((out["scores"]["CT"] == y + 0.1).all())
        ([1.1, 1.1, 1.1], True)
    """
    y = roc._labels(labels)
    splits = cv_splits(y, k, seed)
    fold = np.full(y.size, -1, np.int64)
    scores = {name: np.full(y.size, np.nan) for name in inputs}
    thresholds = {name: [] for name in inputs}
    for i, split in enumerate(splits):
        fold[split["test"]] = i
        for name in inputs:
            val_scores, test_scores = fit_and_score(name, i, split["train"], split["val"], split["test"])
            thresholds[name].append(roc.youden_threshold(y[split["val"]], val_scores))
            scores[name][split["test"]] = np.asarray(test_scores, np.float64).reshape(-1)
            if progress is not None:
                progress(f"fold {i + 1}/{k}, {name}: test AUC "
                         f"{roc.roc_auc(y[split['test']], scores[name][split['test']]):.3f}")
    return {"fold": fold, "scores": scores, "thresholds": thresholds}


def summarize(labels, scores, fold, thresholds, level=0.95):
    """Table 3's numbers for one input, from its out-of-fold scores.

    Args:
        labels: 1-D 0/1 labels.
        scores: the out-of-fold score of each case.
        fold: the fold (0..k-1) that tested each case.
        thresholds: the ``k`` per-fold thresholds.
        level: confidence level of the AUC interval.

    Returns:
        dict: ``auc`` (the mean of the fold AUCs), ``auc_low``, ``auc_high``, ``auc_se``
        (DeLong per fold, combined: see the module), ``fold_auc`` (list), ``fold_auc_mean``,
        ``fold_auc_std`` (population std over folds), ``pooled_auc`` (all out-of-fold
        scores ranked together), the :data:`RATES` and ``tp``, ``fp``, ``tn``, ``fn`` (each case at its
        fold's threshold, pooled), ``n``.

    Example:
        >>> r = summarize([0, 0, 1, 1, 0, 0, 1, 1], [.1, .6, .7, .9, .2, .3, .4, .8],
        ...               [0, 0, 0, 0, 1, 1, 1, 1], [0.5, 0.5])
        >>> r["tp"], r["fp"], r["tn"], r["fn"], r["fold_auc"]
        (3, 1, 3, 1, [1.0, 1.0])
    """
    y = roc._labels(labels)
    s = roc._scores(scores, y.size)
    fold = np.asarray(fold, np.int64)
    auc, low, high, se = roc.delong_auc_ci(y, s, level, fold=fold)
    counts = {"tp": 0, "fp": 0, "tn": 0, "fn": 0}
    fold_auc = []
    for i, t in enumerate(thresholds):
        mine = fold == i
        point = roc.operating_point(y[mine], s[mine], t)
        for key in counts:
            counts[key] += point[key]
        fold_auc.append(roc.roc_auc(y[mine], s[mine]))
    tp, fp, tn, fn = counts["tp"], counts["fp"], counts["tn"], counts["fn"]
    ratio = lambda a, b: a / b if b else math.nan  # noqa: E731
    return {"auc": auc, "auc_low": low, "auc_high": high, "auc_se": se, "fold_auc": fold_auc,
            "fold_auc_mean": float(np.mean(fold_auc)), "fold_auc_std": float(np.std(fold_auc)),
            "pooled_auc": roc.roc_auc(y, s),
            "accuracy": (tp + tn) / y.size, "specificity": ratio(tn, tn + fp),
            "sensitivity": ratio(tp, tp + fn), "ppv": ratio(tp, tp + fp), "npv": ratio(tn, tn + fn),
            **counts, "n": int(y.size)}


def compare(labels, scores, pairs=COMPARISONS, fold=None):
    """DeLong's test of each pair of inputs scored on the same cases; with ``fold`` fold-wise
    (the folds' AUC differences averaged, their variances combined as in :func:`summarize`).

    Returns:
        list of dicts: ``a``, ``b`` and :func:`~xprospect_tf.evaluation.roc.delong_test`'s keys.

    Example:
        >>> y = [0, 0, 0, 1, 1, 1]
        >>> compare(y, {"A": [1, 2, 3, 4, 5, 6], "B": [1, 2, 4, 3, 5, 6]}, [("A", "B")])[0]["p"] > 0.05
        True
    """
    return [{"a": a, "b": b, **roc.delong_test(labels, scores[a], scores[b], fold=fold)}
            for a, b in pairs if a in scores and b in scores]


def _percent(value):
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}"


def table3_records(summaries):
    """Table 3's lines as records of formatted cells, one per input.

    Args:
        summaries: ``{input: summarize(...) dict}`` in table order.

    Example:
        >>> rec = table3_records({"CT": {"auc": 0.8271, "auc_low": 0.75, "auc_high": 0.92,
        ...     "fold_auc_mean": 0.83, "fold_auc_std": 0.05, "pooled_auc": 0.8, "accuracy": 0.7692,
        ...     "specificity": 0.7818, "sensitivity": 0.7391, "ppv": 0.5862, "npv": 0.8776, "n": 10}})
        >>> rec[0]["AUC [95% CI]"], rec[0]["Accuracy"]
        ('0.827 [0.75-0.92]', '76.92')
    """
    out = []
    for name, s in summaries.items():
        out.append({
            "Input": name,
            "AUC [95% CI]": f"{s['auc']:.3f} [{s['auc_low']:.2f}-{s['auc_high']:.2f}]",
            "± std over folds": f"{s['fold_auc_std']:.3f}",
            "pooled AUC": f"{s['pooled_auc']:.3f}",
            "Accuracy": _percent(s["accuracy"]), "Specificity": _percent(s["specificity"]),
            "Sensitivity": _percent(s["sensitivity"]), "PPV": _percent(s["ppv"]), "NPV": _percent(s["npv"]),
            "n": str(s["n"]),
        })
    return out


def table3_csv(summaries):
    """Table 3 as CSV text with full-precision numbers (rates as fractions in [0, 1]).

    Example:
        >>> text = table3_csv({"X-ray": {"auc": 0.5, "auc_low": 0.3, "auc_high": 0.7, "auc_se": 0.1,
        ...     "fold_auc_mean": 0.5, "fold_auc_std": 0.1, "pooled_auc": 0.4, "accuracy": 0.5,
        ...     "specificity": 0.5, "sensitivity": 0.5, "ppv": 0.5, "npv": 0.5, "tp": 1, "fp": 1, "tn": 1,
        ...     "fn": 1, "n": 4}})
        >>> header, line = text.splitlines()
        >>> header.split(",")[:9]
        ['input', 'auc', 'auc_low', 'auc_high', 'auc_se', 'fold_auc_mean', 'fold_auc_std', 'pooled_auc', 'accuracy']
        >>> line
        'X-ray,0.5,0.3,0.7,0.1,0.5,0.1,0.4,0.5,0.5,0.5,0.5,0.5,1,1,1,1,4'
    """
    columns = ["auc", "auc_low", "auc_high", "auc_se", "fold_auc_mean", "fold_auc_std", "pooled_auc",
               *RATES, "tp", "fp", "tn", "fn", "n"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["input", *columns])
    for name, s in summaries.items():
        writer.writerow([name, *(repr(float(s[c])) if isinstance(s[c], float) else s[c] for c in columns)])
    return buf.getvalue()


def to_markdown(records):
    """Records (dicts of cells, same keys) as a Markdown table.

    Example:
        >>> print(to_markdown([{"a": "1", "b": "2"}]))
        | a | b |
        |---|---|
        | 1 | 2 |
        <BLANKLINE>
    """
    keys = list(records[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(r[k] for k in keys) + " |" for r in records]
    return "\n".join(lines) + "\n"


def roc_figure(labels, scores, title="ROC curves (pooled out-of-fold scores)"):
    """A matplotlib figure of each input's ROC curve, AUCs in the legend (Agg backend).

    Args:
        labels: 1-D 0/1 labels.
        scores: ``{input: out-of-fold scores}``.
        title: the figure title.

    Returns:
        a ``matplotlib.figure.Figure``.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 5), dpi=100)
    ax = fig.add_subplot()
    for name, s in scores.items():
        fpr, tpr, _ = roc.roc_curve(labels, s)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc.roc_auc(labels, s):.3f})")
    ax.plot([0, 1], [0, 1], color="0.7", linestyle="--", linewidth=1)
    ax.set_xlabel("1 - specificity (false positive rate)")
    ax.set_ylabel("sensitivity (true positive rate)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right")
    return fig
