"""Figures of the style transfer (XprospeCT, Paulson et al., 2024, Figure 1 and section 3.1).

Images are shown as stored, in the canonical display orientation: a frontal
image ``ap[z, x]`` with the head at the top and the patient's right on the
left of the image (as a radiologist views it), a lateral image ``lat[z, y]``
with anterior on the left. Intensities are shown on a fixed [0, 1] gray scale,
so brightness differences between the columns are real.
"""

from xprospect_tf.evaluation.renderings import image_grid_figure, save_figure

FIGURE1_COLUMNS = ("real X-ray (domain B)", "mean-CT projection", "stylized projection")
SAMPLE_COLUMNS = ("mean-CT", "stylized", "domain B")


def style_figure(panels, title="Style transfer"):
    """The paper's Figure 1: per view, a real X-ray, a mean-CT projection and its stylized version.

    Args:
        panels: ``{view: (domain_b_image, mean_ct_image, stylized_image)}``,
            e.g. ``{"frontal": (...), "lateral": (...)}``.
        title: figure title.

    Returns:
        a matplotlib Figure with one row per view.

    Example:
        >>> import numpy as np
        >>> image = np.zeros((8, 8), np.float32)
        >>> fig = style_figure({"frontal": (image, image, image), "lateral": (image, image, image)})
        >>> len(fig.axes)
        6
    """
    views = list(panels)
    return image_grid_figure([list(panels[v]) for v in views], FIGURE1_COLUMNS, views, title)


def save_sample_grid(path, sources, stylized, targets, title=""):
    """Write a PNG grid with one row per sample: mean-CT | stylized | a domain-B image.

    Args:
        path: output ``.png`` (written atomically).
        sources: domain-A images ``(N, H, W[, 1])``.
        stylized: ``g_ab(sources)``, same shape.
        targets: domain-B images, at least ``N``.
        title: figure title.

    Returns:
        ``path``.

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> images = np.zeros((2, 8, 8), np.float32)
        >>> path = save_sample_grid(os.path.join(tempfile.mkdtemp(), "epoch_001.png"), images, images, images)
        >>> os.path.getsize(path) > 0
        True
    """
    rows = [[s, y, t] for s, y, t in zip(sources, stylized, targets)]
    save_figure(image_grid_figure(rows, SAMPLE_COLUMNS, title=title), path)
    return path
