"""Figures of predictions: axial slices per Table 1 row (the paper's Table 1 shows an
example axial image per row), and 3D renderings (the paper's Figure 4 renders the
64-Dense-Styled-Inputs and 512-ProjInj predictions; the iso-surfaces are ours)."""

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def axial_slice(vol01, z=None):
    """The axial slice ``vol[z]`` shown radiologically: rows anterior->posterior
    (top = anterior), columns patient right->left (left of image = patient right)."""
    z = vol01.shape[0] // 2 if z is None else z
    return np.asarray(vol01[z]).T  # (x, y) -> (y rows, x cols)


def image_grid_figure(rows, column_titles, row_labels=None, title=""):
    """A grid of 2D images in [0, 1] (gray, fixed range), one list of images per row.

    Args:
        rows: list of rows, each a list of 2D arrays (``(H, W)`` or ``(H, W, 1)``).
        column_titles: one title per column.
        row_labels: optional label per row (shown left of the row).
        title: figure title.

    Returns:
        a matplotlib Figure (save it with :func:`save_figure`).

    Example:
        >>> fig = image_grid_figure([[np.zeros((8, 8))] * 3], ("a", "b", "c"))
    """
    plt = _pyplot()
    n_rows, n_cols = len(rows), len(column_titles)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.2 * n_cols, 2.3 * n_rows + 0.4),
                             squeeze=False)
    for r, images in enumerate(rows):
        for c, image in enumerate(images):
            ax = axes[r, c]
            ax.imshow(np.squeeze(np.asarray(image, dtype=np.float32)), cmap="gray", vmin=0.0,
                      vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(column_titles[c], fontsize=8)
            if c == 0 and row_labels:
                ax.set_ylabel(row_labels[r], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def axial_figure(volumes, z=None, title=""):
    """One panel per named volume (e.g. ground truth then each row), same axial slice."""
    slices = [axial_slice(vol, z) for vol in volumes.values()]
    return image_grid_figure([slices], list(volumes), row_labels=["A <-> P   (R <-> L across)"], title=title)


def single_axial_figure(vol01, z=None):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.imshow(axial_slice(vol01, z), cmap="gray", vmin=0, vmax=1)
    ax.axis("off")
    fig.tight_layout(pad=0)
    return fig


def rendering_figure(volumes, levels=(0.45, 0.57), title=""):
    """3D surface renderings (marching cubes) of each named volume in [0, 1].

    ``levels`` are iso-values in window units: with the paper's [-1000, 1000] HU
    window, 0.45 is about -100 HU (the body surface) and 0.57 about 140 HU (bone).
    """
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection
    from skimage.measure import marching_cubes

    plt = _pyplot()
    n = len(volumes)
    fig = plt.figure(figsize=(3.2 * n, 3.4))
    colors = ("#d9a384", "#efe6c8")
    for i, (name, vol) in enumerate(volumes.items()):
        ax = fig.add_subplot(1, n, i + 1, projection="3d")
        vol = np.asarray(vol, dtype=np.float32)
        for level, color, alpha in zip(levels, colors, (0.08, 1.0)):
            if not vol.min() < level < vol.max():
                continue
            verts, faces, _, _ = marching_cubes(vol, level=level, step_size=max(1, vol.shape[0] // 48))
            # world display axes: x = patient right->left, y = anterior->posterior, up = superior
            pts = np.stack([verts[:, 1], verts[:, 2], vol.shape[0] - verts[:, 0]], axis=1)
            ax.add_collection3d(Poly3DCollection(pts[faces], facecolors=color, alpha=alpha, linewidth=0,
                                                 shade=True))
        s = vol.shape[0]
        ax.set_xlim(0, s)
        ax.set_ylim(s, 0)
        ax.set_zlim(0, s)
        ax.view_init(elev=10, azim=-60)
        ax.set_box_aspect(None, zoom=1.3)
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def save_figure(fig, path, dpi=110):
    """Save a matplotlib figure atomically and close it."""
    from xprospect_tf.files import atomic_path

    plt = _pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=str(path).rsplit(".", 1)[-1])
    plt.close(fig)
