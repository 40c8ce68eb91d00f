"""The diffusion family: schedules against their formulas, the samplers against DDPM, the networks."""

import math

import keras
import numpy as np
import pytest

from xprospect_tf.models.diffusion import build_denoiser, build_diffusion_model
from xprospect_tf.models.diffusion import schedule as sched

S = 8  # tiny cubes: the tests check maths and wiring, not quality


def tiny_model(**kwargs):
    args = dict(channels=(4, 8), embed_dim=8, encoder_filters=4, timesteps=20, sample_steps=5,
                perceptual_weight=0.0, adversarial_weight=0.0, attention=False)
    args.update(kwargs)
    return build_diffusion_model(S, **args)


def xrays(rng, n=2):
    return {"frontal": rng.random((n, S, S, 1)).astype("float32"),
            "lateral": rng.random((n, S, S, 1)).astype("float32")}


# -- schedules -------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(sched.SCHEDULES))
def test_schedules_are_variance_preserving_and_decreasing(name):
    a = sched.alpha_bars(name, 1000)
    signal, noise = sched.signal_noise(a)
    assert np.allclose(signal**2 + noise**2, 1.0)
    assert np.all(np.diff(a) < 0) and 0 < a[-1] < a[0] < 1


def test_cosine_schedule_matches_nichol_and_dhariwal():
    T, s = 1000, 0.008
    f = [math.cos(((t / T) + s) / (1 + s) * math.pi / 2) ** 2 for t in range(T + 1)]
    expected = np.array([f[t + 1] / f[0] for t in range(T)])
    got = sched.cosine_alpha_bars(T)
    unclipped = np.array([1 - f[t + 1] / f[t] for t in range(T)]) < sched.MAX_BETA
    assert np.allclose(got[unclipped], expected[unclipped], rtol=1e-10, atol=0)


def test_linear_schedule_is_ddpms_betas():
    a = sched.linear_alpha_bars(1000)
    betas = 1 - a / np.concatenate([[1.0], a[:-1]])
    assert np.allclose(betas, np.linspace(1e-4, 0.02, 1000))


@pytest.mark.parametrize("shift", [0.0625, 0.5, 2.0])
def test_snr_shift_scales_every_steps_signal_to_noise_ratio(shift):
    a = sched.alpha_bars("cosine", 1000)
    shifted = sched.alpha_bars("cosine", 1000, shift)
    snr = lambda x: x / (1 - x)  # noqa: E731
    assert np.allclose(snr(shifted), shift * snr(a), rtol=1e-9)
    signal, noise = sched.signal_noise(shifted)
    assert np.allclose(signal**2 + noise**2, 1.0) and np.all(np.diff(shifted) < 0)
    assert np.array_equal(sched.alpha_bars("cosine", 1000, 1.0), a)


def test_snr_shift_must_be_positive():
    with pytest.raises(Exception, match="snr_shift"):
        sched.alpha_bars("cosine", 10, 0.0)


def test_standardized_model_diffuses_the_deviation_from_the_training_mean(rng, tmp_path):
    model = tiny_model(standardize=True)
    volumes = [rng.random((3, S, S, S, 1)).astype("float32") * 0.5 + 0.2 for _ in range(2)]
    model.fit_standardization(iter(volumes))
    pixels = np.concatenate(volumes) * 2 - 1
    codes = np.asarray(model.to_latent(pixels))
    np.testing.assert_allclose(np.asarray(model.data_mean), pixels.mean(0), atol=1e-6)
    np.testing.assert_allclose(codes.mean(0), 0.0, atol=1e-5)
    assert abs(codes.std() - 1.0) < 1e-4
    np.testing.assert_allclose(np.asarray(model.from_latent(codes)), pixels, atol=1e-5)
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    x = xrays(rng)
    np.testing.assert_allclose(again.sample(x, seed=3), model.sample(x, seed=3), atol=1e-6)
    noise = rng.standard_normal((2, S, S, S, 1)).astype("float32")
    np.testing.assert_allclose(np.asarray(model.ddim(x, noise)), model.sample(x, eta=0.0, noise=noise), atol=1e-4)


def test_q_sample_has_the_closed_form_moments(rng):
    a, x0 = 0.3, 0.7
    x_t = sched.q_sample(np.full(200_000, x0), a, rng.standard_normal(200_000))
    assert abs(x_t.mean() - math.sqrt(a) * x0) < 0.01
    assert abs(x_t.var() - (1 - a)) < 0.01


