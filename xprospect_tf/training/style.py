"""The style-transfer workflow of XprospeCT (Paulson et al., 2024, section 3.1).

One CycleGAN per view turns mean-CT projections (domain A) into images that
look like radiographs (domain B); the stylized projections then train the
``64-Dense-Styled-Inputs`` row. Every hyper-parameter comes from one
:class:`xprospect_tf.config.StyleConfig`.

Style run folder layout (one per view)::

    config.json          the hyper-parameters (a second call with the same ones reuses the run)
    generator.keras      g_ab alone (mean-CT -> X-ray style) with its moving-average
                         weights (the paper's EMA), used by apply_style_models
    last.keras           the whole CycleGAN after the last finished epoch: the raw
                         training weights, the averages in its optimizers' state
    backup/              AtomicBackupAndRestore state, like last.keras (an interrupted
                         run resumes exactly); deleted once generator.keras is written
    history.csv          per-epoch losses
    samples/epoch_NNN.png  mean-CT | stylized | domain-B grid after each epoch

:func:`apply_style_models` adds ``styled_ap`` / ``styled_lateral`` to every
case of a prepared dataset (``load_prepared(..., inputs="styled")`` serves
them); :func:`evaluate_style` writes ``style_metrics.json`` and
``style_figure.png``.
"""

import csv
import dataclasses
import json
import logging
import os
import shutil
import sys
import time

import keras
import numpy as np

from xprospect_tf.config import StyleConfig, validated
from xprospect_tf.data.domains import (
    STYLED_FIELDS,
    VIEWS,
    check_view,
    domain_a_images,
    domain_b_images,
    unpaired_dataset,
    unpaired_steps,
)
from xprospect_tf.errors import ConfigError, InputError
from xprospect_tf.files import atomic_path, write_json
from xprospect_tf.run_folder import RunFolder
from xprospect_tf.training.callbacks import BACKUP, AtomicBackupAndRestore, AtomicCheckpoint, standard_callbacks

log = logging.getLogger(__name__)

GENERATOR = "generator.keras"
CONFIG = "config.json"
SAMPLES = "samples"
N_SAMPLES = 3  # images in each samples/epoch_NNN.png grid


# ----------------------------------------------------------------------------- train


def style_run_config(data_dir, view, style):
    """The resolved hyper-parameters of one style run (what ``config.json`` holds).

    Args:
        data_dir: prepared dataset folder (domain A: its train split).
        view: ``"frontal"`` or ``"lateral"``.
        style: a :class:`~xprospect_tf.config.StyleConfig` (validated here).

    Returns:
        dict: ``view``, ``data`` (absolute path), ``size`` and ``fov_mm`` (from the
        dataset), ``domain_b`` (resolved by :func:`domain_b_spec`),
        ``disc_filters = 2 * filters`` and the style settings.
    """
    check_view(view)
    style = validated(style)
    size, fov_mm, n_train = _dataset_facts(data_dir)
    return {
        "view": view, "data": os.path.abspath(data_dir), "size": size, "fov_mm": fov_mm,
        "domain_b": domain_b_spec(style.domain_b, n_train), "count": style.count,
        "epochs": style.epochs, "batch_size": style.batch_size, "filters": style.filters,
        "disc_filters": 2 * style.filters, "n_residual": style.n_residual,
        "upsampling": style.upsampling, "residual": style.residual, "learning_rate": style.learning_rate,
        "cycle_lambda": style.cycle_lambda, "ema_momentum": style.ema_momentum,
        "ema_every": style.ema_every, "seed": style.seed,
    }


def domain_b_spec(domain_b, n_train):
    """``"default"`` -> ``"phantom-drr:N"`` with N = the dataset's train cases; else the spec.

    Our choice for the embedded default (the paper used CheXpert): one DRR of
    an unseen phantom per train case. ``style.count`` (default 2,390, the
    paper's number of CheXpert pairs) still caps it, but only a dataset of
    more train cases reaches the cap. 2,390 phantom DRRs per view would take
    about 7 minutes at 32 px and 40 at 128 px on 2 CPU cores (0.09 s and 0.5 s
    each, measured), for a synthetic domain that gains little from its size.

    Example:
        >>> domain_b_spec("default", 4), domain_b_spec("phantom-drr:9", 4)
        ('phantom-drr:4', 'phantom-drr:9')
    """
    if domain_b in (None, "default"):
        return f"phantom-drr:{n_train}"
    return os.fspath(domain_b)


