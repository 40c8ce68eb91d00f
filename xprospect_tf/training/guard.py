"""Tensor-size guard: catch tensors TensorFlow cannot hold before training.

XprospeCT (section 5.2, "TensorFlow's Max Limit on Parameters") words the
limit as "2^32 parameters per layer" and could not train 256 x 256 inputs
because of it (section 4.1). The limit TensorFlow actually enforces is per
tensor, not per layer: 2^31 - 1 elements (the int32 indexing of many kernels),
for weights and activations alike, and its errors do not say which layer is at
fault. That is the limit this guard checks (:data:`xprospect_tf.checks.INT32_LIMIT`).
At 128^3 and beyond, a decoder activation of shape ``(batch, S, S, S, filters)``
reaches it quickly. This module walks a built Keras model, multiplies every
activation by the batch size, reports the offenders by name and computes the
largest batch size that fits.

It also estimates memory (ours, issue #11): the tensors alive at the peak of a
train or predict step (:attr:`SizeReport.training_bytes`,
:attr:`SizeReport.inference_bytes`) and a whole process's peak
(:meth:`SizeReport.process_peak_bytes`), ``docs/benchmarks.md`` has the model
and its check against measured peaks.
"""

import dataclasses
import logging
import math
import re

from xprospect_tf.checks import INT32_LIMIT
from xprospect_tf.errors import ConfigError, TensorSizeError

log = logging.getLogger(__name__)

BYTES_PER_ELEMENT = 4  # float32: the variables' dtype under every precision

RUNTIME_BASELINE_BYTES = round(0.679 * 2**30)
"""Resident memory of a process that imported TensorFlow, Keras and this package and built
nothing: 0.679 GiB, TensorFlow 2.21 (CPU) and Keras 3.15 (``benchmarks/scaling.py``,
``"mode": "baseline"``). A GPU build maps its CUDA libraries too: measure it there."""

RUNTIME_BYTES_PER_LAYER = {"train": round(7.2 * 2**20), "predict": round(1.5 * 2**20)}
"""Resident memory per model layer that the runtime holds once a step has run, tensors
apart: the traced function (graph, gradient and optimizer ops for ``train``), its
optimized copy and oneDNN's compiled kernels. Measured on the 512-Dense row at
base_filters 2 (tensors of a few MiB) at 16^3, 32^3 and 64^3, float32 and mixed_bfloat16
(``benchmarks/scaling.py run --runtime``): (peak RSS - baseline - the tensors counted here)
/ layers, 6.6-8.7 MiB for a train step and 1.3-1.7 MiB for predict; the means."""


def describe_limit(limit=INT32_LIMIT):
    """The limit in words, as the dry run and the errors print it.

    Example:
        >>> describe_limit().split(" (int32")[0]
        "TensorFlow's limit of 2,147,483,647 (2^31-1) elements per tensor"
        >>> describe_limit(100)
        'a limit of 100 elements per tensor'
    """
    if limit != INT32_LIMIT:
        return f"a limit of {limit:,} elements per tensor"
    return (f"TensorFlow's limit of {INT32_LIMIT:,} (2^31-1) elements per tensor "
            '(int32 indexing; the paper, section 5.2, words it as "2^32 parameters per layer")')


