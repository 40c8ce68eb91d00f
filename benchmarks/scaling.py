"""Memory and step time against size, batch, precision and mode (issue #11): measure, then report.

    python benchmarks/scaling.py run docs/benchmarks/scaling-loaded-2026-11-22.jsonl
    python benchmarks/scaling.py run docs/benchmarks/scaling-quiet-2026-11-22.jsonl --rows 512-Dense --precisions float32
    python benchmarks/scaling.py run --runtime docs/benchmarks/runtime-2026-11-22.jsonl
    python benchmarks/scaling.py report docs/benchmarks/scaling-loaded-2026-11-22.jsonl \\
        docs/benchmarks/scaling-quiet-2026-11-22.jsonl docs/benchmarks/runtime-2026-11-22.jsonl --plot docs/scaling.png

``run`` appends one ``xprospect bench model`` JSON line per case, each a fresh process
(``pipelines.bench.bench_in_fresh_process``), and first the peak RSS of a process that
imports what the benchmark imports and builds nothing (``"mode": "baseline"``).
``run --runtime`` measures the same row at base_filters 2 (tiny tensors): the runtime's
own memory per layer. ``report`` prints the Markdown tables of docs/benchmarks.md from
those lines, with the guard's estimates
(:meth:`~xprospect_tf.training.guard.SizeReport.process_peak_bytes`) computed now from the
same models built again (no step runs), and draws the plot.
"""

import argparse
import itertools
import json
import subprocess
import sys

ROWS = ("512-Dense", "512-ProjInj")
SIZES = (32, 64, 128)
BATCHES = (1, 2)
PRECISIONS = ("float32", "mixed_bfloat16")
MODES = ("train", "predict")
EXTRA = [  # 256^3, 512-Dense, batch 1 (a float32 train step peaks at ~16 GiB: the machine needs 24)
    ("512-Dense", 256, 1, precision, mode) for mode in MODES for precision in PRECISIONS
]
RUNTIME_CASES = [  # base_filters 2: the framework's own cost per layer, the tensors being tiny
    ("512-Dense", size, 1, precision, mode, 2)
    for size in (16, 32, 64) for precision in PRECISIONS for mode in MODES
]
BASELINE = """import json, resource
import keras, tensorflow
import pipelines.bench
from xprospect_tf.config import load_experiments
from xprospect_tf.training import guard, rows
load_experiments()
print(json.dumps({"mode": "baseline", "backend": keras.backend.backend(), "keras": keras.__version__,
                  "backend_version": tensorflow.__version__, "device": pipelines.bench._device_name(),
                  "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)}))
"""


def cases():
    """(row, size, batch, precision, mode) of every case, smallest first."""
    grid = itertools.product(SIZES, ROWS, BATCHES, PRECISIONS, MODES)
    return [(row, size, batch, precision, mode) for size, row, batch, precision, mode in grid] + EXTRA


def steps_at(size):
    return 3 if size <= 64 else 2 if size <= 128 else 1


def run(path, runtime=False, rows=ROWS, precisions=PRECISIONS):
    """Measure every case (``runtime``: the base_filters-2 cases) of ``rows`` and ``precisions``,
    appending JSON lines to ``path``."""
    from pipelines.bench import bench_in_fresh_process

    if not runtime:
        baseline = subprocess.run([sys.executable, "-c", BASELINE], capture_output=True, text=True, check=True)
        _append(path, baseline.stdout.strip())
    for row, size, batch, precision, mode, *base_filters in RUNTIME_CASES if runtime else cases():
        if row not in rows or precision not in precisions:
            continue
        options = [f"--{mode}", "--row", row, "--preset", "paper", "--size", str(size), "--batch", str(batch),
                   "--precision", precision, "--steps", str(steps_at(size))]
        line, error = bench_in_fresh_process(options + [f"--base-filters={f}" for f in base_filters])
        if error:
            line = json.dumps({"row": row, "size": size, "batch": batch, "precision": precision,
                               "mode": mode, "error": error})
        _append(path, line)


def _append(path, line):
    print(line, flush=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="measure every case, appending JSON lines")
    p.add_argument("jsonl")
    p.add_argument("--runtime", action="store_true", help="the base_filters-2 cases instead")
    p.add_argument("--rows", nargs="+", choices=ROWS, default=ROWS, help="only these rows")
    p.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=PRECISIONS, help="only these")
    p = sub.add_parser("report", help="Markdown tables and the plot from the JSON lines")
    p.add_argument("jsonl", nargs="+")
    p.add_argument("--plot", default=None, help="PNG to draw (default: none)")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args.jsonl, args.runtime, args.rows, args.precisions)
    return report(args.jsonl, args.plot)


