"""The style-transfer CycleGAN of XprospeCT (Paulson et al., 2024, section 3.1).

One ``CycleGAN`` per view (frontal, lateral) learns, from unpaired images, to
turn mean-CT projections (domain A) into images that look like real radiographs
(domain B). Losses: least-squares adversarial, cycle consistency (L1) with the
paper's ``cycle_lambda = 20`` and CycleGAN's identity loss.

The paper's training changes (the defaults of :func:`compile_cyclegan`, read
from :class:`xprospect_tf.config.StyleConfig`, their one home):

- Nadam instead of Adam;
- a learning rate "significantly" below CycleGAN's 2e-4. The paper gives no
  number; ``StyleConfig.learning_rate`` is ours;
- an exponential moving average (EMA) of the weights, with the weights reset
  to their moving average. The paper gives neither the momentum nor the reset
  interval; ``StyleConfig.ema_momentum`` and ``ema_every`` are ours.

EMA choice: the Keras optimizer's own EMA (``use_ema=True, ema_momentum,
ema_overwrite_frequency=N``) is used rather than a callback. It does exactly
what the paper describes (an average updated after every step and written over
the model's variables every ``N`` steps), needs no callback, keeps the
average in the optimizer state (so it is saved in ``.keras`` files and
checkpoints and restored on resume), and runs on every backend. The average
covers both optimizers, generators and discriminators.

Keras' ``fit`` ends by writing the average over the model's variables
(``optimizer.finalize_variable_values``), but only for ``model.optimizer``; a
CycleGAN has two optimizers and no ``model.optimizer``, so
:meth:`CycleGAN.fit` does it for both after ``fit`` returns. A trained
CycleGAN therefore holds the moving averages (what is saved and applied),
while the backups and checkpoints written during ``fit`` (callbacks, up to
``on_train_end``) hold the raw weights and, in the optimizer state, the
averages: a resumed run continues exactly where it stopped.

Only ``train_step`` / ``test_step`` use TensorFlow (``tf.GradientTape``); the
losses (:meth:`CycleGAN.compute_losses`) use ``keras.ops`` only.
"""

import contextlib
import logging

import keras
import numpy as np
from keras import ops

from xprospect_tf.config import StyleConfig
from xprospect_tf.errors import ConfigError
from xprospect_tf.models.cyclegan.discriminator import build_patchgan_discriminator
from xprospect_tf.models.cyclegan.generator import build_resnet_generator
from xprospect_tf.training.optimizers import get_optimizer

log = logging.getLogger(__name__)

STYLE = StyleConfig()  # the defaults below; declared once, in config.StyleConfig
CYCLE_LAMBDA_WARN = 25.0  # the paper: above ~25 the style transfer weakens
LOSS_NAMES = ("g_loss", "d_loss", "adv_loss", "cycle_loss", "identity_loss")


