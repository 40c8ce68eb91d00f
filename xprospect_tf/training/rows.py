"""A Table 1 row's Keras model, built from its resolved configuration.

One function per question a workflow asks of a row: which model it trains
(built and compiled: the row's architecture, loss, optimizer and metric), and
which model stands for a baseline row. Both return models with the same
inputs (``frontal``, ``lateral``) and output (``ct``), so evaluation, export
and prediction treat every row alike.
"""

import contextlib
import itertools
import logging
import os
import sys
import typing

import numpy as np

from xprospect_tf.errors import ConfigError
from xprospect_tf.files import atomic_path

log = logging.getLogger(__name__)


MEAN_CASES = 64  # training cases averaged for the output's starting value (ours: a scalar needs few)


def build_compiled_model(config, strategy=None, output_mean=None, steps_per_epoch=None, regressor=None):
    """Build and compile the Keras model of a trained row.

    Args:
        config: the row's :class:`~xprospect_tf.config.RunConfig`.
        strategy: a ``tf.distribute`` strategy to build under (``None``: the default).
        output_mean: the training volumes' mean voxel value (:func:`mean_voxel`):
            the untrained model's output when ``config.model.output_bias`` is
            ``"mean"``; ``None`` starts it at 0.5.
        steps_per_epoch: the run's steps per epoch, which ``train.lr_schedule: cosine``
            needs (its decay spans ``train.epochs`` of them).
        regressor: a diffusion row's trained ``diffusion.residual_of`` model (residual mode).

    Returns:
        a compiled ``keras.Model``: ``config.model`` at ``config.data.size``,
        ``config.train``'s loss and optimizer, PSNR as a metric.

    Example:
        >>> from xprospect_tf.config import load_experiments
        >>> cfg = load_experiments().resolve("64-Dense", "smoke")
        >>> model = build_compiled_model(cfg)
        >>> model.loss.name, type(model.optimizer).__name__  # optimizer names get suffixes (adam_2)
        ('mean_squared_error', 'Adam')
    """
    from xprospect_tf.models.reconstruction import build_model
    from xprospect_tf.training.losses import get_loss
    from xprospect_tf.training.metrics import PSNR
    from xprospect_tf.training.optimizers import get_optimizer

    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        if is_diffusion(config):
            return _compiled_diffusion_model(config, steps_per_epoch, regressor)
        model = build_model(config.model, config.data.size, output_mean=output_mean)
        model.compile(
            optimizer=get_optimizer(config.train.optimizer, learning_rate(config.train, steps_per_epoch)),
            loss=get_loss(config.train.loss),
            metrics=[PSNR(name="psnr")],
            run_eagerly=config.train.run_eagerly,
        )
    return model


def learning_rate(train, steps_per_epoch=None):
    """``train.learning_rate``, or with ``train.lr_schedule: cosine`` a Keras ``CosineDecay``
    from it to 0 over ``train.epochs * steps_per_epoch`` steps (without ``steps_per_epoch``,
    e.g. a notebook's ``build_compiled_model(cfg)``, the constant rate, with a warning).

    Example:
        >>> from xprospect_tf.config import TrainConfig
        >>> schedule = learning_rate(TrainConfig(learning_rate=1e-3, epochs=2, lr_schedule="cosine"), 5)
        >>> [round(float(schedule(step)), 6) for step in (0, 5, 10)]  # half-way: half
        [0.001, 0.0005, 0.0]
    """
    import keras

    if train.lr_schedule == "constant":
        return train.learning_rate
    if not steps_per_epoch:
        log.warning("train.lr_schedule: cosine needs the run's steps per epoch (build_compiled_model(cfg, "
                    "steps_per_epoch=N)); using a constant learning rate of %g", train.learning_rate)
        return train.learning_rate
    return keras.optimizers.schedules.CosineDecay(train.learning_rate, train.epochs * int(steps_per_epoch))


