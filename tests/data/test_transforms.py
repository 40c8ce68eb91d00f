"""Tests of xprospect_tf.data.transforms against numpy / scipy / skimage references."""

import doctest
import time

import numpy as np
import pytest
from scipy import ndimage
from skimage.transform import resize as sk_resize

from xprospect_tf.data import transforms
from xprospect_tf.data.transforms import (
    body_center,
    crop_or_pad_cube,
    hu_unwindow,
    hu_window,
    prepare_volume,
    resample_isotropic,
    resize_volume,
)
from xprospect_tf.data.volume import Volume
from xprospect_tf.errors import ConfigError, InputError


def world(volume, index):
    """RAS+ mm of voxel ``index`` (or ``(N, 3)`` indices) through the Volume's own affine."""
    affine = volume.affine
    return np.asarray(index, float) @ affine[:3, :3].T + affine[:3, 3]


def weighted_centroid_mm(volume, weights):
    idx = np.indices(volume.shape).reshape(3, -1).astype(float)
    w = weights.ravel()
    centroid = idx @ w / w.sum()
    return world(volume, centroid)


def air(shape):
    return np.full(shape, -1000.0, np.float32)


def gaussian_blob(shape, spacing, center_mm, sigma_mm):
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij")
    r2 = sum((g - c) ** 2 for g, c in zip(grids, center_mm))
    return np.exp(-r2 / (2 * sigma_mm**2)).astype(np.float32)


# ---------------------------------------------------------------- window