@keras.saving.register_keras_serializable(package="xprospect_tf")
class CycleGAN(keras.Model):
    """A CycleGAN: two generators and two PatchGAN discriminators for one view.

    Section 3.1 of XprospeCT (Paulson et al., 2024). Domain A: mean-CT
    projections; domain B: real X-rays. ``g_ab`` stylizes (A -> B), ``g_ba`` maps
    back; ``d_a`` / ``d_b`` score patches of domain A / B images. ``call`` and
    ``predict`` run ``g_ab``. Train on a dataset of ``(real_a, real_b)`` batches
    (e.g. ``tf.data.Dataset.zip`` of two unpaired sets).

    Generator loss = adversarial (LSGAN) + ``cycle_lambda`` * cycle L1 +
    ``identity_lambda`` * identity L1; discriminator loss = LSGAN, halved per
    discriminator as in CycleGAN. The paper uses ``cycle_lambda = 20`` and
    observed that values above ~25 weaken the style transfer (the generators
    then barely change their input).

    Optimizers (:meth:`compile`): one for both generators, one for both
    discriminators. With the paper's EMA, :meth:`fit` ends with every network
    holding its moving-average weights (:meth:`finalize_moving_averages`).

    Args:
        g_ab: generator A -> B (``keras.Model``, images ``(H, W, 1)``).
        g_ba: generator B -> A.
        d_a: discriminator of domain A.
        d_b: discriminator of domain B.
        cycle_lambda: weight of the cycle-consistency loss (paper: 20).
        identity_lambda: weight of the identity loss; ``None`` for
            ``0.5 * cycle_lambda`` (CycleGAN's choice).
        **kwargs: passed to ``keras.Model``.

    Call arguments:
        inputs: domain-A images ``(B, H, W, 1)`` in [0, 1].

    Returns (call):
        ``g_ab(inputs)``, the stylized images.

    Example:
        >>> gan = make_cyclegan(16, filters=4, disc_filters=4, n_residual=1)
        >>> gan = compile_cyclegan(gan)
        >>> tuple(gan(keras.ops.zeros((1, 16, 16, 1))).shape)
        (1, 16, 16, 1)
    """

    def __init__(self, g_ab, g_ba, d_a, d_b, cycle_lambda=STYLE.cycle_lambda,
                 identity_lambda=None, **kwargs):
        super().__init__(**kwargs)
        _check_lambda("cycle_lambda", cycle_lambda)
        if identity_lambda is not None:
            _check_lambda("identity_lambda", identity_lambda)
        if cycle_lambda > CYCLE_LAMBDA_WARN:
            log.warning("cycle_lambda=%s: the paper found values above %s weaken the style "
                        "transfer",
                        cycle_lambda, CYCLE_LAMBDA_WARN)
        self.g_ab, self.g_ba, self.d_a, self.d_b = g_ab, g_ba, d_a, d_b
        self.cycle_lambda = float(cycle_lambda)
        self.identity_lambda = None if identity_lambda is None else float(identity_lambda)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in LOSS_NAMES}
        self.g_optimizer = self.d_optimizer = None
        self.built = True

    @property
    def identity_weight(self):
        """The identity-loss weight in use (``0.5 * cycle_lambda`` unless set)."""
        return 0.5 * self.cycle_lambda if self.identity_lambda is None else self.identity_lambda

    @property
    def generator_variables(self):
        """Trainable variables of both generators (the generator optimizer's list)."""
        return self.g_ab.trainable_variables + self.g_ba.trainable_variables

    @property
    def discriminator_variables(self):
        """Trainable variables of both discriminators."""
        return self.d_a.trainable_variables + self.d_b.trainable_variables

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, inputs, training=False):
        return self.g_ab(inputs, training=training)

    def compile(self, g_optimizer=None, d_optimizer=None, **kwargs):
        """Set the two optimizers (generators share one, discriminators one).

        Args:
            g_optimizer: optimizer of ``g_ab`` and ``g_ba``; ``None``: the
                paper's (:func:`paper_optimizer`).
            d_optimizer: optimizer of ``d_a`` and ``d_b``; ``None``: the paper's.
            **kwargs: passed to ``keras.Model.compile`` (e.g. ``run_eagerly``);
                ``optimizer`` and ``loss`` are not accepted.

        Example:
            >>> gan = make_cyclegan(16, filters=4, disc_filters=4, n_residual=0)
            >>> gan.compile(paper_optimizer(), paper_optimizer(), run_eagerly=True)
            >>> gan.g_optimizer.use_ema
            True
        """
        for key in ("optimizer", "loss"):
            if key in kwargs:
                raise ConfigError(
                    f"CycleGAN.compile: '{key}' is not used; pass g_optimizer and d_optimizer")
        super().compile(optimizer=None, **kwargs)
        self.g_optimizer = g_optimizer or paper_optimizer()
        self.d_optimizer = d_optimizer or paper_optimizer()
        self.g_optimizer.build(self.generator_variables)
        self.d_optimizer.build(self.discriminator_variables)

    def fit(self, *args, **kwargs):
        """``keras.Model.fit``, then the weights set to their moving averages (when the optimizers keep one).

        What Keras' ``fit`` does for a model with one optimizer
        (``finalize_variable_values``), done here for both optimizers. It runs
        after the callbacks' ``on_train_end``, so a backup written there holds
        the raw weights (and the averages in the optimizer state) and a resumed
        ``fit`` continues the raw trajectory.
        """
        history = super().fit(*args, **kwargs)
        self.finalize_moving_averages()
        return history

    def finalize_moving_averages(self):
        """Overwrite every network's trainable weights with its optimizer's moving average.

        A no-op when the optimizers keep no average (``ema_momentum=None``) or
        the model is not compiled. :meth:`fit` calls it at its end.

        Example:
            >>> gan = compile_cyclegan(make_cyclegan(16, 4, 4, 0), learning_rate=1e-2,
            ...                        ema_momentum=0.5, ema_every=None, run_eagerly=True)
            >>> x = np.random.default_rng(0).random((2, 16, 16, 1)).astype("float32")
            >>> kernel = gan.g_ab.get_layer("stem_conv").kernel
            >>> _ = gan.train_step((x, x)); first = np.array(kernel)
            >>> _ = gan.train_step((x, x)); second = np.array(kernel)
            >>> gan.finalize_moving_averages()  # average = 0.5 * first + 0.5 * second
            >>> bool(np.allclose(kernel, 0.5 * first + 0.5 * second)), bool(np.allclose(kernel, second))
            (True, False)
        """
        for optimizer, variables in self._optimized_variables():
            optimizer.finalize_variable_values(variables)

    @contextlib.contextmanager
    def moving_average_weights(self):
        """Within the block both generators hold their moving-average weights; the raw ones come back after.

        For looking at the averaged generators during training (e.g. sample
        images after each epoch) without changing the training trajectory. The
        discriminators keep their raw weights (their average is written only by
        :meth:`finalize_moving_averages`). A no-op without an EMA.

        Example:
            >>> gan = compile_cyclegan(make_cyclegan(16, 4, 4, 0), learning_rate=1e-2,
            ...                        ema_momentum=0.5, ema_every=None, run_eagerly=True)
            >>> x = np.random.default_rng(0).random((2, 16, 16, 1)).astype("float32")
            >>> kernel = gan.g_ab.get_layer("stem_conv").kernel
            >>> _ = gan.train_step((x, x)); first = np.array(kernel)
            >>> _ = gan.train_step((x, x)); raw = np.array(kernel)
            >>> with gan.moving_average_weights():
            ...     bool(np.allclose(kernel, 0.5 * first + 0.5 * raw))
            True
            >>> bool(np.array_equal(kernel, raw))
            True
        """
        optimizer, variables = self.g_optimizer, self.generator_variables
        if optimizer is None or not optimizer.use_ema:
            yield self
            return
        raw = [np.array(v) for v in variables]
        optimizer.finalize_variable_values(variables)
        try:
            yield self
        finally:
            for variable, value in zip(variables, raw):
                variable.assign(value)

    def _optimized_variables(self):
        """``(optimizer, variables)`` of each optimizer that keeps a moving average."""
        pairs = ((self.g_optimizer, self.generator_variables), (self.d_optimizer, self.discriminator_variables))
        return [(opt, variables) for opt, variables in pairs if opt is not None and opt.use_ema]

    def compute_losses(self, real_a, real_b, training=False):
        """All CycleGAN losses for one batch (``keras.ops`` only, any backend).

        Args:
            real_a: domain-A images ``(B, H, W, 1)``.
            real_b: domain-B images ``(B, H, W, 1)`` (unpaired with ``real_a``).
            training: passed to the sub-models.

        Returns:
            dict with the scalar tensors ``g_loss``, ``d_loss``, ``adv_loss``,
            ``cycle_loss``, ``identity_loss`` (``cycle_loss`` and
            ``identity_loss`` are unweighted sums over both directions).

        Example:
            >>> gan = make_cyclegan(16, filters=4, disc_filters=4, n_residual=0)
            >>> x = keras.ops.zeros((1, 16, 16, 1))
            >>> sorted(gan.compute_losses(x, x))
            ['adv_loss', 'cycle_loss', 'd_loss', 'g_loss', 'identity_loss']
        """
        fake_b = self.g_ab(real_a, training=training)
        fake_a = self.g_ba(real_b, training=training)
        cycle = _l1(real_a, self.g_ba(fake_b, training=training)) + _l1(
            real_b, self.g_ab(fake_a, training=training))
        identity = _l1(real_a, self.g_ba(real_a, training=training)) + _l1(
            real_b, self.g_ab(real_b, training=training))
        score_fake_a = self.d_a(fake_a, training=training)
        score_fake_b = self.d_b(fake_b, training=training)
        adv = _lsgan(score_fake_a, 1.0) + _lsgan(score_fake_b, 1.0)
        d_loss = 0.5 * (
            _lsgan(self.d_a(real_a, training=training), 1.0) + _lsgan(score_fake_a, 0.0)
            + _lsgan(self.d_b(real_b, training=training), 1.0) + _lsgan(score_fake_b, 0.0)
        )
        g_loss = adv + self.cycle_lambda * cycle + self.identity_weight * identity
        return {"g_loss": g_loss, "d_loss": d_loss, "adv_loss": adv,
                "cycle_loss": cycle, "identity_loss": identity}

    # --- TensorFlow-only: gradient tape and optimizer updates ---------------
    def train_step(self, data):
        """One optimizer step of both generators and both discriminators (TensorFlow backend)."""
        _require_tensorflow_backend()
        import tensorflow as tf

        if self.g_optimizer is None:
            raise ConfigError("CycleGAN: call compile() (or compile_cyclegan) before fit()")
        real_a, real_b = _unpack(data)
        with tf.GradientTape(persistent=True) as tape:
            losses = self.compute_losses(real_a, real_b, training=True)
        g_vars, d_vars = self.generator_variables, self.discriminator_variables
        self.g_optimizer.apply(tape.gradient(losses["g_loss"], g_vars), g_vars)
        self.d_optimizer.apply(tape.gradient(losses["d_loss"], d_vars), d_vars)
        del tape
        return self._update_trackers(losses)
    # --- end of TensorFlow-only part ----------------------------------------

    def test_step(self, data):
        """The training losses on a batch, without updates."""
        real_a, real_b = _unpack(data)
        return self._update_trackers(self.compute_losses(real_a, real_b, training=False))

    def _update_trackers(self, losses):
        for name, tracker in self.trackers.items():
            tracker.update_state(losses[name])
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def get_config(self):
        config = super().get_config()
        for key in ("g_ab", "g_ba", "d_a", "d_b"):
            config[key] = keras.saving.serialize_keras_object(getattr(self, key))
        config.update(cycle_lambda=self.cycle_lambda, identity_lambda=self.identity_lambda)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("g_ab", "g_ba", "d_a", "d_b"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)

    def get_compile_config(self):
        if self.g_optimizer is None:
            return {}
        return {
            "g_optimizer": keras.saving.serialize_keras_object(self.g_optimizer),
            "d_optimizer": keras.saving.serialize_keras_object(self.d_optimizer),
        }

    def compile_from_config(self, config):
        if config:
            self.compile(
                g_optimizer=keras.saving.deserialize_keras_object(config["g_optimizer"]),
                d_optimizer=keras.saving.deserialize_keras_object(config["d_optimizer"]),
            )


