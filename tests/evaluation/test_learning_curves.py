"""Learning curves: the figures plot exactly the losses of ``history.csv``; ``xprospect train``
writes ``learning_curve.png`` into the run folder."""

import csv
import os

import numpy as np
import pytest

from xprospect_tf.errors import InputError
from xprospect_tf.evaluation.learning_curves import learning_curve_figure, learning_curves_figure, read_history

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def csv_columns(path):
    """Independent reading of a CSVLogger file: epoch, loss and val_loss as lists of floats."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [float("nan") if r[k] == "NA" else float(r[k]) for r in rows] for k in ("epoch", "loss", "val_loss")}


def lines(ax):
    return {line.get_label(): (line.get_xdata().tolist(), line.get_ydata().tolist(), line.get_linestyle())
            for line in ax.lines}


def test_train_writes_the_learning_curve_of_its_history(tiny_run):
    png = os.path.join(tiny_run, "learning_curve.png")
    with open(png, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    from PIL import Image

    with Image.open(png) as image:
        image.verify()
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[0] > 300 and image.size[1] > 200
    # what is drawn: the training and validation losses of history.csv, per epoch from 1
    expected = csv_columns(os.path.join(tiny_run, "history.csv"))
    assert np.isfinite(expected["val_loss"]).all()  # the run validated every epoch
    ax = learning_curve_figure(read_history(tiny_run)).axes[0]
    epochs = [e + 1 for e in expected["epoch"]]
    assert lines(ax) == {"train": (epochs, expected["loss"], "-"), "validation": (epochs, expected["val_loss"], "--")}
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "epoch"


def write_history(path, text):
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def test_read_history_orders_epochs_and_reads_missing_values_as_nan(tmp_path):
    path = write_history(tmp_path / "history.csv", "epoch,loss,psnr,val_loss,val_psnr\n"
                         "1,0.25,6.0,0.5,3.0\n0,0.5,3.0,,NA\n")
    history = read_history(path)
    assert set(history) == {"epoch", "loss", "psnr", "val_loss", "val_psnr"}
    np.testing.assert_array_equal(history["epoch"], [0, 1])
    np.testing.assert_array_equal(history["loss"], [0.5, 0.25])
    np.testing.assert_array_equal(history["val_loss"], [np.nan, 0.5])
    with pytest.raises(InputError, match="missing.csv: cannot read the training history"):
        read_history(tmp_path / "missing.csv")
    with pytest.raises(InputError, match="not a training history"):
        read_history(write_history(tmp_path / "other.csv", "step,loss\n0,1\n"))


def test_a_run_without_validation_has_only_its_training_curve(tmp_path):
    history = read_history(write_history(tmp_path / "h.csv", "epoch,loss,val_loss\n0,0.5,NA\n1,0.25,NA\n"))
    ax = learning_curve_figure(history, title="64-Dense", ylabel="MSE loss").axes[0]
    assert lines(ax) == {"train": ([1.0, 2.0], [0.5, 0.25], "-")}
    assert ax.get_title() == "64-Dense" and ax.get_ylabel() == "MSE loss (log scale)"


def test_all_rows_curves_share_one_axes_one_colour_per_row():
    a = {"epoch": np.arange(3.0), "loss": np.array([0.3, 0.2, 0.1]), "val_loss": np.array([0.4, 0.3, 0.35])}
    b = {"epoch": np.arange(2.0), "loss": np.array([0.5, 0.4]), "val_loss": np.array([0.6, 0.5])}
    fig = learning_curves_figure({"64-Dense (MSE)": a, "512-Dense MAE (MAE)": b}, title="Learning curves")
    (ax,) = fig.axes
    drawn = lines(ax)
    assert drawn == {
        "64-Dense (MSE) train": ([1.0, 2.0, 3.0], [0.3, 0.2, 0.1], "-"),
        "64-Dense (MSE) validation": ([1.0, 2.0, 3.0], [0.4, 0.3, 0.35], "--"),
        "512-Dense MAE (MAE) train": ([1.0, 2.0], [0.5, 0.4], "-"),
        "512-Dense MAE (MAE) validation": ([1.0, 2.0], [0.6, 0.5], "--"),
    }
    colours = [line.get_color() for line in ax.lines]
    assert colours[0] == colours[1] != colours[2] == colours[3]
    assert ax.get_yscale() == "log" and [t.get_text() for t in ax.get_legend().get_texts()] == list(drawn)