def test_ddim_with_eta_1_over_every_step_is_ddpms_posterior(rng):
    """x_{t-1} = sqrt(a_p) x0 + sqrt(1 - a_p - sigma^2) eps + sigma z has DDPM's posterior
    mean and variance (Ho et al., 2020, eq. 7) when eps = (x_t - sqrt(a_t) x0) / sqrt(1 - a_t)."""
    a = sched.cosine_alpha_bars(50)
    steps = sched.sampling_timesteps(50, 50)
    assert steps.tolist() == list(range(49, -1, -1))
    a_t, a_p, sigma = sched.step_coefficients(a, steps, eta=1.0)
    x0, x_t = rng.standard_normal(5), rng.standard_normal(5)
    for i in range(len(steps) - 1):
        beta = 1 - a_t[i] / a_p[i]
        mean_ddpm = (math.sqrt(a_p[i]) * beta / (1 - a_t[i]) * x0
                     + math.sqrt(1 - beta) * (1 - a_p[i]) / (1 - a_t[i]) * x_t)
        var_ddpm = (1 - a_p[i]) / (1 - a_t[i]) * beta
        eps = (x_t - math.sqrt(a_t[i]) * x0) / math.sqrt(1 - a_t[i])
        mean_ddim = math.sqrt(a_p[i]) * x0 + math.sqrt(1 - a_p[i] - sigma[i] ** 2) * eps
        assert np.allclose(mean_ddim, mean_ddpm) and np.isclose(sigma[i] ** 2, var_ddpm)
    assert sigma[-1] == 0.0  # the last step returns x0


def test_ddim_with_eta_0_adds_no_noise():
    _, _, sigma = sched.step_coefficients(sched.cosine_alpha_bars(100), sched.sampling_timesteps(100, 10), 0.0)
    assert np.all(sigma == 0)


# -- networks ----------------------------------------------------------------------


def test_denoiser_output_shape_and_attention_layer():
    net = build_denoiser(16, channels=(4, 8, 8), condition_dim=6, attention=True)
    out = net([np.zeros((3, 16, 16, 16, 1)), np.arange(3.0), np.zeros((3, 6))])
    assert tuple(out.shape) == (3, 16, 16, 16, 1)
    assert any(isinstance(layer, keras.layers.MultiHeadAttention) for layer in net.layers)


def test_denoiser_refuses_a_size_its_levels_cannot_halve():
    with pytest.raises(ValueError, match="odd side"):
        build_denoiser(12, channels=(4, 8, 8, 8))


def test_the_denoiser_takes_a_latent_grid_of_compressed_slices():
    net = build_denoiser((16, 4, 4), channels=(4, 8, 8), condition_dim=6, in_channels=3)
    out = net([np.zeros((2, 16, 4, 4, 3)), np.arange(2.0), np.zeros((2, 6))])
    assert tuple(out.shape) == (2, 16, 4, 4, 3)


def fit_tiny(model, rng, epochs=12, lr=3e-3):
    x = xrays(rng, 4)
    y = rng.random((4, S, S, S, 1)).astype("float32") * 0.3
    model.compile(optimizer=keras.optimizers.Adam(lr), run_eagerly=True)
    history = model.fit((x["frontal"], x["lateral"]), y, batch_size=4, epochs=epochs, verbose=0)
    return history.history, x, y


def test_training_lowers_the_loss_on_a_tiny_batch(rng):
    keras.utils.set_random_seed(0)
    history, _, _ = fit_tiny(tiny_model(), rng, epochs=30)
    assert np.mean(history["l1"][-5:]) < 0.8 * np.mean(history["l1"][:5])


def test_the_xray_changes_the_prediction_and_a_frontal_row_ignores_the_lateral(rng):
    keras.utils.set_random_seed(0)
    for views in (("frontal", "lateral"), ("frontal",)):
        model = tiny_model(views=views)
        _, x, _ = fit_tiny(model, rng, epochs=3)
        other = dict(x, frontal=x["frontal"][::-1])
        assert not np.allclose(model.sample(x, seed=1), model.sample(other, seed=1), atol=1e-4)
        lateral_swapped = dict(x, lateral=x["lateral"][::-1])
        same = np.allclose(model.sample(x, seed=1), model.sample(lateral_swapped, seed=1))
        assert same == (views == ("frontal",))


def test_sampling_is_repeatable_by_seed_and_survives_save_and_reload(rng, tmp_path):
    keras.utils.set_random_seed(0)
    model = tiny_model(eta=1.0)
    _, x, _ = fit_tiny(model, rng, epochs=2)
    a, b = model.sample(x, seed=3), model.sample(x, seed=3)
    assert np.array_equal(a, b)
    assert not np.allclose(a, model.sample(x, seed=4))
    assert a.shape == (4, S, S, S, 1) and a.min() >= 0 and a.max() <= 1
    model.save(tmp_path / "d.keras")
    again = keras.models.load_model(tmp_path / "d.keras")
    assert np.allclose(again.sample(x, seed=3), a, atol=1e-6)