def _compiled_diffusion_model(config, steps_per_epoch=None, regressor=None):
    """A diffusion row's model, compiled: its loss is its own (``compute_loss``), the
    optimizer keeps the weights' moving average (``use_ema``), which ``fit`` copies
    into the weights when it ends."""
    from xprospect_tf.models.diffusion import build_diffusion_row
    from xprospect_tf.training.optimizers import get_optimizer

    d = config.diffusion
    model = build_diffusion_row(config, regressor)
    model.compile(
        optimizer=get_optimizer(config.train.optimizer, learning_rate(config.train, steps_per_epoch), use_ema=True,
                                ema_momentum=d.ema_momentum, global_clipnorm=d.gradient_clip),
        run_eagerly=config.train.run_eagerly)
    return model


def is_diffusion(config):
    """Whether the row is a diffusion row (``model.architecture: diffusion``)."""
    from xprospect_tf.config import DIFFUSION

    return config.model.architecture == DIFFUSION


def predictor(model, config):
    """``(frontal, lateral) -> volumes`` of a row's model on numpy batches, for evaluation.

    A diffusion row samples (``diffusion.sample_steps`` DDIM steps); batch ``i``
    of a run draws its noise from seed ``(train.seed, i)``, so an evaluation is
    repeatable. Every other row runs the model once.
    """
    if not is_diffusion(config):
        return lambda ap, lateral: model.predict_on_batch({"frontal": ap, "lateral": lateral})
    batches = itertools.count()
    return lambda ap, lateral: model.sample({"frontal": ap, "lateral": lateral},
                                            seed=config.train.seed * 100003 + next(batches))


def mean_voxel(data_dir, split="train", limit=MEAN_CASES):
    """The mean voxel value of the first ``limit`` cases of a prepared split.

    Example:
        >>> import tempfile
        >>> import numpy as np
        >>> from xprospect_tf.data.prepared import load_case, read_manifest, write_prepared
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = write_prepared("phantom:3", folder, size=8, test_count=1, val_fraction=0,
        ...                        workers=1, progress=False)
        ...     cts = [load_case(folder, i)["ct"] for i in read_manifest(folder).ids("train")]
        ...     bool(np.isclose(mean_voxel(folder), np.mean(cts)))
        True
    """
    import numpy as np

    from xprospect_tf.data.prepared import load_prepared

    means = [float(np.mean(ct)) for _, ct in load_prepared(data_dir, split).take(limit).as_numpy_iterator()]
    return float(np.mean(means))


def is_baseline(config):
    """Whether the row is a baseline (a model computed without training)."""
    from xprospect_tf.models.baselines import BASELINES

    return config.model.architecture in BASELINES


def build_baseline_model(config, train):
    """The Keras model of a baseline row.

    Args:
        config: the row's :class:`~xprospect_tf.config.RunConfig`.
        train: the training split, ``((ap, lateral), ct)`` elements (the
            mean-volume baseline averages its volumes).

    Returns:
        a ``keras.Model`` with the reconstruction model's inputs and output.
    """
    from xprospect_tf.models.baselines import build_baseline

    return build_baseline(config.model.architecture, config.data.size, train)


