"""``xprospect classify``: does the generated CT help a diagnosis? The X-ray2CTPA Table 3 protocol.

Three classifiers are trained and tested on the same labelled cases and the same
stratified folds: on the real CT, on the X-ray pair, and on the CT that the
chosen row generates from the X-ray pair. Every generated CT comes from a
generator that never saw its case (``classify.generator``):

- ``disjoint`` (phantoms; the smoke preset): the row is trained once, on
  ``data.count`` phantoms drawn with ``data.phantom_seed`` (same finding
  settings), none of which is a classification case (checked seed by seed);
- ``per-fold`` (any dataset; needed for real data): the row is trained again
  for each fold on that fold's training cases (its validation fold monitors
  the fit) and generates every case of the cohort; the test fold's CTs come
  from a generator that never saw them.

Output folder (``--out DIR``)::

    table3.md, table3.csv     the paper's Table 3: one line per input (CT, X-ray, generated CT)
    predictions.csv           case_id, fold, label and each classifier's out-of-fold score
    delong.json               DeLong's test: generated CT vs X-ray, CT vs X-ray, CT vs generated CT
    roc_curves.png            the three ROC curves (pooled out-of-fold scores)
    classification.json       settings, per-fold thresholds and AUCs, the summaries, times
    data/                     the labelled phantom cohort (without --data, when data.source is phantom;
                              else --data or data.source is the cohort, labelled by --labels)
    generator/, generator-data/               the 'disjoint' generator's run and phantoms
    generator-fold-K/, generator-fold-K-data/ the 'per-fold' generators and their splits
"""

import csv
import io
import logging
import os
import re
import time

import numpy as np

from pipelines.common import add_config_args, claim_run_folder, log, resolve
from xprospect_tf.errors import ConfigError, InputError
from xprospect_tf.files import write_json, write_text

OUTPUTS = ("table3.md", "table3.csv", "predictions.csv", "delong.json", "roc_curves.png", "classification.json")
GENERATION_BATCH = 8
SCORE_COLUMNS = {"CT": "score_ct", "X-ray": "score_xray", "Generated CT": "score_generated_ct"}


def register(sub):
    p = sub.add_parser("classify", help="CT vs X-ray vs generated CT: the X-ray2CTPA Table 3 protocol")
    p.add_argument("--row", required=True, help="the row whose generated CTs are classified, e.g. '512-Dense'")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--labels", default=None, metavar="CSV",
                   help="with --data: the cases' 0/1 labels, a CSV with columns case_id,label (default: "
                        "the labels of a phantom dataset prepared with --findings)")
    p.add_argument("--folds", type=int, default=None, metavar="K",
                   help="cross-validation folds (default: classify.folds, 6)")
    add_config_args(p)  # --data: the labelled cohort (default: data.source, or classify.cases phantoms)
    p.set_defaults(func=main)


def main(args):
    if args.folds is not None:
        args.overrides = [*args.overrides, f"classify.folds={args.folds}"]
    cfg = resolve(args, args.row)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notes: one model per fold and input
    if cfg.inputs == "styled":
        raise ConfigError(f"row {cfg.row!r}: styled-input rows are not supported by classify yet; "
                          "choose a row with inputs: mean")
    if args.data is None and cfg.data.source != "phantom":  # e.g. the paper preset's prepared dataset
        args.data = cfg.data.source
    if args.labels is not None and args.data is None:
        raise ConfigError("--labels goes with --data (a prepared dataset of real cases); "
                          "phantom cohorts carry their own labels")
    given = _given_cohort(cfg, args) if args.data is not None else None  # checked before any work
    _check_folds(cfg, given[1] if given else _phantom_labels(cfg))
    t0 = time.perf_counter()
    times = {}
    with claim_run_folder(args.out, "classification folder", is_own=_is_classify_folder):
        for name in OUTPUTS:  # a finished table from an earlier run must not outlive a failed rerun
            if os.path.exists(os.path.join(args.out, name)):
                os.remove(os.path.join(args.out, name))
        cohort_dir, labels = given or _phantom_cohort(cfg, args.out)
        times["data_s"] = time.perf_counter() - t0
        ids = sorted(labels)
        y = np.array([labels[i] for i in ids], np.int64)
        from xprospect_tf.evaluation.classification import cv_splits, cross_validate

        splits = cv_splits(y, cfg.classify.folds, cfg.classify.fold_seed)  # enough cases per class?
        arrays = _load_arrays(cohort_dir, ids, cfg.inputs)
        t = time.perf_counter()
        generated, generator = _generated_volumes(cfg, args.out, cohort_dir, ids, arrays, splits, times)
        times["generator_s"] = time.perf_counter() - t
        t = time.perf_counter()
        result = cross_validate(y, _fit_and_score(cfg, y, arrays, generated), cfg.classify.folds,
                                cfg.classify.fold_seed, progress=lambda m: log.info("classify: %s", m))
        times["classifiers_s"] = time.perf_counter() - t
        times["total_s"] = time.perf_counter() - t0
        write_outputs(args.out, cfg, ids, y, result, generator, cohort_dir, times)
    log.info("Table 3 written to %s (%.1f s in all)", os.path.join(args.out, "table3.md"), times["total_s"])
    return 0


