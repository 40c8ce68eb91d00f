"""X-ray-conditioned 3D denoising diffusion (the X-ray2CTPA approach, Cahan et al., 2024).

Training (``model.fit`` on the same ``((frontal, lateral), ct)`` batches as
every other row): ``model(x)`` encodes the X-rays to a condition vector;
:meth:`DiffusionModel.compute_loss` draws a step ``t`` and noise per volume,
noises the volume (scaled to [-1, 1]) with the schedule's closed form
``q(x_t | x0)``, and scores the denoiser's prediction. The loss is the paper's
equation 1 without its classification term::

    loss = l1 + perceptual_weight * perceptual + adversarial_weight * (adversarial + discriminator)

``l1`` compares the prediction with its target (the noise ``eps``, or ``v``);
the perceptual and adversarial terms compare the denoised estimate ``x0_hat``
with ``x0``. The discriminator learns in the same step, through the same
optimizer: its loss ``discriminator`` reaches only its own weights (``x0_hat``
enters it through ``stop_gradient``), and the generator's ``adversarial`` term
sees the discriminator through ``stop_gradient``-ed weights, so each network
gets only its own gradient (ours: one optimizer, backend-agnostic, instead of
the usual two).

Sampling (:meth:`DiffusionModel.sample`): DDIM (Song et al., 2021) over a
subset of the steps, ``eta = 0`` deterministic, ``eta = 1`` with every step
DDPM's ancestral sampler; optional classifier-free guidance (training drops the
condition with probability ``condition_dropout``; the null condition is the
zero vector). Sampling uses the weights the optimizer's moving average
(``use_ema``) left at the end of ``fit``.

Residual mode (ours; CorrDiff, Mardani et al., 2023): with a trained, frozen
``regressor`` (one of the UNet rows) the model diffuses the residual
``volume - regressor(X-rays)``, standardized, and adds the regressor's
prediction back to every sample. The regressor gives the mean anatomy that the
X-rays determine; the diffusion adds what a mean cannot, a sample of the rest.
"""

import numpy as np

import keras
from keras import ops

from xprospect_tf.errors import ConfigError, InputError
from xprospect_tf.models.diffusion import schedule as sched
from xprospect_tf.models.diffusion.unet import VIEWS, build_discriminator

PREDICTIONS = ("eps", "v")
"""What the denoiser predicts: the noise (DDPM; the X-ray2CTPA code) or ``v = signal * eps - noise * x0``
(Salimans & Ho, 2022)."""


def _infer(model, inputs):
    """``model``'s float32 numpy output for numpy ``inputs``, not training."""
    if keras.backend.backend() == "tensorflow":
        return np.asarray(model.predict_on_batch(inputs), dtype=np.float32)  # traced: ~2x an eager call
    # JAX: predict_on_batch donates the weights' buffers, which after a fit with use_ema are shared
    # with the optimizer's moving averages (Keras 3.15), so a later save fails: call eagerly
    return np.asarray(model(inputs, training=False), dtype=np.float32)


