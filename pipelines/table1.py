"""``xprospect table1``: train and evaluate every row on the same test cases; write Table 1.

Outputs in ``--out DIR``: ``table1.md``, ``table1.csv``, ``results.json`` (all rows),
``<row-slug>/`` per row (the layout of ``xprospect train --out``), the example
axial slices (``<row-slug>/example_axial.png``, ``axial_examples.png``) and the 3D
renderings of the paper's Figure 4 rows beside the ground truth (``figure4_renderings.png``).
``learning_curves.png`` shows every trained row's training and validation loss per epoch.
Rows whose folder already holds results for the same configuration are reused.
"""

import os
import time

import numpy as np

from pipelines.common import add_config_args, claim_run_folder, comparable, ensure_dataset, log, resolve, slug
from xprospect_tf.config import load_experiments
from xprospect_tf.errors import ConfigError
from xprospect_tf.files import write_json, write_text


def register(sub):
    p = sub.add_parser("table1", help="regenerate the paper's Table 1 (train + evaluate every row)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--rows", nargs="+", default=None, metavar="ROW",
                   help="rows to run (default: all rows of experiments.yaml)")
    p.add_argument("--retrain", action="store_true", help="ignore results already in --out")
    add_config_args(p)
    p.set_defaults(func=main)


def main(args):
    exp = load_experiments(args.experiments)
    rows = args.rows or exp.row_names
    unknown = [r for r in rows if r not in exp.rows]
    if unknown:
        raise ConfigError(f"--rows: unknown row(s) {unknown}; rows are: {', '.join(exp.row_names)}")
    configs = [resolve(args, r) for r in rows]
    data_cfgs = {c.data for c in configs}
    if len(data_cfgs) > 1:
        raise ConfigError("the selected rows use different data settings; Table 1 needs one test set")
    t0 = time.perf_counter()
    with claim_run_folder(args.out, "Table 1 folder", is_own=_is_table_folder):
        data_dir = ensure_dataset(configs[0].data, args.data, os.path.join(args.out, "data"))
        log.info("dataset ready in %s (%.1f s)", data_dir, time.perf_counter() - t0)
        results = [_run_or_reuse(cfg, args, data_dir) for cfg in configs]
        write_table(results, args.out, data_dir)
    log.info("Table 1 written to %s (%.1f s in all)", os.path.join(args.out, "table1.md"),
             time.perf_counter() - t0)
    return 0


def _is_table_folder(folder):
    """A folder ``xprospect table1`` wrote: its table, its dataset or one of its row folders."""
    return any(os.path.exists(os.path.join(folder, name)) for name in ("table1.md", "results.json", "data")) or any(
        os.path.exists(os.path.join(folder, entry, "config.json")) for entry in os.listdir(folder))


def _run_or_reuse(cfg, args, data_dir):
    from pipelines.train import ensure_regressor, load_results, run_row
    from xprospect_tf.data.prepared import read_manifest

    run_dir = os.path.join(args.out, slug(cfg.row))
    if not args.retrain and os.path.exists(os.path.join(run_dir, "results.json")):
        old = load_results(run_dir)
        if comparable(old.get("config", {})) == comparable(cfg.to_dict()):
            log.info("%s: reusing %s", cfg.row, run_dir)
            return old
    log.info("%s: training in %s", cfg.row, run_dir)
    style_time = None
    if cfg.inputs == "styled":  # the style models are shared by all styled rows of the table
        from xprospect_tf.training.style import ensure_styled

        runs = ensure_styled(data_dir, cfg.style, args.out, run_eagerly=cfg.train.run_eagerly)
        style_time = sum(r.get("train_time_s") or 0.0 for r in runs.values())
    test_ids = read_manifest(data_dir).ids("test")
    return run_row(cfg, run_dir, data_dir, example_case=test_ids[0], style_time_s=style_time,
                   replace=True, retrain=args.retrain, regressor_dir=ensure_regressor(args, cfg, args.out, data_dir))