def _is_classify_folder(folder):
    return any(os.path.exists(os.path.join(folder, n)) for n in ("classification.json", "table3.md", "data",
                                                                 "generator", "generator-data")) or any(
        n.startswith("generator-fold-") for n in os.listdir(folder))


# -- the labelled cohort ---------------------------------------------------------------------------


def _findings(cfg):
    from xprospect_tf.data.prepared import PhantomFindings

    return PhantomFindings(cfg.classify.nodule_radius_mm, cfg.classify.nodule_contrast_hu)


def _phantom_cohort(cfg, out):
    """Prepare (or resume) ``classify.cases`` labelled phantoms in ``out/data``; ``(folder, labels)``."""
    from xprospect_tf.data.prepared import Manifest, phantom_sources, write_prepared

    folder = os.path.join(out, "data")
    sources = phantom_sources(cfg.classify.cases, cfg.classify.cases_seed, _findings(cfg))
    write_prepared(sources, folder, size=cfg.data.size, window=cfg.data.window, fov_mm=cfg.data.fov_mm,
                   test_count=0, val_fraction=0.0, progress=False)  # the folds split it, not the manifest
    return folder, Manifest.read(folder).labels()


def _phantom_labels(cfg):
    """The phantom cohort's labels, known from the seeds before anything is prepared."""
    from xprospect_tf.data.prepared import phantom_sources

    findings = _findings(cfg)
    return {s.case_id: findings.label(s.seed)[0]
            for s in phantom_sources(cfg.classify.cases, cfg.classify.cases_seed)}


def _check_folds(cfg, labels):
    from xprospect_tf.evaluation.classification import cv_splits

    try:
        cv_splits(np.array(list(labels.values())), cfg.classify.folds, cfg.classify.fold_seed)
    except InputError as e:
        raise InputError(f"{len(labels)} labelled cases, classify.folds = {cfg.classify.folds}: {e}") from None


def _given_cohort(cfg, args):
    """``(folder, labels)`` of ``--data``, its labels from ``--labels`` or its manifest; checked."""
    from xprospect_tf.data.labels import read_labels_csv
    from xprospect_tf.data.prepared import Manifest

    manifest = Manifest.read(args.data)
    manifest.entries()  # preparation finished
    manifest.check_matches(size=cfg.data.size, window=cfg.data.window, fov_mm=cfg.data.fov_mm)
    if args.labels is not None:
        labels = read_labels_csv(args.labels, manifest.ids())
    else:
        labels = manifest.labels()
    if cfg.classify.generator == "disjoint" and manifest.findings is None:
        raise ConfigError(f"{args.data}: classify.generator = disjoint trains the generator on phantoms, "
                          "which fits only a phantom cohort; for this dataset use --set "
                          "classify.generator=per-fold")
    return args.data, labels


def _load_arrays(folder, ids, inputs):
    from xprospect_tf.data.prepared import INPUT_FIELDS, load_case

    frontal_key, lateral_key = INPUT_FIELDS[inputs]
    cases = [load_case(folder, i) for i in ids]
    return {"ct": np.stack([c["ct"] for c in cases])[..., None],
            "frontal": np.stack([c[frontal_key] for c in cases])[..., None],
            "lateral": np.stack([c[lateral_key] for c in cases])[..., None]}


def _phantom_seeds(manifest):
    seeds = set()
    for entry in manifest.cases:
        match = re.fullmatch(r"phantom:seed=(\d+)(:findings)?", str(entry.get("source", "")))
        if match:
            seeds.add(int(match.group(1)))
    return seeds


# -- the generated CTs --------------------------------------------------------------------------------


