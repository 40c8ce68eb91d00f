"""The phantom's finding at a chosen difficulty (nodule radius range, contrast) and its labels.

The fingerprints were taken from the phantom code before the difficulty settings
existed: a phantom without findings (and one with the default findings) must
stay the same, so existing datasets and the smoke Table 1 do not change.
"""

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

# (size, seed, findings) -> {label: (voxels, mean HU)}, from the phantom code before the change (commit
# 3b9cf8c). A fingerprint, not a digest of the bytes: numpy's transcendental functions take another SIMD
# path on another CPU (AVX-512 vs AVX2), which changes the last bits of the HU values (the old and the
# new code were bit-identical on each machine checked, Intel Xeon AVX-512 and AMD EPYC AVX2).
BEFORE = {
    (16, 0, False): {0: (2634, -1000.0), 1: (270, -94.29), 2: (247, 52.82), 3: (544, -850.22), 4: (1, -984.92),
                     5: (11, 32.22), 6: (36, 44.49), 7: (8, 39.74), 8: (58, 849.26), 9: (8, 243.46),
                     10: (13, 601.69), 11: (135, 58.91), 12: (112, 31.29), 13: (18, 104.98), 14: (1, -947.6)},
    (16, 3, False): {0: (2798, -1000.0), 1: (288, -96.43), 2: (240, 51.19), 3: (398, -850.66), 4: (1, -1009.23),
                     5: (6, 35.92), 6: (24, 44.24), 7: (7, 47.53), 8: (46, 852.6), 9: (26, 251.55),
                     10: (11, 594.39), 11: (129, 60.49), 12: (114, 27.93), 13: (6, 116.77), 14: (2, -962.87)},
    (32, 5, False): {0: (19956, -1000.0), 1: (2859, -93.22), 2: (2457, 68.31), 3: (4043, -843.3),
                     4: (30, -1001.78), 5: (94, 39.84), 6: (192, 44.98), 7: (102, 44.82), 8: (431, 849.24),
                     9: (165, 248.54), 10: (39, 604.51), 11: (1198, 60.05), 12: (1143, 29.67), 13: (51, 106.37),
                     14: (8, -953.16)},
    (32, 1, True): {0: (20162, -1000.0), 1: (2647, -92.42), 2: (2393, 66.6), 3: (4118, -847.78), 4: (34, -996.68),
                    5: (112, 40.58), 6: (238, 45.21), 7: (110, 45.48), 8: (405, 850.22), 9: (166, 249.98),
                    10: (46, 601.19), 11: (1193, 60.71), 12: (1081, 30.83), 13: (54, 110.2), 14: (9, -951.64)},
    (16, 3, True): {0: (2798, -1000.0), 1: (288, -96.43), 2: (240, 51.19), 3: (398, -849.62), 4: (1, -1009.23),
                    5: (6, 35.92), 6: (24, 44.24), 7: (7, 47.53), 8: (46, 852.6), 9: (26, 251.55),
                    10: (11, 594.39), 11: (129, 60.49), 12: (114, 27.93), 13: (6, 116.77), 14: (2, -962.87)},
}


def _assert_matches_before(hu, labels, key):
    """Every label's voxel count equal and its mean HU within 0.01 HU of the code before the change."""
    before = BEFORE[key]
    assert sorted(int(v) for v in np.unique(labels)) == sorted(before)
    for value, (count, mean_hu) in before.items():
        mask = labels == value
        assert int(mask.sum()) == count, (key, value)
        assert abs(float(hu[mask].astype(np.float64).mean()) - mean_hu) <= 0.01, (key, value)


def _nodule_seed():
    return next(s for s in range(100) if phantom_findings(s)["nodule"])


@pytest.mark.parametrize("key", sorted(BEFORE))
def test_defaults_match_the_code_before_the_change(key):
    size, seed, findings = key
    _assert_matches_before(*chest_phantom(size=size, seed=seed, findings=findings), key)


def test_difficulty_settings_do_not_touch_a_phantom_without_findings():
    hu, labels = chest_phantom(size=16, seed=3, nodule_radius_mm=(2, 3), nodule_contrast_hu=50)
    _assert_matches_before(hu, labels, (16, 3, False))
    np.testing.assert_array_equal(hu, chest_phantom(size=16, seed=3)[0])


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