@pytest.mark.parametrize("window", [(-1000.0, 1000.0), (-100.0, 900.0), (-1024, 3071)])
def test_hu_window_matches_formula(window, rng):
    hu = rng.uniform(-2000, 3000, size=(5, 6, 7))
    lo, hi = window
    expected = np.minimum(np.maximum((hu - lo) / (hi - lo), 0.0), 1.0)
    out = hu_window(hu, window)
    assert out.dtype == np.float32 and out.shape == hu.shape
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_hu_unwindow_inverts_inside_window(rng):
    hu = rng.uniform(-100, 900, size=(4, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(hu_unwindow(hu_window(hu, (-100, 900)), (-100, 900)), hu, atol=1e-3)
    assert hu_unwindow(np.array([-0.5, 1.5]), (-100, 900)).tolist() == [-100.0, 900.0]


@pytest.mark.parametrize("window", [(100, -100), (0, 0), (0,), "ab", (0, np.inf)])
def test_hu_window_rejects_bad_window(window):
    with pytest.raises(ConfigError, match="window"):
        hu_window(np.zeros(3), window)


# ---------------------------------------------------------------- resample


def test_resample_matches_scipy_reference_when_not_downsampling(rng):
    # spacing ratios < 2: pure interpolation at input index i * target / spacing
    v = Volume(rng.normal(size=(12, 20, 16)), spacing=(2.0, 1.5, 1.25), origin=(5, -3, 7))
    target = 1.7
    out = resample_isotropic(v, target)
    expected_shape = tuple(
        int(np.sum(np.arange(200) * target <= (n - 1) * s + 1e-9))
        for n, s in zip(v.shape, v.spacing)
    )
    assert out.shape == expected_shape
    assert out.spacing == (target,) * 3 and out.origin == v.origin
    coords = np.meshgrid(
        *[np.arange(n) * target / s for n, s in zip(out.shape, v.spacing)], indexing="ij"
    )
    ref = ndimage.map_coordinates(v.hu, coords, order=1, mode="nearest")
    np.testing.assert_allclose(out.hu, ref, atol=1e-5)


@pytest.mark.parametrize("spacing, target", [((1.0, 0.5, 0.5), 2.0), ((2.5, 0.7, 0.7), 3.0)])
def test_resample_reproduces_linear_ramp_in_world_coordinates(spacing, target):
    # Block averaging + linear interpolation is exact for a linear field: every
    # interior output voxel must carry the ramp's value at its world position.
    shape = (24, 64, 60)
    v0 = Volume(np.zeros(shape), spacing, origin=(10.0, -20.0, 30.0))
    coef = np.array([0.7, -1.3, 2.1])
    ramp = (world(v0, np.indices(shape).reshape(3, -1).T) @ coef).reshape(shape)
    out = resample_isotropic(Volume(ramp, spacing, v0.origin), target)
    inner = tuple(slice(2, n - 2) for n in out.shape)
    oidx = np.indices(out.shape)[(slice(None),) + inner].reshape(3, -1).T
    expected = world(out, oidx) @ coef
    np.testing.assert_allclose(out.hu[inner].ravel(), expected, atol=1e-2)


@pytest.mark.parametrize("spacing, target", [((1.0, 1.0, 1.0), 2.0), ((3.0, 0.8, 1.0), 2.0),
                                             ((1.0, 1.0, 1.0), 0.6)])
def test_resample_keeps_marker_at_same_world_position(spacing, target):
    shape = tuple(int(round(48 / s)) for s in spacing)
    center_mm = (20.0, 27.0, 22.5)
    blob = gaussian_blob(shape, spacing, center_mm, sigma_mm=4.0)
    v = Volume(blob, spacing, origin=(-100.0, 50.0, 12.0))
    out = resample_isotropic(v, target)
    np.testing.assert_allclose(
        weighted_centroid_mm(out, out.hu), weighted_centroid_mm(v, v.hu), atol=0.15
    )


@pytest.mark.parametrize("spacing_mm", [0, -1.0, np.nan, "x"])
def test_resample_rejects_bad_spacing(spacing_mm):
    with pytest.raises(ConfigError, match="spacing_mm"):
        resample_isotropic(Volume(np.zeros((4, 4, 4)), (1, 1, 1)), spacing_mm)


# ---------------------------------------------------------------- body centre


def test_body_center_ignores_table_and_lungs():
    hu = air((20, 40, 40))
    hu[:, 5:31, 6:28] = 40.0  # body: box z 0-19, x 5-30, y 6-27
    hu[:, 8:16, 10:24] = -800.0  # a lung touching nothing else
    hu[:, 0:40, 32:35] = 300.0  # table behind the body, wider, separated by air
    assert body_center(hu) == (9.5, 17.5, 16.5)


def test_body_center_without_body_names_source():
    with pytest.raises(InputError, match="scan.nii"):
        body_center(air((8, 8, 8)), source="scan.nii")


# ---------------------------------------------------------------- crop / pad


@pytest.mark.parametrize(
    "shape, size, center",
    [((16, 16, 16), 8, None), ((10, 30, 20), 16, None), ((16, 16, 16), 24, (7.5, 7.5, 7.5)),
     ((16, 16, 16), 8, (0.0, 15.0, 30.0))],
)
def test_crop_or_pad_shape_centre_and_origin(shape, size, center):
    hu = air(shape)
    blob = tuple(slice(n // 2 - 2, n // 2 + 2) for n in shape)
    hu[blob] = 50.0
    v = Volume(hu, (1.0, 2.0, 3.0), origin=(1.0, 2.0, 3.0))
    out = crop_or_pad_cube(v, size, center=center)
    assert out.shape == (size,) * 3 and out.spacing == v.spacing
    # every output voxel holds the input voxel at the same world position (or air)
    start = np.linalg.solve(v.affine[:3, :3], np.asarray(out.origin) - v.origin)
    np.testing.assert_allclose(start, np.round(start), atol=1e-9)
    shift = np.round(start).astype(int)
    for idx in np.ndindex(out.shape):
        src = np.asarray(idx) + shift
        inside = np.all(src >= 0) and np.all(src < shape)
        assert out.hu[idx] == (hu[tuple(src)] if inside else -1000.0)
    if center is None:  # default centre: the body
        tissue = np.argwhere(out.hu > -500)
        box_center = (tissue.min(0) + tissue.max(0)) / 2
        np.testing.assert_allclose(box_center, (size - 1) / 2, atol=0.5)


def test_crop_or_pad_rejects_bad_size():
    with pytest.raises(ConfigError, match="size"):
        crop_or_pad_cube(Volume(np.zeros((4, 4, 4)), (1, 1, 1)), 0, center=(1, 1, 1))


# ---------------------------------------------------------------- resize


@pytest.mark.parametrize("shape, size", [((24, 24, 24), 16), ((16, 16, 16), 32), ((20, 12, 16), 16),
                                         ((32, 32, 32), 8)])
@pytest.mark.parametrize("order, anti_aliasing", [(0, False), (1, False), (1, True), (3, False),
                                                   (3, True)])
def test_resize_matches_skimage(shape, size, order, anti_aliasing, rng):
    a = rng.uniform(size=shape).astype(np.float32)
    ref = sk_resize(a, (size,) * 3, order=order, mode="edge", anti_aliasing=anti_aliasing,
                    preserve_range=True, clip=False)
    out = resize_volume(a, size, order=order, anti_aliasing=anti_aliasing)
    assert out.shape == (size,) * 3 and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_resize_rejects_non_3d():
    with pytest.raises(InputError, match="3D"):
        resize_volume(np.zeros((4, 4)), 8)


# ---------------------------------------------------------------- prepare


def body_cylinder(shape, spacing, axis_mm, radii_mm, origin=(0.0, 0.0, 0.0)):
    """A water cylinder along z with elliptic cross-section, lungs inside, table behind."""
    hu = air(shape)
    x = (np.arange(shape[1]) * spacing[1])[:, None]
    y = (np.arange(shape[2]) * spacing[2])[None, :]
    ex = ((x - axis_mm[0]) / radii_mm[0]) ** 2 + ((y - axis_mm[1]) / radii_mm[1]) ** 2
    lung = (((x - axis_mm[0] + radii_mm[0] / 2) / (radii_mm[0] / 4)) ** 2
            + ((y - axis_mm[1]) / (radii_mm[1] / 2)) ** 2)
    hu[:, ex <= 1] = 40.0
    hu[:, lung <= 1] = -850.0
    return Volume(hu, spacing, origin, source="phantom-case-7")


def body_box_center_mm(volume):
    tissue = np.argwhere(volume.hu > -500)
    return world(volume, (tissue.min(0) + tissue.max(0)) / 2)


@pytest.mark.parametrize("size, fov", [(16, 400.0), (32, 400.0), (24, 200.0)])
def test_prepare_volume_centres_body_at_fov_spacing(size, fov):
    spacing = (2.5, 1.6, 1.8)
    v = body_cylinder((60, 200, 160), spacing, axis_mm=(130.0, 120.0), radii_mm=(90.0, 60.0),
                      origin=(-40.0, 160.0, 80.0))
    out = prepare_volume(v, size, fov_mm=fov)
    assert out.shape == (size,) * 3 and out.hu.dtype == np.float32
    np.testing.assert_allclose(out.spacing, (fov / size,) * 3)
    # the body's bounding-box centre sits at the cube centre, and at the same world position
    tissue = np.argwhere(out.hu > -500)
    box_vox = (tissue.min(0) + tissue.max(0)) / 2
    np.testing.assert_allclose(box_vox, (size - 1) / 2, atol=1.0)
    np.testing.assert_allclose(body_box_center_mm(out), body_box_center_mm(v), atol=fov / size)
    centre_mm = world(out, ((size - 1) / 2,) * 3)
    np.testing.assert_allclose(centre_mm, body_box_center_mm(v), atol=fov / size / 2 + 1e-6)
    # the scan is 150 mm long, shorter than the cube: the end slices are air
    assert np.all(out.hu[0] == -1000.0) and np.all(out.hu[-1] == -1000.0)


def test_prepare_volume_hu_preserved_in_body():
    v = body_cylinder((40, 100, 100), (2.0, 2.0, 2.0), axis_mm=(100.0, 100.0),
                      radii_mm=(80.0, 70.0))
    out = prepare_volume(v, 16, fov_mm=200.0)
    assert out.hu[8, 8, 4] == pytest.approx(40.0, abs=1e-3)  # soft tissue in front of the lungs
    assert out.hu.min() >= -1000.0 and out.hu.max() <= 40.0 + 1e-3


@pytest.mark.parametrize("size", [4, 7, 0, 16.0, True])
def test_prepare_volume_rejects_small_size(size):
    v = body_cylinder((16, 16, 16), (1, 1, 1), (8, 8), (5, 5))
    with pytest.raises(ConfigError, match="size"):
        prepare_volume(v, size)


def test_prepare_volume_rejects_bad_fov():
    v = body_cylinder((16, 16, 16), (1, 1, 1), (8, 8), (5, 5))
    with pytest.raises(ConfigError, match="fov_mm"):
        prepare_volume(v, 8, fov_mm=-1)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_prepare_volume_rejects_non_finite_naming_source(bad):
    v = body_cylinder((16, 16, 16), (1, 1, 1), (8, 8), (5, 5))
    v.hu[3, 4, 5] = bad
    with pytest.raises(InputError, match="phantom-case-7.*1 voxels"):
        prepare_volume(v, 8)


def test_prepare_volume_rejects_empty_scan_naming_source():
    with pytest.raises(InputError, match="empty.nii.gz.*no body"):
        prepare_volume(Volume(air((16, 16, 16)), (1, 1, 1), source="empty.nii.gz"), 8)


@pytest.mark.slow
def test_prepare_volume_runtime_full_size_ct():
    v = body_cylinder((300, 512, 512), (1.25, 0.7, 0.7), axis_mm=(180.0, 170.0),
                      radii_mm=(160.0, 110.0))
    for size in (64, 128, 256):
        start = time.perf_counter()
        out = prepare_volume(v, size)
        seconds = time.perf_counter() - start
        print(f"prepare_volume 300x512x512 -> {size}^3: {seconds:.2f} s")
        assert out.shape == (size,) * 3
        assert seconds < 10.0


def test_docstring_examples_run():
    assert doctest.testmod(transforms, raise_on_error=False).failed == 0


def test_square_image_pads_centred_then_resizes():
    image = np.random.default_rng(0).random((20, 10)).astype(np.float32)
    expected = sk_resize(np.pad(image, ((0, 0), (5, 5))), (8, 8), order=1, anti_aliasing=True)
    np.testing.assert_allclose(transforms.square_image(image, 8), expected, atol=1e-6)