def _generated_volumes(cfg, out, cohort_dir, ids, arrays, splits, times):
    """``(volumes_of_fold, info)``: ``volumes_of_fold(i)`` is every case's generated CT ``(N, S, S, S, 1)``
    as fold ``i``'s classifiers see it; ``info`` describes the protocol for the outputs."""
    if cfg.classify.generator == "disjoint":
        run_dir, results = _train_disjoint(cfg, out, cohort_dir)
        volumes = _generate(cfg, run_dir, arrays)
        info = {"protocol": "disjoint", "runs": [os.path.basename(run_dir)],
                "generator_test_mse": [results["summary"]["mse"][0]],
                "note": f"one generator trained on {cfg.data.count} phantoms (data.phantom_seed "
                        f"{cfg.data.phantom_seed}) that are not classification cases"}
        return (lambda fold: volumes), info
    per_fold, runs, mses = [], [], []
    for i, split in enumerate(splits):
        run_dir, results = _train_fold(cfg, out, cohort_dir, ids, i, split)
        per_fold.append(_generate(cfg, run_dir, arrays))
        runs.append(os.path.basename(run_dir))
        mses.append(results["summary"]["mse"][0])
    info = {"protocol": "per-fold", "runs": runs, "generator_test_mse": mses,
            "note": "one generator per fold, trained on that fold's training cases; the test fold's CTs "
                    "come from a generator that never saw them"}
    return (lambda fold: per_fold[fold]), info


def _train_disjoint(cfg, out, cohort_dir):

    from xprospect_tf.data.prepared import Manifest, PhantomFindings, phantom_sources, write_prepared

    cohort = Manifest.read(cohort_dir)
    findings = PhantomFindings(cohort.findings["nodule_radius_mm"], cohort.findings["nodule_contrast_hu"])
    sources = phantom_sources(cfg.data.count, cfg.data.phantom_seed, findings)
    shared = _phantom_seeds(cohort) & {s.seed for s in sources}
    if shared:
        raise ConfigError(f"{len(shared)} phantom(s) of the generator's training set (data.phantom_seed "
                          f"{cfg.data.phantom_seed}) are classification cases of {cohort_dir}; use another "
                          "data.phantom_seed or classify.cases_seed")
    data_dir = os.path.join(out, "generator-data")
    d = cfg.data
    write_prepared(sources, data_dir, size=d.size, window=d.window, fov_mm=d.fov_mm,
                   test_fraction=d.test_fraction, test_count=d.test_count, split_seed=d.split_seed,
                   val_fraction=d.val_fraction, progress=False)
    run_dir = os.path.join(out, "generator")
    return run_dir, _run_or_reuse(cfg, run_dir, data_dir)


def _train_fold(cfg, out, cohort_dir, ids, fold, split):
    """Train the row on fold ``fold``'s training cases: a dataset folder whose manifest lists the
    cohort's case files (not copied) with this fold's train / val / test split."""
    from xprospect_tf.data.prepared import Manifest

    cohort = Manifest.read(cohort_dir)
    data_dir = os.path.join(out, f"generator-fold-{fold + 1}-data")
    role = {}
    for name, index in split.items():
        for i in index:
            role[ids[i]] = "train" if name == "val" and not cfg.data.val_fraction else name
    cases = []
    for entry in cohort.cases:
        if entry["id"] in role:
            cases.append({**entry, "file": os.path.abspath(cohort.file(entry)), "split": role[entry["id"]]})
    os.makedirs(data_dir, exist_ok=True)
    Manifest(data_dir, cohort.size, cohort.window, cohort.fov_mm, split_seed=cfg.classify.fold_seed,
             complete=True, cases=cases, val_fraction=cfg.data.val_fraction,
             extra={"fold": fold + 1, "folds_of": os.path.abspath(cohort_dir)}).save()
    run_dir = os.path.join(out, f"generator-fold-{fold + 1}")
    return run_dir, _run_or_reuse(cfg, run_dir, data_dir)


def _run_or_reuse(cfg, run_dir, data_dir):
    from pipelines.train import finished_results, run_row

    results = finished_results(run_dir, cfg)
    if results is not None:
        log.info("classify: reusing the generator in %s", run_dir)
        return results
    log.info("classify: training the generator %s in %s", cfg.row, run_dir)
    return run_row(cfg, run_dir, data_dir, replace=True)


def _generate(cfg, run_dir, arrays):
    """Every case's CT generated from its X-ray pair by the model in ``run_dir``."""
    from xprospect_tf.export import load_keras_model
    from xprospect_tf.training.rows import predictor

    model = load_keras_model(os.path.join(run_dir, "model.keras"))
    predict = predictor(model, cfg)
    n = arrays["frontal"].shape[0]
    out = [np.asarray(predict(arrays["frontal"][i:i + GENERATION_BATCH], arrays["lateral"][i:i + GENERATION_BATCH]),
                      np.float32) for i in range(0, n, GENERATION_BATCH)]
    return np.concatenate(out).reshape(arrays["ct"].shape)


# -- the classifiers ----------------------------------------------------------------------------------