def write_table(results, out, data_dir):
    """Write table1.md/.csv, results.json and the figures from the rows' results."""
    from xprospect_tf.data.prepared import load_case
    from xprospect_tf.evaluation import renderings, tables

    case_id = results[0]["example_case"]
    truth = load_case(data_dir, case_id)["ct"]
    preds = {}
    for r in results:
        run_dir = os.path.join(out, slug(r["row"]))
        with np.load(os.path.join(run_dir, "example_prediction.npz")) as f:
            preds[r["row"]] = f["prediction"]
        png = os.path.join(run_dir, "example_axial.png")
        renderings.save_figure(renderings.single_axial_figure(preds[r["row"]]), png)
        r["example_image"] = os.path.relpath(png, out)
    renderings.save_figure(
        renderings.axial_figure({"Ground truth": truth, **preds}, title=f"test case {case_id}, axial mid-slice"),
        os.path.join(out, "axial_examples.png"),
    )
    shown = figure4_rows(results)
    log.info("figure4_renderings.png: ground truth and %s", ", ".join(shown))
    renderings.save_figure(
        renderings.rendering_figure({"Ground truth": truth, **{f"{row} prediction": preds[row] for row in shown}},
                                    title=f"3D renderings, test case {case_id}"),
        os.path.join(out, "figure4_renderings.png"),
    )
    records = tables.table1_records(results)
    header = (f"# Table 1 ({results[0]['preset']} preset)\n\n"
              f"Test set: {len(results[0]['per_case'])} cases of {data_dir}; "
              "MSE/PSNR/SSIM on volumes windowed to [0, 1]; mean ± std over test cases.\n\n")
    write_text(os.path.join(out, "table1.md"), header + tables.to_markdown(records)
               + "\n![axial examples](axial_examples.png)\n\n![3D renderings](figure4_renderings.png)\n"
               + "\n![learning curves](learning_curves.png)\n")
    write_text(os.path.join(out, "table1.csv"), tables.to_csv(records))
    write_json(os.path.join(out, "results.json"), {"rows": results})
    save_learning_curves(results, out)


FIGURE4_ROWS = ("64-Dense-Styled-Inputs", "512-ProjInj")
"""The rows the paper's Figure 4 renders, left to right (Paulson et al., 2024, Figure 4:
"64-Dense-Styled-Inputs [Left], 512-ProjInj [Right]"). The ground truth beside them is ours."""


def figure4_rows(results):
    """The rows ``figure4_renderings.png`` renders beside the ground truth.

    The paper's Figure 4 rows (:data:`FIGURE4_ROWS`) that are in ``results``, in
    the paper's order. When neither was run (e.g. ``--rows`` chose others), the
    trained row with the lowest test MSE stands in (any row when none was trained).

    Args:
        results: the rows' results.json dicts (keys ``row``, ``parameters``, ``summary``).

    Returns:
        list of row names.

    Example:
        >>> def result(row, mse, params=1):
        ...     return {"row": row, "parameters": params, "summary": {"mse": [mse, 0.0]}}
        >>> figure4_rows([result("512-ProjInj", 0.3), result("64-Dense", 0.1),
        ...               result("64-Dense-Styled-Inputs", 0.2)])
        ['64-Dense-Styled-Inputs', '512-ProjInj']
        >>> figure4_rows([result("Mean volume", 0.05, params=0), result("64-Dense", 0.1),
        ...               result("512-Dense", 0.09)])
        ['512-Dense']
    """
    ran = [r["row"] for r in results]
    shown = [row for row in FIGURE4_ROWS if row in ran]
    if shown:
        return shown
    trained = [r for r in results if r["parameters"]]
    return [min(trained or results, key=lambda r: r["summary"]["mse"][0])["row"]]


def save_learning_curves(results, out):
    """Write ``out/learning_curves.png``: the training and validation loss per epoch of every
    trained row (from its ``history.csv``; baselines have none)."""
    from xprospect_tf.evaluation.learning_curves import learning_curves_figure, read_history
    from xprospect_tf.evaluation.renderings import save_figure

    histories = {}
    for r in results:
        history = os.path.join(out, slug(r["row"]), "history.csv")
        if r["parameters"] and os.path.exists(history):
            histories[f"{r['row']} ({r['loss'].upper()})"] = read_history(history)
    if histories:
        figure = learning_curves_figure(histories, title=f"Learning curves ({results[0]['preset']} preset)")
        save_figure(figure, os.path.join(out, "learning_curves.png"))