def train_style_model(data_dir, view, out_dir, style, run_eagerly=False, replace=False):
    """Train (or reuse) one view's style CycleGAN; write ``out_dir/generator.keras``.

    Section 3.1 of XprospeCT: domain A = the view's mean-CT projections of the
    train split, domain B = ``style.domain_b`` radiographs, unpaired
    (:func:`xprospect_tf.data.domains.unpaired_dataset`). Nadam, EMA weight
    resets and the cycle weight as in
    :func:`xprospect_tf.models.cyclegan.compile_cyclegan`; ``generator.keras``
    holds the generator's moving-average weights (:meth:`CycleGAN.fit
    <xprospect_tf.models.cyclegan.CycleGAN.fit>` ends with them). One epoch is
    ``ceil(max(N_A, N_B) / batch_size)`` steps. If ``out_dir`` already holds a
    generator trained with the same hyper-parameters it is reused; an
    interrupted run with the same ones resumes (BackupAndRestore).

    Args:
        data_dir: prepared dataset folder.
        view: ``"frontal"`` or ``"lateral"``.
        out_dir: style run folder.
        style: a :class:`~xprospect_tf.config.StyleConfig`.
        run_eagerly: compile with ``run_eagerly`` (tests).
        replace: when ``out_dir`` holds a run with other settings, delete it and
            retrain (for folders a workflow manages) instead of raising ConfigError.

    Returns:
        dict: ``run_dir``, ``generator`` (path), ``config``, ``reused`` (bool),
        ``train_time_s`` (``None`` when reused), ``history`` (last epoch's losses).

    Raises:
        ConfigError: ``out_dir`` holds a style run with other hyper-parameters.
    """
    config = style_run_config(data_dir, view, style)
    folder = RunFolder(out_dir, kind="style run")
    generator = folder.file(GENERATOR)
    same = folder.claim(config, replace=replace, write=False, compare=_with_defaults)
    result = {"run_dir": out_dir, "generator": generator, "config": config}
    if same and os.path.exists(generator):
        log.info("%s: reusing the trained %s style model", out_dir, view)
        return {**result, "reused": True, "train_time_s": None, "history": _last_history(out_dir)}
    images_a, images_b = _domain_images(config, data_dir)  # input errors before any file is written
    folder.claim(config)
    t0 = time.perf_counter()
    gan = _fit_cyclegan(config, out_dir, images_a, images_b, run_eagerly)
    with atomic_path(generator) as tmp:
        gan.g_ab.save(tmp)
    shutil.rmtree(folder.file(BACKUP), ignore_errors=True)  # kept until the generator is written
    seconds = round(time.perf_counter() - t0, 2)
    log.info("%s: trained the %s style model in %.1f s", out_dir, view, seconds)
    return {**result, "reused": False, "train_time_s": seconds, "history": _last_history(out_dir)}


def _domain_images(config, data_dir):
    _, images_a = domain_a_images(data_dir, config["view"], "train")
    images_b = domain_b_images(config["domain_b"], config["view"], config["size"],
                               config["count"], config["seed"], config["fov_mm"])
    log.info("style %s: %d domain-A and %d domain-B images of %d^2", config["view"], len(images_a),
             len(images_b), config["size"])
    return images_a, images_b