def fit_row(cfg, run_dir, data_dir, regressor_dir=None):
    """Train a row's model in ``run_dir``: ``model.fit`` with checkpoints, resume and logs
    (:func:`~xprospect_tf.training.callbacks.standard_callbacks`); writes ``run_dir/model.keras``.
    ``regressor_dir``: a diffusion row with ``diffusion.residual_of``: the finished run of that row.

    The cases come as a stream of epochs whose orders depend only on
    ``(seed, epoch)``; a run resumed from its backup at epoch ``k`` starts the
    stream where an uninterrupted run is at epoch ``k``, so both end with the
    same weights. The backup is kept after ``fit`` (run_row deletes it once
    results.json is written), so a run killed after training does not train again.

    The ``val`` split is evaluated after every epoch (``val_loss``, ``val_psnr``
    in ``history.csv``) and ``best.keras`` follows ``val_loss``; with
    ``data.val_fraction = 0`` there is no validation and it follows the
    training ``loss``. With a val split the returned model (and ``model.keras``)
    holds ``best.keras``'s weights, the epoch with the lowest ``val_loss``: the
    model that is tested. The test split is not read here.

    Raises:
        ConfigError: the dataset was split with another ``val_fraction`` than ``cfg.data``'s.
    """
    from xprospect_tf.data.prepared import Manifest, batches_per_epoch, load_prepared
    from xprospect_tf.training.callbacks import BEST, AtomicBackupAndRestore, standard_callbacks
    from xprospect_tf.training.guard import check_tensor_sizes, tensor_size_report
    from xprospect_tf.training.strategy import get_strategy, global_batch_size

    manifest = Manifest.read(data_dir)
    manifest.check_matches(val_fraction=cfg.data.val_fraction)
    validate = bool(manifest.ids("val"))
    strategy = get_strategy(cfg.train.strategy)
    batch = global_batch_size(cfg.train.batch_size, strategy)
    diffusion = is_diffusion(cfg)
    output_mean = mean_voxel(data_dir) if cfg.model.output_bias == "mean" and not diffusion else None
    steps = cfg.train.steps_per_epoch or batches_per_epoch(data_dir, "train", batch, inputs=cfg.inputs)
    model = build_compiled_model(cfg, strategy, output_mean, steps, regressor=load_regressor(cfg, regressor_dir))
    report = tensor_size_report(model, cfg.train.batch_size)  # one replica's tensors
    log.info("%s: %s parameters, estimated training memory %.2f GiB per replica (batch %d on "
             "each of %d replica(s))", cfg.row, f"{model.count_params():,}",
             report.training_bytes / 2**30, cfg.train.batch_size, strategy.num_replicas_in_sync)
    check_tensor_sizes(model, cfg.train.batch_size)
    if validate:
        log.info("%s: %d training and %d validation cases; best.keras follows val_loss", cfg.row,
                 len(manifest.ids("train")), len(manifest.ids("val")))
    else:
        log.info("%s: no validation split (data.val_fraction = 0): %d training cases, no val_loss; "
                 "best.keras follows the training loss", cfg.row, len(manifest.ids("train")))
    callbacks = standard_callbacks(run_dir, monitor="val_loss" if validate else "loss", keep_backup=True)
    backup = next(c for c in callbacks if isinstance(c, AtomicBackupAndRestore))
    start_from(model, cfg)
    if diffusion and not backup.backups() and cfg.train.init_from is None:  # fresh: fit what precedes training
        if model.latent:
            fit_slice_autoencoder(model, cfg, data_dir)
        if model.standardize:
            model.fit_standardization(load_prepared(data_dir, "train", batch_size=16).as_numpy_iterator())
    initial_epoch = backup.restore(model)
    labels = manifest.labels() if diffusion and cfg.diffusion.classification_weight else None
    fitted = False
    for stage in training_stages(cfg):
        if stage.end <= initial_epoch:
            continue
        if diffusion:  # a new condition mode needs a new trace of the train and test steps
            model.conditioned = stage.conditioned
            model.train_function = model.test_function = None
        first = max(initial_epoch, stage.start)
        log.info("%s: epochs %d-%d: %s", cfg.row, first + 1, stage.end, stage.what)
        per_pass = batches_per_epoch(data_dir, "train", batch, inputs=stage.inputs)
        first_pass, skip = divmod(first * steps, per_pass)  # epochs may not be whole passes
        train = load_prepared(data_dir, "train", inputs=stage.inputs, batch_size=batch, shuffle=True,
                              seed=cfg.train.seed, cache=True, epoch=first_pass, labels=labels)
        val = (load_prepared(data_dir, "val", inputs=stage.inputs, batch_size=batch, cache=True, labels=labels)
               if validate else None)
        model.fit(
            train.skip(skip) if skip else train, epochs=stage.end, initial_epoch=first,
            steps_per_epoch=steps, shuffle=False, callbacks=callbacks, validation_data=val,
            validation_freq=validation_epochs(cfg.train.validation_every, first, stage.end),
            verbose=1 if sys.stdout.isatty() else 2,
        )
        initial_epoch, fitted = stage.end, True
    if diffusion:  # fit ended by copying the weights' moving average into them: kept and sampled with
        model.conditioned = True
        if not fitted and model.optimizer.built:  # every epoch was done before (a run killed after fit)
            model.optimizer.finalize_variable_values(model.trainable_variables)
        log.info("%s: keeping the moving average of the weights (EMA %g)", cfg.row, cfg.diffusion.ema_momentum)
    elif validate:  # the model kept and tested is the epoch with the lowest val_loss
        model.load_weights(os.path.join(run_dir, BEST))
        log.info("%s: keeping the weights of epoch %d (lowest val_loss)", cfg.row, _best_epoch(run_dir) + 1)
    with atomic_path(os.path.join(run_dir, "model.keras")) as tmp:
        model.save(tmp)
    return model


