"""``xprospect export RUN_DIR --out DIR``: a TF SavedModel with a serving signature + the .keras file."""

import os

from pipelines.common import log, read_run_config


def register(sub):
    p = sub.add_parser("export", help="export a trained run as a SavedModel (+ .keras)")
    p.add_argument("run_dir", help="run folder written by xprospect train / table1")
    p.add_argument("--out", required=True, help="export folder")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out even if it holds files that are not an export (they are deleted)")
    p.set_defaults(func=main)


def main(args):
    from xprospect_tf.errors import InputError
    from xprospect_tf.export import export_model, load_keras_model

    cfg = read_run_config(args.run_dir)
    model_path = os.path.join(args.run_dir, "model.keras")
    if not os.path.exists(model_path):
        raise InputError(f"{args.run_dir}: no model.keras; the run did not finish: run xprospect train "
                         f"with the same --out to complete it")
    paths = export_model(load_keras_model(model_path), args.out, config=cfg.to_dict(), overwrite=args.overwrite)
    log.info("exported %s (%s) to %s", cfg.row, ", ".join(sorted(paths)), args.out)
    return 0
