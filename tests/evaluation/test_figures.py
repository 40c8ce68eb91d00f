"""Figures: the data preview is drawn in radiological convention."""

import numpy as np

from xprospect_tf.evaluation.figures import preview_figure, preview_panels


def test_preview_panels_are_shown_radiologically():
    vol = np.zeros((8, 8, 8), np.float32)  # mid slices: z = x = y = 4
    vol[4, 1, 2] = 1.0  # axial marker: patient right (x=1), anterior (y=2)
    vol[1, 2, 4] = 1.0  # coronal marker: superior (z=1), right (x=2)
    vol[1, 4, 2] = 1.0  # sagittal marker: superior (z=1), anterior (y=2)
    ap, lateral = vol.mean(axis=2), vol.mean(axis=1)
    panels = {name: (image, letters) for name, image, letters in
              preview_panels(vol, ap, lateral, ap, lateral)}
    # right and anterior on the image's left, anterior and superior at the top
    for name, (row, col) in {"axial": (2, 1), "coronal": (1, 2), "sagittal": (1, 2)}.items():
        assert np.argwhere(panels[name][0] == 1.0).tolist() == [[row, col]], name
    np.testing.assert_array_equal(panels["mean-CT frontal"][0], ap)
    np.testing.assert_array_equal(panels["DRR lateral"][0], lateral)
    assert panels["axial"][1] == ("R", "L", "A", "P")
    assert panels["coronal"][1] == panels["mean-CT frontal"][1] == ("R", "L", "S", "I")
    assert panels["sagittal"][1] == panels["mean-CT lateral"][1] == ("A", "P", "S", "I")
    fig = preview_figure(vol, ap, lateral, ap, lateral, title="t")
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == 7
    assert {t.get_text() for t in drawn[0].texts} == {"R", "L", "A", "P"}