@dataclasses.dataclass(frozen=True)
class LayerSize:
    """Sizes of one layer: its output activations (times the batch) and weights."""

    name: str
    class_name: str
    output_shapes: tuple  # per output (then internal) tensor, batch dimension included
    activation_elements: int  # all outputs and internal tensors, batch included
    largest_activation: int  # largest single tensor, batch included
    weight_elements: int
    largest_weight: int  # largest single weight tensor
    # bytes, batch included, in each tensor's dtype (bfloat16 activations under mixed_bfloat16):
    output_bytes: int = 0  # its outputs
    internal_bytes: int = 0  # tensors made inside ``call`` (``internal_output_shapes``)
    transient_bytes: int = 0  # of those, the ones freed inside ``call`` (``transient_output_shapes``)
    cast_bytes: int = 0  # its inputs cast to its compute dtype (mixed precision)
    input_bytes: int = 0  # its inputs, as earlier layers made them
    alive_bytes: int = 0  # tensors of earlier layers, not its inputs, that a later layer reads
    weight_bytes: int = 0  # in the variables' dtype
    weight_cast_bytes: int = 0  # its weights cast to its compute dtype (mixed precision), else 0

    @property
    def largest_tensor(self):
        return max(self.largest_activation, self.largest_weight)

    @property
    def kept_bytes(self):
        """What back-propagation keeps of this layer until its gradient has run: its outputs
        (each is the input of a convolution, whose weight gradient reads it, or the output
        of an activation, whose gradient reads it), its input casts and its internal
        tensors but the transient ones."""
        return self.output_bytes + self.cast_bytes + self.internal_bytes - self.transient_bytes

    @property
    def forward_bytes(self):
        """Alive while it runs forward: its inputs, their casts, its internal tensors and
        outputs, and the tensors made earlier that later layers read (skip connections)."""
        return self.alive_bytes + self.input_bytes + self.cast_bytes + self.internal_bytes + self.output_bytes

    @property
    def backward_bytes(self):
        """Alive besides the kept tensors while its gradient runs: the gradients with respect
        to its outputs and to its inputs."""
        return self.output_bytes + self.input_bytes


