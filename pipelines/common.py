"""Wiring shared by the workflows: config resolution, datasets, run folders."""

import logging
import os
import re

from xprospect_tf.config import DIFFUSION, RunConfig, load_experiments
from xprospect_tf.errors import InputError
from xprospect_tf.run_folder import RunFolder

log = logging.getLogger("xprospect")


def add_config_args(parser):
    """The options every config-driven command shares."""
    parser.add_argument("--preset", default="smoke", help="data/training preset (default: smoke)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override any experiment field, e.g. --set size=128 --set train.batch_size=2 (a name two sections share needs its section)",
    )
    parser.add_argument("--experiments", default=None, help="experiments.yaml to read")
    parser.add_argument(
        "--data", default=None, metavar="DIR",
        help="prepared dataset to use (default: data.source; phantoms are prepared under OUT/data)",
    )
    parser.add_argument("--eager", action="store_true", help="run_eagerly (debugging, tiny tests)")


def slug(name):
    """Folder name of a Table 1 row: '512-Dense MAE' -> '512-dense-mae'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def resolve(args, row):
    exp = load_experiments(args.experiments)
    overrides = list(args.overrides)
    if getattr(args, "strategy", None):
        overrides.append(f"strategy={args.strategy}")
    if getattr(args, "eager", False):
        overrides.append("run_eagerly=true")
    return exp.resolve(row, args.preset, overrides)


def ensure_dataset(data_cfg, data_dir=None, default_dir=None):
    """Return the prepared dataset folder for ``data_cfg``, preparing phantoms if needed.

    With ``source: phantom`` the phantoms are prepared (resumably: existing
    cases are kept) into ``data_dir or default_dir``; a dataset there split with
    another ``val_fraction`` (or by a version without validation splits) is
    divided into train and val again, its test cases unchanged. Otherwise
    ``source`` (or ``data_dir``) must be a prepared dataset whose size, window,
    field of view and ``val_fraction`` match (a ConfigError says how to fix one
    that does not; it is never split again silently).
    """
    from xprospect_tf.data.prepared import MANIFEST, Manifest, phantom_sources, write_prepared

    if data_dir is None and data_cfg.source != "phantom":
        data_dir = data_cfg.source
    if data_dir is not None and os.path.exists(os.path.join(data_dir, MANIFEST)):
        Manifest.read(data_dir).check_matches(size=data_cfg.size, window=data_cfg.window, fov_mm=data_cfg.fov_mm,
                                              val_fraction=data_cfg.val_fraction)
        return data_dir
    if data_cfg.source != "phantom":
        raise InputError(
            f"data.source = {data_cfg.source!r} is not a prepared dataset (no manifest.json); "
            f"prepare it first: xprospect data prepare YOUR_CT_FILES --out {data_cfg.source} "
            f"--size {data_cfg.size}"
        )
    out = data_dir or default_dir
    from xprospect_tf.outputs import check_output_folder

    # phantoms go into a new or empty folder, or resume a dataset there; never into a user's folder
    check_output_folder(out, "prepared dataset", is_own=lambda f: os.path.exists(os.path.join(f, MANIFEST)))
    write_prepared(
        phantom_sources(data_cfg.count, data_cfg.phantom_seed), out, size=data_cfg.size,
        window=data_cfg.window, fov_mm=data_cfg.fov_mm, test_fraction=data_cfg.test_fraction,
        test_count=data_cfg.test_count, split_seed=data_cfg.split_seed, val_fraction=data_cfg.val_fraction,
    )
    return out


def comparable(config):
    """A run's config as plain JSON data, without the settings the row does not
    use (``style`` for rows that are not trained on styled inputs, ``diffusion`` for
    rows that are not diffusion rows; ``classify``, which
    no training reads: the classification cohort's finding settings are checked
    on its prepared datasets). A run of a
    version before validation splits reads as ``data.val_fraction = 0`` (it
    trained on every non-test case): reused under that setting, retrained under another.
    Any other setting a run's version did not have reads as its default: a new
    setting's default is what the code did before it existed (``model.precision``
    float32, ``style.residual`` false, ...)."""
    import dataclasses
    import json

    config = json.loads(json.dumps(config.to_dict() if isinstance(config, RunConfig) else config))
    if config.get("inputs") != "styled":
        config.pop("style", None)
    if (config.get("model") or {}).get("architecture") != DIFFUSION:
        config.pop("diffusion", None)
    config.pop("classify", None)
    if isinstance(config.get("data"), dict):
        config["data"].setdefault("val_fraction", 0.0)
    for field in dataclasses.fields(RunConfig):
        section = config.get(field.name)
        if isinstance(section, dict) and dataclasses.is_dataclass(field.type):
            for setting in dataclasses.fields(field.type):
                section.setdefault(setting.name, json.loads(json.dumps(setting.default)))
    return config


def claim_run_dir(run_dir, cfg: RunConfig, replace=False, write=True):
    """Make ``run_dir`` ready for ``cfg`` (see :meth:`RunFolder.claim`): a run
    folder with the same settings is kept (an interrupted fit resumes from its
    backup); one with other settings is deleted when ``replace`` (folders a
    workflow manages), else refused. With ``write=False`` it only checks."""
    return RunFolder(run_dir).claim(cfg.to_dict(), replace=replace, write=write, compare=comparable)


def claim_run_folder(folder, kind="run", is_own=None):
    """Take ``folder`` for a training command (see :func:`xprospect_tf.outputs.claim_folder`):
    locked while the command runs; a folder holding other files is refused; a
    folder this command created is removed again when it fails before any
    resumable work (prepared cases, a training backup, style runs) exists."""
    from xprospect_tf.outputs import claim_folder

    return claim_folder(folder, kind, is_own or (lambda f: RunFolder(f).exists()), keep_on_error=_resumable)


def _resumable(folder):
    cases = os.path.join(folder, "data", "cases")
    return (os.path.isdir(cases) and bool(os.listdir(cases))) or any(
        os.path.exists(os.path.join(folder, name)) for name in ("backup", "last.keras", "style-frontal"))


def read_run_config(run_dir):
    """The :class:`RunConfig` of a run folder; InputError when it has none or it is unreadable."""
    folder = RunFolder(run_dir)
    return RunConfig.from_dict(folder.require_config("train with xprospect train --out"),
                               where=folder.config_path)