def paper_optimizer(learning_rate=STYLE.learning_rate, ema_momentum=STYLE.ema_momentum,
                    ema_every=STYLE.ema_every):
    """Nadam with an EMA of the weights reset into the model every ``ema_every`` steps.

    Section 3.1 of XprospeCT (Paulson et al., 2024). ``ema_every=None`` keeps
    the average without resetting; ``ema_momentum=None`` disables the EMA.

    Args:
        learning_rate: the learning rate (default: ``StyleConfig().learning_rate``).
        ema_momentum: momentum of the moving average, in [0, 1], or ``None``.
        ema_every: overwrite the variables with their average every this many
            optimizer steps, or ``None``.

    Returns:
        a ``keras.optimizers.Nadam``.

    Example:
        >>> paper_optimizer(1e-4, 0.9, 10).ema_overwrite_frequency
        10
    """
    if ema_momentum is None:
        return get_optimizer("nadam", learning_rate)
    if not 0.0 <= ema_momentum <= 1.0:
        raise ConfigError(
            f"style ema_momentum: got {ema_momentum!r}; use a value in [0, 1] or None")
    if ema_every is not None and (not isinstance(ema_every, int) or ema_every < 1):
        raise ConfigError(
            f"style ema_every: got {ema_every!r}; use a positive integer (steps) or None")
    return get_optimizer("nadam", learning_rate, use_ema=True, ema_momentum=ema_momentum,
                         ema_overwrite_frequency=ema_every)


