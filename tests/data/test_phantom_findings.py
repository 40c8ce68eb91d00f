"""The phantom's finding at a chosen difficulty (nodule radius range, contrast) and its labels.

The digests were taken from the phantom code before the difficulty settings
existed: a phantom without findings (and one with the default findings) must
stay bit-identical, so existing datasets and the smoke Table 1 do not change.
"""

import hashlib

import numpy as np
import pytest

from xprospect_tf.data.phantom import (
    DEFAULT_NODULE_CONTRAST_HU,
    LABEL_HU,
    LABELS,
    chest_phantom,
    phantom_findings,
)
from xprospect_tf.errors import ConfigError

BEFORE = {  # (size, seed, findings) -> sha256(hu bytes + label bytes)[:16], from the code before the change
    (16, 0, False): "463dc74920ca969a",
    (16, 3, False): "70f2dccca219dfd3",
    (32, 5, False): "fca907228efe7c09",
    (32, 1, True): "cb7f7e0f7b63fb2e",
    (16, 3, True): "0af941621c995242",
}


def _digest(hu, labels):
    return hashlib.sha256(hu.tobytes() + labels.tobytes()).hexdigest()[:16]


def _nodule_seed():
    return next(s for s in range(100) if phantom_findings(s)["nodule"])


@pytest.mark.parametrize("key", sorted(BEFORE))
def test_defaults_are_bit_identical_to_before(key):
    size, seed, findings = key
    assert _digest(*chest_phantom(size=size, seed=seed, findings=findings)) == BEFORE[key]


def test_difficulty_settings_do_not_touch_a_phantom_without_findings():
    hu, labels = chest_phantom(size=16, seed=3, nodule_radius_mm=(2, 3), nodule_contrast_hu=50)
    assert _digest(hu, labels) == BEFORE[(16, 3, False)]


def test_default_contrast_is_the_solid_nodule_of_before():
    assert LABEL_HU["lung"] + DEFAULT_NODULE_CONTRAST_HU == LABEL_HU["nodule"] == 30.0


def test_labels_do_not_depend_on_the_difficulty():
    for seed in range(40):
        assert (phantom_findings(seed, (2.0, 3.0))["nodule"] == phantom_findings(seed, (20.0, 25.0))["nodule"]
                == phantom_findings(seed)["nodule"])


def test_radius_is_drawn_from_the_range():
    radii = [phantom_findings(s, (3.0, 4.0))["nodule_radius_mm"] for s in range(60)]
    radii = [r for r in radii if r is not None]
    assert radii and all(3.0 <= r <= 4.0 for r in radii)


def test_nodule_has_the_asked_radius_contrast_and_place():
    seed, size, fov = _nodule_seed(), 64, 400.0
    step = fov / size
    strong, labels = chest_phantom(size=size, seed=seed, findings=True, nodule_radius_mm=(15, 15),
                                   nodule_contrast_hu=880.0)
    faint, _ = chest_phantom(size=size, seed=seed, findings=True, nodule_radius_mm=(15, 15),
                             nodule_contrast_hu=300.0)
    plain, _ = chest_phantom(size=size, seed=seed)
    info = phantom_findings(seed, (15, 15))
    assert info["nodule_radius_mm"] == 15.0
    centre = (np.array(info["nodule_center_mm"]) + fov / 2) / step - 0.5
    dist = np.linalg.norm(np.moveaxis(np.indices(strong.shape), 0, -1) - centre, axis=-1) * step
    # labelled nodule voxels: about the sphere's volume (partial-volume blend >= 1/2)
    count = int((labels == LABELS["nodule"]).sum())
    assert abs(count - 4 / 3 * np.pi * 15.0**3 / step**3) < 0.35 * count
    # fully inside the sphere the voxel is the target HU (plus the same noise): contrast difference exact
    core = dist < 15.0 - step
    assert core.sum() >= 4
    np.testing.assert_allclose(strong[core] - faint[core], 880.0 - 300.0, atol=0.1)
    assert abs(float(np.median(strong[core])) - 30.0) < 40.0  # 30 HU plus 15 HU noise
    # outside the sphere (and its partial-volume rim) nothing changes
    far = dist > 15.0 + step
    np.testing.assert_array_equal(strong[far], plain[far])


@pytest.mark.parametrize("kwargs", [
    {"nodule_radius_mm": (12.0, 5.0)}, {"nodule_radius_mm": (0.5, 3.0)}, {"nodule_radius_mm": (5.0, 40.0)},
    {"nodule_radius_mm": 5.0}, {"nodule_contrast_hu": 0.0}, {"nodule_contrast_hu": -10.0},
    {"nodule_contrast_hu": "high"}, {"nodule_contrast_hu": True},
])
def test_bad_difficulty_settings_raise_config_error(kwargs):
    with pytest.raises(ConfigError, match="nodule"):
        chest_phantom(size=16, seed=0, findings=True, **kwargs)
