"""Tests of xprospect_tf.data.projection against independent numpy references."""

import doctest

import numpy as np
import pytest

from xprospect_tf.data import projection
from xprospect_tf.data.projection import attenuation, back_projection, drr, mean_projections
from xprospect_tf.data.volume import canonical_affine
from xprospect_tf.errors import ConfigError, InputError

# ---------------------------------------------------------------- mean projections


@pytest.mark.parametrize("shape", [(8, 9, 10), (2, 8, 9, 10), (2, 3, 4, 5, 6)])
def test_mean_projections_match_numpy(shape, rng):
    vol = rng.uniform(size=shape)
    ap, lat = mean_projections(vol)
    assert ap.dtype == lat.dtype == np.float32
    assert ap.shape == shape[:-1] and lat.shape == shape[:-2] + shape[-1:]
    np.testing.assert_allclose(ap, np.einsum("...zxy->...zx", vol) / shape[-1], atol=1e-6)
    np.testing.assert_allclose(lat, np.einsum("...zxy->...zy", vol) / shape[-2], atol=1e-6)
    assert 0.0 <= ap.min() and ap.max() <= 1.0 and 0.0 <= lat.min() and lat.max() <= 1.0


@pytest.mark.parametrize("project", [mean_projections, lambda v: drr(v * 2000 - 1000, 1.0)])
def test_marker_at_patient_right_anterior_lands_in_column_0(project):
    shape = (6, 7, 8)
    # Pick the most Right (+R) and most Anterior (+A) voxel from the RAS+ affine alone.
    affine = canonical_affine((1.0, 1.0, 1.0))
    x = int(np.argmax(affine[0, :3] @ np.stack([np.zeros(7), np.arange(7), np.zeros(7)])))
    y = int(np.argmax(affine[1, :3] @ np.stack([np.zeros(8), np.zeros(8), np.arange(8)])))
    z = 2
    vol = np.zeros(shape, np.float32)
    vol[z, x, y] = 1.0
    ap, lat = project(vol)
    assert np.unravel_index(np.argmax(ap), ap.shape) == (2, 0)  # frontal: column 0 = right
    assert np.unravel_index(np.argmax(lat), lat.shape) == (2, 0)  # lateral: column 0 = anterior


def test_mean_projections_reject_2d():
    with pytest.raises(InputError, match="mean_projections"):
        mean_projections(np.zeros((4, 4)))


# ---------------------------------------------------------------- DRR


def beer_lambert_display(thickness_mm, hu, mu_water=0.02, full_scale_mm=400.0):
    """Independent reference: transmitted fraction through a uniform slab, then -ln / full scale."""
    transmitted = np.exp(-mu_water * (1 + hu / 1000.0) * thickness_mm)
    return -np.log(transmitted) / (mu_water * full_scale_mm)


def slab_volume(shape, axis, n_voxels, hu):
    vol = np.full(shape, -1000.0, np.float32)
    index = [slice(None)] * 3
    index[axis] = slice(3, 3 + n_voxels)
    vol[tuple(index)] = hu
    return vol


@pytest.mark.parametrize("hu, thickness_mm", [(0.0, 100.0), (1000.0, 50.0), (-500.0, 200.0),
                                               (40.0, 300.0)])
def test_drr_frontal_matches_beer_lambert_slab(hu, thickness_mm):
    spacing = (3.0, 2.0, 2.5)  # (z, x, y): the frontal ray runs along y
    vol = slab_volume((4, 5, 140), axis=2, n_voxels=int(thickness_mm / 2.5), hu=hu)
    ap, lat = drr(vol, spacing)
    assert ap.shape == (4, 5) and lat.shape == (4, 140)
    np.testing.assert_allclose(ap, beer_lambert_display(thickness_mm, hu), rtol=1e-5)


def test_drr_lateral_uses_x_spacing():
    vol = slab_volume((4, 60, 5), axis=1, n_voxels=40, hu=0.0)  # 40 voxels * 2 mm = 80 mm
    ap, lat = drr(vol, (3.0, 2.0, 2.5))
    np.testing.assert_allclose(lat, beer_lambert_display(80.0, 0.0), rtol=1e-5)


def test_drr_100mm_water_transmits_exp_minus_2():
    vol = np.zeros((2, 3, 10), np.float32)  # 10 voxels * 10 mm of water along y
    ap, _ = drr(vol, 10.0, mu_water=0.02, full_scale_mm=400.0)
    transmitted = np.exp(-ap * 0.02 * 400.0)  # undo the documented display mapping
    np.testing.assert_allclose(transmitted, np.exp(-0.02 * 100), rtol=1e-5)


