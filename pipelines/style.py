"""``xprospect style train|apply|evaluate``: the style-transfer workflow (XprospeCT, section 3.1).

One CycleGAN per view turns mean-CT projections (domain A) into images that
look like radiographs (domain B); the stylized projections then train the
``64-Dense-Styled-Inputs`` row.

Style run folder layout (``style train --out DIR``, one per view)::

    config.json          the hyper-parameters (a second call with the same ones reuses the run)
    generator.keras      g_ab alone (mean-CT -> X-ray style), used by ``style apply``
    last.keras           the whole CycleGAN after the last finished epoch
    backup/              BackupAndRestore state (an interrupted run resumes)
    history.csv          per-epoch losses
    samples/epoch_NNN.png  mean-CT | stylized | domain-B grid after each epoch

``style apply`` adds ``styled_ap`` / ``styled_lateral`` to every case of the
prepared dataset (``load_prepared(..., inputs="styled")`` serves them);
``style evaluate`` writes ``style_metrics.json`` and ``style_figure.png``.
"""

import json
import logging
import math
import os
import shutil
import sys
import time

from pipelines.common import log
from xprospect_tf.errors import ConfigError, InputError
from xprospect_tf.files import atomic_path, write_json

GENERATOR = "generator.keras"
CONFIG = "config.json"
SAMPLES = "samples"
N_SAMPLES = 3
DEFAULTS = dict(epochs=20, batch_size=1, filters=32, n_residual=None, learning_rate=2e-5,
                cycle_lambda=20.0, ema_every=100, seed=0)


def register(sub):
    p = sub.add_parser("style", help="style transfer: train CycleGANs, stylize a dataset, evaluate")
    ssub = p.add_subparsers(dest="style_command", metavar="STEP", required=True)

    t = ssub.add_parser("train", help="train one view's CycleGAN (mean-CT projections -> X-ray style)")
    t.add_argument("--view", required=True, choices=("frontal", "lateral"))
    t.add_argument("--data", required=True, metavar="DIR",
                   help="prepared dataset (domain A: its train split)")
    t.add_argument("--out", required=True, metavar="RUN_DIR", help="style run folder")
    _add_domain_b_args(t)
    t.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    t.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    t.add_argument("--filters", type=int, default=DEFAULTS["filters"], help="generator base filters")
    t.add_argument("--residual-blocks", type=int, default=None,
                   help="generator residual blocks (default: CycleGAN's 6 up to 128 px, 9 above)")
    t.add_argument("--upsampling", choices=("transpose", "resize"), default="transpose",
                   help="generator up-sampling: CycleGAN's transposed convolutions (default) or "
                        "resize + conv (no checkerboard artefacts)")
    t.add_argument("--learning-rate", type=float, default=DEFAULTS["learning_rate"])
    t.add_argument("--cycle-lambda", type=float, default=DEFAULTS["cycle_lambda"])
    t.add_argument("--ema-every", type=int, default=DEFAULTS["ema_every"],
                   help="reset the weights to their moving average every N steps (0: never)")
    t.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    t.add_argument("--eager", action="store_true", help="run_eagerly (debugging, tiny tests)")
    t.set_defaults(func=_train_main)

    a = ssub.add_parser("apply", help="write stylized projections (styled_ap, styled_lateral) into a dataset")
    a.add_argument("--data", required=True, metavar="DIR", help="prepared dataset (changed in place)")
    a.add_argument("--frontal-model", required=True, metavar="RUN_DIR")
    a.add_argument("--lateral-model", required=True, metavar="RUN_DIR")
    a.set_defaults(func=_apply_main)

    e = ssub.add_parser("evaluate", help="distances to domain B before/after styling, and Figure 1")
    e.add_argument("--data", required=True, metavar="DIR", help="prepared dataset with styled fields")
    e.add_argument("--out", required=True, metavar="DIR")
    e.add_argument("--split", choices=("train", "test", "all"), default="all")
    _add_domain_b_args(e)
    e.set_defaults(func=_evaluate_main)


def _add_domain_b_args(parser):
    parser.add_argument(
        "--domain-b", default="default", metavar="SPEC",
        help="radiographs: 'phantom-drr:N', a CheXpert CSV, or a folder of PNG/JPEG/DICOM X-rays "
             "(default: DRRs of as many unseen phantoms as there are train cases)")
    parser.add_argument("--domain-b-count", type=int, default=None, metavar="N",
                        help="use at most N domain-B images (default: all)")


