"""``xprospect train``: train (or compute a baseline for) one Table 1 row, then evaluate it.

Run folder layout (``--out DIR``)::

    config.json              the resolved configuration
    model.keras              the trained model (for a baseline row: the baseline as a Keras model)
    last.keras, backup/      checkpoint and backups (resume after interruption; the
                             backup is deleted once results.json is written)
    history.csv, logs/       per-epoch CSV log (loss, psnr, val_loss, val_psnr) and TensorBoard logs
    learning_curve.png       training and validation loss per epoch (log scale)
    results.json             test metrics per case and summary, parameters, training time
    example_prediction.npz   the example test case's predicted volume (for figures)

Running ``train`` again on the same folder with the same settings resumes an
interrupted run at its first unfinished epoch, and ends with the same numbers as
an uninterrupted run; a finished run (model.keras and results.json written) is
reported and not trained again unless ``--retrain``.
"""

import json
import os
import shutil
import sys
import time

import numpy as np

from pipelines.common import add_config_args, claim_run_dir, claim_run_folder, ensure_dataset, log, resolve, slug
from xprospect_tf.errors import ConfigError
from xprospect_tf.files import atomic_path, write_json
from xprospect_tf.training.strategy import STRATEGIES


def register(sub):
    p = sub.add_parser("train", help="train one experiments.yaml row and evaluate it on the test split")
    p.add_argument("--row", required=True, help="row name, e.g. '512-Dense'")
    p.add_argument("--out", default=None, help="run folder (required unless --dry-run)")
    p.add_argument("--strategy", choices=STRATEGIES, default=None,
                   help="distribution strategy (mirrored: all visible GPUs)")
    p.add_argument("--dry-run", action="store_true",
                   help="build the model, print the tensor-size/memory report, do not train")
    p.add_argument("--retrain", action="store_true",
                   help="train a finished (or interrupted) run again from scratch, replacing its outputs")
    add_config_args(p)
    p.set_defaults(func=main)


def main(args):
    cfg = resolve(args, args.row)
    if args.dry_run:
        return dry_run(cfg)
    if args.out is None:
        raise ConfigError("--out: give the run folder to train into (only --dry-run needs none)")
    with claim_run_folder(args.out):
        claim_run_dir(args.out, cfg, write=False)  # refuse a folder holding another run before any work
        if not args.retrain and finished_results(args.out, cfg) is not None:
            log.info("%s: %s is already trained and evaluated (results.json); nothing to do "
                     "(--retrain trains it again)", cfg.row, args.out)
            return 0
        data_dir = ensure_dataset(cfg.data, args.data, os.path.join(args.out, "data"))
        style_time = None
        if cfg.inputs == "styled":
            from xprospect_tf.training.style import ensure_styled

            runs = ensure_styled(data_dir, cfg.style, args.out, run_eagerly=cfg.train.run_eagerly)
            style_time = sum(r.get("train_time_s") or 0.0 for r in runs.values())
        regressor_dir = ensure_regressor(args, cfg, args.out, data_dir)
        results = run_row(cfg, args.out, data_dir, style_time_s=style_time, retrain=args.retrain,
                          regressor_dir=regressor_dir)
    s = results["summary"]
    log.info("%s: test MSE %.5f +- %.5f, PSNR %.2f dB, SSIM %.3f", cfg.row, *s["mse"], s["psnr"][0], s["ssim"][0])
    return 0


def dry_run(cfg):
    """Print the tensor-size and memory report; exit status 1 if a limit would be exceeded.

    The report names the limit checked (TensorFlow's 2^31-1 elements per tensor,
    which the paper words as "2^32 parameters per layer") and the largest batch
    size that fits it; a batch over the limit is reported on stderr with the
    message a real run would stop with.
    """
    from xprospect_tf.training.guard import tensor_size_report
    from xprospect_tf.training.rows import build_compiled_model

    model = build_compiled_model(cfg, steps_per_epoch=1)  # sizes only: the schedule is not used
    report = tensor_size_report(model, cfg.train.batch_size)
    print(f"{cfg.row} ({cfg.preset}): {model.count_params():,} parameters, batch {cfg.train.batch_size}")
    print(report.format())
    problem = report.problem()
    if problem is not None:
        print(f"would stop before training: {problem}", file=sys.stderr)
        return 1
    return 0


RUN_OUTPUTS = ("results.json", "model.keras", "example_prediction.npz", "history.csv", "best.keras",
               "best.keras.json", "last.keras", "last.keras.json", "backup", "logs", "learning_curve.png")


def ensure_regressor(args, cfg, root, data_dir):
    """A residual diffusion row's (``diffusion.residual_of``) regressor: the run folder of that
    UNet row under ``root``, trained there first unless a finished run of its settings is there
    (in a Table 1 folder: the table's own run of that row). ``None`` for every other row."""
    from xprospect_tf.training.rows import is_baseline, is_diffusion

    row = cfg.diffusion.residual_of if is_diffusion(cfg) else None
    if row is None:
        return None
    try:
        reg = resolve(args, row)
    except ConfigError as e:
        raise ConfigError(f"diffusion.residual_of = {row!r}: {e}") from None
    if is_diffusion(reg) or is_baseline(reg):
        raise ConfigError(f"diffusion.residual_of = {row!r}: name a trained UNet row (e.g. 512-ProjInj), "
                          "not a diffusion row or a baseline")
    if reg.inputs != cfg.inputs:
        raise ConfigError(f"diffusion.residual_of = {row!r}: that row reads {reg.inputs!r} X-rays, "
                          f"{cfg.row} reads {cfg.inputs!r}; name a row with the same inputs")
    run_dir = os.path.join(root, slug(row))
    if finished_results(run_dir, reg) is None:
        log.info("%s: training %s first in %s (diffusion.residual_of)", cfg.row, row, run_dir)
        run_row(reg, run_dir, data_dir, replace=True)
    else:
        log.info("%s: residual of %s's finished run in %s", cfg.row, row, run_dir)
    return run_dir