def test_drr_air_and_padding_are_black_and_thick_body_saturates():
    ap, lat = drr(np.full((3, 4, 5), -3024.0), 1.0)
    assert np.all(ap == 0) and np.all(lat == 0)
    ap, _ = drr(np.zeros((2, 2, 300)), 2.0)  # 600 mm of water > 400 mm full scale
    assert np.all(ap == 1.0)


def test_drr_is_monotonic_in_density(rng):
    base = rng.uniform(-1000, 500, size=(6, 8, 10)).astype(np.float32)
    denser = base.copy()
    denser[2:4, 3:5, :] += 300.0
    ap0, lat0 = drr(base, 1.5)
    ap1, lat1 = drr(denser, 1.5)
    assert np.all(ap1[2:4, 3:5] > ap0[2:4, 3:5]) and np.all(lat1[2:4] > lat0[2:4])
    np.testing.assert_array_equal(ap1[:2], ap0[:2])
    np.testing.assert_array_equal(np.delete(ap1, [3, 4], axis=1), np.delete(ap0, [3, 4], axis=1))


def test_drr_gamma_and_range(rng):
    hu = rng.uniform(-1000, 1500, size=(2, 5, 6, 7)).astype(np.float32)  # batched
    ap1, lat1 = drr(hu, (1.0, 4.0, 4.0))
    ap2, lat2 = drr(hu, (1.0, 4.0, 4.0), gamma=0.5)
    assert ap1.shape == (2, 5, 6) and lat1.shape == (2, 5, 7) and ap1.dtype == np.float32
    for img in (ap1, lat1, ap2, lat2):
        assert img.min() >= 0.0 and img.max() <= 1.0
    np.testing.assert_allclose(ap2, np.sqrt(ap1), rtol=1e-5)
    np.testing.assert_allclose(lat2, np.sqrt(lat1), rtol=1e-5)


def test_attenuation_formula():
    hu = np.array([-3000.0, -1000.0, 0.0, 1000.0])
    np.testing.assert_allclose(attenuation(hu, 0.025), [0.0, 0.0, 0.025, 0.05], atol=1e-7)


@pytest.mark.parametrize("kwargs", [{"mu_water": 0}, {"full_scale_mm": -1}, {"gamma": np.nan}])
def test_drr_rejects_bad_parameters(kwargs):
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        drr(np.zeros((2, 2, 2)), 1.0, **kwargs)


@pytest.mark.parametrize("spacing", [0.0, (1.0, -1.0, 1.0), (1.0, 2.0)])
def test_drr_rejects_bad_spacing(spacing):
    with pytest.raises(ConfigError, match="spacing_mm"):
        drr(np.zeros((2, 2, 2)), spacing)


# ---------------------------------------------------------------- back-projection


def test_back_projection_inverts_mean_projections_for_ray_constant_volume(rng):
    profile = rng.uniform(size=(9, 1, 1))  # depends on z only: constant along every ray
    vol = np.broadcast_to(profile, (9, 7, 5)).astype(np.float32)
    np.testing.assert_allclose(back_projection(*mean_projections(vol)), vol, atol=1e-6)


def test_back_projection_smears_each_view_along_its_ray(rng):
    ap = rng.uniform(size=(4, 5))
    lat = rng.uniform(size=(4, 6))
    vol = back_projection(ap, lat)
    assert vol.shape == (4, 5, 6) and vol.dtype == np.float32
    for z, x, y in np.ndindex(vol.shape):
        assert vol[z, x, y] == pytest.approx((ap[z, x] + lat[z, y]) / 2, abs=1e-6)
    assert 0.0 <= vol.min() and vol.max() <= 1.0


def test_back_projection_batched(rng):
    ap, lat = rng.uniform(size=(3, 4, 5)), rng.uniform(size=(3, 4, 6))
    vol = back_projection(ap, lat)
    assert vol.shape == (3, 4, 5, 6)
    np.testing.assert_allclose(vol[1], back_projection(ap[1], lat[1]))


@pytest.mark.parametrize("ap_shape, lat_shape",
                         [((4, 5), (3, 5)), ((4, 5, 1), (4, 6, 1)), ((5,), (5,))])
def test_back_projection_rejects_mismatched_images(ap_shape, lat_shape):
    with pytest.raises(InputError, match="back_projection"):
        back_projection(np.zeros(ap_shape), np.zeros(lat_shape))


def test_docstring_examples_run():
    assert doctest.testmod(projection, raise_on_error=False).failed == 0