def _fit_cyclegan(config, out_dir, images_a, images_b, run_eagerly):
    """Fit one view's CycleGAN; an interrupted run resumes where an uninterrupted one would be.

    The backup is restored before the dataset is built, so that the unpaired
    stream (a function of the seed and the epoch) starts at the restored epoch.
    It is kept when ``fit`` ends (the caller deletes it once ``generator.keras``
    is written), so a run killed in between trains no epoch again.
    """
    from xprospect_tf.models.cyclegan import compile_cyclegan, make_cyclegan

    keras.utils.set_random_seed(config["seed"])  # the initial weights
    gan = make_cyclegan(config["size"], filters=config["filters"], disc_filters=config["disc_filters"],
                        n_residual=config["n_residual"], cycle_lambda=config["cycle_lambda"],
                        upsampling=config["upsampling"], residual=config["residual"],
                        name=f"cyclegan_{config['view']}")
    compile_cyclegan(gan, learning_rate=config["learning_rate"], ema_momentum=config["ema_momentum"],
                     ema_every=config["ema_every"], run_eagerly=run_eagerly)
    n = min(N_SAMPLES, len(images_a), len(images_b))
    standard = standard_callbacks(out_dir, tensorboard=False, checkpoint=False, keep_backup=True)
    backup = next(c for c in standard if isinstance(c, AtomicBackupAndRestore))
    callbacks = [backup, AtomicCheckpoint(os.path.join(out_dir, "last.keras")),
                 StyleSampleCallback(os.path.join(out_dir, SAMPLES), images_a[:n], images_b[:n]),
                 *(c for c in standard if c is not backup)]
    initial_epoch = backup.restore(gan)
    dataset = unpaired_dataset(images_a, images_b, config["batch_size"], config["seed"], epoch=initial_epoch)
    gan.fit(dataset, epochs=config["epochs"], initial_epoch=initial_epoch,
            steps_per_epoch=unpaired_steps(len(images_a), len(images_b), config["batch_size"]),
            callbacks=callbacks, shuffle=False, verbose=1 if sys.stdout.isatty() else 2)
    return gan


class StyleSampleCallback(keras.callbacks.Callback):
    """Write ``samples/epoch_NNN.png`` (mean-CT | stylized | domain B) after every epoch.

    A CycleGAN's losses say little about image quality; this grid shows how the
    stylization of fixed domain-A images evolves during training. The images
    are stylized with the moving-average weights
    (:meth:`~xprospect_tf.models.cyclegan.CycleGAN.moving_average_weights`), as
    ``generator.keras`` would stylize them if training stopped there; training
    goes on with the raw weights.

    Args:
        out_dir: folder of the PNGs (created).
        sources: a few fixed domain-A images ``(N, H, W)``.
        targets: as many domain-B images ``(N, H, W)``.
    """

    def __init__(self, out_dir, sources, targets):
        super().__init__()
        self.out_dir = os.fspath(out_dir)
        self.sources = np.asarray(sources, dtype=np.float32)[..., None]
        self.targets = np.asarray(targets, dtype=np.float32)

    def on_epoch_end(self, epoch, logs=None):
        from xprospect_tf.evaluation.style_figures import save_sample_grid

        with self.model.moving_average_weights():
            stylized = np.asarray(self.model.g_ab(self.sources, training=False))[..., 0]
        path = os.path.join(self.out_dir, f"epoch_{epoch + 1:03d}.png")
        save_sample_grid(path, self.sources[..., 0], stylized, self.targets, title=f"epoch {epoch + 1}")


def read_style_config(run_dir):
    """The ``config.json`` of a style run folder, or ``None`` if there is none.

    Settings added to :class:`~xprospect_tf.config.StyleConfig` after the run
    was trained read as their defaults (the run used them).
    """
    config = RunFolder(run_dir, kind="style run").read_config()
    return None if config is None else _with_defaults(config)


def _with_defaults(config):
    config = dict(config)
    for field in dataclasses.fields(StyleConfig):
        if field.name not in config and field.name != "domain_b":
            config[field.name] = field.default
    return json.loads(json.dumps(config))


def _last_history(out_dir):
    path = os.path.join(out_dir, "history.csv")
    if not os.path.exists(path):
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {k: float(v) for k, v in rows[-1].items() if v not in ("", "NA")} if rows else {}


def _dataset_facts(data_dir):
    """``(size, fov_mm, n_train)`` of a prepared dataset: the one place this module reads its manifest."""
    from xprospect_tf.data.prepared import Manifest

    manifest = Manifest.read(data_dir)
    return manifest.size, manifest.fov_mm, len(manifest.ids("train"))


# ----------------------------------------------------------------------------- apply