def test_ddim_eta_1_over_all_steps_samples_like_an_independent_ddpm_sampler(rng):
    """The same trained denoiser sampled by DDIM (eta 1, every step) and by a DDPM ancestral
    loop written here from Ho et al. (2020) gives volumes with the same per-voxel mean and spread."""
    keras.utils.set_random_seed(0)
    T = 10
    model = tiny_model(timesteps=T)
    _, x, _ = fit_tiny(model, rng, epochs=4)
    n = 48
    batch = {k: np.repeat(v[:1], n, axis=0) for k, v in x.items()}
    ddim = model.sample(batch, steps=T, eta=1.0, seed=0)
    cond = np.asarray(model.encoder(batch))
    a = model.alpha_bars
    xt = rng.standard_normal((n, S, S, S, 1))
    for t in range(T - 1, -1, -1):
        eps = np.asarray(model.denoiser([xt.astype("float32"), np.full((n,), float(t), "float32"), cond]))
        x0 = np.clip((xt - math.sqrt(1 - a[t]) * eps) / math.sqrt(a[t]), -1, 1)
        if t == 0:
            xt = x0
            break
        beta = 1 - a[t] / a[t - 1]
        mean = (math.sqrt(a[t - 1]) * beta / (1 - a[t]) * x0
                + math.sqrt(1 - beta) * (1 - a[t - 1]) / (1 - a[t]) * xt)
        xt = mean + math.sqrt((1 - a[t - 1]) / (1 - a[t]) * beta) * rng.standard_normal(xt.shape)
    ddpm = (np.clip(xt, -1, 1) + 1) / 2
    assert abs(ddim.mean() - ddpm.mean()) < 0.02
    assert abs(ddim.std(axis=0).mean() - ddpm.std(axis=0).mean()) < 0.02
    assert np.abs(ddim.mean(axis=0) - ddpm.mean(axis=0)).mean() < 0.1


def test_guidance_1_is_the_conditional_prediction_and_other_scales_extrapolate(rng):
    model = tiny_model(condition_dropout=0.5)
    fit_tiny(model, rng, epochs=2)
    xt = rng.standard_normal((2, S, S, S, 1)).astype("float32")
    cond = rng.standard_normal((2, 8)).astype("float32")
    c = np.asarray(model.denoiser([xt, np.full((2,), 5.0, "float32"), cond]))
    u = np.asarray(model.denoiser([xt, np.full((2,), 5.0, "float32"), np.zeros_like(cond)]))
    assert np.allclose(model._predict(xt, 5, cond, 1.0), c, atol=1e-5)
    assert np.allclose(model._predict(xt, 5, cond, 3.0), u + 3.0 * (c - u), atol=1e-4)


def test_each_adversarial_term_reaches_only_its_own_network():
    tf = pytest.importorskip("tensorflow")
    model = tiny_model(adversarial_weight=0.001)
    x0 = tf.random.uniform((2, S, S, S, 1), -1, 1)
    x0_hat = tf.Variable(tf.random.uniform((2, S, S, S, 1), -1, 1))
    disc_vars = model.discriminator.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        adversarial, discriminator = model._adversarial_terms(x0, x0_hat)
    assert all(g is None or not np.any(g) for g in tape.gradient(adversarial, disc_vars))
    assert np.any(tape.gradient(adversarial, x0_hat))
    assert any(g is not None and np.any(g) for g in tape.gradient(discriminator, disc_vars))
    assert tape.gradient(discriminator, x0_hat) is None


def test_the_losses_logged_are_the_switched_on_terms(rng):
    model = tiny_model(perceptual_weight=0.01, adversarial_weight=0.001)
    history, _, _ = fit_tiny(model, rng, epochs=1)
    assert set(history) == {"loss", "l1", "perceptual", "adversarial", "discriminator"}
    expected = history["l1"][0] + 0.01 * history["perceptual"][0] + 0.001 * (
        history["adversarial"][0] + history["discriminator"][0])
    assert np.isclose(history["loss"][0], expected, rtol=1e-4)


def test_a_missing_view_is_named(rng):
    from xprospect_tf.errors import InputError

    with pytest.raises(InputError, match="lateral"):
        tiny_model().sample({"frontal": xrays(rng)["frontal"]})