@keras.saving.register_keras_serializable(package="xprospect_tf")
class DiffusionModel(keras.Model):
    """An X-ray encoder and a 3D denoising UNet, trained as a diffusion model.

    Args:
        encoder: a Keras model mapping the view images (a dict keyed by view
            name, see ``views``) to a ``(batch, condition_dim)`` vector.
        denoiser: a Keras model ``[x_t, t, condition] -> prediction``
            (:func:`~xprospect_tf.models.diffusion.build_denoiser`).
        views: the views the encoder reads (``("frontal",)`` or ``("frontal", "lateral")``).
        schedule: ``"cosine"`` or ``"linear"`` (:mod:`.schedule`).
        timesteps: training steps ``T``.
        snr_shift: scale of every step's signal-to-noise ratio (:func:`.schedule.shift_snr`; 1: none).
        standardize: diffuse ``(x - mean) * scale`` instead of ``x`` (the volume in [-1, 1], or its
            latents): the training cases' voxel-wise mean and one scale that gives the rest unit
            standard deviation (:meth:`fit_standardization`; ours, not X-ray2CTPA's).
        prediction: ``"eps"`` or ``"v"``.
        sample_steps: DDIM steps used by :meth:`sample` unless told otherwise.
        eta: DDIM's noise scale (0: deterministic; 1: DDPM-like).
        guidance: classifier-free guidance scale (1: none).
        condition_dropout: probability of training a volume with the null condition.
        perceptual_weight: weight of the perceptual term (0: off).
        adversarial_weight: weight of the adversarial and discriminator terms (0: off).
        discriminator_filters: first width of the 3D discriminator.
        seed: seed of the training noise.
        classification_weight: weight of the classification term (0: off); the
            inputs then carry each case's 0/1 label: ``(frontal, lateral, label)``
            or a dict with ``"label"``. A 3D classifier learns the labels from the
            real volumes in the same step (``classifier``) and scores the denoised
            estimate through ``stop_gradient``-ed weights (``classification``).
        classifier_filters: the classifier's first width.
        regressor: residual mode (ours): a trained Keras model from the view
            images (dict, a subset of ``views``) to volumes in [0, 1], frozen;
            the model diffuses ``volume - regressor(X-rays)``, standardized
            (``standardize`` is implied). ``None``: the volume itself (X-ray2CTPA).
        latent_encoder, latent_decoder: latent mode: a 2D slice autoencoder
            (:func:`~xprospect_tf.models.diffusion.autoencoder.build_slice_autoencoder`),
            frozen here; the denoiser then works on the stacked slice latents
            (train it first: :meth:`fit_autoencoder`). ``None``: pixel space.

    Call arguments:
        inputs: ``{"frontal", "lateral"}`` images ``(batch, S, S, 1)`` in [0, 1]
            (or the tuple ``(frontal, lateral)`` a prepared dataset yields).

    Returns (call): the condition vectors; :meth:`sample` returns volumes.

    Example:
        >>> import numpy as np
        >>> from xprospect_tf.models.diffusion import build_diffusion_model
        >>> model = build_diffusion_model(8, channels=(4, 8), embed_dim=8, encoder_filters=4,
        ...                               timesteps=20, sample_steps=4, perceptual_weight=0.0,
        ...                               adversarial_weight=0.0)
        >>> xrays = {"frontal": np.zeros((1, 8, 8, 1)), "lateral": np.zeros((1, 8, 8, 1))}
        >>> vol = model.sample(xrays, seed=0)
        >>> vol.shape, bool(vol.min() >= 0 and vol.max() <= 1)
        ((1, 8, 8, 8, 1), True)
    """

    def __init__(self, encoder, denoiser, views=VIEWS, schedule="cosine", timesteps=1000, prediction="eps",
                 snr_shift=1.0, sample_steps=50, eta=0.0, guidance=1.0, condition_dropout=0.0,
                 perceptual_weight=0.0, adversarial_weight=0.0, discriminator_filters=16, seed=0, latent_encoder=None,
                 latent_decoder=None, classification_weight=0.0, classifier_filters=8, standardize=False,
                 regressor=None, **kwargs):
        super().__init__(**kwargs)
        if prediction not in PREDICTIONS:
            raise ConfigError(f"diffusion.prediction = {prediction!r}: use one of {', '.join(PREDICTIONS)}")
        self.encoder = encoder
        self.denoiser = denoiser
        self.views = tuple(views)
        self.schedule = schedule
        self.timesteps = int(timesteps)
        self.snr_shift = float(snr_shift)
        self.prediction = prediction
        self.sample_steps = int(sample_steps)
        self.eta = float(eta)
        self.guidance = float(guidance)
        self.condition_dropout = float(condition_dropout)
        self.perceptual_weight = float(perceptual_weight)
        self.adversarial_weight = float(adversarial_weight)
        self.discriminator_filters = int(discriminator_filters)
        self.classification_weight = float(classification_weight)
        self.classifier_filters = int(classifier_filters)
        self.seed = int(seed)
        self.alpha_bars = sched.alpha_bars(schedule, self.timesteps, self.snr_shift)
        self.latent_encoder, self.latent_decoder = latent_encoder, latent_decoder
        self.latent = latent_encoder is not None
        self.grid = tuple(int(d) for d in denoiser.inputs[0].shape[1:])  # the denoiser's (D, H, W, C)
        if self.latent:
            from xprospect_tf.models.diffusion.autoencoder import SliceWise

            latent_encoder.trainable = latent_decoder.trainable = False
            self.slice_encoder, self.slice_decoder = SliceWise(latent_encoder), SliceWise(latent_decoder)
            self.latent_scale = self.add_weight(shape=(), initializer="ones", trainable=False,
                                                name="latent_scale")
            self.size = int(latent_encoder.inputs[0].shape[1])
        else:
            self.size = self.grid[0]
        self.regressor = regressor
        if regressor is not None:
            reads = {t.name.split(":")[0] for t in regressor.inputs}
            if self.latent or not reads <= set(self.views):
                raise ConfigError(f"diffusion.residual_of: the regressor reads {', '.join(sorted(reads))}; "
                                  f"a residual diffusion needs pixel space and all of the regressor's views "
                                  f"among its own ({', '.join(self.views)})")
            for layer in regressor._flatten_layers():  # a reloaded model's nested layers too
                layer.trainable = False
        self.standardize = bool(standardize) or regressor is not None
        if self.standardize:
            self.data_mean = self.add_weight(shape=self.grid, initializer="zeros", trainable=False,
                                             name="data_mean")
            self.data_scale = self.add_weight(shape=(), initializer="ones", trainable=False, name="data_scale")
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.feature_network = None
        if self.perceptual_weight:
            from xprospect_tf.evaluation.features import LOSS_FEATURE_SEED, feature_network

            self.feature_network = feature_network(seed=LOSS_FEATURE_SEED, size=self.size)
        self.discriminator = (build_discriminator(self.size, self.discriminator_filters)
                              if self.adversarial_weight else None)
        self.classifier = None
        if self.classification_weight:
            from xprospect_tf.models.classifiers import build_cnn3d

            self.classifier = build_cnn3d(self.size, self.classifier_filters, name="finding_classifier")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.loss_terms}
        self.conditioned = True  # False: train with the null condition only (an unconditional stage)
        self.built = True  # every network above is a built functional model

    @property
    def loss_terms(self):
        """The names of the logged loss terms (``l1``, then the switched-on ones)."""
        terms = ["l1"]
        if self.perceptual_weight:
            terms.append("perceptual")
        if self.adversarial_weight:
            terms += ["adversarial", "discriminator"]
        if self.classification_weight:
            terms += ["classification", "classifier"]
        return terms

    # -- inputs and the condition ---------------------------------------------

    def view_images(self, inputs):
        """The encoder's inputs from a dict or a ``(frontal, lateral)`` tuple."""
        if isinstance(inputs, (list, tuple)):
            inputs = dict(zip(VIEWS, inputs))
        missing = [v for v in self.views if v not in inputs or inputs[v] is None]
        if missing:
            raise InputError(f"the diffusion model reads the {' and '.join(self.views)} X-ray(s); "
                             f"missing: {', '.join(missing)}")
        return {v: inputs[v] for v in self.views}

    def call(self, inputs, training=False):
        return self.encoder(self.view_images(inputs), training=training)

    @property
    def injects_projections(self):
        """Whether the denoiser also reads the back-projected X-rays (``projection`` input)."""
        return len(self.denoiser.inputs) == 4

    def projections(self, images):
        """The view images smeared through the volume (frontal along ``y``, lateral along ``x``),
        average-pooled to the denoiser's grid: its ``projection`` input, or ``None``."""
        if not self.injects_projections:
            return None
        smears = []
        for view in self.views:
            image = ops.cast(images[view], "float32") * 2.0 - 1.0  # [0, 1] -> [-1, 1], as the volume
            axis = 3 if view == "frontal" else 2  # ap[z, x] along y; lat[z, y] along x
            smears.append(ops.repeat(ops.expand_dims(image, axis), self.size, axis=axis))
        volume = ops.concatenate(smears, axis=-1)
        pool = tuple(self.size // g for g in self.grid[:3])
        return volume if pool == (1, 1, 1) else ops.average_pool(volume, pool, strides=pool, padding="valid")

    def _denoise(self, x_t, t, condition, projection, training=False):
        inputs = [x_t, t, condition] + ([projection] if projection is not None else [])
        return self.denoiser(inputs, training=training)

    # -- training ---------------------------------------------------------------

    def _alpha_bar(self, t):
        table = ops.convert_to_tensor(self.alpha_bars.astype("float32"))
        return ops.reshape(ops.take(table, t), (-1, 1, 1, 1, 1))

    def regression(self, inputs):
        """Residual mode: the regressor's volumes for the X-rays, in [-1, 1] (``None`` without one)."""
        if self.regressor is None:
            return None
        images = self.view_images(inputs)
        reads = [t.name.split(":")[0] for t in self.regressor.inputs]
        return ops.cast(self.regressor({v: images[v] for v in reads}, training=False), "float32") * 2.0 - 1.0

    def to_latent(self, x, mean=None):
        """Volumes in [-1, 1] -> what the denoiser works on (the scaled slice latents in latent
        mode; minus ``mean``, the :meth:`regression`, in residual mode; standardized with
        ``standardize``)."""
        z = self._unstandardized(x, mean)
        return (z - self.data_mean) * self.data_scale if self.standardize else z

    def _unstandardized(self, x, mean=None):
        if self.latent:
            return self.slice_encoder(x) * self.latent_scale
        return x if mean is None else x - mean

    def from_latent(self, z, mean=None):
        """The inverse of :meth:`to_latent` (in latent mode decoded volumes, clipped to [-1, 1])."""
        z = z / self.data_scale + self.data_mean if self.standardize else z
        if self.latent:
            return ops.clip(self.slice_decoder(z / self.latent_scale), -1.0, 1.0)
        return z if mean is None else z + mean

    def _valid_estimate(self, x0, mean=None):
        """A denoised estimate kept inside the volumes' range: clipped to [-1, 1] in pixel space
        (latents are left as they are)."""
        if self.latent:
            return x0
        if self.standardize:
            return self.to_latent(ops.clip(self.from_latent(x0, mean), -1.0, 1.0), mean)
        return ops.clip(x0, -1.0, 1.0)

    def fit_standardization(self, batches):
        """Set ``standardize``'s mean and scale from training volumes.

        Args:
            batches: an iterable of ``(B, S, S, S, 1)`` numpy volume batches in [0, 1],
                or (residual mode) of ``(xrays, volumes)`` pairs, ``xrays`` as :meth:`call` takes.
        """
        codes = []
        for batch in batches:
            xrays, volumes = batch if isinstance(batch, tuple) else (None, batch)
            if self.regressor is not None and xrays is None:
                raise InputError("fit_standardization: residual mode needs (X-rays, volumes) batches")
            mean = None if xrays is None else self.regression(xrays)
            codes.append(np.asarray(self._unstandardized(np.asarray(volumes, np.float32) * 2.0 - 1.0, mean)))
        codes = np.concatenate(codes)
        mean = codes.mean(axis=0)
        self.data_mean.assign(mean)
        self.data_scale.assign(1.0 / max(float(np.std(codes - mean)), 1e-6))
        self.train_function = self.test_function = None

    def fit_autoencoder(self, slices, epochs, learning_rate=1e-3, batch_size=32, verbose=0):
        """Train the latent mode's slice autoencoder (L1) on axial slices, then freeze it and set
        ``latent_scale`` so the training latents have unit standard deviation.

        Args:
            slices: ``(N, S, S, 1)`` numpy slices in [0, 1], or a ``tf.data`` of batches of them.
            epochs, learning_rate, batch_size: of the autoencoder's own ``fit``.

        Returns:
            the ``History`` of that fit.
        """
        image = keras.Input((self.size, self.size, 1))
        trainer = keras.Model(image, self.latent_decoder(self.latent_encoder(image * 2.0 - 1.0)))
        self.latent_encoder.trainable = self.latent_decoder.trainable = True
        trainer.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mae")
        scaled = (lambda s: s * 2.0 - 1.0)
        if isinstance(slices, np.ndarray):
            history = trainer.fit(slices, scaled(slices), batch_size=batch_size, epochs=epochs, verbose=verbose)
            sample = slices[:256]
        else:
            history = trainer.fit(slices.map(lambda s: (s, scaled(s))), epochs=epochs, verbose=verbose)
            sample = np.concatenate([np.asarray(b) for b in slices.take(8)])
        self.latent_encoder.trainable = self.latent_decoder.trainable = False
        codes = _infer(self.latent_encoder, (sample * 2.0 - 1.0).astype(np.float32))
        self.latent_scale.assign(1.0 / max(float(np.std(codes)), 1e-6))
        self.train_function = self.test_function = None
        return history

    def _x0_estimate(self, x_t, prediction, alpha_bar):
        signal, noise = ops.sqrt(alpha_bar), ops.sqrt(1.0 - alpha_bar)
        if self.prediction == "v":
            return signal * x_t - noise * prediction
        return (x_t - noise * prediction) / signal

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y is None:
            raise InputError("DiffusionModel.fit needs the CT volumes as targets: fit(x=X-rays, y=volumes)")
        condition = y_pred
        pixels = ops.cast(y, "float32") * 2.0 - 1.0
        mean = self.regression(x)
        x0 = self.to_latent(pixels, mean)
        batch = ops.shape(x0)[0]
        t = keras.random.randint((batch,), 0, self.timesteps, seed=self.seed_generator)
        eps = keras.random.normal(ops.shape(x0), seed=self.seed_generator)
        alpha_bar = self._alpha_bar(t)
        signal, noise = ops.sqrt(alpha_bar), ops.sqrt(1.0 - alpha_bar)
        x_t = signal * x0 + noise * eps
        projection = self.projections(self.view_images(x)) if self.injects_projections else None
        if not self.conditioned:
            condition = ops.zeros_like(condition)
            projection = None if projection is None else ops.zeros_like(projection)
        elif training and self.condition_dropout:
            keep = ops.cast(keras.random.uniform((batch, 1), seed=self.seed_generator) >= self.condition_dropout,
                            condition.dtype)
            condition = condition * keep
            projection = None if projection is None else projection * ops.reshape(keep, (-1, 1, 1, 1, 1))
        prediction = self._denoise(x_t, ops.cast(t, "float32"), condition, projection, training=training)
        target = signal * eps - noise * x0 if self.prediction == "v" else eps
        terms = {"l1": ops.mean(ops.abs(prediction - target))}
        total = terms["l1"]
        if self.perceptual_weight or self.adversarial_weight or self.classification_weight:  # in pixels
            estimate = self._x0_estimate(x_t, prediction, alpha_bar)
            x0_hat = ops.clip(self.from_latent(estimate, mean), -1.0, 1.0)
        if self.perceptual_weight:
            from xprospect_tf.evaluation.features import perceptual_loss

            terms["perceptual"] = perceptual_loss(self.feature_network, (x0_hat + 1) / 2, (pixels + 1) / 2)
            total = total + self.perceptual_weight * terms["perceptual"]
        if self.adversarial_weight:
            terms["adversarial"], terms["discriminator"] = self._adversarial_terms(pixels, x0_hat)
            total = total + self.adversarial_weight * (terms["adversarial"] + terms["discriminator"])
        if self.classification_weight:
            terms["classification"], terms["classifier"] = self._classification_terms(pixels, x0_hat, _label(x))
            total = total + self.classification_weight * (terms["classification"] + terms["classifier"])
        for name, value in terms.items():
            self.trackers[name].update_state(value)
        return _scale_for_replicas(total)

    def _adversarial_terms(self, x0, x0_hat):
        """``(adversarial, discriminator)``: each reaches only its own network's weights."""
        disc = self.discriminator
        frozen = [ops.stop_gradient(v) for v in disc.trainable_variables]
        fake_for_generator, _ = disc.stateless_call(frozen, disc.non_trainable_variables, x0_hat)
        adversarial = ops.mean(ops.softplus(-fake_for_generator))  # non-saturating GAN loss
        real = disc(x0)
        fake = disc(ops.stop_gradient(x0_hat))
        discriminator = ops.mean(ops.softplus(-real)) + ops.mean(ops.softplus(fake))
        return adversarial, discriminator

    def _classification_terms(self, x0, x0_hat, label):
        """``(classification, classifier)``: the estimate's BCE under the frozen classifier, and the
        classifier's BCE on the real volume (each reaches only its own network's weights)."""
        clf = self.classifier
        label = ops.reshape(ops.cast(label, "float32"), (-1, 1))
        frozen = [ops.stop_gradient(v) for v in clf.trainable_variables]
        on_estimate, _ = clf.stateless_call(frozen, clf.non_trainable_variables, {"ct": (x0_hat + 1.0) / 2.0})
        on_truth = clf({"ct": (x0 + 1.0) / 2.0})
        bce = keras.losses.binary_crossentropy
        return ops.mean(bce(label, on_estimate)), ops.mean(bce(label, on_truth))

    # -- sampling ---------------------------------------------------------------

    def _predict(self, x_t, t, condition, guidance, projection=None):
        """The denoiser's prediction, with classifier-free guidance when ``guidance != 1``."""
        steps = np.full((x_t.shape[0],), float(t), dtype=np.float32)
        extra = [] if projection is None else [projection]
        if guidance == 1.0:
            return _infer(self.denoiser, [x_t, steps, condition, *extra])
        extra = [] if projection is None else [np.concatenate([projection, np.zeros_like(projection)])]
        both = _infer(self.denoiser, [np.concatenate([x_t, x_t]), np.concatenate([steps, steps]),
                                      np.concatenate([condition, np.zeros_like(condition)]), *extra])
        cond, uncond = np.split(both, 2)
        return uncond + guidance * (cond - uncond)

    def sample(self, inputs, steps=None, eta=None, guidance=None, seed=0, noise=None):
        """Generate one volume per X-ray set.

        Args:
            inputs: ``{"frontal", "lateral"}`` batches ``(B, S, S, 1)`` in [0, 1]
                (or a ``(frontal, lateral)`` tuple).
            steps: DDIM steps (``None``: ``sample_steps``); ``timesteps`` with
                ``eta = 1`` is DDPM's ancestral sampler.
            eta: 0 (deterministic DDIM) .. 1 (``None``: the model's).
            guidance: classifier-free guidance scale (``None``: the model's).
            seed: seed of the starting noise and of the noise added per step
                (the same seed gives the same volumes).
            noise: the starting noise, shaped like the denoiser's input ``(B, *grid)``
                (``(B, S, S, S, 1)`` in pixel space; overrides ``seed`` for it).

        Returns:
            float32 numpy volumes ``(B, S, S, S, 1)`` in [0, 1].
        """
        images = {k: np.asarray(v, dtype=np.float32) for k, v in self.view_images(inputs).items()}
        batch = next(iter(images.values())).shape[0]
        condition = _infer(self.encoder, images)
        projection = self.projections(images)
        projection = None if projection is None else np.asarray(projection, dtype=np.float32)
        mean = self.regression(images)
        mean = None if mean is None else np.asarray(mean, dtype=np.float32)
        steps = self.sample_steps if steps is None else int(steps)
        eta = self.eta if eta is None else float(eta)
        guidance = self.guidance if guidance is None else float(guidance)
        rng = np.random.default_rng([int(seed), 1])
        shape = (batch, *self.grid)
        x = (rng.standard_normal(shape).astype(np.float32) if noise is None
             else np.asarray(noise, dtype=np.float32).reshape(shape))
        visited = sched.sampling_timesteps(self.timesteps, steps)
        a_t, a_prev, sigma = sched.step_coefficients(self.alpha_bars, visited, eta)
        for i, t in enumerate(visited):
            prediction = self._predict(x, t, condition, guidance, projection)
            s, n = np.sqrt(a_t[i]), np.sqrt(1.0 - a_t[i])
            x0 = s * x - n * prediction if self.prediction == "v" else (x - n * prediction) / s
            x0 = np.asarray(self._valid_estimate(x0, mean), dtype=np.float32)
            eps = (x - s * x0) / n
            x = (np.sqrt(a_prev[i]) * x0 + np.sqrt(max(1.0 - a_prev[i] - sigma[i] ** 2, 0.0)) * eps
                 + sigma[i] * rng.standard_normal(shape)).astype(np.float32)
        x = np.asarray(self.from_latent(x, mean), dtype=np.float32)
        return ((np.clip(x, -1.0, 1.0) + 1.0) / 2.0).astype(np.float32)

    def ddim(self, inputs, noise, steps=None):
        """Deterministic DDIM (``eta = 0``) written in ``keras.ops``, so it can be traced: the
        exported SavedModel serves it (:func:`xprospect_tf.export.export_model`).

        Args:
            inputs: the view images (as :meth:`sample`).
            noise: the starting noise ``(B, S, S, S, 1)``; the same noise gives the same volume.
            steps: DDIM steps (``None``: ``sample_steps``).

        Returns:
            volumes ``(B, S, S, S, 1)`` in [0, 1] (a backend tensor); equal, up to float
            rounding, to ``sample(inputs, steps, eta=0, noise=noise)``.
        """
        visited = sched.sampling_timesteps(self.timesteps, steps or self.sample_steps)
        a_t, a_prev, _ = sched.step_coefficients(self.alpha_bars, visited, 0.0)
        table = {k: ops.convert_to_tensor(np.asarray(v, dtype=np.float32))
                 for k, v in (("t", visited), ("a", a_t), ("p", a_prev))}
        images = self.view_images(inputs)
        condition = self.encoder(images, training=False)
        projection = self.projections(images)
        mean = self.regression(images)
        noise = ops.cast(noise, "float32")
        ones = ops.ones_like(noise[:, 0, 0, 0, 0])
        null = ops.zeros_like(condition)

        def step(i, x):
            t, a, p = (ops.take(table[k], i) for k in ("t", "a", "p"))
            prediction = self._denoise(x, ones * t, condition, projection)
            if self.guidance != 1.0:
                uncond = self._denoise(x, ones * t, null, None if projection is None else ops.zeros_like(projection))
                prediction = uncond + self.guidance * (prediction - uncond)
            signal, noise_ = ops.sqrt(a), ops.sqrt(1.0 - a)
            x0 = signal * x - noise_ * prediction if self.prediction == "v" else (x - noise_ * prediction) / signal
            x0 = self._valid_estimate(x0, mean)
            eps = (x - signal * x0) / noise_
            return ops.sqrt(p) * x0 + ops.sqrt(1.0 - p) * eps

        x = self.from_latent(ops.fori_loop(0, len(visited), step, noise), mean)
        return (ops.clip(x, -1.0, 1.0) + 1.0) / 2.0

    # -- configuration ------------------------------------------------------------

    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "denoiser": keras.saving.serialize_keras_object(self.denoiser),
            "views": list(self.views), "schedule": self.schedule, "timesteps": self.timesteps,
            "snr_shift": self.snr_shift, "prediction": self.prediction, "sample_steps": self.sample_steps,
            "eta": self.eta,
            "guidance": self.guidance, "condition_dropout": self.condition_dropout,
            "perceptual_weight": self.perceptual_weight, "adversarial_weight": self.adversarial_weight,
            "discriminator_filters": self.discriminator_filters, "seed": self.seed,
            "classification_weight": self.classification_weight, "classifier_filters": self.classifier_filters,
            "standardize": self.standardize,
            "regressor": (keras.saving.serialize_keras_object(self.regressor) if self.regressor is not None else None),
            "latent_encoder": (keras.saving.serialize_keras_object(self.latent_encoder) if self.latent else None),
            "latent_decoder": (keras.saving.serialize_keras_object(self.latent_decoder) if self.latent else None),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "denoiser", "latent_encoder", "latent_decoder", "regressor"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def _label(x):
    """The cases' labels from the inputs (the third item of a tuple, or ``"label"`` of a dict)."""
    label = x.get("label") if isinstance(x, dict) else (x[2] if len(x) > 2 else None)
    if label is None:
        raise InputError("the classification term needs each case's label: fit on (frontal, lateral, label) "
                         "inputs (a labelled prepared dataset) or set diffusion.classification_weight: 0")
    return label


def _scale_for_replicas(loss):
    """The loss divided by the replicas in sync (TensorFlow's MirroredStrategy sums their gradients),
    as Keras' compiled losses do; the logged ``loss`` is unscaled again by ``train_step``."""
    if keras.backend.backend() != "tensorflow":
        return loss
    import tensorflow as tf

    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss / replicas if replicas > 1 else loss