def load_style_generator(run_dir, view, size):
    """Load ``run_dir/generator.keras`` after checking it was trained for ``view`` at ``size``."""
    from xprospect_tf.export import load_keras_model

    config = read_style_config(run_dir)
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
    """
    from xprospect_tf.data.prepared import add_case_fields

    size, _, _ = _dataset_facts(data_dir)
    styled = {}
    for view, run_dir in (("frontal", frontal_dir), ("lateral", lateral_dir)):
        generator = load_style_generator(run_dir, view, size)
        ids, images = domain_a_images(data_dir, view, "all")
        out = generator.predict(images[..., None], batch_size=batch_size, verbose=0)[..., 0]
        styled[STYLED_FIELDS[view]] = dict(zip(ids, out))
    for case_id in ids:
        add_case_fields(data_dir, case_id, **{field: per_case[case_id] for field, per_case in styled.items()})
    return len(ids)


def ensure_styled(data_dir, style, root, run_eagerly=False):
    """Train (or reuse) both views' CycleGANs under ``root`` and stylize ``data_dir``.

    What an ``inputs: styled`` row (Table 1's ``64-Dense-Styled-Inputs``) needs
    before it trains: ``root/style-frontal`` and ``root/style-lateral`` hold the
    style runs (reused when their settings match, replaced and retrained when
    they differ), and every case of the dataset gets ``styled_ap`` /
    ``styled_lateral`` fields.

    Args:
        data_dir: prepared dataset (changed in place: fields added).
        style: a :class:`~xprospect_tf.config.StyleConfig`.
        root: folder for the two style runs.
        run_eagerly: compile the CycleGANs with ``run_eagerly`` (tests).

    Returns:
        dict view -> the :func:`train_style_model` result.
    """
    runs = {view: train_style_model(data_dir, view, os.path.join(root, f"style-{view}"), style,
                                    run_eagerly=run_eagerly, replace=True)
            for view in VIEWS}
    apply_style_models(data_dir, runs["frontal"]["run_dir"], runs["lateral"]["run_dir"])
    return runs


# ----------------------------------------------------------------------------- evaluate


def evaluate_style(data_dir, out_dir, style, split="all"):
    """The evidence that styling works: distances to domain B before/after, SSIM, Figure 1.

    For each view, :func:`xprospect_tf.evaluation.style_metrics.style_report`
    of (mean-CT projections, stylized projections, domain B); writes
    ``out_dir/style_metrics.json`` and ``out_dir/style_figure.png`` (per view:
    a domain-B image, the first case's mean-CT projection, its stylized version).

    Args:
        data_dir: prepared dataset with styled fields (:func:`apply_style_models`).
        out_dir: output folder.
        style: a :class:`~xprospect_tf.config.StyleConfig`; its ``domain_b``
            (``"default"``: ``phantom-drr:N_train``, the training set of domain B),
            ``count`` and ``seed`` choose the domain-B images.
        split: cases compared: ``"train"``, ``"val"``, ``"test"`` or ``"all"``.

    Returns:
        the JSON dict: ``{"data", "domain_b", "split", "views": {view: report}}``,
        each report with ``histogram_source``, ``histogram_stylized``,
        ``spectrum_source``, ``spectrum_stylized``, ``ssim``, ``n_images``, ``n_domain_b``.
    """
    from xprospect_tf.evaluation.renderings import save_figure
    from xprospect_tf.evaluation.style_figures import style_figure
    from xprospect_tf.evaluation.style_metrics import style_report

    style = validated(style)
    size, fov_mm, n_train = _dataset_facts(data_dir)
    spec = domain_b_spec(style.domain_b, n_train)
    views, panels = {}, {}
    for view in VIEWS:
        _, sources = domain_a_images(data_dir, view, split)
        _, stylized = domain_a_images(data_dir, view, split, field=STYLED_FIELDS[view])
        targets = domain_b_images(spec, view, size, style.count, style.seed, fov_mm=fov_mm)
        views[view] = {**style_report(sources, stylized, targets),
                       "n_images": len(sources), "n_domain_b": len(targets)}
        panels[view] = (targets[0], sources[0], stylized[0])
    report = {"data": os.path.abspath(data_dir), "domain_b": spec, "split": split, "views": views}
    write_json(os.path.join(out_dir, "style_metrics.json"), report)
    save_figure(style_figure(panels), os.path.join(out_dir, "style_figure.png"))
    return report