def _train_main(args):
    result = train_style_model(
        args.data, args.view, args.out, domain_b=args.domain_b, epochs=args.epochs,
        batch_size=args.batch_size, filters=args.filters, learning_rate=args.learning_rate,
        cycle_lambda=args.cycle_lambda, ema_every=args.ema_every or None, run_eagerly=args.eager,
        n_residual=args.residual_blocks, domain_b_count=args.domain_b_count, seed=args.seed,
        upsampling=args.upsampling)
    log.info("style %s: %s %s", args.view, "reused" if result["reused"] else "trained", result["generator"])
    return 0


def _apply_main(args):
    n = apply_style_models(args.data, args.frontal_model, args.lateral_model)
    log.info("%s: stylized %d case(s)", args.data, n)
    return 0


def _evaluate_main(args):
    report = evaluate_style(args.data, args.out, args.domain_b, args.domain_b_count, args.split)
    for view, r in report["views"].items():
        log.info("%s: histogram distance %.4f -> %.4f, spectrum distance %.3f -> %.3f, SSIM %.3f",
                 view, r["histogram_source"], r["histogram_stylized"], r["spectrum_source"],
                 r["spectrum_stylized"], r["ssim"])
    return 0


# ----------------------------------------------------------------------------- train


def style_config(data_dir, view, domain_b="default", epochs=DEFAULTS["epochs"],
                 batch_size=DEFAULTS["batch_size"], filters=DEFAULTS["filters"],
                 learning_rate=DEFAULTS["learning_rate"], cycle_lambda=DEFAULTS["cycle_lambda"],
                 ema_every=DEFAULTS["ema_every"], n_residual=None, domain_b_count=None,
                 seed=DEFAULTS["seed"], upsampling="transpose"):
    """The resolved, validated hyper-parameters of one style run (written as config.json).

    Args:
        data_dir, view, ...: as in :func:`train_style_model`.

    Returns:
        dict; ``domain_b`` resolved by :func:`domain_b_spec`, ``size`` and
        ``fov_mm`` from the dataset's manifest, ``disc_filters = 2 * filters``.

    Example:
        >>> style_config("data/ph16", "frontal", epochs=1)["domain_b"]  # doctest: +SKIP
        'phantom-drr:4'
    """
    from xprospect_tf.data.domains import check_view
    from xprospect_tf.data.prepared import read_manifest

    check_view(view)
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("filters", filters)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"style {name}={value!r}: use a positive integer (--{name.replace('_', '-')})")
    if not (isinstance(learning_rate, (int, float)) and learning_rate > 0):
        raise ConfigError(f"style learning_rate={learning_rate!r}: use a positive number (--learning-rate)")
    manifest = read_manifest(data_dir)
    return {
        "view": view, "data": os.path.abspath(data_dir), "size": int(manifest["size"]),
        "fov_mm": float(manifest["fov_mm"]), "domain_b": domain_b_spec(domain_b, manifest),
        "domain_b_count": domain_b_count,
        "epochs": epochs, "batch_size": batch_size, "filters": filters,
        "disc_filters": 2 * filters, "n_residual": n_residual, "upsampling": upsampling,
        "learning_rate": float(learning_rate), "cycle_lambda": float(cycle_lambda),
        "ema_every": ema_every or None, "seed": int(seed),
    }


def domain_b_spec(domain_b, manifest):
    """``"default"`` -> ``"phantom-drr:N"`` with N = the dataset's train cases; else the spec."""
    if domain_b in (None, "default"):
        return f"phantom-drr:{sum(c['split'] == 'train' for c in manifest['cases'])}"
    return os.fspath(domain_b)