def make_cyclegan(size, filters=STYLE.filters, disc_filters=None, n_residual=STYLE.n_residual,
                  n_layers=3, cycle_lambda=STYLE.cycle_lambda, identity_lambda=None,
                  upsampling=STYLE.upsampling, residual=STYLE.residual, name=None):
    """Build an (uncompiled) CycleGAN for ``(size, size, 1)`` images of one view.

    Args:
        size: image side (a multiple of 4, at least 8).
        filters: first-layer channels of the generators.
        disc_filters: first-layer channels of the discriminators (``None``:
            ``2 * filters``, CycleGAN's ratio).
        n_residual: residual blocks per generator (``None``: 6 up to 128, 9 above).
        n_layers: stride-2 layers of the PatchGAN (reduced for small images).
        cycle_lambda: cycle-consistency weight (paper: 20; > 25 weakens styling).
        identity_lambda: identity weight (``None``: ``0.5 * cycle_lambda``).
        upsampling: the generators' ``"transpose"`` (CycleGAN's) or ``"resize"``
            up-sampling (see :func:`build_resnet_generator`).
        residual: the generators change their input in logit space from an
            identity start (ours, see :func:`build_resnet_generator`).
        name: the model's name.

    Returns:
        a :class:`CycleGAN`; compile it with :func:`compile_cyclegan`.

    Example:
        >>> gan = make_cyclegan(16, filters=4, disc_filters=4, n_residual=1)
        >>> gan.d_b.output_shape
        (None, 2, 2, 1)
    """
    disc_filters = 2 * filters if disc_filters is None else disc_filters
    generator = dict(size=size, filters=filters, n_residual=n_residual, upsampling=upsampling, residual=residual)
    discriminator = dict(size=size, filters=disc_filters, n_layers=n_layers)
    return CycleGAN(
        g_ab=build_resnet_generator(**generator, name="g_ab"),
        g_ba=build_resnet_generator(**generator, name="g_ba"),
        d_a=build_patchgan_discriminator(**discriminator, name="d_a"),
        d_b=build_patchgan_discriminator(**discriminator, name="d_b"),
        cycle_lambda=cycle_lambda, identity_lambda=identity_lambda,
        name=name or "cyclegan",
    )


