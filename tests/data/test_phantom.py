"""Tests of the synthetic chest phantom (xprospect_tf.data.phantom)."""

import time

import numpy as np
import pytest

from xprospect_tf.data.phantom import (
    LABEL_HU,
    LABELS,
    chest_phantom,
    phantom_findings,
    phantom_volume,
)
from xprospect_tf.errors import ConfigError

# Physiological HU ranges per tissue (literature values, not the code's table).
TISSUE_RANGES = {
    "fat": (-130, -70),
    "muscle": (20, 80),
    "lung": (-950, -700),
    "airway": (-1050, -900),
    "heart": (25, 65),
    "aorta": (25, 65),
    "liver": (40, 80),
    "bone_cortical": (600, 1300),
    "bone_marrow": (150, 350),
    "rib": (300, 1000),
    "soft_tissue": (0, 80),
    "cartilage": (50, 200),
    "vessel": (-500, 70),  # partial-volume blended with lung
}


@pytest.fixture(scope="module")
def ph64():
    return chest_phantom(size=64, seed=0, findings=True)


def _centroid(mask):
    return np.array(np.nonzero(mask), float).mean(axis=1)


def _seeds_with_nodule(present, count=2):
    return [s for s in range(60) if phantom_findings(s)["nodule"] == present][:count]


@pytest.mark.parametrize("size", [16, 32, 64])
def test_shape_dtype_and_values(size):
    hu, labels = chest_phantom(size=size, seed=1)
    assert hu.shape == labels.shape == (size,) * 3
    assert hu.dtype == np.float32 and labels.dtype == np.uint8
    assert np.isfinite(hu).all()
    assert set(np.unique(labels)) <= set(LABELS.values())
    assert (labels == LABELS["lung"]).any() and (labels == LABELS["heart"]).any()
    # outside the body is exactly air; the cube corners are outside the body
    assert np.all(hu[labels == 0] == -1000.0)
    assert labels[0, 0, 0] == labels[-1, -1, -1] == 0


def test_deterministic_per_seed_and_seeds_differ():
    a_hu, a_lab = chest_phantom(size=32, seed=5, findings=True)
    b_hu, b_lab = chest_phantom(size=32, seed=5, findings=True)
    c_hu, c_lab = chest_phantom(size=32, seed=6, findings=True)
    np.testing.assert_array_equal(a_hu, b_hu)
    np.testing.assert_array_equal(a_lab, b_lab)
    assert not np.array_equal(a_lab, c_lab)
    assert np.abs(a_hu - c_hu).mean() > 10.0


