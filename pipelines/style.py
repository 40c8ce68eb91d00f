"""``xprospect style train|apply|evaluate``: the style-transfer workflow (XprospeCT, section 3.1).

The workflow itself (run folder layout, reuse, training, stylizing, metrics) is
:mod:`xprospect_tf.training.style`. This module maps the command line onto it:
every option of ``style train`` (and the domain-B options of ``style
evaluate``) is a :class:`~xprospect_tf.config.StyleConfig` setting, with that
field's default, description and checks (``--epochs 0`` fails like
``--set style.epochs=0``).
"""

import dataclasses
import functools
import os

from pipelines.common import claim_run_folder, log
from xprospect_tf.config import StyleConfig, parse_value, with_settings
from xprospect_tf.data.prepared.manifest import SPLITS

FLAGS = {"n_residual": "--residual-blocks"}  # every other setting: --its-name-with-dashes
DOMAIN_B = ("domain_b", "count")
TRAIN = tuple(f.name for f in dataclasses.fields(StyleConfig))


def register(sub):
    p = sub.add_parser("style", help="style transfer: train CycleGANs, stylize a dataset, evaluate")
    ssub = p.add_subparsers(dest="style_command", metavar="STEP", required=True)

    t = ssub.add_parser("train", help="train one view's CycleGAN (mean-CT projections -> X-ray style)")
    t.add_argument("--view", required=True, choices=("frontal", "lateral"))
    t.add_argument("--data", required=True, metavar="DIR",
                   help="prepared dataset (domain A: its train split)")
    t.add_argument("--out", required=True, metavar="RUN_DIR", help="style run folder")
    add_style_options(t, TRAIN)
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
    e.add_argument("--split", choices=SPLITS, default="all")
    add_style_options(e, DOMAIN_B)
    e.set_defaults(func=_evaluate_main)


def flag(name):
    """The command-line option of the StyleConfig setting ``name``."""
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def add_style_options(parser, names):
    """One option per StyleConfig setting in ``names``, its default and help read from the field."""
    defaults = StyleConfig()
    for field in dataclasses.fields(StyleConfig):
        if field.name in names:
            default = getattr(defaults, field.name)
            parser.add_argument(
                flag(field.name), dest=field.name, default=default, metavar=field.name.upper(),
                type=functools.partial(parse_value, StyleConfig, field.name),
                help=f"{field.metadata['doc']} (default: {'null' if default is None else default})")


def style_from_args(args, names):
    """The StyleConfig the options ``names`` of ``args`` give, validated (messages name the option)."""
    return with_settings(StyleConfig(), {n: getattr(args, n) for n in names}, where=flag)


def _holds(name, folder):
    return os.path.exists(os.path.join(folder, name))


def _train_main(args):
    from xprospect_tf.training.style import train_style_model

    style = style_from_args(args, TRAIN)
    with claim_run_folder(args.out, "style run"):
        result = train_style_model(args.data, args.view, args.out, style, run_eagerly=args.eager)
    log.info("style %s: %s %s", args.view, "reused" if result["reused"] else "trained", result["generator"])
    return 0


def _apply_main(args):
    from xprospect_tf.training.style import apply_style_models

    n = apply_style_models(args.data, args.frontal_model, args.lateral_model)
    log.info("%s: stylized %d case(s)", args.data, n)
    return 0


def _evaluate_main(args):
    from xprospect_tf.training.style import evaluate_style

    style = style_from_args(args, DOMAIN_B)
    is_own = functools.partial(_holds, "style_metrics.json")
    with claim_run_folder(args.out, "style evaluation", is_own=is_own):
        report = evaluate_style(args.data, args.out, style, args.split)
    for view, r in report["views"].items():
        log.info("%s: histogram distance %.4f -> %.4f, spectrum distance %.3f -> %.3f, SSIM %.3f",
                 view, r["histogram_source"], r["histogram_stylized"], r["spectrum_source"],
                 r["spectrum_stylized"], r["ssim"])
    return 0