@dataclasses.dataclass(frozen=True)
class SizeReport:
    """Per-layer tensor sizes of a model at a batch size (see :func:`tensor_size_report`).

    Attributes:
        batch_size: the batch size the activations were multiplied by.
        layers: one :class:`LayerSize` per layer, in model order.
        optimizer_slots: optimizer variables per weight used by the memory estimate.
    """

    batch_size: int
    layers: tuple
    optimizer_slots: int = 2

    @property
    def weight_elements(self):
        return sum(r.weight_elements for r in self.layers)

    @property
    def activation_elements(self):
        return sum(r.activation_elements for r in self.layers)

    @property
    def largest(self):
        """The :class:`LayerSize` holding the largest single tensor."""
        return max(self.layers, key=lambda r: r.largest_tensor)

    @property
    def weight_bytes(self):
        return sum(r.weight_bytes for r in self.layers)

    @property
    def training_bytes(self):
        """Tensors alive at the peak of a train step, in bytes (each in its dtype).

        The weights and the optimizer's slot variables (``optimizer_slots`` per
        weight, float32 like the weights under every precision), the weights cast
        to the compute dtype (mixed precision: the convolutions' gradients read
        the casts), and the larger of: every layer's :attr:`~LayerSize.kept_bytes`
        (what back-propagation keeps) plus the largest
        :attr:`~LayerSize.backward_bytes` (the gradients of one layer's outputs and
        inputs), alive when back-propagation starts; or the weights' gradients,
        all alive when it ends, once each kept tensor has been freed after its
        gradient ran. Temporary buffers of single kernels (cuDNN workspaces,
        oneDNN's reordered copies) are not counted. :meth:`process_peak_bytes`
        adds the runtime.
        """
        state = self.weight_bytes * (1 + self.optimizer_slots) + sum(r.weight_cast_bytes for r in self.layers)
        backward = sum(r.kept_bytes for r in self.layers) + max(r.backward_bytes for r in self.layers)
        return state + max(backward, self.weight_bytes)

    @property
    def inference_bytes(self):
        """Tensors alive at the peak of a forward pass (predict), in bytes: the weights and
        the largest :attr:`~LayerSize.forward_bytes` (a layer's inputs, internal tensors
        and outputs, and the skip connections alive across it); every other tensor is
        freed once its last reader has run."""
        return self.weight_bytes + max(r.forward_bytes for r in self.layers)

    def process_peak_bytes(self, mode="train", baseline=RUNTIME_BASELINE_BYTES, per_layer=None):
        """Estimated peak resident memory of a process that runs this model's ``mode`` step.

        ``baseline`` (the process with TensorFlow and Keras imported) + ``per_layer``
        x the layers (the traced step function and its compiled kernels) + the tensors
        (:attr:`training_bytes` or :attr:`inference_bytes`). The defaults are TensorFlow
        2.21 on a CPU (:data:`RUNTIME_BASELINE_BYTES`, :data:`RUNTIME_BYTES_PER_LAYER`).

        Args:
            mode: ``"train"`` or ``"predict"``.
            baseline: bytes of the runtime before any model is built.
            per_layer: runtime bytes per layer (``None``: ``RUNTIME_BYTES_PER_LAYER[mode]``).
        """
        if mode not in RUNTIME_BYTES_PER_LAYER:
            raise ConfigError(f"mode = {mode!r}: use one of {', '.join(RUNTIME_BYTES_PER_LAYER)}")
        per_layer = RUNTIME_BYTES_PER_LAYER[mode] if per_layer is None else per_layer
        tensors = self.training_bytes if mode == "train" else self.inference_bytes
        return baseline + per_layer * len(self.layers) + tensors

    @property
    def largest_per_sample(self):
        """``(elements, layer name)`` of the largest single activation tensor of one sample.

        Activations grow linearly with the batch, weights do not: the batch
        size that fits is ``limit // elements``.
        """
        layer = max(self.layers, key=lambda r: r.largest_activation)
        return layer.largest_activation // self.batch_size, layer.name

    def max_batch_size(self, limit=INT32_LIMIT):
        """The largest batch size whose activations all stay within ``limit``
        elements (0 when a weight tensor or one sample's activation alone exceeds it)."""
        if any(r.largest_weight > limit for r in self.layers):
            return 0
        per_sample, _ = self.largest_per_sample
        return limit // per_sample if per_sample else math.inf

    def problem(self, limit=INT32_LIMIT):
        """What exceeds ``limit`` and what to change, in one message; ``None`` when everything fits.

        The text of :class:`~xprospect_tf.errors.TensorSizeError` (a real run)
        and of ``xprospect train --dry-run``.
        """
        bad = self.violations(limit)
        if not bad:
            return None
        worst = bad[0]
        max_batch = self.max_batch_size(limit)
        heavy = [r for r in bad if r.largest_weight > limit]
        if heavy:
            advice = (f"a weight tensor of layer {heavy[0].name!r} ({heavy[0].largest_weight:,} elements) "
                      "is too large whatever the batch size: "
                      "reduce model.dense_units, model.base_filters or data.size")
        elif max_batch == 0:
            per_sample, name = self.largest_per_sample
            advice = (f"even batch size 1 is too large (layer {name!r} holds {per_sample:,} elements "
                      "per sample): reduce data.size or model.base_filters")
        else:
            advice = (
                f"the largest batch size that fits is {max_batch:,}: reduce train.batch_size to "
                f"{max_batch} or less, or reduce data.size or model.base_filters"
            )
        return (
            f"layer {worst.name!r} ({worst.class_name}, output {', '.join(map(str, worst.output_shapes))}) "
            f"holds a tensor of {worst.largest_tensor:,} elements at batch size {self.batch_size}, "
            f"over {describe_limit(limit)}; {advice}. {len(bad)} layer(s) exceed the limit."
        )

    def limit_lines(self, limit=INT32_LIMIT):
        """The limit checked and the largest batch size that fits, as report lines."""
        per_sample, name = self.largest_per_sample
        max_batch = self.max_batch_size(limit)
        if max_batch == math.inf:
            fits = "any (no activations)"
        elif max_batch == 0:
            fits = "none (a weight tensor or one sample's activation alone exceeds the limit)"
        else:
            fits = f"{max_batch:,}"
        return [
            f"limit checked: {describe_limit(limit)}",
            f"largest activation per sample: {per_sample:,} elements in layer {name!r}; "
            f"largest batch size that fits: {fits}",
        ]

    def violations(self, limit=INT32_LIMIT):
        """Layers with an output activation or a weight of more than ``limit`` elements,
        largest first."""
        bad = [r for r in self.layers if r.largest_tensor > limit]
        return sorted(bad, key=lambda r: -r.largest_tensor)

    def format(self, top=15, limit=INT32_LIMIT):
        """A readable table of the ``top`` layers with the largest tensors, then totals,
        the limit checked and the largest batch size that fits it."""
        rows = sorted(self.layers, key=lambda r: -r.largest_tensor)[:top]
        header = f"{'layer':<28} {'class':<20} {'output shape':<28} {'activations':>15} {'weights':>13}"
        lines = [f"tensor sizes at batch size {self.batch_size} (largest first)", header, "-" * len(header)]
        for r in rows:
            shape = ", ".join(str(s) for s in r.output_shapes)
            lines.append(
                f"{r.name[:28]:<28} {r.class_name[:20]:<20} {shape[:28]:<28} "
                f"{r.activation_elements:>15,} {r.weight_elements:>13,}"
            )
        largest = self.largest
        lines += [
            "-" * len(header),
            f"largest tensor: {largest.largest_tensor:,} elements in layer {largest.name!r}",
            f"total weights: {self.weight_elements:,}; total activations: {self.activation_elements:,}",
            f"estimated training memory: {self.training_bytes / 2**30:.2f} GiB of tensors (weights, "
            f"gradients, {self.optimizer_slots} optimizer slots, kept activations, one layer's gradients); "
            f"process peak {self.process_peak_bytes('train') / 2**30:.2f} GiB with the runtime "
            f"(TensorFlow on a CPU; predict: {self.process_peak_bytes('predict') / 2**30:.2f} GiB)",
            *self.limit_lines(limit),
        ]
        return "\n".join(lines)


