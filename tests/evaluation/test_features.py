import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from scipy import ndimage

from xprospect_tf.errors import ConfigError, InputError
from xprospect_tf.evaluation import features as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _smooth_volume(rng, size=12):
    """A smooth volume in [0, 1]: blurred noise, rescaled."""
    v = ndimage.gaussian_filter(rng.random((size, size, size)), 1.5)
    return (v - v.min()) / (v.max() - v.min())


def _kernels(network):
    return [w for w in network.get_weights()]


def _numpy_maps(network, volume):
    """The network's feature maps of one (D, H, W) volume, one call per volume, float64."""
    outputs = network(volume[None, ..., None].astype(np.float32))
    return [keras.ops.convert_to_numpy(f)[0].astype(np.float64) for f in outputs]


# -- the network ---------------------------------------------------------------------------------


def test_same_seed_gives_bit_identical_weights_different_seed_does_not():
    first, second = F.feature_network(F.FEATURE_SEED), F.feature_network(F.FEATURE_SEED)
    other = F.feature_network(F.LOSS_FEATURE_SEED)
    assert F.FEATURE_SEED != F.LOSS_FEATURE_SEED
    assert len(_kernels(first)) == len(F.FEATURE_WIDTHS)
    for a, b, c in zip(_kernels(first), _kernels(second), _kernels(other)):
        assert a.tobytes() == b.tobytes()
        assert a.shape == c.shape and not np.any(a == c)


def test_network_is_frozen_with_one_output_per_stage_at_halving_resolution():
    net = F.feature_network(widths=(3, 5, 7))
    assert net.trainable_weights == [] and len(net.non_trainable_weights) == 3
    maps = net(np.zeros((2, 16, 12, 8, 1), np.float32))
    assert [tuple(m.shape) for m in maps] == [(2, 16, 12, 8, 3), (2, 8, 6, 4, 5), (2, 4, 3, 2, 7)]


def test_kernels_have_he_normal_scale():
    for i, kernel in enumerate(_kernels(F.feature_network())):
        fan_in = 27 * kernel.shape[3]
        assert kernel.shape[:3] == (3, 3, 3) and kernel.shape[4] == F.FEATURE_WIDTHS[i]
        assert kernel.std() == pytest.approx(np.sqrt(2.0 / fan_in), rel=0.1)
        assert abs(kernel.mean()) < 0.1 * np.sqrt(2.0 / fan_in)


def test_network_matches_scipy_reimplementation_of_its_design(rng):
    net = F.feature_network(seed=3, widths=(2, 3))
    k0, k1 = _kernels(net)
    volume = rng.random((8, 8, 8))

    def conv_leaky(x, kernel):  # Conv3D 'same' (cross-correlation, zero padding), no bias, LeakyReLU(0.2)
        out = np.stack([
            sum(ndimage.correlate(x[..., c], kernel[..., c, o].astype(np.float64), mode="constant")
                for c in range(x.shape[-1]))
            for o in range(kernel.shape[-1])
        ], axis=-1)
        return np.where(out > 0, out, 0.2 * out)

    stage0 = conv_leaky((2 * volume - 1)[..., None], k0)
    pooled = stage0.reshape(4, 2, 4, 2, 4, 2, 2).mean(axis=(1, 3, 5))
    stage1 = conv_leaky(pooled, k1)
    got = _numpy_maps(net, volume)
    np.testing.assert_allclose(got[0], stage0, atol=1e-5)
    np.testing.assert_allclose(got[1], stage1, atol=1e-5)


