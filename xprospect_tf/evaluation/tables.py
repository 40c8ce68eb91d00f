"""Table 1, generated from result files (never typed by hand).

The paper's Table 1 has the columns model name, input X-ray images, training
loss, optimizer, test MSE and an example axial image. PSNR, 3D SSIM, the ±
standard deviations over test cases, parameters and training time are ours, and
so are the feature metrics (X-ray2CTPA reports LPIPS and FVD; ours use a fixed
random-weight 3D network, :mod:`xprospect_tf.evaluation.features`): the
perceptual distance and FD-rand, the own-case match (the share of test cases
whose prediction is nearest its own truth) and the seconds per predicted test volume.
Rows come in the order of the results (``xprospect table1``: experiments.yaml's
order, the paper's rows first).
"""

import csv
import io

COLUMNS = (
    "Model name", "Input X-ray images", "Training loss", "Optimizer", "Test MSE",
    "PSNR (dB)", "3D SSIM", "Perceptual (rand)", "FD-rand", "Own-case match", "Parameters", "Training time (s)",
    "Prediction time (s/volume)", "Example axial image",
)

INPUT_NAMES = {"mean": "Mean CT", "drr": "DRR", "styled": "Stylized mean CT"}
OPTIMIZER_NAMES = {"adam": "Adam", "nadam": "Nadam", "adamw": "AdamW"}


def table1_records(results):
    """One dict per row (keys: :data:`COLUMNS`) from a list of results.json dicts."""
    records = []
    for r in results:
        s = r["summary"]
        records.append({
            "Model name": r["row"],
            "Input X-ray images": INPUT_NAMES.get(r["inputs"], r["inputs"]),
            "Training loss": (r.get("loss") or "-").upper(),
            "Optimizer": OPTIMIZER_NAMES.get(r.get("optimizer"), r.get("optimizer") or "-"),
            "Test MSE": f"{s['mse'][0]:.5f} ± {s['mse'][1]:.5f}",
            "PSNR (dB)": f"{s['psnr'][0]:.2f} ± {s['psnr'][1]:.2f}",
            "3D SSIM": f"{s['ssim'][0]:.3f} ± {s['ssim'][1]:.3f}",
            "Perceptual (rand)": (f"{s['perceptual'][0]:.4f} ± {s['perceptual'][1]:.4f}"
                                  if "perceptual" in s else "-"),
            "FD-rand": f"{s['fd'][0]:.4f}" if "fd" in s else "-",
            "Own-case match": f"{s['match'][0]:.2f}" if "match" in s else "-",
            "Parameters": f"{r['parameters']:,}" if r["parameters"] else "-",
            "Training time (s)": _train_time(r),
            "Prediction time (s/volume)": (f"{r['predict_time_s']:.3f}" if r.get("predict_time_s") is not None
                                           else "-"),
            "Example axial image": r.get("example_image", ""),
        })
    return records


def _train_time(r):
    style = r.get("style_train_time_s")
    own = f"{r['train_time_s']:.1f}"
    return own if style is None else f"{own} + {style:.1f} (style models)"


def to_markdown(records):
    """A GitHub-flavoured markdown table; image paths become inline images."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for rec in records:
        cells = [str(rec[c]) for c in COLUMNS]
        if cells[-1]:
            cells[-1] = f"![{rec['Model name']}]({cells[-1]})"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_csv(records):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buf.getvalue()