def finished_results(run_dir, cfg):
    """results.json's dict when ``run_dir`` holds a finished run of ``cfg``'s settings, else None."""
    from pipelines.common import comparable

    if not all(os.path.exists(os.path.join(run_dir, f)) for f in ("results.json", "model.keras")):
        return None
    try:
        results = load_results(run_dir)
    except (OSError, ValueError):
        return None
    return results if comparable(results.get("config", {})) == comparable(cfg) else None


def clear_run_outputs(run_dir):
    """Delete a run's outputs (not its config.json, prepared data or style runs) to train it again."""
    for name in RUN_OUTPUTS:
        path = os.path.join(run_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def run_row(cfg, run_dir, data_dir, example_case=None, style_time_s=None, replace=False, retrain=False,
            regressor_dir=None):
    """Train (or compute the baseline of) ``cfg``'s row and evaluate it; returns results.json's dict.

    ``style_time_s``: for styled-input rows, the time spent training the style
    models, reported beside the reconstruction's own training time. ``replace``:
    a ``run_dir`` holding a run of other settings is deleted (else refused).
    ``retrain``: the run's previous outputs are deleted and it trains from
    scratch (else an interrupted run resumes from its backup). ``regressor_dir``: a
    residual diffusion row's trained ``diffusion.residual_of`` run (:func:`ensure_regressor`).
    """
    import keras

    from xprospect_tf.data.prepared import load_prepared, read_manifest
    from xprospect_tf.evaluation.evaluate import evaluate_predictor
    from xprospect_tf.training.rows import build_baseline_model, fit_row, is_baseline, predictor

    from xprospect_tf.files import remove_temporaries
    from xprospect_tf.training.callbacks import BACKUP

    claim_run_dir(run_dir, cfg, replace)
    if retrain:
        clear_run_outputs(run_dir)
    remove_temporaries(run_dir)  # left by a killed atomic write
    keras.utils.set_random_seed(cfg.train.seed)
    manifest = read_manifest(data_dir)
    test_ids = manifest.ids("test")
    example_case = example_case or test_ids[0]
    t0 = time.perf_counter()
    if is_baseline(cfg):
        model = build_baseline_model(cfg, load_prepared(data_dir, "train", inputs=cfg.inputs, batch_size=8))
        save_model(model, run_dir)
        params = 0
    else:
        model = fit_row(cfg, run_dir, data_dir, regressor_dir)
        params = int(model.count_params())

    train_time = time.perf_counter() - t0
    if not is_baseline(cfg):
        save_learning_curve(cfg, run_dir)
    test = load_prepared(data_dir, "test", inputs=cfg.inputs, batch_size=cfg.train.batch_size, with_ids=True)
    predict, spent = predictor(model, cfg), []

    def timed(ap, lateral):
        t = time.perf_counter()
        volumes = np.asarray(predict(ap, lateral))
        spent.append(time.perf_counter() - t)
        return volumes

    per_case, summary, kept = evaluate_predictor(timed, test, keep=(example_case,))
    with atomic_path(os.path.join(run_dir, "example_prediction.npz")) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, case_id=example_case, prediction=kept[example_case])
    results = {
        "row": cfg.row, "preset": cfg.preset, "inputs": cfg.inputs,
        "loss": cfg.train.loss if params else None,
        "optimizer": cfg.train.optimizer if params else None,
        "parameters": params, "train_time_s": round(train_time, 2),
        "predict_time_s": round(sum(spent) / len(per_case), 3),  # per test volume, the first batch's tracing included
        "style_train_time_s": None if style_time_s is None else round(style_time_s, 2),
        "summary": {k: list(v) for k, v in summary.items()},
        "per_case": per_case, "example_case": example_case,
        "config": cfg.to_dict(),
    }
    write_json(os.path.join(run_dir, "results.json"), results)
    shutil.rmtree(os.path.join(run_dir, BACKUP), ignore_errors=True)  # finished: nothing to resume
    return results


def save_learning_curve(cfg, run_dir):
    """Write ``run_dir/learning_curve.png`` from its ``history.csv``: training and validation loss."""
    from xprospect_tf.evaluation.learning_curves import learning_curve_figure, read_history
    from xprospect_tf.evaluation.renderings import save_figure

    figure = learning_curve_figure(read_history(run_dir), title=f"{cfg.row} ({cfg.preset})",
                                   ylabel=f"{cfg.train.loss.upper()} loss")
    save_figure(figure, os.path.join(run_dir, "learning_curve.png"))


def save_model(model, run_dir):
    """Write ``run_dir/model.keras`` atomically."""
    with atomic_path(os.path.join(run_dir, "model.keras")) as tmp:
        model.save(tmp)


def load_results(run_dir):
    with open(os.path.join(run_dir, "results.json"), encoding="utf-8") as f:
        return json.load(f)