def report(paths, plot=None):
    """Print the Markdown tables of docs/benchmarks.md from the JSON lines in ``paths``; draw ``plot``."""
    from xprospect_tf.training import guard

    lines = [json.loads(line) for path in paths for line in open(path, encoding="utf-8") if line.strip()]
    baseline = next(r for r in lines if r["mode"] == "baseline")
    latest = {}  # a case measured again (a later line, e.g. a quieter re-run) replaces the earlier line
    for r in lines:
        if r["mode"] != "baseline" and "error" not in r:
            latest[(r["row"], r["size"], r["batch"], r["precision"], r["mode"], r["base_filters"])] = r
    runs = list(latest.values())
    for r in runs:
        size_report = guard.tensor_size_report(_model(r["row"], r["size"], r["precision"], r["base_filters"]),
                                               r["batch"])
        r["layers"] = len(size_report.layers)
        r["tensors_gib"] = (size_report.training_bytes if r["mode"] == "train" else size_report.inference_bytes) / GIB
        r["estimate_gib"] = size_report.process_peak_bytes(r["mode"]) / GIB
        # the guard's figure before issue #11: 4 bytes x (weights, gradients, slots, every layer output)
        r["old_gib"] = 4 * (size_report.weight_elements * (2 + size_report.optimizer_slots)
                            + size_report.activation_elements) / GIB
    print(f"baseline (built nothing): {baseline['peak_rss_gib']:.3f} GiB; guard.RUNTIME_BASELINE_BYTES "
          f"{guard.RUNTIME_BASELINE_BYTES / GIB:.3f} GiB\n")
    print(_runtime_table([r for r in runs if r["base_filters"] == 2], baseline["peak_rss_gib"]))
    main = [r for r in runs if r["base_filters"] != 2]
    print(_estimate_table(main))
    print(_scaling_table([r for r in main if r["row"] == "512-Dense" and r["precision"] == "float32"]))
    print(_exponents([r for r in main if r["row"] == "512-Dense" and r["precision"] == "float32"],
                     baseline["peak_rss_gib"]))
    if plot:
        _plot([r for r in main if r["row"] == "512-Dense" and r["precision"] == "float32"], plot)
    return 0


GIB = 2**30
_MODELS = {}


def _model(row, size, precision, base_filters):
    """The row's compiled model, built once (symbolic: no step runs)."""
    from xprospect_tf.config import load_experiments
    from xprospect_tf.training.rows import build_compiled_model

    key = (row, size, precision, base_filters)
    if key not in _MODELS:
        cfg = load_experiments().resolve(row, "paper", [f"size={size}", f"model.precision={precision}",
                                                        f"base_filters={base_filters}"])
        _MODELS[key] = build_compiled_model(cfg, steps_per_epoch=1)
    return _MODELS[key]


def _runtime_table(runs, baseline_gib):
    """The runtime per layer: (peak - baseline - counted tensors) / layers of the base_filters-2 runs."""
    from xprospect_tf.training.guard import RUNTIME_BYTES_PER_LAYER

    rows = ["| size | precision | mode | layers | peak RSS GiB | tensors GiB | runtime MiB per layer |",
            "|---|---|---|---|---|---|---|"]
    per_mode = {}
    for r in runs:
        per_layer = (r["peak_rss_gib"] - baseline_gib - r["tensors_gib"]) * 1024 / r["layers"]
        per_mode.setdefault(r["mode"], []).append(per_layer)
        rows.append(f"| {r['size']}^3 | {r['precision']} | {r['mode']} | {r['layers']} | {r['peak_rss_gib']:.3f} "
                    f"| {r['tensors_gib']:.3f} | {per_layer:.2f} |")
    for mode, values in per_mode.items():
        rows.append(f"\n{mode}: mean {sum(values) / len(values):.2f} MiB per layer over {len(values)} runs; "
                    f"guard.RUNTIME_BYTES_PER_LAYER[{mode!r}] = {RUNTIME_BYTES_PER_LAYER[mode] / 2**20:.2f} MiB")
    return "\n".join(rows) + "\n"


