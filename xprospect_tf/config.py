"""Experiment configuration: ``experiments.yaml`` -> frozen dataclasses.

One YAML file holds ``defaults``, data/training ``presets`` (``smoke``, ``paper``)
and one entry per Table 1 ``rows`` item. A run's configuration resolves, in order
of precedence (later wins)::

    defaults  <  row  <  preset  <  command-line overrides (--set key=value)

Where a rule lives: each setting's default, meaning, type, choices and bounds
are declared once, on its dataclass field (:func:`setting`); choices are read
from the registries that implement them (``LOSSES``, ``OPTIMIZERS``, the model
builders, ...), so a new registry entry is a valid choice without an edit here.
Every value is validated against these fields when it is read: an unknown key,
a wrong type or a value outside its choices or bounds raises
:class:`ConfigError` naming the setting and the file and line (or ``--set``
item) where it was written. Checks that involve two settings (the cube side
the model needs, the phantom split) run when a row is resolved, before any work.

A bare ``--set`` key must name one setting: ``epochs``, ``batch_size`` and
``learning_rate`` exist in both ``train`` and ``style``, so write
``train.epochs`` or ``style.epochs``; ``count`` in both ``data`` and ``style``;
``ema_momentum`` in both ``style`` and ``diffusion``.
A renamed setting's old key is refused with its new name
(``style.domain_b_count`` -> ``style.count``); a stored run configuration
written under the old name is read under the new one.
"""

import dataclasses
import math
import os
import typing

import yaml

from xprospect_tf.checks import (
    DEFAULT_FOV_MM,
    DEFAULT_VAL_FRACTION,
    DEFAULT_WINDOW,
    check_data_size,
    check_fov_mm,
    check_levels,
    check_model_size,
    check_positive_int,
    check_style_size,
    check_window,
)
from xprospect_tf.errors import ConfigError

SECTIONS = ("data", "model", "train", "style", "diffusion", "classify")


def setting(default, doc, *, choices=None, check=None, above=None, at_least=None, at_most=None,
            below=None):
    """A config field declaring, once, a setting's default, meaning and rules.

    Args:
        default: the default value.
        doc: what the setting means (shown in ``--help`` of the commands that expose it).
        choices: a function returning the valid names (read when a value is
            checked, from the registry that implements them).
        check: a :mod:`xprospect_tf.checks` function ``(value, setting) -> value``.
        above, at_least, at_most, below: numeric bounds (exclusive, inclusive,
            inclusive, exclusive).

    Returns:
        a ``dataclasses.field``.

    Example:
        >>> @dataclasses.dataclass(frozen=True)
        ... class Demo:
        ...     rate: float = setting(0.5, "a rate", above=0.0, below=1.0)
        >>> dataclasses.fields(Demo)[0].metadata["below"]
        1.0
    """
    rules = dict(doc=doc, choices=choices, check=check, above=above, at_least=at_least,
                 at_most=at_most, below=below)
    return dataclasses.field(default=default, metadata={k: v for k, v in rules.items() if v is not None})


# -- the registries that define the choices (imported when a value is checked) --


def _input_kinds():
    from xprospect_tf.data.prepared import INPUT_FIELDS

    return INPUT_FIELDS


def _architectures():
    from xprospect_tf.models.baselines import BASELINES
    from xprospect_tf.models.reconstruction import MODEL_BUILDERS

    return (*MODEL_BUILDERS, DIFFUSION, *BASELINES)


DIFFUSION = "diffusion"
"""``model.architecture`` of the diffusion rows (their settings: :class:`DiffusionConfig`)."""


def _conditions():
    from xprospect_tf.models.diffusion.unet import CONDITIONS

    return CONDITIONS


def _schedules():
    from xprospect_tf.models.diffusion.schedule import SCHEDULES

    return SCHEDULES


def _predictions():
    from xprospect_tf.models.diffusion.diffusion_model import PREDICTIONS

    return PREDICTIONS


def _model_builders():
    from xprospect_tf.models.reconstruction import MODEL_BUILDERS

    return MODEL_BUILDERS


def _output_biases():
    from xprospect_tf.models.reconstruction import OUTPUT_BIASES

    return OUTPUT_BIASES


def _precisions():
    from xprospect_tf.training.precision import PRECISIONS

    return PRECISIONS


def _losses():
    from xprospect_tf.training.losses import LOSSES

    return LOSSES


def _optimizers():
    from xprospect_tf.training.optimizers import OPTIMIZERS

    return OPTIMIZERS


def _strategies():
    from xprospect_tf.training.strategy import STRATEGIES

    return STRATEGIES


def _upsampling():
    from xprospect_tf.models.cyclegan.generator import UPSAMPLING

    return UPSAMPLING


