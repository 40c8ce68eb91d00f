"""Helpers shared by the tests: tiny data writers, numpy references and the standard layer checks.

Test modules import from here (or get fixtures from ``tests/conftest.py``), never from
each other.
"""

import json
import os
import shutil

import numpy as np

# -- tiny CT folders and prepared datasets ----------------------------------------------

TINY_ROW = ["--set", "size=16", "--set", "base_filters=2", "--set", "train.epochs=1",
            "--set", "train.batch_size=2", "--eager"]
"""``xprospect train/table1`` options that shrink a row to seconds: 16^3, 2 filters, 1 epoch, eager."""

SIZE = 16
"""Cube side of the prepared test datasets."""

FOV = 40.0
"""Field of view (mm) of the datasets prepared from :func:`make_ct_folder`: its volumes are 20 voxels of 2 mm."""

WINDOW = (-1000.0, 1000.0)

PHANTOM_FOV = 400.0
"""Field of view (mm) of the prepared phantom datasets (the library default)."""


def body_hu(seed, n=20):
    """A small 'body' ``(n, n, n)`` in HU: an ellipsoid of soft tissue with a bright block, in air."""
    rng = np.random.default_rng(seed)
    z, x, y = np.meshgrid(*(np.linspace(-1, 1, n),) * 3, indexing="ij")
    a, b = rng.uniform(0.5, 0.8, 2)
    hu = np.full((n, n, n), -1000.0, np.float32)
    inside = (x / a) ** 2 + (y / b) ** 2 + (z / 0.9) ** 2 < 1
    hu[inside] = rng.normal(40.0, 30.0, inside.sum())
    hu[n // 3: n // 2, n // 2: n // 2 + 3, n // 2 + 2: n // 2 + 5] = 1200.0
    return hu


def write_ct(path, hu, spacing=2.0):
    """Write canonical ``hu`` with isotropic ``spacing`` mm as a NIfTI file; return ``path``."""
    from xprospect_tf.data.volume import Volume, write_nifti

    return write_nifti(Volume(hu, (spacing,) * 3), str(path))


def make_ct_folder(folder, count=4, first_seed=0):
    """Write ``ct0.nii.gz``... (:func:`body_hu` of seeds ``first_seed``...) into ``folder``; return the paths."""
    os.makedirs(folder, exist_ok=True)
    return [write_ct(os.path.join(folder, f"ct{i}.nii.gz"), body_hu(first_seed + i)) for i in range(count)]


def prepare(sources, out, **kw):
    """``write_prepared`` with the test settings (SIZE, FOV, one worker, no progress bar)."""
    from xprospect_tf.data import prepared

    kw = {"size": SIZE, "fov_mm": FOV, "workers": 1, "progress": False, **kw}
    return prepared.write_prepared(sources, str(out), **kw)


def prepare_phantoms(out, count, test_count, size=SIZE, val_fraction=0.2):
    """A prepared dataset of ``count`` phantoms (seed 0) of which ``test_count`` are test cases
    and ``round(val_fraction * (count - test_count))`` validation cases."""
    from xprospect_tf.data.prepared import phantom_sources, write_prepared

    write_prepared(phantom_sources(count, seed=0), str(out), size=size, test_count=test_count,
                   workers=1, progress=False, val_fraction=val_fraction)
    return str(out)


def copy_tree(src, parent, name=None):
    """A fresh copy of the folder ``src`` inside ``parent`` (for tests that change a dataset); its path."""
    return str(shutil.copytree(src, os.path.join(str(parent), name or os.path.basename(str(src)))))


def ids_of(ds):
    """The case ids of a ``load_prepared(..., with_ids=True)`` dataset, in order."""
    return [i.decode() for *_, i in ds.as_numpy_iterator()]


# -- files -------------------------------------------------------------------------------


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_png(path):
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img)


def write_png(path, array01):
    """Write an image with values in [0, 1] as an 8-bit PNG."""
    from PIL import Image

    Image.fromarray(np.round(np.asarray(array01) * 255).astype(np.uint8)).save(path)


# -- numpy references --------------------------------------------------------------------

SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805


def selu(x):
    """Reference SELU (Klambauer et al. 2017)."""
    return SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * (np.exp(x) - 1))


def conv_params(kernel, spatial_dims, cin, cout):
    """Weights of a ``kernel``^``spatial_dims`` convolution with bias."""
    return kernel**spatial_dims * cin * cout + cout


def dense_params(units_in, units_out):
    """Weights of a dense layer with bias."""
    return units_in * units_out + units_out


# -- the standard layer checks -------------------------------------------------------------


def random_inputs(shapes, seed=0):
    """One float32 array (batch included) per shape; a single array for a single shape."""
    rng = np.random.default_rng(seed)
    arrays = [rng.random(s, dtype=np.float32) for s in shapes]
    return arrays if len(arrays) > 1 else arrays[0]


def _symbolic(shapes):
    import keras

    inputs = [keras.Input(s[1:], batch_size=None) for s in shapes]
    return inputs if len(inputs) > 1 else inputs[0]


def _shape_arg(shapes):
    return [tuple(s) for s in shapes] if len(shapes) > 1 else tuple(shapes[0])


def check_layer(cls, kwargs, input_shapes, expected_shape, expected_params=None, fit=False):
    """Run the standard checks on ``cls(**kwargs)``; return the eager output (numpy).

    Shapes (eager, symbolic, ``compute_output_shape``), ``get_config``/``from_config``
    round trip with equal outputs, weight count and, with ``fit``, one optimizer step.
    ``input_shapes`` is a list of shapes with batch; ``expected_shape`` includes the batch.
    """
    import keras

    inputs = random_inputs(input_shapes)
    layer = cls(**kwargs)
    out = keras.ops.convert_to_numpy(layer(inputs))
    assert out.shape == tuple(expected_shape)
    assert tuple(layer.compute_output_shape(_shape_arg(input_shapes))) == tuple(expected_shape)

    symbolic = cls(**kwargs)(_symbolic(input_shapes))
    assert tuple(symbolic.shape) == (None,) + tuple(expected_shape[1:])

    config = layer.get_config()
    clone = cls.from_config(config)
    assert clone.get_config() == config
    clone(inputs)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(inputs)), out, rtol=1e-5, atol=1e-6)

    if expected_params is not None:
        assert layer.count_params() == expected_params
    if fit:
        _check_fit_step(cls(**kwargs), input_shapes, expected_shape)
    return out


def _check_fit_step(layer, input_shapes, expected_shape):
    """One optimizer step changes the layer's weights and the loss."""
    import keras

    model_inputs = _symbolic(input_shapes)
    model = keras.Model(model_inputs, layer(model_inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", run_eagerly=True)
    x = random_inputs(input_shapes, seed=1)
    y = np.zeros(expected_shape, np.float32)
    before = [w.copy() for w in model.get_weights()]
    loss0 = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=1, batch_size=expected_shape[0], verbose=0)
    loss1 = model.evaluate(x, y, verbose=0)
    assert loss1 != loss0
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