def test_weights_loss_and_gradient_agree_in_another_process_under_jax(tmp_path):
    """Same seed, same weights in a fresh JAX process; the loss is backend-agnostic, and its gradient is
    finite where a feature vector is exactly 0 (JAX's sqrt'(0) would give NaN without the norm's floor)."""
    pytest.importorskip("jax")
    script = (
        "import sys; sys.modules['tensorflow'] = None\n"
        "import numpy as np, keras, jax, jax.numpy as jnp\n"
        "from xprospect_tf.evaluation.features import feature_network, perceptual_loss\n"
        "assert keras.backend.backend() == 'jax'\n"
        "net = feature_network(0)\n"
        "x = np.load(sys.argv[1])\n"
        "grad = jax.grad(lambda p: perceptual_loss(net, p, x[1]))(jnp.full(x[0].shape, 0.5))\n"
        "np.savez(sys.argv[2], loss=np.asarray(perceptual_loss(net, x[0], x[1])), grad=np.asarray(grad),\n"
        "         *net.get_weights())\n"
    )
    rng = np.random.default_rng(1)
    x = rng.random((2, 2, 8, 8, 8, 1)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "x.npy"), str(tmp_path / "out.npz")],
                   check=True, env=env, timeout=120)
    out = np.load(tmp_path / "out.npz")
    net = F.feature_network(0)
    for i, kernel in enumerate(_kernels(net)):
        assert out[f"arr_{i}"].tobytes() == kernel.tobytes()
    assert float(out["loss"]) == pytest.approx(float(F.perceptual_loss(net, x[0], x[1])), rel=1e-4)
    assert np.all(np.isfinite(out["grad"])) and np.abs(out["grad"]).max() > 0


def test_feature_network_saves_and_reloads_with_identical_outputs(tmp_path, rng):
    net = F.feature_network(F.LOSS_FEATURE_SEED, widths=(2, 4))
    net.save(tmp_path / "features.keras")
    loaded = keras.models.load_model(tmp_path / "features.keras")
    x = rng.random((1, 8, 8, 8, 1)).astype(np.float32)
    assert loaded.trainable_weights == []
    for a, b in zip(net(x), loaded(x)):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


@pytest.mark.parametrize("kwargs", [{"seed": -1}, {"seed": 0.5}, {"widths": ()}, {"widths": (8, 0)}])
def test_feature_network_rejects_bad_arguments(kwargs):
    with pytest.raises(ConfigError):
        F.feature_network(**kwargs)


# -- perceptual distance and loss ----------------------------------------------------------------


def test_perceptual_distance_is_zero_for_identical_volumes(rng):
    v = _smooth_volume(rng)
    assert F.perceptual_distance(v, v) == 0.0
    assert F.perceptual_distance(v, 1 - v) > 0.01


def test_perceptual_distance_grows_with_noise_and_is_symmetric(rng):
    truth = _smooth_volume(rng, 16)
    noise = rng.standard_normal(truth.shape)
    slightly = np.clip(truth + 0.05 * noise, 0, 1)
    heavily = np.clip(truth + 0.3 * noise, 0, 1)
    assert 0 < F.perceptual_distance(slightly, truth) < F.perceptual_distance(heavily, truth)
    assert F.perceptual_distance(truth, heavily) == pytest.approx(F.perceptual_distance(heavily, truth), rel=1e-6)


def test_perceptual_distance_matches_numpy_reimplementation(rng):
    net = F.feature_network(seed=5)
    truth = _smooth_volume(rng)
    pred = np.clip(truth + 0.1 * rng.standard_normal(truth.shape), 0, 1)
    per_stage = []
    for fp, ft in zip(_numpy_maps(net, pred), _numpy_maps(net, truth)):
        fp = fp / (np.linalg.norm(fp, axis=-1, keepdims=True) + 1e-10)
        ft = ft / (np.linalg.norm(ft, axis=-1, keepdims=True) + 1e-10)
        per_stage.append(((fp - ft) ** 2).sum(axis=-1).mean())
    expected = sum(per_stage) / len(per_stage)
    assert F.perceptual_distance(pred, truth, net) == pytest.approx(expected, rel=1e-5)
    assert F.perceptual_distance(pred[..., None], truth[..., None], net) == pytest.approx(expected, rel=1e-5)


def test_perceptual_distance_default_network_is_the_feature_seed_network(rng):
    truth = _smooth_volume(rng, 8)
    pred = np.clip(truth + 0.2 * rng.standard_normal(truth.shape), 0, 1)
    default = F.perceptual_distance(pred, truth)
    assert default == F.perceptual_distance(pred, truth, F.feature_network(F.FEATURE_SEED))
    assert default != F.perceptual_distance(pred, truth, F.feature_network(F.LOSS_FEATURE_SEED))


