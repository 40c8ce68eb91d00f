"""Figures of the style transfer (XprospeCT, Paulson et al., 2024, Figure 1 and section 3.1).

Images are shown as stored, in the canonical display orientation: a frontal
image ``ap[z, x]`` with the head at the top and the patient's right on the
left of the image (as a radiologist views it), a lateral image ``lat[z, y]``
with anterior on the left. Intensities are shown on a fixed [0, 1] gray scale,
so brightness differences between the columns are real.
"""

import os

import keras
import numpy as np

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
        >>> fig = style_figure({"frontal": (b, a, s), "lateral": (b2, a2, s2)})  # doctest: +SKIP
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
        >>> save_sample_grid("samples/epoch_001.png", a, g_ab(a), b)  # doctest: +SKIP
    """
    rows = [[s, y, t] for s, y, t in zip(sources, stylized, targets)]
    save_figure(image_grid_figure(rows, SAMPLE_COLUMNS, title=title), path)
    return path


class StyleSampleCallback(keras.callbacks.Callback):
    """Write ``samples/epoch_NNN.png`` (mean-CT | stylized | domain B) after every epoch.

    A CycleGAN's losses say little about image quality; this grid shows how the
    stylization of fixed domain-A images evolves during training.

    Args:
        out_dir: folder of the PNGs (created).
        sources: a few fixed domain-A images ``(N, H, W)``.
        targets: as many domain-B images ``(N, H, W)``.

    Example:
        >>> gan.fit(ds, callbacks=[StyleSampleCallback("run/samples", a[:3], b[:3])])  # doctest: +SKIP
    """

    def __init__(self, out_dir, sources, targets):
        super().__init__()
        self.out_dir = os.fspath(out_dir)
        self.sources = np.asarray(sources, dtype=np.float32)[..., None]
        self.targets = np.asarray(targets, dtype=np.float32)

    def on_epoch_end(self, epoch, logs=None):
        stylized = np.asarray(self.model.g_ab(self.sources, training=False))[..., 0]
        path = os.path.join(self.out_dir, f"epoch_{epoch + 1:03d}.png")
        save_sample_grid(path, self.sources[..., 0], stylized, self.targets, title=f"epoch {epoch + 1}")