def test_orientation(ph64):
    _, labels = ph64
    n = labels.shape[0]
    heart = _centroid(labels == LABELS["heart"])
    spine = _centroid(labels == LABELS["bone_marrow"])
    liver = _centroid(labels == LABELS["liver"])
    assert heart[1] > n / 2  # heart left of midline: larger x
    assert spine[2] > n / 2  # spine posterior: larger y
    assert abs(spine[1] - (n - 1) / 2) < 0.05 * n  # on the midline
    assert liver[0] > n / 2 and liver[1] < n / 2  # liver inferior and right
    lung = labels == LABELS["lung"]
    right, left = lung[:, : n // 2].sum(), lung[:, n // 2 :].sum()
    assert right > left  # the right lung is larger


def test_lung_apices_at_the_top(ph64):
    _, labels = ph64
    n = labels.shape[0]
    lung_area = (labels == LABELS["lung"]).sum(axis=(1, 2))
    rows = np.flatnonzero(lung_area)
    assert rows[0] < 0.2 * n  # apex high in the volume
    assert rows[-1] > 0.5 * n  # bases below the middle
    widest = rows[0] + np.argmax(lung_area[rows[0] :])
    assert lung_area[rows[0]] < 0.25 * lung_area[widest]  # narrow apices, wide bases
    assert widest > rows[0] + 0.25 * (rows[-1] - rows[0])


@pytest.mark.parametrize("seed", [0, 3])
def test_hu_histogram_resembles_chest_ct(seed):
    hu, labels = chest_phantom(size=64, seed=seed)
    body = hu[labels > 0]
    lung_fraction = (body < -500).mean()
    bone_fraction = (body > 300).mean()
    assert 0.25 < lung_fraction < 0.5
    assert 0.02 < bone_fraction < 0.10


def test_labels_consistent_with_hu(ph64):
    hu, labels = ph64
    for name, (lo, hi) in TISSUE_RANGES.items():
        mask = labels == LABELS[name]
        assert mask.any(), name
        assert lo <= hu[mask].mean() <= hi, (name, float(hu[mask].mean()))
    for name, value in LABEL_HU.items():  # the table itself is physiological
        if name in TISSUE_RANGES:
            lo, hi = TISSUE_RANGES[name]
            assert lo <= value <= hi, name


def test_noise_is_mild_gaussian(ph64):
    hu, labels = ph64
    liver = hu[labels == LABELS["liver"]]  # homogeneous tissue: spread is the noise
    assert 8.0 < liver.std() < 25.0
    centred = (liver - liver.mean()) / liver.std()
    assert abs(np.mean(centred**3)) < 0.2  # symmetric
    assert abs(np.mean(centred**4) - 3.0) < 0.4  # Gaussian kurtosis


def test_anatomy_is_physical_across_sizes():
    """Same voxel spacing, half the field of view: the labels are the central crop."""
    _, big = chest_phantom(size=32, seed=2, fov_mm=400.0)
    _, small = chest_phantom(size=16, seed=2, fov_mm=200.0)
    np.testing.assert_array_equal(small, big[8:24, 8:24, 8:24])


def test_body_dimensions_in_mm():
    size, fov = 64, 400.0
    _, labels = chest_phantom(size=size, seed=0, fov_mm=fov)
    step = fov / size
    mid = labels[size // 2] > 0
    width = mid.any(axis=1).sum() * step
    depth = mid.any(axis=0).sum() * step
    assert 300 <= width <= 380 and 200 <= depth <= 280


def test_findings_are_seeded_and_size_independent():
    flags = [phantom_findings(s)["nodule"] for s in range(40)]
    assert 0.25 < np.mean(flags) < 0.75
    assert phantom_findings(7) == phantom_findings(7)
    info = phantom_findings(_seeds_with_nodule(True, 1)[0])
    assert len(info["nodule_center_mm"]) == 3 and info["nodule_radius_mm"] > 0


@pytest.mark.parametrize("seed", _seeds_with_nodule(True))
def test_nodule_present_where_the_findings_say(seed):
    size, fov = 64, 400.0
    hu, labels = chest_phantom(size=size, seed=seed, findings=True)
    hu0, labels0 = chest_phantom(size=size, seed=seed, findings=False)
    nodule = labels == LABELS["nodule"]
    assert nodule.any() and not (labels0 == LABELS["nodule"]).any()
    info = phantom_findings(seed)
    expected = (np.array(info["nodule_center_mm"]) + fov / 2) / (fov / size) - 0.5
    assert np.linalg.norm(_centroid(nodule) - expected) < 1.0
    # the nodule sits in lung and changes nothing away from it
    centre_label = labels0[tuple(np.rint(expected).astype(int))]
    assert centre_label in (LABELS["lung"], LABELS["vessel"])
    ring = np.linalg.norm(np.moveaxis(np.indices(labels.shape), 0, -1) - expected, axis=-1)
    far = ring > info["nodule_radius_mm"] / (fov / size) + 2
    np.testing.assert_array_equal(hu[far], hu0[far])
    assert hu[nodule].mean() > -300


@pytest.mark.parametrize("seed", _seeds_with_nodule(False, 1))
def test_no_nodule_where_the_findings_say_none(seed):
    hu, labels = chest_phantom(size=32, seed=seed, findings=True)
    hu0, _ = chest_phantom(size=32, seed=seed, findings=False)
    assert not (labels == LABELS["nodule"]).any()
    np.testing.assert_array_equal(hu, hu0)


def test_phantom_volume_geometry():
    vol = phantom_volume(size=16, seed=4)
    hu, labels = chest_phantom(size=16, seed=4)
    np.testing.assert_array_equal(vol.hu, hu)
    assert vol.spacing == (25.0, 25.0, 25.0)
    assert vol.source == "phantom:4"
    centre = vol.affine @ np.array([7.5, 7.5, 7.5, 1.0])
    np.testing.assert_allclose(centre[:3], 0.0, atol=1e-9)
    # world (RAS+) directions: heart to the patient's left (R < 0), spine posterior (A < 0)
    heart = vol.affine @ np.append(_centroid(labels == LABELS["heart"]), 1.0)
    spine = vol.affine @ np.append(_centroid(labels == LABELS["bone_marrow"]), 1.0)
    assert heart[0] < 0 and spine[1] < 0


@pytest.mark.parametrize(
    "kwargs, setting",
    [({"size": 4}, "size"), ({"size": 16.5}, "size"), ({"seed": -1}, "seed"),
     ({"fov_mm": 0.0}, "fov_mm"), ({"fov_mm": float("nan")}, "fov_mm")],
)
def test_invalid_arguments_raise_config_error(kwargs, setting):
    with pytest.raises(ConfigError, match=setting):
        chest_phantom(**kwargs)
    with pytest.raises(ConfigError):
        phantom_volume(**kwargs)


@pytest.mark.slow
def test_timing_128():
    chest_phantom(size=32, seed=0)  # warm imports
    times = {}
    for size in (32, 64, 128):
        start = time.process_time()
        chest_phantom(size=size, seed=0, findings=True)
        times[size] = time.process_time() - start
    print("phantom CPU seconds:", times)
    assert times[128] < 1.0