def load_regressor(cfg, regressor_dir):
    """The trained model of the row a diffusion row's ``diffusion.residual_of`` names, from its run
    folder ``regressor_dir`` (``None`` for every other row)."""
    if not is_diffusion(cfg) or cfg.diffusion.residual_of is None:
        return None
    import keras

    path = os.path.join(regressor_dir or "", "model.keras")
    if regressor_dir is None or not os.path.exists(path):
        raise ConfigError(f"diffusion.residual_of = {cfg.diffusion.residual_of!r}: no trained model at "
                          f"{path if regressor_dir else '(no run folder given)'}; train that row first")
    return keras.models.load_model(path)


def validation_epochs(every, first, end):
    """The 1-based epochs of ``first+1 .. end`` that evaluate the val split: every ``every``-th, and ``end``.

    Example:
        >>> validation_epochs(5, 0, 12)
        [5, 10, 12]
        >>> validation_epochs(1, 3, 5)
        [4, 5]
    """
    return sorted({e for e in range(first + 1, end + 1) if e % every == 0} | {end})


def fit_slice_autoencoder(model, cfg, data_dir):
    """Latent mode: train the diffusion model's slice autoencoder on the training CTs' axial slices
    (``diffusion.autoencoder_epochs``, ``train.learning_rate``), then freeze it."""
    from xprospect_tf.data.prepared import load_prepared

    slices = (load_prepared(data_dir, "train", cache=True).map(lambda _, ct: ct).unbatch()
              .shuffle(1024, seed=cfg.train.seed).batch(32))
    history = model.fit_autoencoder(slices, cfg.diffusion.autoencoder_epochs, cfg.train.learning_rate,
                                    verbose=2 if not sys.stdout.isatty() else 1)
    log.info("%s: slice autoencoder trained (%d epochs, L1 %.4f), latent scale %.3f", cfg.row,
             cfg.diffusion.autoencoder_epochs, history.history["loss"][-1], float(model.latent_scale))


class Stage(typing.NamedTuple):
    """Epochs ``start`` .. ``end - 1`` of a run, trained on ``inputs``, with or without the condition."""

    start: int
    end: int
    inputs: str
    conditioned: bool
    what: str


