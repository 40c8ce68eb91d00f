"""Learning curves: the training and validation loss of runs per epoch, from their ``history.csv``.

``history.csv`` is the ``CSVLogger`` file of a run (one row per epoch:
``epoch`` from 0, ``loss``, ``psnr`` and, when the run had a validation
split, ``val_loss`` and ``val_psnr``). The figures plot epochs from 1 on a
log-scale loss axis: training loss solid, validation loss dashed.
"""

import csv
import math
import os

import numpy as np

from xprospect_tf.errors import InputError


def read_history(path):
    """The columns of a ``history.csv`` as float arrays, rows in epoch order.

    Args:
        path: a ``CSVLogger`` file (or the run folder holding ``history.csv``).

    Returns:
        ``{column: float64 array}``, e.g. ``epoch``, ``loss``, ``val_loss``;
        an empty or ``NA`` value reads as NaN.

    Raises:
        InputError: no such file, or not a ``CSVLogger`` file (no ``epoch`` column).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     with open(d + "/history.csv", "w") as f:
        ...         _ = f.write("epoch,loss,val_loss\\n1,0.5,NA\\n0,1.0,0.8\\n")
        ...     read_history(d)
        {'epoch': array([0., 1.]), 'loss': array([1. , 0.5]), 'val_loss': array([0.8, nan])}
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "history.csv")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise InputError(f"{path}: cannot read the training history ({e.strerror}); train the run first") from None
    if not rows or "epoch" not in rows[0]:
        raise InputError(f"{path}: not a training history (no epoch rows); train the run again")
    rows.sort(key=lambda r: _number(r["epoch"]))
    return {k: np.array([_number(r.get(k)) for r in rows]) for k in rows[0] if k is not None}


def _number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def learning_curve_figure(history, title="", ylabel="loss"):
    """One run's training and validation loss per epoch, log-scale loss axis.

    Args:
        history: :func:`read_history` columns: ``epoch``, ``loss`` and, when
            the run was validated, ``val_loss``.
        title: figure title (e.g. the row's name).
        ylabel: the loss axis label (e.g. ``"MSE loss"``).

    Returns:
        A ``matplotlib.figure.Figure`` (not registered with pyplot) with one
        Axes: a line ``"train"`` and, when ``val_loss`` has a value, a line
        ``"validation"``, both over epochs ``1, 2, ...``.

    Example:
        >>> history = {"epoch": np.array([0.0, 1.0]), "loss": np.array([0.1, 0.05]),
        ...            "val_loss": np.array([0.2, 0.1])}
        >>> ax = learning_curve_figure(history).axes[0]
        >>> [(line.get_label(), line.get_ydata().tolist()) for line in ax.lines], ax.get_yscale()
        ([('train', [0.1, 0.05]), ('validation', [0.2, 0.1])], 'log')
    """
    return learning_curves_figure({"": history}, title=title, ylabel=ylabel)


def learning_curves_figure(histories, title="", ylabel="loss"):
    """Several runs' learning curves in one Axes (e.g. every trained row of Table 1).

    Each run has its own colour: training loss solid, validation loss dashed.

    Args:
        histories: ``{label: history}`` (:func:`read_history` columns); an
            empty label names the lines just ``"train"`` and ``"validation"``.
        title: figure title.
        ylabel: the loss axis label.

    Returns:
        A ``matplotlib.figure.Figure`` with one Axes, lines labelled
        ``"<label> train"`` and ``"<label> validation"``.

    Example:
        >>> h = {"epoch": np.array([0.0]), "loss": np.array([0.1])}
        >>> ax = learning_curves_figure({"64-Dense": h, "512-Dense": h}).axes[0]
        >>> [line.get_label() for line in ax.lines]
        ['64-Dense train', '512-Dense train']
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    for i, (label, history) in enumerate(histories.items()):
        epochs = np.asarray(history["epoch"]) + 1
        style = {"color": f"C{i % 10}", "marker": "o", "markersize": 3}
        prefix = f"{label} " if label else ""
        ax.plot(epochs, np.asarray(history["loss"]), "-", label=prefix + "train", **style)
        val = history.get("val_loss")
        if val is not None and np.isfinite(val).any():
            ax.plot(epochs, np.asarray(val), "--", label=prefix + "validation", **style)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{ylabel} (log scale)")
    ax.grid(True, which="both", alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
