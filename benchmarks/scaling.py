"""Memory and step time against size, batch, precision and mode (issue #11): measure, then report.

    python benchmarks/scaling.py run docs/benchmarks/scaling-2026-11-22.jsonl
    python benchmarks/scaling.py report docs/benchmarks/scaling-2026-11-22.jsonl --plot docs/scaling.png

``run`` appends one ``xprospect bench model`` JSON line per case, each a fresh process
(``pipelines.bench.bench_in_fresh_process``), and first the peak RSS of a process that
imports what the benchmark imports and builds nothing (``"mode": "baseline"``).
``report`` prints the Markdown tables of docs/benchmarks.md from those lines, the guard's
estimates (:meth:`~xprospect_tf.training.guard.SizeReport.process_peak_bytes`) computed
from the same models built symbolically, and draws the plot.
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
EXTRA = [  # 256^3: predict only (a train step needs more than the machine's 24 GiB, see the report)
    ("512-Dense", 256, 1, "float32", "predict"),
    ("512-Dense", 256, 1, "mixed_bfloat16", "predict"),
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


def run(path):
    from pipelines.bench import bench_in_fresh_process

    baseline = subprocess.run([sys.executable, "-c", BASELINE], capture_output=True, text=True, check=True)
    _append(path, baseline.stdout.strip())
    for row, size, batch, precision, mode in cases():
        line, error = bench_in_fresh_process([
            f"--{mode}", "--row", row, "--preset", "paper", "--size", str(size), "--batch", str(batch),
            "--precision", precision, "--steps", str(steps_at(size))])
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
    sub.add_parser("run", help="measure every case, appending JSON lines").add_argument("jsonl")
    p = sub.add_parser("report", help="Markdown tables and the plot from the JSON lines")
    p.add_argument("jsonl")
    p.add_argument("--plot", default=None, help="PNG to draw (default: none)")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args.jsonl)
    return report(args.jsonl, args.plot)


def report(path, plot):
    raise NotImplementedError


if __name__ == "__main__":
    sys.exit(main())