def train_style_model(data_dir, view, out_dir, domain_b="default", epochs=DEFAULTS["epochs"],
                      batch_size=DEFAULTS["batch_size"], filters=DEFAULTS["filters"],
                      learning_rate=DEFAULTS["learning_rate"], cycle_lambda=DEFAULTS["cycle_lambda"],
                      ema_every=DEFAULTS["ema_every"], run_eagerly=False, n_residual=None,
                      domain_b_count=None, seed=DEFAULTS["seed"], upsampling="transpose",
                      replace=False):
    """Train (or reuse) one view's style CycleGAN; write ``out_dir/generator.keras``.

    Section 3.1 of XprospeCT: domain A = the view's mean-CT projections of the
    train split, domain B = ``domain_b`` radiographs, unpaired (two shuffled,
    repeated datasets zipped). Nadam, EMA weight resets and ``cycle_lambda``
    as in :func:`xprospect_tf.models.cyclegan.compile_cyclegan`. One epoch is
    ``ceil(max(N_A, N_B) / batch_size)`` steps. If ``out_dir`` already holds a
    generator trained with the same hyper-parameters it is reused; an
    interrupted run with the same ones resumes (BackupAndRestore).

    Args:
        data_dir: prepared dataset folder.
        view: ``"frontal"`` or ``"lateral"``.
        out_dir: style run folder.
        domain_b: ``"default"`` (``phantom-drr:N_train``), ``"phantom-drr:N"``,
            a CheXpert CSV or a folder of X-rays.
        epochs, batch_size, filters: training length, batch, generator base
            filters (the discriminators get ``2 * filters``).
        learning_rate, cycle_lambda, ema_every: the paper's training settings.
        run_eagerly: compile with ``run_eagerly`` (tests).
        n_residual: generator residual blocks (``None``: CycleGAN's default).
        upsampling: generator up-sampling, ``"transpose"`` (CycleGAN's) or ``"resize"``.
        replace: when ``out_dir`` holds a run with other settings, delete it and
            retrain (for folders a workflow manages) instead of raising ConfigError.
        domain_b_count: use at most this many domain-B images.
        seed: random seed (weights, shuffling, domain-B draw).

    Returns:
        dict: ``run_dir``, ``generator`` (path), ``config``, ``reused`` (bool),
        ``train_time_s`` (``None`` when reused), ``history`` (last epoch's losses).

    Raises:
        ConfigError: ``out_dir`` holds a style run with other hyper-parameters.

    Example:
        >>> train_style_model("data/ph64", "frontal", "runs/style-frontal", epochs=2)  # doctest: +SKIP
    """
    config = style_config(data_dir, view, domain_b, epochs, batch_size, filters, learning_rate,
                          cycle_lambda, ema_every, n_residual, domain_b_count, seed, upsampling)
    generator = os.path.join(out_dir, GENERATOR)
    previous = _read_style_config(out_dir)
    if previous is not None and previous != config:
        changed = sorted(k for k in set(config) | set(previous) if previous.get(k) != config.get(k))
        if replace:
            log.warning("%s: settings changed (%s); retraining", out_dir, ", ".join(changed))
            shutil.rmtree(out_dir)
            return train_style_model(data_dir, view, out_dir, domain_b, epochs, batch_size, filters,
                                     learning_rate, cycle_lambda, ema_every, run_eagerly, n_residual,
                                     domain_b_count, seed, upsampling)
        raise ConfigError(
            f"{out_dir}: holds a style run with other settings ({', '.join(changed)} differ); "
            "use a new --out folder, or delete this one to retrain")
    result = {"run_dir": out_dir, "generator": generator, "config": config}
    if previous is not None and os.path.exists(generator):
        log.info("%s: reusing the trained %s style model", out_dir, view)
        return {**result, "reused": True, "train_time_s": None, "history": _last_history(out_dir)}
    images_a, images_b = _domain_images(config, data_dir)  # input errors before any file is written
    write_json(os.path.join(out_dir, CONFIG), config)
    t0 = time.perf_counter()
    gan = _fit_cyclegan(config, out_dir, images_a, images_b, run_eagerly)
    with atomic_path(generator) as tmp:
        gan.g_ab.save(tmp)
    seconds = round(time.perf_counter() - t0, 2)
    log.info("%s: trained the %s style model in %.1f s", out_dir, view, seconds)
    return {**result, "reused": False, "train_time_s": seconds, "history": _last_history(out_dir)}


def _domain_images(config, data_dir):
    from xprospect_tf.data.domains import domain_a_images, domain_b_images

    _, images_a = domain_a_images(data_dir, config["view"], "train")
    images_b = domain_b_images(config["domain_b"], config["view"], config["size"],
                               config["domain_b_count"], config["seed"], config["fov_mm"])
    log.info("style %s: %d domain-A and %d domain-B images of %d^2", config["view"], len(images_a),
             len(images_b), config["size"])
    return images_a, images_b