def test_perceptual_distance_errors():
    with pytest.raises(InputError, match=r"\(8, 8, 8\).*\(8, 8, 9\)"):
        F.perceptual_distance(np.zeros((8, 8, 8)), np.zeros((8, 8, 9)))
    with pytest.raises(InputError, match="at least 4 voxels"):
        F.perceptual_distance(np.zeros((2, 8, 8)), np.zeros((2, 8, 8)))
    with pytest.raises(InputError, match="shape"):
        F.perceptual_distance(np.zeros((8, 8)), np.zeros((8, 8)))


def test_perceptual_loss_is_the_batch_mean_of_perceptual_distance(rng):
    net = F.feature_network(F.LOSS_FEATURE_SEED)
    truth = np.stack([_smooth_volume(rng) for _ in range(3)])
    pred = np.clip(truth + rng.uniform(0.02, 0.3, (3, 1, 1, 1)) * rng.standard_normal(truth.shape), 0, 1)
    expected = np.mean([F.perceptual_distance(p, t, net) for p, t in zip(pred, truth)])
    loss = F.perceptual_loss(net, pred[..., None].astype(np.float32), truth[..., None].astype(np.float32))
    assert tuple(loss.shape) == ()
    assert float(loss) == pytest.approx(expected, rel=1e-4)
    assert float(F.perceptual_loss(net, pred.astype(np.float32), truth.astype(np.float32))) == pytest.approx(
        expected, rel=1e-4)


def test_perceptual_loss_gradient_is_finite_even_for_all_zero_features(rng):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("gradient taken with tf.GradientTape")
    import tensorflow as tf

    net = F.feature_network(F.LOSS_FEATURE_SEED, widths=(4, 8))
    truth = tf.constant(_smooth_volume(rng, 8)[None, ..., None], tf.float32)
    # 0.5 maps to 0 in [-1, 1]: stage 0's features are exactly 0, where the norm's sqrt has no derivative
    for start in (np.full((1, 8, 8, 8, 1), 0.5), rng.random((1, 8, 8, 8, 1))):
        pred = tf.Variable(start.astype(np.float32))
        with tf.GradientTape() as tape:
            loss = F.perceptual_loss(net, pred, truth)
        grad = tape.gradient(loss, pred).numpy()
        assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0


# -- volume features and the Fréchet distance ----------------------------------------------------


def test_volume_features_are_spatial_means_of_every_stage(rng):
    net = F.feature_network(seed=2)
    volumes = np.stack([_smooth_volume(rng, 8) for _ in range(5)])
    expected = np.stack([np.concatenate([m.mean(axis=(0, 1, 2)) for m in _numpy_maps(net, v)]) for v in volumes])
    got = F.volume_features(volumes, net, batch_size=2)
    assert got.shape == (5, sum(F.FEATURE_WIDTHS))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(F.volume_features(list(volumes[..., None]), net, batch_size=4), expected,
                               rtol=1e-5, atol=1e-7)


def test_volume_features_errors():
    with pytest.raises(InputError, match="differ in shape"):
        F.volume_features([np.zeros((8, 8, 8)), np.zeros((8, 8, 10))])
    with pytest.raises(InputError, match="no volumes"):
        F.volume_features([])
    with pytest.raises(InputError, match=r"\(8, 8, 8\)"):
        F.volume_features(np.zeros((8, 8, 8)))
    with pytest.raises(ConfigError):
        F.volume_features(np.zeros((1, 8, 8, 8)), batch_size=0)


def _exact_moments(rng, mean, variances, n):
    """n samples whose sample mean is ``mean`` and sample covariance (ddof=1) is ``diag(variances)`` exactly."""
    z = rng.standard_normal((n, len(mean)))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T
    return np.asarray(mean) + z * np.sqrt(variances)


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians(rng):
    mu_a, s_a = np.array([0.0, 1.0, -2.0, 0.5]), np.array([1.0, 0.25, 4.0, 2.0])
    mu_b, s_b = np.array([0.5, 1.0, 1.0, 0.0]), np.array([2.0, 0.25, 1.0, 0.1])
    a, b = _exact_moments(rng, mu_a, s_a, 200), _exact_moments(rng, mu_b, s_b, 300)
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum(s_a + s_b - 2 * np.sqrt(s_a * s_b))
    assert F.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_one_feature_is_mean_and_std_difference(rng):
    a, b = rng.normal(0, 1, (40, 1)), rng.normal(1, 3, (25, 1))
    expected = (a.mean() - b.mean()) ** 2 + (a.std(ddof=1) - b.std(ddof=1)) ** 2
    assert F.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def _frechet_by_eigendecomposition(a, b):
    """Tr sqrtm(Ca Cb) = Tr sqrtm(Ca^1/2 Cb Ca^1/2), a symmetric PSD matrix: its eigenvalues' square roots."""
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(ca)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = root_a @ cb @ root_a
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    diff = a.mean(axis=0) - b.mean(axis=0)
    return diff @ diff + np.trace(ca) + np.trace(cb) - 2 * trace_root