def _fit_and_score(cfg, y, arrays, generated):
    import keras

    from xprospect_tf.training.classifiers import classifier_scores, fit_classifier

    c = cfg.classify

    def inputs(name, fold):
        if name == "CT":
            return c.ct_classifier, {"ct": arrays["ct"]}
        if name == "Generated CT":
            return c.ct_classifier, {"ct": generated(fold)}
        return c.xray_classifier, {"frontal": arrays["frontal"], "lateral": arrays["lateral"]}

    def fit_and_score(name, fold, train, val, test):
        keras.backend.clear_session()
        classifier, x = inputs(name, fold)
        take = lambda index: {k: v[index] for k, v in x.items()}  # noqa: E731
        model = fit_classifier(classifier, cfg.data.size, take(train), y[train], filters=c.classifier_filters,
                               epochs=c.classifier_epochs, batch_size=c.classifier_batch_size,
                               learning_rate=c.classifier_learning_rate, seed=c.fold_seed * 1000 + fold,
                               run_eagerly=cfg.train.run_eagerly)
        return classifier_scores(model, take(val)), classifier_scores(model, take(test))

    return fit_and_score


# -- outputs --------------------------------------------------------------------------------------------


def predictions_csv(ids, y, result):
    """predictions.csv: one line per case, its fold (1-based), label and out-of-fold scores."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    names = list(result["scores"])
    writer.writerow(["case_id", "fold", "label", *(SCORE_COLUMNS[n] for n in names)])
    for i, case_id in enumerate(ids):
        writer.writerow([case_id, int(result["fold"][i]) + 1, int(y[i]),
                         *(repr(float(result["scores"][n][i])) for n in names)])
    return buf.getvalue()


def write_outputs(out, cfg, ids, y, result, generator, cohort_dir, times):
    """Write the outputs (atomically each; table3.md last: its presence means a finished run)."""
    from xprospect_tf.evaluation import classification as cls
    from xprospect_tf.evaluation.renderings import save_figure

    summaries = {name: cls.summarize(y, result["scores"][name], result["fold"], result["thresholds"][name])
                 for name in result["scores"]}
    comparisons = cls.compare(y, result["scores"], fold=result["fold"])
    write_text(os.path.join(out, "predictions.csv"), predictions_csv(ids, y, result))
    note = ("DeLong's test of two correlated AUCs on the same cases, fold-wise: each fold's AUC difference "
            f"and its DeLong variance, averaged over the {cfg.classify.folds} folds (two-sided p; {len(ids)} cases)")
    write_json(os.path.join(out, "delong.json"), {"note": note, "comparisons": comparisons})
    write_text(os.path.join(out, "table3.csv"), cls.table3_csv(summaries))
    save_figure(cls.roc_figure(y, result["scores"], title=f"ROC, {cfg.row} ({cfg.preset}), pooled out-of-fold"),
                os.path.join(out, "roc_curves.png"))
    c = cfg.classify
    write_json(os.path.join(out, "classification.json"), {
        "row": cfg.row, "preset": cfg.preset, "data": cohort_dir, "cases": len(ids),
        "positives": int(y.sum()), "folds": c.folds, "generator": generator,
        "thresholds": result["thresholds"], "summaries": summaries, "comparisons": comparisons,
        "times_s": {k: round(v, 1) for k, v in times.items()}, "config": cfg.to_dict()})
    records = cls.table3_records(summaries)
    lines = [f"| {r['a']} vs {r['b']} | {r['auc_a']:.3f} vs {r['auc_b']:.3f} | {r['difference']:+.3f} | "
             f"{r['z']:.2f} | {r['p']:.3g} |" for r in comparisons]
    text = (
        f"# Table 3 ({cfg.row}, {cfg.preset} preset)\n\n"
        f"{len(ids)} labelled cases of {cohort_dir} ({int(y.sum())} positive), stratified {c.folds}-fold "
        "cross-validation: fold i tests, fold i+1 validates (Youden threshold), the others train. "
        f"Classifiers: {c.ct_classifier} on the CT volumes (real and generated), {c.xray_classifier} on "
        "the X-ray pair (frontal + lateral). "
        "AUC: the mean of the folds' AUCs, 95% CI by DeLong (each fold's variance, combined); ± std of the "
        "fold AUCs; pooled AUC: all out-of-fold scores ranked together (different models' scales mixed); "
        "accuracy, specificity, sensitivity, PPV and NPV (%) with each case at its fold's Youden "
        "threshold, counts pooled over folds.\n\n"
        f"Generated CT: {generator['protocol']} generator ({generator['note']}).\n\n"
        + cls.to_markdown(records)
        + "\nDeLong's test (fold-wise, two-sided):\n\n"
          "| comparison | AUC | difference | z | p |\n|---|---|---|---|---|\n" + "\n".join(lines) + "\n"
        + f"\nTime: {times['total_s']:.0f} s (generator {times['generator_s']:.0f} s, classifiers "
          f"{times['classifiers_s']:.0f} s).\n\n![ROC curves](roc_curves.png)\n")
    write_text(os.path.join(out, "table3.md"), text)
    return summaries