# -- the schema --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which cases, at which size and intensity window.

    ``source`` is ``phantom`` (the embedded synthetic chest phantom, generated on
    the fly) or the path of a prepared dataset (``xprospect data prepare``).
    """

    source: str = setting("phantom", "'phantom' (the embedded synthetic chest phantom) or a "
                          "prepared dataset folder")
    count: int = setting(100, "phantom cases (ignored for a prepared dataset)", check=check_positive_int)
    size: int = setting(64, "cube side in voxels", check=check_data_size)
    window: typing.Tuple[float, float] = setting(DEFAULT_WINDOW, "HU window mapped to [0, 1]",
                                                 check=check_window)
    fov_mm: float = setting(DEFAULT_FOV_MM, "cube side in mm that a case is resampled into",
                            check=check_fov_mm)
    test_fraction: float = setting(0.2, "fraction of test cases (when test_count is null)",
                                   above=0.0, below=1.0)
    test_count: typing.Optional[int] = setting(None, "fixed number of test cases",
                                               check=check_positive_int)
    val_fraction: float = setting(
        DEFAULT_VAL_FRACTION, "share of the non-test cases held out for validation (the paper's 80/20 "
        "train/validation split: 0.2); fit monitors val_loss; 0: no validation split, fit monitors the "
        "training loss", at_least=0.0, below=1.0)
    split_seed: int = setting(0, "seed of the test and validation splits", at_least=0)
    phantom_seed: int = setting(0, "seed of the phantoms", at_least=0)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which model a row trains (see ``xprospect_tf.models``)."""

    architecture: str = setting("unet-dense", "a model builder or a baseline", choices=_architectures)
    dense_units: int = setting(512, "units of the Connection-A dense bottleneck", check=check_positive_int)
    projinj: bool = setting(False, "projection injection (512-ProjInj)")
    base_filters: int = setting(16, "filters of the first level", check=check_positive_int)
    levels: typing.Optional[int] = setting(None, "down-sampling levels; null: log2(size) - 2",
                                           check=check_positive_int)
    output_bias: str = setting("mean", "initial bias of the sigmoid output: 'mean' (the untrained "
                               "model predicts the training volumes' mean voxel value; ours) or 'zero' "
                               "(Keras' default: it predicts 0.5)", choices=_output_biases)
    precision: str = setting("float32", "the layers' compute dtype (a Keras dtype policy): float32, or "
                             "mixed_bfloat16 / mixed_float16 (float32 variables, output and losses; "
                             "mixed_float16 adds loss scaling); ours", choices=_precisions)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How a row is trained."""

    loss: str = setting("mse", "training loss", choices=_losses)
    optimizer: str = setting("adam", "optimizer", choices=_optimizers)
    learning_rate: float = setting(1e-4, "learning rate", above=0.0)
    lr_schedule: str = setting("constant", "constant, or cosine: decay from learning_rate to 0 over the run's "
                               "epochs x steps (ours)", choices=lambda: ("constant", "cosine"))
    epochs: int = setting(50, "training epochs", check=check_positive_int)
    batch_size: int = setting(1, "batch size (per replica)", check=check_positive_int)
    steps_per_epoch: typing.Optional[int] = setting(None, "steps per epoch; null: the whole train split",
                                                    check=check_positive_int)
    validation_every: int = setting(1, "evaluate the val split every N epochs (and at the last); "
                                    "best.keras can only follow val_loss at those epochs", check=check_positive_int)
    seed: int = setting(0, "seed of the weights and the shuffling", at_least=0)
    strategy: str = setting("default", "distribution strategy", choices=_strategies)
    run_eagerly: bool = setting(False, "run_eagerly (debugging, tiny tests)")
    init_from: typing.Optional[str] = setting(
        None, "a finished run folder (or .keras file) of the same architecture whose weights start "
        "this run (fine-tuning); null: fresh weights")


@dataclasses.dataclass(frozen=True)
class StyleConfig:
    """The style-transfer CycleGANs (paper section 3.1) used by ``inputs: styled`` rows.

    What the paper states: Nadam instead of Adam, a learning rate "significantly"
    below CycleGAN's, an exponential moving average (EMA) of the weights with
    resets of the weights to it, cycle lambda 20 (CycleGAN's is 10; above 25
    the style transfer became weak), and 2,390 paired orthogonal CheXpert X-rays
    (section 2) for training the style model: ``count``'s default. It gives no
    learning-rate number, no EMA momentum and no reset interval: those defaults
    are ours (marked so below), and so is how the 2,390 pairs are chosen (a
    seeded draw among the CSV's studies with both views, AP or PA frontal).
    """

    domain_b: str = setting(
        "default", "radiographs: 'default' (DRRs of as many unseen phantoms as there are train "
        "cases), 'phantom-drr:N', a CheXpert CSV (its frontal/lateral pairs), or a folder of "
        "PNG/JPEG/DICOM X-rays")
    count: typing.Optional[int] = setting(
        2390, "domain-B images per view, drawn with seed: from a CheXpert CSV this many "
        "frontal/lateral pairs, the same studies for both views (2390: the paper's number of paired "
        "CheXpert X-rays); from a folder or phantom DRRs ('default': one per train case) at most "
        "this many; null: all",
        check=check_positive_int)
    epochs: int = setting(20, "training epochs", check=check_positive_int)
    batch_size: int = setting(1, "batch size", check=check_positive_int)
    filters: int = setting(32, "generator base filters (the discriminators get twice as many)",
                           check=check_positive_int)
    n_residual: typing.Optional[int] = setting(
        None, "generator residual blocks (null: CycleGAN's 6 up to 128 px, 9 above)",
        check=check_positive_int)
    upsampling: str = setting(
        "transpose", "generator up-sampling: CycleGAN's transposed convolutions (transpose) or "
        "resize + conv (resize: no checkerboard artefacts)", choices=_upsampling)
    residual: bool = setting(
        False, "ours: the generators change their input in logit space from an identity start (a zero "
        "output convolution) instead of drawing a new image; false: CycleGAN's generator")
    learning_rate: float = setting(
        2e-5, "learning rate of both optimizers; ours: the paper lowers CycleGAN's 2e-4 "
        "'significantly' but gives no number",
        above=0.0)
    cycle_lambda: float = setting(20.0, "cycle-consistency weight (the paper's; > 25 weakens styling)",
                                  at_least=0.0)
    ema_momentum: typing.Optional[float] = setting(
        0.99, "ours (the paper gives none): momentum of the weights' moving average; null: no EMA",
        at_least=0.0, at_most=1.0)
    ema_every: typing.Optional[int] = setting(
        100, "ours (the paper gives none): reset the weights to their moving average every N "
        "steps; null: never", check=check_positive_int)
    seed: int = setting(0, "seed of the weights, the shuffling and the domain-B draw", at_least=0)


@dataclasses.dataclass(frozen=True)
class DiffusionConfig:
    """The diffusion rows (``model.architecture: diffusion``; the X-ray2CTPA approach, Cahan et al., 2024).

    The denoiser's widths come from ``model.base_filters`` and ``model.levels``
    (as the UNet rows'), its loss is ``train.loss: mae`` (the paper's l1), its
    optimizer ``train.optimizer`` (the paper: AdamW) at ``train.learning_rate``.
    What the X-ray2CTPA text gives: the cosine schedule, 1000 steps, the loss
    weights 0.01 (perceptual) and 0.001 (adversarial), AdamW, batch 2; what its
    code gives (per the issue that asked for this family): an EMA of 0.995
    updated every 10 steps and gradient clipping at 1.0. The rest is ours.
    """

    views: str = setting("biplanar", "the X-rays conditioning the model: 'frontal' (X-ray2CTPA) or "
                         "'biplanar' (frontal + lateral, XprospeCT's input)", choices=_conditions)
    schedule: str = setting("cosine", "noise schedule (X-ray2CTPA's code: cosine)", choices=_schedules)
    timesteps: int = setting(1000, "diffusion steps T (X-ray2CTPA: 1000)", check=check_positive_int)
    snr_shift: float = setting(1.0, "ours: scale every step's signal-to-noise ratio (< 1: noisier, so the "
                               "coarse anatomy must come from the X-rays; Hoogeboom et al. 2023); 1: none",
                               above=0.0)
    standardize: bool = setting(False, "ours: diffuse the volume minus the training cases' mean volume, scaled "
                                "to unit std, instead of the [-1, 1] volume (X-ray2CTPA's)")
    prediction: str = setting("eps", "what the denoiser predicts: the noise 'eps' (X-ray2CTPA's code) "
                              "or 'v' (ours, an option)", choices=_predictions)
    embed_dim: int = setting(128, "width of the X-ray embedding (the paper's BiomedCLIP: 512); ours",
                             check=check_positive_int)
    encoder_filters: int = setting(16, "first width of the default 2D X-ray encoder; ours",
                                   check=check_positive_int)
    attention: bool = setting(True, "self-attention at the denoiser's coarsest level")
    projection_injection: bool = setting(
        False, "ours: also give the denoiser the X-rays back-projected through the volume at every "
        "level (XprospeCT's ProjInj); false: the paper's conditioning, the X-ray embedding only")
    residual_of: typing.Optional[str] = setting(
        None, "ours (CorrDiff, Mardani et al. 2023): a UNet row of experiments.yaml whose trained "
        "prediction is the mean the diffusion refines: the denoiser diffuses volume - that prediction "
        "and the samples add it back (the row is trained first beside this run, or reused); null: "
        "diffuse the volume itself (X-ray2CTPA)")
    sample_steps: int = setting(50, "DDIM steps when sampling (the paper samples with 1000 DDPM steps); "
                                "ours", check=check_positive_int)
    eta: float = setting(0.0, "DDIM noise: 0 deterministic, 1 DDPM-like", at_least=0.0, at_most=1.0)
    guidance: float = setting(1.0, "classifier-free guidance scale; 1: none (the paper tried it, "
                              "it did not help)", at_least=0.0)
    condition_dropout: float = setting(0.0, "share of training volumes seen with the null condition "
                                       "(needed for guidance != 1; e.g. 0.1)", at_least=0.0, at_most=1.0)
    ema_momentum: float = setting(0.9995, "momentum of the weights' moving average, updated every step "
                                  "(0.9995 = 0.995 every 10 steps, X-ray2CTPA's code); sampling uses "
                                  "the average", above=0.0, below=1.0)
    gradient_clip: typing.Optional[float] = setting(1.0, "global gradient-norm clip (X-ray2CTPA's code: "
                                                    "1.0); null: none", above=0.0)
    perceptual_weight: float = setting(0.01, "weight of the perceptual term (the paper's lambda_1); 0: off",
                                       at_least=0.0)
    adversarial_weight: float = setting(0.001, "weight of the adversarial term (the paper's lambda_2); "
                                        "0: off", at_least=0.0)
    discriminator_filters: int = setting(16, "first width of the 4-layer 3D discriminator; ours",
                                         check=check_positive_int)
    classification_weight: float = setting(
        0.0, "weight of the classification term (the paper's lambda_3: 0.08); needs labelled cases "
        "(xprospect data phantoms --findings); 0: off", at_least=0.0)
    classifier_filters: int = setting(8, "first width of the 3D classifier of the classification term; ours",
                                      check=check_positive_int)
    latent: bool = setting(False, "latent mode: the diffusion runs on the stacked latents of a 2D slice "
                           "autoencoder (compression 8 in-plane, as the paper's frozen VAE); trained "
                           "first on the row's training slices (ours); false: pixel space")
    latent_channels: int = setting(4, "channels of the slice latents (the paper's kl-f8 VAE: 4)",
                                   check=check_positive_int)
    autoencoder_epochs: int = setting(10, "epochs of the slice autoencoder's training (latent mode); ours",
                                      check=check_positive_int)
    unconditional_epochs: int = setting(0, "epochs trained first with the null condition (the paper's "
                                        "two-stage fine-tuning: unconditional, then conditional)", at_least=0)
    pretrain_epochs: int = setting(0, "then epochs conditioned on the DRRs of the same cases (the paper "
                                   "pre-trains on DRRs of another dataset), before train.epochs on the "
                                   "row's inputs", at_least=0)
    lora_rank: typing.Optional[int] = setting(
        None, "with train.init_from: train only rank-r LoRA adapters of the denoiser (the paper's "
        "fine-tuning on LIDC); null: every weight trains", check=check_positive_int)


# -- the classification protocol (issue #12; X-ray2CTPA's Table 3) ------------------


def _volume_classifiers():
    from xprospect_tf.models.classifiers import VOLUME, classifiers_for

    return classifiers_for(VOLUME)


def _xray_classifiers():
    from xprospect_tf.models.classifiers import XRAYS, classifiers_for

    return classifiers_for(XRAYS)


GENERATOR_PROTOCOLS = ("disjoint", "per-fold")
"""How ``xprospect classify`` keeps every generated CT from a generator that never saw its case."""


def _generator_protocols():
    return GENERATOR_PROTOCOLS


def _check_nodule_radius(value, name):
    from xprospect_tf.data.phantom import check_nodule_radius

    return check_nodule_radius(value, name)


def _check_nodule_contrast(value, name):
    from xprospect_tf.data.phantom import check_nodule_contrast

    return check_nodule_contrast(value, name)


@dataclasses.dataclass(frozen=True)
class ClassifyConfig:
    """``xprospect classify``: does the generated CT help a diagnosis? (X-ray2CTPA, Table 3).

    The paper: six stratified folds, DeLong CIs, Youden thresholds on the
    validation split, a DenseNet3D-121 on CT latents and a RadImageNet
    ResNet-50 on the X-rays. Ours: the small classifiers, their training
    settings, the labelled phantom cohort and its finding difficulty, and how
    the generated CTs are kept out of sample (``generator``).
    """

    folds: int = setting(6, "stratified cross-validation folds (the paper: 6); fold i tests, fold i+1 "
                         "validates (Youden threshold), the rest trains", at_least=3)
    fold_seed: int = setting(0, "seed of the folds and of the classifiers' weights", at_least=0)
    cases: int = setting(120, "labelled phantom cases of the cohort (ignored with --data)",
                         check=check_positive_int)
    cases_seed: int = setting(1, "dataset seed of the cohort's phantoms (must differ from data.phantom_seed, "
                              "whose phantoms train the 'disjoint' generator)", at_least=0)
    nodule_radius_mm: typing.Tuple[float, float] = setting(
        (5.0, 12.0), "range of the phantoms' nodule radius in mm (the finding's size)", check=_check_nodule_radius)
    nodule_contrast_hu: float = setting(880.0, "the nodule's HU above the lung's -850 HU (880: a solid nodule "
                                        "at 30 HU); lower is harder to see", check=_check_nodule_contrast)
    generator: str = setting(
        "disjoint", "'disjoint': the row is trained once on data.count phantoms none of which is in the "
        "cohort; 'per-fold': trained again on each fold's training cases (needed for a real dataset)",
        choices=_generator_protocols)
    ct_classifier: str = setting("cnn3d", "classifier of the real and the generated CT (the paper: "
                                 "DenseNet3D-121)", choices=_volume_classifiers)
    xray_classifier: str = setting("cnn2d", "classifier of the X-ray pair (the paper: RadImageNet ResNet-50)",
                                   choices=_xray_classifiers)
    classifier_filters: int = setting(8, "first-level channels of the classifiers", check=check_positive_int)
    classifier_epochs: int = setting(30, "training epochs of each classifier", check=check_positive_int)
    classifier_batch_size: int = setting(8, "batch size of the classifiers", check=check_positive_int)
    classifier_learning_rate: float = setting(1e-3, "Adam learning rate of the classifiers", above=0.0)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunConfig:
    """A fully resolved experiment: one Table 1 row under one preset."""

    row: str
    preset: str
    inputs: str = setting("mean", "the X-rays the model sees: mean-CT projections, DRRs or "
                          "stylized projections", choices=_input_kinds)
    description: str = setting("", "what the row is")
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    style: StyleConfig = StyleConfig()
    diffusion: DiffusionConfig = DiffusionConfig()
    classify: ClassifyConfig = ClassifyConfig()

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d, where="config"):
        if not isinstance(d, dict):
            raise ConfigError(f"{where}: not a run configuration (expected a mapping)")
        d = dict(d)
        _check_keys(d, {f.name for f in dataclasses.fields(cls)}, where, {})
        missing = [k for k in ("row", "preset", "data", "model", "train") if k not in d]
        if missing:
            raise ConfigError(f"{where}: the run configuration lacks {', '.join(missing)}; "
                              "it is damaged: train the run again into a new folder")
        for section in SECTIONS:
            if not isinstance(d.get(section, {}), dict):
                raise ConfigError(f"{where}: {section} must be a mapping; the run configuration is damaged")
        return cls(
            row=d["row"], preset=d["preset"],
            inputs=_check_value(cls, "inputs", d.get("inputs", _default(cls, "inputs")), where),
            description=d.get("description", ""),
            data=_build(DataConfig, d["data"], where),
            model=_build(ModelConfig, d["model"], where),
            train=_build(TrainConfig, d["train"], where),
            style=_build(StyleConfig, _with_current_names("style", d.get("style", {})), where),
            diffusion=_build(DiffusionConfig, d.get("diffusion", {}), where),
            classify=_build(ClassifyConfig, d.get("classify", {}), where),
        )


@dataclasses.dataclass(frozen=True)
class Experiments:
    """The parsed ``experiments.yaml``: defaults, presets and rows."""

    path: str
    defaults: dict
    presets: dict
    rows: dict  # name -> raw row dict (validated)
    lines: dict  # key path tuple -> line number, for messages

    @property
    def row_names(self):
        return list(self.rows)

    def resolve(self, row, preset="smoke", overrides=()):
        """Resolve ``row`` under ``preset`` with ``overrides`` into a :class:`RunConfig`.

        ``overrides`` are ``"key=value"`` strings; ``key`` is ``section.field``
        (``data.size``) or a bare field name when only one section has it
        (``size``; ``epochs`` must be written ``train.epochs`` or ``style.epochs``).
        Values are YAML scalars (``128``, ``1e-4``, ``[-100, 900]``). The
        checks that involve two settings run here (:func:`check_run`).

        Example:
            >>> exp = load_experiments(default_experiments_path())
            >>> exp.resolve("64-Dense", "smoke", ["train.epochs=2"]).train.epochs
            2
        """
        if row not in self.rows:
            raise ConfigError(
                f"{self.path}: no row named {row!r}; rows are: {', '.join(self.rows)}"
            )
        if preset not in self.presets:
            raise ConfigError(
                f"{self.path}: no preset named {preset!r}; presets are: {', '.join(self.presets)}"
            )
        raw_row = self.rows[row]
        merged = {s: {} for s in SECTIONS}
        for layer in (self.defaults, raw_row, self.presets[preset]):
            for s in SECTIONS:
                merged[s].update(layer.get(s) or {})
        top = {k: raw_row.get(k, _default(RunConfig, k)) for k in ("inputs", "description")}
        for item in overrides:
            _apply_override(item, merged, top)
        config = RunConfig(
            row=row, preset=preset,
            inputs=_check_value(RunConfig, "inputs", top["inputs"], ""),
            description=_check_value(RunConfig, "description", top["description"], ""),
            data=_build(DataConfig, merged["data"]),
            model=_build(ModelConfig, merged["model"]),
            train=_build(TrainConfig, merged["train"]),
            style=_build(StyleConfig, merged["style"]),
            diffusion=_build(DiffusionConfig, merged["diffusion"]),
            classify=_build(ClassifyConfig, merged["classify"]),
        )
        return check_run(config, where=f"{self.path}: row {row!r} (preset {preset!r})")


def check_run(config, where="config"):
    """Return ``config`` if the settings that depend on each other agree; else raise ConfigError.

    - a row whose architecture builds a Keras model needs a cube side the model
      can be built at and a valid number of levels at that side;
    - ``inputs: styled`` needs a side the style CycleGAN can run at;
    - ``source: phantom`` needs a split that leaves at least one training and
      one test case, and a validation case unless ``val_fraction`` is 0.

    Args:
        config: a :class:`RunConfig`.
        where: prefix of the messages (the file and row).

    Example:
        >>> run = load_experiments(default_experiments_path()).resolve("64-Dense")
        >>> check_run(dataclasses.replace(run, data=DataConfig(size=24)))
        Traceback (most recent call last):
        ...
        xprospect_tf.errors.ConfigError: config: data.size = 24: the reconstruction model needs a power of two >= 16 (e.g. 32, 64, 128, 256)
    """
    data = config.data
    try:
        if config.model.architecture in (*_model_builders(), DIFFUSION):
            check_model_size(data.size, "data.size")
            check_levels(config.model.levels, data.size, "model.levels")
        if config.model.architecture == DIFFUSION and config.train.loss != "mae":
            raise ConfigError(f"train.loss = {config.train.loss!r}: a diffusion row trains with the "
                              "paper's l1 loss; set train.loss: mae")
        d = config.diffusion
        if config.model.architecture == DIFFUSION and d.residual_of is not None and (d.latent or d.views != "biplanar"):
            raise ConfigError(f"diffusion.residual_of = {d.residual_of!r}: the UNet rows read the frontal and "
                              "lateral X-rays in pixel space; a residual diffusion needs diffusion.views: "
                              "biplanar and diffusion.latent: false")
        if config.inputs == "styled":
            check_style_size(data.size, "data.size")
        if data.source == "phantom":
            _check_phantom_split(data)
        _check_classify(config)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    return config


def _check_phantom_split(data):
    from xprospect_tf.data.prepared import split_sizes

    n_train, n_val, n_test = split_sizes(data.count, data.test_fraction, data.test_count, data.val_fraction)
    if n_test == 0 or n_test == data.count:
        split = (f"data.test_count = {data.test_count}" if data.test_count is not None
                 else f"data.test_fraction = {data.test_fraction}")
        raise ConfigError(
            f"{split} with data.count = {data.count} phantoms leaves {data.count - n_test} training "
            f"and {n_test} test case(s); use more phantoms (count) or fewer test cases")
    if n_train == 0 or (data.val_fraction and n_val == 0):
        raise ConfigError(
            f"data.val_fraction = {data.val_fraction} with data.count = {data.count} phantoms "
            f"({n_test} test) leaves {n_train} training and {n_val} validation case(s); use more "
            "phantoms (count), another val_fraction, or val_fraction = 0 for no validation split")


def _check_classify(config):
    """The 'disjoint' generator trains on phantoms of data.phantom_seed: the cohort needs another seed."""
    c = config.classify
    if c.generator == "disjoint" and c.cases_seed == config.data.phantom_seed:
        raise ConfigError(
            f"classify.cases_seed = {c.cases_seed} equals data.phantom_seed: the 'disjoint' generator would "
            "be trained on the classification cases; use another classify.cases_seed")


def with_settings(config, values, where=None):
    """Return a copy of the section ``config`` with ``values`` set, each validated like ``experiments.yaml``.

    Args:
        config: a section dataclass (e.g. ``StyleConfig()``).
        values: ``{field: value}``.
        where: function ``field -> location`` for messages (e.g. the
            command-line option that set it), or ``None``.

    Example:
        >>> with_settings(StyleConfig(), {"epochs": 3}).epochs
        3
        >>> with_settings(StyleConfig(), {"epochs": 0}, where=lambda k: "--epochs")
        Traceback (most recent call last):
        ...
        xprospect_tf.errors.ConfigError: --epochs: style.epochs = 0: use a positive integer
    """
    cls = type(config)
    checked = {k: _check_value(cls, k, v, where(k) if where else "") for k, v in values.items()}
    return dataclasses.replace(config, **checked)


def validated(config):
    """Return ``config`` (a section dataclass built in code) after checking every field.

    Example:
        >>> validated(StyleConfig(learning_rate=float("nan")))
        Traceback (most recent call last):
        ...
        xprospect_tf.errors.ConfigError: style.learning_rate = nan: use a finite number
    """
    return with_settings(config, dataclasses.asdict(config))


def parse_value(cls, key, text):
    """A command-line value for ``cls.key``: the text itself for a string setting, else a
    YAML scalar (``128``, ``1e-4``, ``null``, ``[-100, 900]``), as ``--set`` reads it.

    Example:
        >>> parse_value(StyleConfig, "n_residual", "null"), parse_value(StyleConfig, "domain_b", "2024")
        (None, '2024')
    """
    field = _fields(cls).get(key)
    if field is not None and field.type is str:
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def default_experiments_path():
    """The ``experiments.yaml`` to use: ``$XPROSPECT_EXPERIMENTS``, ./experiments.yaml,
    or the copy installed with the package."""
    env = os.environ.get("XPROSPECT_EXPERIMENTS")
    if env:
        return env
    if os.path.exists("experiments.yaml"):
        return "experiments.yaml"
    return os.path.join(os.path.dirname(__file__), "experiments.yaml")


def load_experiments(path=None):
    """Parse and validate ``experiments.yaml``; raise :class:`ConfigError` on any problem."""
    path = os.fspath(path or default_experiments_path())
    if not os.path.isfile(path):
        what = "is a folder, not a file" if os.path.isdir(path) else "not found"
        raise ConfigError(f"{path}: experiments file {what}; pass --experiments PATH to a YAML file")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        node = yaml.compose(text)
    except (UnicodeDecodeError, ValueError) as e:  # a binary file; yaml's reader errors are ValueErrors too
        raise ConfigError(f"{path}: not a text YAML file ({type(e).__name__}); pass --experiments PATH "
                          "to an experiments.yaml") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the experiments file ({e.strerror})") from None
    lines = {}
    doc = _to_python(node, (), lines) if node is not None else {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping with keys version, defaults, presets, rows")
    where = lambda keys: f"{path}:{lines.get(tuple(keys), 1)}"  # noqa: E731
    _check_keys(doc, {"version", "defaults", "presets", "rows"}, path, lines)
    defaults = doc.get("defaults") or {}
    _check_sections(defaults, ("defaults",), where)
    presets = doc.get("presets") or {}
    for name, p in presets.items():
        _check_sections(p, ("presets", name), where)
    rows = {}
    for i, r in enumerate(doc.get("rows") or []):
        if not isinstance(r, dict) or "name" not in r:
            raise ConfigError(f"{where(('rows', i))}: each row needs a 'name'")
        allowed = {"name", "description", "inputs"} | set(SECTIONS)
        for k in r:
            if k not in allowed:
                raise ConfigError(
                    f"{where(('rows', i, k))}: unknown key {k!r} in row {r['name']!r}; "
                    f"allowed: {', '.join(sorted(allowed))}"
                )
        for k in ("inputs", "description"):
            if k in r:
                _check_value(RunConfig, k, r[k], where(("rows", i, k)))
        _check_sections({s: r.get(s) for s in SECTIONS if s in r}, ("rows", i), where)
        if r["name"] in rows:
            raise ConfigError(f"{where(('rows', i))}: duplicate row name {r['name']!r}")
        rows[r["name"]] = r
    exp = Experiments(path=path, defaults=defaults, presets=presets, rows=rows, lines=lines)
    for name in rows:  # every row must resolve under every preset
        for preset in presets:
            exp.resolve(name, preset)
    return exp


# -- validation ----------------------------------------------------------------

_SCHEMA = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "style": StyleConfig,
           "diffusion": DiffusionConfig, "classify": ClassifyConfig}
_SECTION_OF = {cls: name for name, cls in _SCHEMA.items()}
RENAMED = {"style.domain_b_count": "style.count"}  # old key -> its setting's name now


def _renamed_hint(section, key):
    """``'; it was renamed style.count'`` when ``section.key`` is an old name, else ``''``."""
    new = RENAMED.get(f"{section}.{key}")
    return f"; {section}.{key} was renamed {new}: write {new.split('.', 1)[1]}" if new else ""


def _with_current_names(section, values):
    """A stored section's values with renamed keys under their current names (old run folders)."""
    values = dict(values)
    for old, new in RENAMED.items():
        old_section, old_key = old.split(".", 1)
        if old_section == section and old_key in values:
            values.setdefault(new.split(".", 1)[1], values.pop(old_key))
    return values


def _check_sections(d, keys, where):
    if not isinstance(d, dict):
        raise ConfigError(f"{where(keys)}: expected a mapping")
    for s, values in d.items():
        if s not in _SCHEMA:
            raise ConfigError(
                f"{where(keys + (s,))}: unknown section {s!r}; allowed: {', '.join(SECTIONS)}"
            )
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{where(keys + (s,))}: {s} must be a mapping")
        for k, v in values.items():
            _check_value(_SCHEMA[s], k, v, where(keys + (s, k)))


def _fields(cls):
    return {f.name: f for f in dataclasses.fields(cls)}


def _default(cls, key):
    return _fields(cls)[key].default


def _check_keys(d, allowed, where, lines):
    for k in d:
        if k not in allowed:
            line = lines.get((k,))
            loc = f"{where}:{line}" if line else where
            raise ConfigError(f"{loc}: unknown key {k!r}; allowed: {', '.join(sorted(allowed))}")


def _check_value(cls, key, value, where):
    """Validate ``value`` for the field ``cls.key`` against its type and its metadata rules."""
    fields = _fields(cls)
    prefix = f"{where}: " if where else ""
    if key not in fields:
        raise ConfigError(
            f"{prefix}unknown key {key!r}{_renamed_hint(_SECTION_OF.get(cls), key)}; "
            f"{cls.__name__} keys are: {', '.join(fields)}"
        )
    name = f"{_SECTION_OF[cls]}.{key}" if cls in _SECTION_OF else key
    try:
        return _coerce(fields[key], name, value)
    except ConfigError as e:
        raise ConfigError(f"{prefix}{e}") from None


def _coerce(field, name, value):
    tp = field.type
    if typing.get_origin(tp) is typing.Union and type(None) in typing.get_args(tp):
        if value is None:
            return None
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    value = _of_type(tp, name, value)
    rules = field.metadata
    if "choices" in rules:
        choices = rules["choices"]()
        if value not in choices:
            raise ConfigError(f"{name} = {value!r} is not one of {', '.join(choices)}")
    for rule, holds, text in _BOUNDS:
        if rule in rules and not holds(value, rules[rule]):
            raise ConfigError(f"{name} = {value!r}: use a number {text} {rules[rule]}")
    if "check" in rules:
        value = rules["check"](value, name)
    return value


_BOUNDS = (
    ("above", lambda v, b: v > b, ">"),
    ("at_least", lambda v, b: v >= b, ">="),
    ("at_most", lambda v, b: v <= b, "<="),
    ("below", lambda v, b: v < b, "<"),
)


def _of_type(tp, name, value):
    bad = ConfigError(f"{name} = {value!r} is not a valid {_type_name(tp)}")
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise bad
        return tuple(_of_type(a, name, v) for a, v in zip(args, value))
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
    elif tp is float:
        if isinstance(value, str):  # YAML 1.1 (PyYAML) reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise bad from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{name} = {value!r}: use a finite number")
    elif tp is str and not isinstance(value, str):
        raise bad
    return value


def _type_name(tp):
    return {int: "integer", float: "number", bool: "boolean (true/false)", str: "string"}.get(
        tp, "pair [low, high]"
    )


def _build(cls, values, where=""):
    return cls(**{k: _check_value(cls, k, v, where) for k, v in values.items()})


def _apply_override(item, merged, top):
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set size=128")
    key, text = item.split("=", 1)
    key = key.strip()
    where = f"--set {item}"
    if key in top:
        top[key] = _check_value(RunConfig, key, parse_value(RunConfig, key, text), where)
        return
    if "." in key:
        section, field = key.split(".", 1)
        if section not in _SCHEMA:
            raise ConfigError(f"--set {item!r}: unknown section {section!r}; use one of {SECTIONS}")
    else:
        owners = [s for s in SECTIONS if key in _fields(_SCHEMA[s])]
        if not owners:
            known = sorted({f for s in SECTIONS for f in _fields(_SCHEMA[s])} | set(top))
            hint = "".join(_renamed_hint(s, key) for s in SECTIONS)
            raise ConfigError(f"--set {item!r}: unknown setting {key!r}{hint}; known: {', '.join(known)}")
        if len(owners) > 1:
            raise ConfigError(
                f"--set {item!r}: {key!r} is a setting of both {' and '.join(owners)}; write "
                f"{' or '.join(f'{s}.{key}' for s in owners)}")
        section, field = owners[0], key
    value = parse_value(_SCHEMA[section], field, text)
    merged[section][field] = _check_value(_SCHEMA[section], field, value, where)


def _to_python(node, path, lines):
    """Convert a composed YAML node to Python, recording each key's line."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out = {}
        for k, v in node.value:
            key = yaml.safe_load(yaml.serialize(k)) if not isinstance(k, yaml.ScalarNode) else k.value
            lines[path + (key,)] = k.start_mark.line + 1
            out[key] = _to_python(v, path + (key,), lines)
            lines[path + (key,)] = k.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(v, path + (i,), lines) for i, v in enumerate(node.value)]
    return yaml.safe_load(yaml.serialize(node))
