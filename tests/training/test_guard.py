import math

import keras
import numpy as np
import pytest

from xprospect_tf.errors import ConfigError, TensorSizeError
from xprospect_tf.training import guard


def _tiny_model(size=8, filters=2):
    """Same input/output names as the reconstruction model, with a nested sub-model."""
    frontal = keras.Input((size, size, 1), name="frontal")
    lateral = keras.Input((size, size, 1), name="lateral")
    x = keras.layers.Concatenate(name="concat")([frontal, lateral])
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(size**3, name="dense")(x)
    x = keras.layers.Reshape((size, size, size, 1), name="reshape")(x)
    inner_in = keras.Input((size, size, size, 1))
    conv = keras.layers.Conv3D(filters, 3, padding="same", name="conv")(inner_in)
    inner = keras.Model(inner_in, conv, name="decoder")
    x = inner(x)
    ct = keras.layers.Conv3D(1, 1, name="ct")(x)
    return keras.Model({"frontal": frontal, "lateral": lateral}, ct)


def test_report_counts_match_keras_and_numpy():
    model = _tiny_model()
    batch = 3
    report = guard.tensor_size_report(model, batch)
    names = [r.name for r in report.layers]
    assert "conv" in names and "decoder" not in names  # nested model walked
    assert report.weight_elements == model.count_params()
    conv = next(r for r in report.layers if r.name == "conv")
    assert conv.output_shapes == ((batch, 8, 8, 8, 2),)
    assert conv.activation_elements == batch * int(np.prod((8, 8, 8, 2)))
    assert conv.weight_elements == 3**3 * 1 * 2 + 2
    expected_acts = batch * (2 * 64 + 128 + 128 + 512 + 512 + 1024 + 512)
    assert report.activation_elements == expected_acts
    assert report.largest.name == "dense"  # kernel 128 x 512 = 65536 > 3 * 1024
    assert report.largest.largest_tensor == 128 * 512
    text = report.format(top=3)
    assert text.splitlines()[3].startswith("dense")
    assert "estimated training memory" in text
    others = ("conv", "ct ", "reshape", "flat", "concat", "frontal", "lateral")
    assert len([line for line in text.splitlines() if line.startswith(others)]) == 2  # top=3


def test_check_passes_and_fails_with_batch_advice():
    model = _tiny_model()
    assert guard.check_tensor_sizes(model, 4).violations() == []
    limit = 100_000  # conv output is 1024 per sample -> at most 97 per batch
    with pytest.raises(TensorSizeError) as e:
        guard.check_tensor_sizes(model, 100, limit=limit)
    msg = str(e.value)
    assert "'conv'" in msg and "102,400" in msg and "100,000" in msg
    assert "batch_size to 97 " in msg
    assert guard.check_tensor_sizes(model, 97, limit=limit)  # the advised batch fits
    with pytest.raises(TensorSizeError):
        guard.check_tensor_sizes(model, 98, limit=limit)


def test_weight_over_limit_says_reduce_model():
    model = _tiny_model()
    with pytest.raises(TensorSizeError, match="'dense'.*dense_units"):
        guard.check_tensor_sizes(model, 1, limit=60000)


def test_paper_scale_symbolic_model_exceeds_int32_without_allocating():
    x = keras.Input((512, 512, 512, 1), name="vol")
    y = keras.layers.Conv3D(16, 1, name="decoder_conv")(x)
    model = keras.Model(x, y)
    report = guard.tensor_size_report(model, 2)
    assert report.largest.largest_tensor == 2 * 512**3 * 16 > 2**31 - 1
    assert [r.name for r in report.violations()] == ["decoder_conv"]
    with pytest.raises(TensorSizeError, match=r"decoder_conv.*4,294,967,296.*2,147,483,647.*batch size 1"):
        guard.check_tensor_sizes(model, 2)
    assert report.max_batch_size() == 0  # 512^3 * 16 = 2^31 per sample
    half = keras.Model(x, keras.layers.Conv3D(8, 1, name="half")(x))
    assert guard.tensor_size_report(half, 1).max_batch_size() == (2**31 - 1) // (512**3 * 8)
    assert math.isfinite(report.training_bytes)


