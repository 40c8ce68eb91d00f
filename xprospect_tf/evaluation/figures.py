"""Preview figures of a case: mid slices in three planes and its X-ray projections.

Display conventions (radiological): axial and coronal images show the patient's
right on the image's left; axial has anterior at the top; coronal and sagittal
have superior at the top; sagittal and lateral images have anterior on the left.
Every panel carries its orientation letters (R/L, A/P, S/I) on its edges.
"""

import numpy as np

from xprospect_tf.evaluation.renderings import save_figure  # noqa: F401  (atomic PNG writer)

AXIAL, CORONAL, SAGITTAL = ("R", "L", "A", "P"), ("R", "L", "S", "I"), ("A", "P", "S", "I")


def preview_panels(vol01, ap, lateral, drr_ap=None, drr_lateral=None):
    """The images of :func:`preview_figure`, already in display orientation.

    Args:
        vol01: ``(z, x, y)`` volume in [0, 1].
        ap: frontal projection ``(z, x)``.
        lateral: lateral projection ``(z, y)``.
        drr_ap: optional frontal DRR ``(z, x)``.
        drr_lateral: optional lateral DRR ``(z, y)``.

    Returns:
        A list of ``(title, image (rows, cols), (left, right, top, bottom) letters)``.

    Example:
        >>> [p[0] for p in preview_panels(np.zeros((4, 4, 4)), np.zeros((4, 4)), np.zeros((4, 4)))]
        ['axial', 'coronal', 'sagittal', 'mean-CT frontal', 'mean-CT lateral']
    """
    vol = np.asarray(vol01, dtype=np.float32)
    z, x, y = (n // 2 for n in vol.shape)
    panels = [
        ("axial", vol[z].T, AXIAL),  # rows y (anterior top), columns x (right left)
        ("coronal", vol[:, :, y], CORONAL),  # rows z, columns x
        ("sagittal", vol[:, x, :], SAGITTAL),  # rows z, columns y
        ("mean-CT frontal", np.asarray(ap), CORONAL),
        ("mean-CT lateral", np.asarray(lateral), SAGITTAL),
    ]
    if drr_ap is not None:
        panels.append(("DRR frontal", np.asarray(drr_ap), CORONAL))
    if drr_lateral is not None:
        panels.append(("DRR lateral", np.asarray(drr_lateral), SAGITTAL))
    return panels


def preview_figure(vol01, ap, lateral, drr_ap=None, drr_lateral=None, title=""):
    """A figure of a case: axial, coronal, sagittal mid slices, then its X-rays.

    Top row: the three mid slices of ``vol01`` on a fixed [0, 1] gray scale.
    Bottom row: the mean-CT projections and, when given, the DRRs (each
    auto-scaled). Orientation letters sit on every panel's edges.

    Args:
        vol01: ``(z, x, y)`` volume in [0, 1].
        ap: frontal projection ``(z, x)``.
        lateral: lateral projection ``(z, y)``.
        drr_ap: optional frontal DRR.
        drr_lateral: optional lateral DRR.
        title: figure title.

    Returns:
        A ``matplotlib.figure.Figure`` (not registered with pyplot).

    Example:
        >>> fig = preview_figure(np.zeros((8, 8, 8)), np.zeros((8, 8)), np.zeros((8, 8)))
        >>> len([ax for ax in fig.axes if ax.images])  # without DRRs: 5 panels
        5
    """
    from matplotlib.figure import Figure

    panels = preview_panels(vol01, ap, lateral, drr_ap, drr_lateral)
    fig = Figure(figsize=(10, 5.4))
    axes = fig.subplots(2, 4).ravel()
    slots = [0, 1, 2] + list(range(4, 4 + len(panels) - 3))
    for slot, (name, image, letters) in zip(slots, panels):
        ax = axes[slot]
        limits = {"vmin": 0.0, "vmax": 1.0} if slot < 3 else {}
        ax.imshow(image, cmap="gray", interpolation="nearest", **limits)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        _orientation_letters(ax, letters)
    for slot in set(range(8)) - set(slots):
        axes[slot].set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _orientation_letters(ax, letters):
    left, right, top, bottom = letters
    style = {"transform": ax.transAxes, "color": "yellow", "fontsize": 9, "fontweight": "bold"}
    ax.text(0.02, 0.5, left, ha="left", va="center", **style)
    ax.text(0.98, 0.5, right, ha="right", va="center", **style)
    ax.text(0.5, 0.98, top, ha="center", va="top", **style)
    ax.text(0.5, 0.02, bottom, ha="center", va="bottom", **style)