def _leaf_layers(model, nested=False):
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer, nested=True)
        elif nested and isinstance(layer, keras.layers.InputLayer):
            continue  # aliases the outer tensor that feeds the nested model
        else:
            yield layer


def _output_shapes(layer, batch_size):
    import keras

    try:
        outputs = keras.tree.flatten(layer.output)
    except (AttributeError, ValueError):  # unbuilt, or shared across several calls
        log.warning("layer %r: no single output; its activations are not counted", layer.name)
        return ()
    shapes = []
    for t in outputs:
        dims = tuple(t.shape)
        if any(d is None for d in dims[1:]):
            raise ConfigError(
                f"layer {layer.name!r} has a dynamic output shape {dims}; "
                "tensor_size_report needs a model built on fixed input shapes"
            )
        shapes.append((batch_size,) + dims[1:])
    return tuple(shapes) + _internal_shapes(layer, batch_size)


def _internal_shapes(layer, batch_size, method="internal_output_shapes"):
    """Tensors a composite layer makes inside ``call`` (its ``internal_output_shapes``), or of
    those the ones it frees inside ``call`` (``method="transient_output_shapes"``)."""
    internal = getattr(layer, method, None)
    if internal is None:
        return ()
    import keras

    try:  # a list of shapes for a layer called on a list (a ConvBlock with an up-sampled input)
        input_shape = keras.tree.map_structure(lambda t: tuple(t.shape), layer.input)
    except (AttributeError, ValueError):
        return ()
    return tuple((batch_size,) + tuple(s)[1:] for s in internal(input_shape))


def itemsize(dtype):
    """Bytes per element of a dtype name.

    Example:
        >>> itemsize("bfloat16"), itemsize("float32"), itemsize("int64"), itemsize("bool")
        (2, 4, 8, 1)
    """
    bits = re.search(r"(\d+)$", str(dtype))
    return int(bits.group(1)) // 8 if bits else 1


def _tensors(layer, attribute):
    """The tensors of ``layer.input`` or ``layer.output``; none for an unbuilt or shared layer."""
    import keras

    try:
        return keras.tree.flatten(getattr(layer, attribute))
    except (AttributeError, ValueError):
        return []


def _bytes(tensor, batch_size):
    return batch_size * math.prod(tensor.shape[1:]) * itemsize(tensor.dtype)


def _layer_size(layer, batch_size, alive_bytes=0):
    shapes = _output_shapes(layer, batch_size)
    activations = [math.prod(s) for s in shapes]
    weights = [math.prod(w.shape) for w in layer.weights]
    compute = getattr(layer, "compute_dtype", None) or "float32"
    per_element = itemsize(compute)
    inputs = _tensors(layer, "input")
    cast = [t for t in inputs if "float" in str(t.dtype) and str(t.dtype) != compute]
    return LayerSize(
        name=layer.name,
        class_name=type(layer).__name__,
        output_shapes=shapes,
        activation_elements=sum(activations),
        largest_activation=max(activations, default=0),
        weight_elements=sum(weights),
        largest_weight=max(weights, default=0),
        output_bytes=sum(_bytes(t, batch_size) for t in _tensors(layer, "output")),
        internal_bytes=per_element * sum(math.prod(s) for s in _internal_shapes(layer, batch_size)),
        transient_bytes=per_element * sum(
            math.prod(s) for s in _internal_shapes(layer, batch_size, "transient_output_shapes")),
        cast_bytes=per_element * sum(batch_size * math.prod(t.shape[1:]) for t in cast),
        input_bytes=sum(_bytes(t, batch_size) for t in inputs),
        alive_bytes=alive_bytes,
        weight_bytes=sum(math.prod(w.shape) * itemsize(w.dtype) for w in layer.weights),
        weight_cast_bytes=sum(math.prod(w.shape) * (per_element if "float" in str(w.dtype) and
                                                    str(w.dtype) != compute else 0) for w in layer.weights),
    )