@pytest.mark.parametrize("n_a, n_b, dims", [(50, 40, 5), (6, 9, 12)])  # full rank; rank-deficient (N <= F)
def test_frechet_distance_matches_eigendecomposition_route(rng, n_a, n_b, dims):
    mix_a, mix_b = rng.standard_normal((dims, dims)), rng.standard_normal((dims, dims))
    a = rng.standard_normal((n_a, dims)) @ mix_a
    b = rng.standard_normal((n_b, dims)) @ mix_b + 0.5
    assert F.frechet_distance(a, b) == pytest.approx(_frechet_by_eigendecomposition(a, b), rel=1e-6)


def test_frechet_distance_is_zero_for_identical_sets_and_symmetric(rng):
    a = rng.standard_normal((20, 6)) @ rng.standard_normal((6, 6))
    b = rng.standard_normal((15, 6))
    assert F.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert F.frechet_distance(a, a) >= 0.0
    assert F.frechet_distance(a, b) > 1.0
    assert F.frechet_distance(a, b) == pytest.approx(F.frechet_distance(b, a), rel=1e-9)


def test_frechet_distance_of_volume_features_grows_with_noise(rng):
    clean = np.stack([_smooth_volume(rng, 8) for _ in range(6)])
    noise = rng.standard_normal(clean.shape)
    reference = F.volume_features(clean)
    slightly = F.volume_features(np.clip(clean + 0.05 * noise, 0, 1))
    heavily = F.volume_features(np.clip(clean + 0.3 * noise, 0, 1))
    assert F.frechet_distance(reference, slightly) < F.frechet_distance(reference, heavily)


def test_frechet_distance_errors(rng):
    with pytest.raises(InputError, match="1 sample"):
        F.frechet_distance(rng.random((1, 3)), rng.random((5, 3)))
    with pytest.raises(InputError, match="at least 2"):
        F.frechet_distance(rng.random((5, 3)), rng.random((1, 3)))
    with pytest.raises(InputError, match=r"\(5, 3\) and \(5, 4\)"):
        F.frechet_distance(rng.random((5, 3)), rng.random((5, 4)))
    with pytest.raises(InputError, match="2-D"):
        F.frechet_distance(rng.random(5), rng.random(5))



def test_frechet_distance_of_a_set_without_spread_is_finite_and_exact():
    """A model predicting one volume for every case: its features have zero covariance, and the
    distance is ||mu_a - mu_b||^2 + Tr(C_b) (the closed form when C_a = 0)."""
    rng = np.random.default_rng(1)
    for features in (5, 56):  # 56 > 8 samples: a rank-deficient product, where sqrtm gives NaN
        b = rng.standard_normal((8, features))
        a = np.tile(rng.standard_normal(features), (8, 1))
        expected = float(np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(np.cov(b, rowvar=False)))
        assert np.isclose(F.frechet_distance(a, b), expected)
        assert np.isclose(F.frechet_distance(b, a), expected)


def test_frechet_distance_falls_back_to_the_symmetric_form_where_sqrtm_fails(monkeypatch):
    """Where sqrtm(C_a C_b) comes back non-finite (seen on a constant predictor's 56 features),
    the trace comes from Tr(sqrt(sqrt(C_a) C_b sqrt(C_a))): the same value sqrtm gives where it works."""
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((30, 6)), rng.standard_normal((30, 6)) * 2 + 1
    expected = F.frechet_distance(a, b)
    monkeypatch.setattr(F.linalg, "sqrtm", lambda m: np.full_like(m, np.nan))
    assert np.isclose(F.frechet_distance(a, b), expected, rtol=1e-9)