def _fit_cyclegan(config, out_dir, images_a, images_b, run_eagerly):
    import keras
    import tensorflow as tf

    from xprospect_tf.evaluation.style_figures import StyleSampleCallback
    from xprospect_tf.models.cyclegan import compile_cyclegan, make_cyclegan
    from xprospect_tf.training.callbacks import AtomicCheckpoint, standard_callbacks

    keras.utils.set_random_seed(config["seed"])
    seed, batch = config["seed"], config["batch_size"]
    sets = [tf.data.Dataset.from_tensor_slices(x[..., None]).shuffle(len(x), seed=seed + i).repeat()
            for i, x in enumerate((images_a, images_b))]
    dataset = tf.data.Dataset.zip(tuple(sets)).batch(batch).prefetch(tf.data.AUTOTUNE)
    steps = math.ceil(max(len(images_a), len(images_b)) / batch)
    gan = make_cyclegan(config["size"], filters=config["filters"], disc_filters=config["disc_filters"],
                        n_residual=config["n_residual"], cycle_lambda=config["cycle_lambda"],
                        upsampling=config.get("upsampling", "transpose"),
                        name=f"cyclegan_{config['view']}")
    compile_cyclegan(gan, learning_rate=config["learning_rate"], ema_every=config["ema_every"],
                     run_eagerly=run_eagerly)
    n = min(N_SAMPLES, len(images_a), len(images_b))
    callbacks = [AtomicCheckpoint(os.path.join(out_dir, "last.keras")),
                 StyleSampleCallback(os.path.join(out_dir, SAMPLES), images_a[:n], images_b[:n]),
                 *standard_callbacks(out_dir, tensorboard=False, checkpoint=False)]
    gan.fit(dataset, epochs=config["epochs"], steps_per_epoch=steps, callbacks=callbacks,
            shuffle=False, verbose=1 if sys.stdout.isatty() else 2)
    return gan


def _read_style_config(out_dir):
    path = os.path.join(out_dir, CONFIG)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except ValueError as e:
        raise InputError(f"{path}: corrupt ({e}); delete the style run folder and train again") from None


def _last_history(out_dir):
    import csv

    path = os.path.join(out_dir, "history.csv")
    if not os.path.exists(path):
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {k: float(v) for k, v in rows[-1].items() if v not in ("", "NA")} if rows else {}


# ----------------------------------------------------------------------------- apply


def load_style_generator(run_dir, view, size):
    """Load ``run_dir/generator.keras`` after checking it was trained for ``view`` at ``size``."""
    from xprospect_tf.export import load_keras_model

    config = _read_style_config(run_dir)
    path = os.path.join(run_dir, GENERATOR)
    if config is None or not os.path.exists(path):
        raise InputError(f"{run_dir}: no trained style model ({GENERATOR}, {CONFIG}); "
                         f"run xprospect style train --view {view} --out {run_dir}")
    if config.get("view") != view or int(config.get("size", -1)) != int(size):
        raise ConfigError(
            f"{run_dir}: a {config.get('view')} style model for {config.get('size')} px images, "
            f"but the {view} view of this dataset ({size} px) was asked for; pass the right run folder")
    return load_keras_model(path, compile=False)


def apply_style_models(data_dir, frontal_dir, lateral_dir, batch_size=8):
    """Stylize every case's mean-CT projections; write ``styled_ap`` / ``styled_lateral``.

    The original fields are kept; afterwards ``load_prepared(data_dir,
    inputs="styled")`` serves the stylized inputs (train and test).

    Args:
        data_dir: prepared dataset folder (changed in place).
        frontal_dir: style run folder of the frontal view.
        lateral_dir: style run folder of the lateral view.
        batch_size: images per generator call.

    Returns:
        the number of cases stylized.

    Example:
        >>> apply_style_models("data/ph64", "runs/style-frontal", "runs/style-lateral")  # doctest: +SKIP
        24
    """
    from xprospect_tf.data.domains import STYLED_FIELDS, domain_a_images
    from xprospect_tf.data.prepared import add_case_fields, read_manifest

    size = int(read_manifest(data_dir)["size"])
    styled = {}
    for view, run_dir in (("frontal", frontal_dir), ("lateral", lateral_dir)):
        generator = load_style_generator(run_dir, view, size)
        ids, images = domain_a_images(data_dir, view, "all")
        out = generator.predict(images[..., None], batch_size=batch_size, verbose=0)[..., 0]
        styled[STYLED_FIELDS[view]] = dict(zip(ids, out))
    for case_id in ids:
        add_case_fields(data_dir, case_id, **{field: per_case[case_id] for field, per_case in styled.items()})
    return len(ids)