def _estimate_table(runs):
    rows = ["| row | size | batch | precision | mode | measured peak RSS GiB | estimate GiB | estimate / measured "
            "| previous guard figure GiB | set |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        used = "model" if r["size"] <= 64 else "held out"
        rows.append(f"| {r['row']} | {r['size']}^3 | {r['batch']} | {r['precision']} | {r['mode']} | "
                    f"{r['peak_rss_gib']:.2f} | {r['estimate_gib']:.2f} | {r['estimate_gib'] / r['peak_rss_gib']:.2f} | "
                    f"{r['old_gib']:.2f} | {used} |")
    for used, test in (("32^3 and 64^3", lambda r: r["size"] <= 64), ("128^3 and up", lambda r: r["size"] > 64)):
        ratios = [r["estimate_gib"] / r["peak_rss_gib"] for r in runs if test(r)]
        if ratios:
            rows.append(f"\n{used}: estimate / measured {min(ratios):.2f} to {max(ratios):.2f} over {len(ratios)} runs")
    return "\n".join(rows) + "\n"


def _scaling_table(runs):
    rows = ["| size | batch | mode | forward GFLOP / volume | step s: median (min-max) | volumes/s | "
            "peak RSS GiB | guard estimate GiB |", "|---|---|---|---|---|---|---|---|"]
    for r in sorted(runs, key=lambda r: (r["mode"] != "train", r["size"], r["batch"])):
        rows.append(f"| {r['size']}^3 | {r['batch']} | {r['mode']} | {r['forward_gflops']:.1f} | "
                    f"{r['step_s_median']:.3f} ({r['step_s_min']:.3f}-{r['step_s_max']:.3f}) | "
                    f"{r['volumes_per_s']:.3f} | {r['peak_rss_gib']:.2f} | {r['estimate_gib']:.2f} |")
    return "\n".join(rows) + "\n"


def _slope(points):
    """Least-squares slope of log(y) against log(x): the exponent of y ~ x^k."""
    import numpy as np

    x, y = np.log([p[0] for p in points]), np.log([p[1] for p in points])
    return float(np.polyfit(x, y, 1)[0])


def _exponents(runs, baseline_gib):
    out = []
    for mode in MODES:
        batch1 = sorted((r for r in runs if r["mode"] == mode and r["batch"] == 1), key=lambda r: r["size"])
        for first in sorted({r["size"] for r in batch1})[:2]:
            pts = [r for r in batch1 if r["size"] >= first]
            if len(pts) < 2:
                continue
            sizes = f"{pts[0]['size']}^3-{pts[-1]['size']}^3"
            out.append(f"- {mode}, batch 1, {sizes}: step time ~ size^{_slope([(r['size'], r['step_s_median']) for r in pts]):.2f}, "
                       f"forward GFLOP ~ size^{_slope([(r['size'], r['forward_gflops']) for r in pts]):.2f}, "
                       f"peak RSS above the baseline ~ size^"
                       f"{_slope([(r['size'], r['peak_rss_gib'] - baseline_gib) for r in pts]):.2f}")
    return "\n".join(out) + "\n"


def _plot(runs, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for (mode, batch), style in {("train", 1): "o-", ("train", 2): "s-", ("predict", 1): "^--",
                                 ("predict", 2): "v--"}.items():
        pts = sorted((r for r in runs if r["mode"] == mode and r["batch"] == batch), key=lambda r: r["size"])
        if not pts:
            continue
        sizes = [r["size"] for r in pts]
        label = f"{mode}, batch {batch}"
        line, = left.plot(sizes, [r["step_s_median"] for r in pts], style, label=label)
        right.plot(sizes, [r["peak_rss_gib"] for r in pts], style, color=line.get_color(), label=f"{label}: measured")
        right.plot(sizes, [r["estimate_gib"] for r in pts], ":", color=line.get_color(), marker="x",
                   label=f"{label}: guard estimate")
    ref = [r for r in runs if r["mode"] == "train" and r["batch"] == 1 and r["size"] == 64]
    if ref:
        xs = [32, 256]
        left.plot(xs, [ref[0]["step_s_median"] * (x / 64) ** 3 for x in xs], color="grey", lw=0.8,
                  label="size^3 through 64^3 train")
    for ax, title in ((left, "step time, s (2-core CPU)"), (right, "peak host memory (RSS), GiB")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks([32, 64, 128, 256], ["32^3", "64^3", "128^3", "256^3"])
        ax.set_xlabel("volume size")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("512-Dense, paper preset (base_filters 16), float32, TensorFlow 2.21 CPU, 2026-11-22", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