def test_the_traced_ddim_equals_the_numpy_sampler_and_the_savedmodel_serves_it(rng, tmp_path):
    tf = pytest.importorskip("tensorflow")
    from xprospect_tf.export import export_model

    keras.utils.set_random_seed(0)
    model = tiny_model(views=("frontal",), guidance=2.0, condition_dropout=0.3)
    _, x, _ = fit_tiny(model, rng, epochs=2)
    noise = rng.standard_normal((4, S, S, S, 1)).astype("float32")
    expected = model.sample(x, eta=0.0, noise=noise)
    traced = np.asarray(model.ddim(x, noise))  # float32 throughout; the numpy sampler mixes in float64
    assert np.allclose(traced, expected, atol=2e-3) and np.abs(traced - expected).mean() < 1e-4
    paths = export_model(model, str(tmp_path / "export"))
    served = tf.saved_model.load(paths["saved_model"]).signatures["serving_default"]
    assert set(served.structured_input_signature[1]) == {"frontal", "noise"}
    out = served(frontal=tf.constant(x["frontal"]), noise=tf.constant(noise))["ct"]
    assert np.allclose(out.numpy(), expected, atol=2e-3) and np.abs(out.numpy() - expected).mean() < 1e-4


def test_an_unconditional_stage_leaves_the_xray_encoder_untouched(rng):
    model = tiny_model()
    before = [np.array(v) for v in model.encoder.weights]
    model.conditioned = False  # the null condition: no gradient reaches the encoder
    fit_tiny(model, rng, epochs=2)
    assert all(np.array_equal(b, np.array(v)) for b, v in zip(before, model.encoder.weights))
    denoiser_moved = [np.array(v) for v in model.denoiser.weights]
    model.conditioned = True
    model.train_function = None
    fit_tiny(model, rng, epochs=1)
    assert any(not np.array_equal(b, np.array(v)) for b, v in zip(before, model.encoder.weights))
    assert any(not np.array_equal(b, np.array(v)) for b, v in zip(denoiser_moved, model.denoiser.weights))


def test_latent_mode_trains_its_slice_autoencoder_then_samples_decoded_volumes(rng, tmp_path):
    keras.utils.set_random_seed(0)
    model = tiny_model(latent_channels=2, autoencoder_filters=4)
    assert model.grid == (S, 1, 1, 2) and model.size == S  # 8 x 8 slices, compression 8
    y = rng.random((4, S, S, S, 1)).astype("float32") * 0.3
    slices = y.reshape(-1, S, S, 1)
    history = model.fit_autoencoder(slices, epochs=20, learning_rate=1e-2)
    assert history.history["loss"][-1] < history.history["loss"][0]
    codes = np.asarray(model.to_latent(y * 2 - 1))
    assert codes.shape == (4, S, 1, 1, 2) and np.isclose(codes.std(), 1.0, rtol=0.2)
    frozen = [np.array(w) for w in model.latent_encoder.weights]
    model.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
    x = xrays(rng, 4)
    model.fit((x["frontal"], x["lateral"]), y, batch_size=4, epochs=2, verbose=0)
    assert all(np.array_equal(a, np.array(b)) for a, b in zip(frozen, model.latent_encoder.weights))
    vol = model.sample(x, seed=0)
    assert vol.shape == (4, S, S, S, 1) and 0 <= vol.min() and vol.max() <= 1
    noise = rng.standard_normal((4, *model.grid)).astype("float32")
    assert np.abs(np.asarray(model.ddim(x, noise)) - model.sample(x, eta=0.0, noise=noise)).mean() < 1e-4
    model.save(tmp_path / "latent.keras")
    again = keras.models.load_model(tmp_path / "latent.keras")
    assert np.allclose(again.sample(x, seed=0), vol, atol=1e-5)


def test_projection_injection_feeds_the_smeared_xrays_on_the_denoisers_grid(rng):
    model = tiny_model(projection_injection=True)
    x = xrays(rng, 2)
    proj = np.asarray(model.projections(x))
    assert proj.shape == (2, S, S, S, 2)
    # canonical vol[z, x, y]: the frontal ap[z, x] is constant along y, the lateral lat[z, y] along x
    np.testing.assert_allclose(proj[0, :, :, 3, 0], x["frontal"][0, ..., 0] * 2 - 1, atol=1e-6)
    np.testing.assert_allclose(proj[0, :, 5, :, 1], x["lateral"][0, ..., 0] * 2 - 1, atol=1e-6)
    fit_tiny(model, rng, epochs=1)
    noise = rng.standard_normal((4, S, S, S, 1)).astype("float32")
    x4 = xrays(rng, 4)
    assert np.abs(np.asarray(model.ddim(x4, noise)) - model.sample(x4, eta=0.0, noise=noise)).mean() < 1e-4
    latent = tiny_model(projection_injection=True, latent_channels=2, autoencoder_filters=4, channels=(4,))
    assert np.asarray(latent.projections(x)).shape == (2, S, 1, 1, 2)  # pooled in-plane to the latent grid