def _alive_bytes(layers, batch_size):
    """Per layer, in order: bytes of the tensors made by earlier layers, not read by this one,
    that a later one reads (alive across it: a UNet's skip connections)."""
    last_read = {}
    for i, layer in enumerate(layers):
        for t in _tensors(layer, "input"):
            last_read[id(t)] = i
    alive, across = {}, []
    for i, layer in enumerate(layers):
        inputs = {id(t) for t in _tensors(layer, "input")}
        across.append(sum(b for key, b in alive.items() if key not in inputs))
        alive.update((id(t), _bytes(t, batch_size)) for t in _tensors(layer, "output"))
        alive = {key: b for key, b in alive.items() if last_read.get(key, -1) > i}
    return across


def tensor_size_report(model, batch_size, optimizer_slots=2):
    """Walk every layer of a built functional model and size its tensors.

    Paper section 5.2. Nested models are walked layer by layer; a composite
    layer that defines ``internal_output_shapes(input_shape)`` (e.g. ConvBlock,
    ConnectionB) also has the tensors made inside its ``call`` counted. Symbolic
    models allocate no activations, so this is safe for sizes that would not fit.

    Args:
        model: a built functional ``keras.Model``.
        batch_size: the (per-replica) batch size the activations are multiplied by.
        optimizer_slots: optimizer variables per weight (2 for Adam/Nadam, 0 for SGD).

    Returns:
        a :class:`SizeReport`.

    Example:
        >>> import keras
        >>> model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, padding="same", name="conv")])
        >>> report = tensor_size_report(model, batch_size=2)
        >>> report.weight_elements, report.activation_elements  # 3*3*1*4 + 4; 2*8*8*4
        (40, 512)
        >>> report.largest.name, report.largest.output_shapes
        ('conv', ((2, 8, 8, 4),))
    """
    if int(batch_size) < 1:
        raise ConfigError(f"train.batch_size: must be at least 1, got {batch_size}")
    leaves = list(_leaf_layers(model))
    alive = _alive_bytes(leaves, int(batch_size))
    layers = tuple(_layer_size(layer, int(batch_size), a) for layer, a in zip(leaves, alive))
    if not layers:
        raise ConfigError("tensor_size_report: the model has no layers; build it first")
    return SizeReport(batch_size=int(batch_size), layers=layers, optimizer_slots=optimizer_slots)


def check_tensor_sizes(model, batch_size, limit=INT32_LIMIT):
    """Raise :class:`TensorSizeError` if any activation or weight exceeds ``limit`` elements.

    Paper section 5.2. The message (:meth:`SizeReport.problem`) names the largest
    offending layer, its element count, the limit, and what to change: for a
    batch too large, the largest batch size that fits.

    Args:
        model: a built functional ``keras.Model``.
        batch_size: the per-replica batch size.
        limit: the element limit (TensorFlow's int32 indexing: ``2**31 - 1``).

    Returns:
        the :class:`SizeReport` when everything fits.

    Example:
        >>> import keras
        >>> model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, padding="same", name="conv")])
        >>> check_tensor_sizes(model, batch_size=2).batch_size  # fits: the report
        2
        >>> try:
        ...     check_tensor_sizes(model, batch_size=2, limit=300)  # 2 x 8 x 8 x 4 = 512 > 300
        ... except TensorSizeError as e:
        ...     print(str(e).split("; ")[-1].split(":")[0])
        the largest batch size that fits is 1
    """
    report = tensor_size_report(model, batch_size)
    problem = report.problem(limit)
    if problem is not None:
        raise TensorSizeError(problem)
    return report