def test_tensors_inside_composite_layers_are_counted():
    import keras

    from xprospect_tf.layers.blocks import ConvBlock
    from xprospect_tf.layers.connection_b import ConnectionB
    from xprospect_tf.training.guard import tensor_size_report

    image = keras.Input((8, 8, 2))
    volume = ConnectionB(3, depth=16, name="lift")(image)  # (8, 8, 16, 3); inside: (8, 8, 3), 3 slices (8, 8, 3, 3)
    shallow = ConnectionB(3, depth=8, name="shallow")(image)  # below SUMMED_MIN_DEPTH: repeated (8, 8, 8, 3)
    out = ConvBlock(5, spatial_dims=3, convs=3, name="block")(volume)  # 3 convs of (8, 8, 16, 5)
    report = tensor_size_report(keras.Model(image, [out, shallow]), batch_size=2)
    rows = {r.name: r for r in report.layers}
    assert rows["block"].activation_elements == 3 * 2 * 8 * 8 * 16 * 5
    assert rows["lift"].activation_elements == 2 * (8 * 8 * 3 + 8 * 8 * 3 * 3 + 8 * 8 * 16 * 3)
    assert rows["shallow"].activation_elements == 2 * (8 * 8 * 3 + 8 * 8 * 8 * 3 + 8 * 8 * 8 * 3)


@pytest.mark.parametrize("size, base_filters, projinj", [(16, 2, True), (32, 4, False)])
def test_largest_batch_of_the_reconstruction_model_matches_its_widest_tensor(size, base_filters, projinj):
    from xprospect_tf.models.reconstruction import build_reconstruction_model

    model = build_reconstruction_model(size=size, dense_units=64, projinj=projinj, base_filters=base_filters)
    # independent count: the widest full-size tensors have C0 channels (the scale-0 blocks, Connection-B/C),
    # with ProjInj C0 + 2: the fusion block's concatenation of Connection-C's average and the 2 back-projection
    # channels. The up-sampled scale-1 output (C1 = 2 C0 channels) is never made (ConvBlock's `upsampled`).
    per_sample = size**3 * (base_filters + (2 if projinj else 0))
    expected = (2**31 - 1) // per_sample
    report = guard.tensor_size_report(model, 7)
    assert report.largest_per_sample[0] == per_sample
    assert report.max_batch_size() == expected
    assert guard.check_tensor_sizes(model, expected).problem() is None
    with pytest.raises(TensorSizeError) as e:
        guard.check_tensor_sizes(model, expected + 1)
    msg = str(e.value)
    assert f"the largest batch size that fits is {expected:,}" in msg
    assert "2,147,483,647 (2^31-1) elements per tensor" in msg and '"2^32 parameters per layer"' in msg
    assert f"largest batch size that fits: {expected:,}" in report.format()


# -- the memory estimate, against counts made here from numpy shapes -------------------------------


def _nbytes(*shape, dtype=np.float32):
    return int(np.prod(shape)) * np.dtype(dtype).itemsize


def _chain(dtype=None):
    """input (8, 8, 1) -> c1: Conv2D 4 + SELU -> c2: Conv2D 2 (``dtype``: c2's policy)."""
    x = keras.Input((8, 8, 1), name="x")
    h = keras.layers.Conv2D(4, 3, padding="same", activation="selu", name="c1")(x)
    y = keras.layers.Conv2D(2, 3, padding="same", name="c2", dtype=dtype)(h)
    return keras.Model(x, y)