# ----------------------------------------------------------------------------- evaluate


def evaluate_style(data_dir, out_dir, domain_b="default", domain_b_count=None, split="all"):
    """The evidence that styling works: distances to domain B before/after, SSIM, Figure 1.

    For each view, :func:`xprospect_tf.evaluation.style_metrics.style_report`
    of (mean-CT projections, stylized projections, domain B); writes
    ``out_dir/style_metrics.json`` and ``out_dir/style_figure.png`` (per view:
    a domain-B image, the first case's mean-CT projection, its stylized version).

    Args:
        data_dir: prepared dataset with styled fields (``xprospect style apply``).
        out_dir: output folder.
        domain_b: as in :func:`train_style_model` (``"default"``:
            ``phantom-drr:N_train``, the training set of domain B).
        domain_b_count: use at most this many domain-B images.
        split: cases compared: ``"train"``, ``"test"`` or ``"all"``.

    Returns:
        the JSON dict: ``{"data", "domain_b", "split", "views": {view: report}}``,
        each report with ``histogram_source``, ``histogram_stylized``,
        ``spectrum_source``, ``spectrum_stylized``, ``ssim``, ``n_images``, ``n_domain_b``.

    Example:
        >>> evaluate_style("data/ph64", "runs/style-eval")["views"]["frontal"]["ssim"]  # doctest: +SKIP
    """
    from xprospect_tf.data.domains import STYLED_FIELDS, domain_a_images, domain_b_images
    from xprospect_tf.data.prepared import read_manifest
    from xprospect_tf.evaluation.renderings import save_figure
    from xprospect_tf.evaluation.style_figures import style_figure
    from xprospect_tf.evaluation.style_metrics import style_report

    manifest = read_manifest(data_dir)
    spec = domain_b_spec(domain_b, manifest)
    views, panels = {}, {}
    for view in ("frontal", "lateral"):
        _, sources = domain_a_images(data_dir, view, split)
        _, stylized = domain_a_images(data_dir, view, split, field=STYLED_FIELDS[view])
        targets = domain_b_images(spec, view, int(manifest["size"]), domain_b_count,
                                  fov_mm=float(manifest["fov_mm"]))
        views[view] = {**style_report(sources, stylized, targets),
                       "n_images": len(sources), "n_domain_b": len(targets)}
        panels[view] = (targets[0], sources[0], stylized[0])
    report = {"data": os.path.abspath(data_dir), "domain_b": spec, "split": split, "views": views}
    write_json(os.path.join(out_dir, "style_metrics.json"), report)
    save_figure(style_figure(panels), os.path.join(out_dir, "style_figure.png"))
    return report


logging.getLogger("absl").setLevel(logging.ERROR)


def ensure_styled(data_dir, style_cfg, root, run_eagerly=False):
    """Train (or reuse) both views' CycleGANs under ``root`` and stylize ``data_dir``.

    What an ``inputs: styled`` row (Table 1's ``64-Dense-Styled-Inputs``) needs
    before it trains: ``root/style-frontal`` and ``root/style-lateral`` hold the
    style runs (reused when their settings match, replaced and retrained when
    they differ), and every case of the
    dataset gets ``styled_ap`` / ``styled_lateral`` fields.

    Args:
        data_dir: prepared dataset (changed in place: fields added).
        style_cfg: :class:`xprospect_tf.config.StyleConfig`.
        root: folder for the two style runs.
        run_eagerly: compile the CycleGANs with ``run_eagerly`` (tests).

    Returns:
        dict view -> the :func:`train_style_model` result.
    """
    runs = {}
    for view in ("frontal", "lateral"):
        runs[view] = train_style_model(
            data_dir, view, os.path.join(root, f"style-{view}"), domain_b=style_cfg.domain_b,
            epochs=style_cfg.epochs, batch_size=style_cfg.batch_size, filters=style_cfg.filters,
            n_residual=style_cfg.n_residual, upsampling=style_cfg.upsampling,
            learning_rate=style_cfg.learning_rate,
            cycle_lambda=style_cfg.cycle_lambda, ema_every=style_cfg.ema_every, run_eagerly=run_eagerly,
            replace=True,
        )
    apply_style_models(data_dir, runs["frontal"]["run_dir"], runs["lateral"]["run_dir"])
    return runs