def compile_cyclegan(model, learning_rate=STYLE.learning_rate, ema_momentum=STYLE.ema_momentum,
                     ema_every=STYLE.ema_every, run_eagerly=False):
    """Compile ``model`` with the paper's training set-up (Nadam, low LR, EMA resets).

    The defaults are :class:`xprospect_tf.config.StyleConfig`'s.

    Args:
        model: a :class:`CycleGAN`.
        learning_rate: learning rate of both optimizers.
        ema_momentum: EMA momentum (``None`` disables the EMA).
        ema_every: reset the weights to their EMA every this many steps
            (``None``: never).
        run_eagerly: passed to ``compile`` (use ``True`` in tests).

    Returns:
        ``model`` (compiled in place).

    Example:
        >>> type(compile_cyclegan(make_cyclegan(16, 4, 4, 1), learning_rate=1e-4).g_optimizer).__name__
        'Nadam'
    """
    model.compile(
        g_optimizer=paper_optimizer(learning_rate, ema_momentum, ema_every),
        d_optimizer=paper_optimizer(learning_rate, ema_momentum, ema_every),
        run_eagerly=run_eagerly,
    )
    return model


def _l1(a, b):
    return ops.mean(ops.abs(a - b))


def _lsgan(scores, target):
    return ops.mean(ops.square(scores - target))


def _unpack(data):
    if isinstance(data, dict):
        return data["a"], data["b"]
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1]
    raise ConfigError("CycleGAN: each batch must be (images_a, images_b) or {'a': ..., 'b': ...}")


def _check_lambda(name, value):
    if not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"CycleGAN {name}: got {value!r}; use a number >= 0")


def _require_tensorflow_backend():
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ConfigError(
            f"CycleGAN training needs the TensorFlow backend (KERAS_BACKEND={backend!r}); "
            "set KERAS_BACKEND=tensorflow. Inference (predict) works on any backend."
        )