def test_the_classification_term_reaches_each_network_only_through_its_own_loss(rng):
    tf = pytest.importorskip("tensorflow")
    model = tiny_model(classification_weight=0.08, classifier_filters=2)
    x0 = tf.random.uniform((2, S, S, S, 1), -1, 1)
    x0_hat = tf.Variable(tf.random.uniform((2, S, S, S, 1), -1, 1))
    clf_vars = model.classifier.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        classification, classifier = model._classification_terms(x0, x0_hat, tf.constant([0.0, 1.0]))
    assert all(g is None or not np.any(g) for g in tape.gradient(classification, clf_vars))
    assert np.any(tape.gradient(classification, x0_hat))
    assert any(g is not None and np.any(g) for g in tape.gradient(classifier, clf_vars))
    assert tape.gradient(classifier, x0_hat) is None
    y = rng.random((4, S, S, S, 1)).astype("float32")
    x = xrays(rng, 4)
    labels = np.array([0, 1, 0, 1], "float32")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
    history = model.fit((x["frontal"], x["lateral"], labels), y, batch_size=4, epochs=1, verbose=0).history
    assert {"classification", "classifier"} <= set(history)
    from xprospect_tf.errors import InputError

    with pytest.raises(InputError, match="label"):
        model.fit((x["frontal"], x["lateral"]), y, batch_size=4, epochs=1, verbose=0)


def tiny_regressor(seed=0):
    """A stand-in for a trained UNet row: both X-rays -> a volume in (0, 1)."""
    views = {v: keras.Input((S, S, 1), name=v) for v in ("frontal", "lateral")}
    h = keras.layers.Flatten()(keras.layers.Concatenate()(list(views.values())))
    h = keras.layers.Dense(S**3, activation="sigmoid", kernel_initializer=keras.initializers.GlorotUniform(seed))(h)
    return keras.Model(views, keras.layers.Reshape((S, S, S, 1))(h), name="regressor")


def test_residual_mode_diffuses_what_the_regressor_leaves_and_adds_its_prediction_back(rng, tmp_path):
    reg = tiny_regressor()
    model = tiny_model(regressor=reg, prediction="v")
    x, ct = xrays(rng, 3), rng.random((3, S, S, S, 1)).astype("float32")
    model.fit_standardization([(x, ct)])
    residual = (ct * 2 - 1) - (np.asarray(reg.predict_on_batch(x)) * 2 - 1)  # numpy, outside the model
    mean = residual.mean(0)
    np.testing.assert_allclose(np.asarray(model.data_mean), mean, atol=1e-5)
    np.testing.assert_allclose(float(model.data_scale), 1 / np.std(residual - mean), rtol=1e-4)
    codes = np.asarray(model.to_latent(ct * 2 - 1, model.regression(x)))
    np.testing.assert_allclose(codes, (residual - mean) * float(model.data_scale), atol=1e-4)
    # the regressor is frozen: not among the trained weights, unchanged by a training step, also when reloaded
    frozen = [np.asarray(w).copy() for w in reg.weights]
    n_trained = len(model.trainable_variables)
    assert not {id(v) for v in reg.weights} & {id(v) for v in model.trainable_variables}
    model.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=True)
    model.fit(x, ct, epochs=1, batch_size=3, verbose=0)
    assert all(np.array_equal(a, np.asarray(w)) for a, w in zip(frozen, reg.weights))
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    assert len(again.trainable_variables) == n_trained
    np.testing.assert_allclose(again.sample(x, seed=2), model.sample(x, seed=2), atol=1e-6)
    noise = rng.standard_normal((3, S, S, S, 1)).astype("float32")  # the traced sampler the export serves
    np.testing.assert_allclose(np.asarray(model.ddim(x, noise)), model.sample(x, eta=0.0, noise=noise), atol=1e-4)
    # a residual scaled to nothing: every sample is the regressor's prediction
    model.data_mean.assign(np.zeros_like(mean))
    model.data_scale.assign(1e6)
    np.testing.assert_allclose(model.sample(x, seed=5), np.asarray(reg.predict_on_batch(x)), atol=1e-4)


def test_residual_mode_needs_the_regressors_views():
    with pytest.raises(Exception, match="residual_of"):
        tiny_model(regressor=tiny_regressor(), views=("frontal",))