def test_training_and_inference_bytes_of_a_chain_counted_by_hand():
    b = 3
    report = guard.tensor_size_report(_chain(), b)
    weights = _nbytes(3 * 3 * 1 * 4 + 4) + _nbytes(3 * 3 * 4 * 2 + 2)  # float32 kernels and biases
    x, h, y = _nbytes(b, 8, 8, 1), _nbytes(b, 8, 8, 4), _nbytes(b, 8, 8, 2)
    kept = x + h + y  # c1's input, c1's activation output (c2's input), c2's output
    gradients = max(x + h, h + y)  # one layer's input and output gradients: c2's
    assert report.weight_bytes == weights
    assert report.training_bytes == weights * (1 + 2) + kept + gradients  # Adam: 2 slots per weight
    assert report.inference_bytes == weights + max(x, x + h, h + y)
    sgd = guard.tensor_size_report(_chain(), b, optimizer_slots=0)
    assert sgd.training_bytes == weights + kept + gradients
    assert report.process_peak_bytes("train", baseline=100, per_layer=10) == 100 + 10 * 3 + report.training_bytes
    assert report.process_peak_bytes("predict", baseline=0, per_layer=0) == report.inference_bytes
    assert report.process_peak_bytes("train") > guard.RUNTIME_BASELINE_BYTES + report.training_bytes
    with pytest.raises(ConfigError, match="mode = 'fit'"):
        report.process_peak_bytes("fit")


def test_mixed_bfloat16_activations_take_2_bytes_and_weights_stay_float32():
    from xprospect_tf.training.precision import precision_scope

    b = 2
    with precision_scope("mixed_bfloat16"):
        model = _chain(dtype="float32")  # c2 ends the model in float32, as the reconstruction model's ct
    rows = {r.name: r for r in guard.tensor_size_report(model, b).layers}
    bf16 = np.dtype("float16")  # 2 bytes, as bfloat16 (numpy has no bfloat16)
    assert rows["c1"].weight_bytes == _nbytes(3 * 3 * 1 * 4 + 4)  # float32 variables
    assert rows["c1"].weight_cast_bytes == _nbytes(3 * 3 * 1 * 4 + 4, dtype=bf16)  # the cast the gradient reads
    assert rows["c1"].cast_bytes == _nbytes(b, 8, 8, 1, dtype=bf16)  # float32 input cast to bfloat16
    assert rows["c1"].output_bytes == _nbytes(b, 8, 8, 4, dtype=bf16)
    assert rows["c2"].weight_cast_bytes == 0
    assert rows["c2"].cast_bytes == _nbytes(b, 8, 8, 4)  # bfloat16 input cast back to float32
    assert rows["c2"].output_bytes == _nbytes(b, 8, 8, 2)
    assert rows["c2"].kept_bytes == _nbytes(b, 8, 8, 4) + _nbytes(b, 8, 8, 2)


def test_skip_connections_are_alive_across_the_layers_between():
    x = keras.Input((8, 8, 1), name="x")
    a = keras.layers.Conv2D(3, 3, padding="same", name="a")(x)
    b = keras.layers.Conv2D(5, 3, padding="same", name="b")(a)
    c = keras.layers.Conv2D(2, 3, padding="same", name="c")(b)
    out = keras.layers.Concatenate(name="cat")([a, c])
    rows = {r.name: r for r in guard.tensor_size_report(keras.Model(x, out), 1).layers}
    assert rows["b"].alive_bytes == 0  # a is b's input
    assert rows["c"].alive_bytes == _nbytes(1, 8, 8, 3)  # a waits for cat across c
    assert rows["cat"].alive_bytes == 0
    assert rows["c"].forward_bytes == _nbytes(1, 8, 8, 3) + _nbytes(1, 8, 8, 5) + _nbytes(1, 8, 8, 2)


def test_summed_terms_of_an_upsampled_block_are_not_kept():
    from xprospect_tf.layers.blocks import ConvBlock

    low, skip = keras.Input((8, 8, 8, 2)), keras.Input((16, 16, 16, 1))
    out = ConvBlock(2, spatial_dims=3, upsampled=0, name="up")([low, skip])
    row = next(r for r in guard.tensor_size_report(keras.Model([low, skip], out), 2).layers if r.name == "up")
    full = _nbytes(2, 16, 16, 16, 2)
    assert row.internal_bytes == 3 * full  # first convolution's output; its transposed and skip terms
    assert row.transient_bytes == 2 * full
    assert row.kept_bytes == 2 * full  # the two convolutions' outputs
    assert row.input_bytes == _nbytes(2, 8, 8, 8, 2) + _nbytes(2, 16, 16, 16, 1)