def training_stages(cfg):
    """The stages of a row's training, in order; epochs are numbered through all of them.

    A UNet row has one: ``train.epochs`` on the row's inputs. A diffusion row
    may first train ``diffusion.unconditional_epochs`` with the null condition,
    then ``diffusion.pretrain_epochs`` conditioned on the DRRs of the same
    cases, then ``train.epochs`` on the row's inputs (X-ray2CTPA's two-stage
    fine-tuning and DRR pre-training; there, on another, larger dataset).

    Example:
        >>> from xprospect_tf.config import load_experiments
        >>> cfg = load_experiments().resolve("Diffusion-Frontal", "smoke", [
        ...     "diffusion.unconditional_epochs=2", "diffusion.pretrain_epochs=3"])
        >>> [(s.start, s.end, s.inputs, s.conditioned) for s in training_stages(cfg)]
        [(0, 2, 'mean', False), (2, 5, 'drr', True), (5, 20, 'mean', True)]
    """
    stages, start = [], 0
    plan = [(cfg.train.epochs, cfg.inputs, True, f"the row's inputs ({cfg.inputs})")]
    if is_diffusion(cfg):
        d = cfg.diffusion
        plan = [(d.unconditional_epochs, cfg.inputs, False, "unconditional (the null condition)"),
                (d.pretrain_epochs, "drr", True, "conditioned on DRRs (pre-training)"), *plan]
    for epochs, inputs, conditioned, what in plan:
        if epochs:
            stages.append(Stage(start, start + epochs, inputs, conditioned, what))
            start += epochs
    return stages


def start_from(model, cfg):
    """Load ``train.init_from``'s weights into ``model`` (fine-tuning) and, for a diffusion row
    with ``diffusion.lora_rank``, train only low-rank adapters of its denoiser from there on.

    Raises:
        InputError: the run or file is missing, or its model is not this row's architecture.
    """
    from xprospect_tf.errors import InputError

    if cfg.train.init_from is None:
        return
    path = cfg.train.init_from
    path = os.path.join(path, "model.keras") if os.path.isdir(path) else path
    if not os.path.isfile(path):
        raise InputError(f"train.init_from = {cfg.train.init_from}: no model.keras there; give a finished "
                         "run folder or a .keras file")
    try:
        if is_diffusion(cfg):  # a subclassed model: its weights are saved by attribute path
            model.load_weights(path)
        else:
            load_weights_by_layer_name(model, path)
    except ValueError as e:
        raise InputError(f"train.init_from = {cfg.train.init_from}: its weights do not fit {cfg.row}'s "
                         f"model ({e}); fine-tune from a run of the same architecture and sizes") from None
    log.info("%s: starting from the weights of %s", cfg.row, path)
    rank = cfg.diffusion.lora_rank if is_diffusion(cfg) else None
    if rank:
        adapted = enable_lora(model.denoiser, rank)
        model.encoder.trainable = False
        log.info("%s: LoRA rank %d on %d layers of the denoiser; %s trainable parameters", cfg.row, rank,
                 adapted, f"{sum(int(np.prod(v.shape)) for v in model.trainable_variables):,}")


def load_weights_by_layer_name(model, path):
    """Copy the weights of the functional model saved at ``path`` into ``model``, layer by layer name.

    ``model.load_weights`` matches layers of one class by their order in the graph, and the
    order changes when a version adds or removes weightless layers (the decoder rewrite of
    issue #11 removed the up-sampling and concatenation layers): a file saved by an older
    version would load into the wrong layers, or fail. Names do not change.

    Raises:
        ValueError: a layer with weights has no namesake in the file, or other shapes.
    """
    from xprospect_tf.export import load_keras_model

    source = {layer.name: layer for layer in load_keras_model(path, compile=False).layers if layer.weights}
    target = [layer for layer in model.layers if layer.weights]
    missing = sorted({layer.name for layer in target} ^ set(source))
    if missing:
        raise ValueError(f"layer {missing[0]!r} is in only one of the two models")
    for layer in target:
        layer.set_weights(source[layer.name].get_weights())


def enable_lora(model, rank):
    """Enable LoRA of ``rank`` on every Dense and convolution layer of ``model`` that supports it
    (Keras' ``enable_lora``: the kernel is frozen, two low-rank factors train); returns how many."""
    import keras

    count = 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, (keras.layers.Dense, keras.layers.Conv3D, keras.layers.Conv2D)):
            layer.enable_lora(rank)
            count += 1
    return count


def _best_epoch(run_dir):
    """The 0-based epoch ``best.keras`` was saved at (from ``best.keras.json``)."""
    import json

    with open(os.path.join(run_dir, "best.keras.json")) as f:
        return int(json.load(f)["epoch"])
