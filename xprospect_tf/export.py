"""Export a trained model for reuse and serving.

``export_model`` writes, into one folder::

    model.keras      the Keras model (reload with :func:`load_keras_model`)
    config.json      the run's resolved configuration (when given): the HU window
                     and field of view that turn the [0, 1] output back into HU
    saved_model/     a TensorFlow SavedModel whose ``serving_default`` signature
                     takes named float32 inputs (``frontal`` and ``lateral``,
                     ``(None, S, S, 1)``) and returns ``{"ct": (None, S, S, S, 1)}``;
                     ``saved_model/assets.extra/config.json`` is the same
                     configuration, so a served model carries its window and
                     field of view

A diffusion row's signature serves its whole sampler: it takes the X-rays the
row reads and ``noise`` ``(None, S, S, S, 1)`` (draw it from N(0, 1)) and returns
``ct`` after the row's ``diffusion.sample_steps`` deterministic DDIM steps, so the
same noise gives the same volume (:meth:`~xprospect_tf.models.diffusion.DiffusionModel.ddim`).

The SavedModel needs only TensorFlow to serve (TF Serving, ``tf.saved_model.load``),
not this package. The folder is written to a temporary sibling and renamed into
place, so an interrupted export never leaves a folder that looks complete.
"""

import logging
import os

from xprospect_tf.errors import InputError
from xprospect_tf.files import atomic_dir, write_json
from xprospect_tf.outputs import check_output_folder

log = logging.getLogger(__name__)

KERAS_FILE = "model.keras"
CONFIG_FILE = "config.json"
SAVED_MODEL_DIR = "saved_model"
SERVING_ENDPOINT = "serving_default"


def is_export(folder):
    """Whether ``folder`` holds an export written by :func:`export_model`."""
    return os.path.isfile(os.path.join(folder, KERAS_FILE)) and os.path.isdir(os.path.join(folder, SAVED_MODEL_DIR))


def _input_specs(model):
    import tensorflow as tf

    if _is_diffusion(model):  # the views it reads and the starting noise
        s = model.size
        specs = {v: tf.TensorSpec((None, s, s, 1), tf.float32, name=v) for v in model.views}
        specs["noise"] = tf.TensorSpec((None, s, s, s, 1), tf.float32, name="noise")
        return specs
    specs = {}
    for tensor in model.inputs:
        name = tensor.name.split(":")[0]
        specs[name] = tf.TensorSpec((None,) + tuple(tensor.shape[1:]), tf.float32, name=name)
    return specs


def _is_diffusion(model):
    from xprospect_tf.models.diffusion import DiffusionModel

    return isinstance(model, DiffusionModel)


def _serving_fn(model):
    if _is_diffusion(model):
        return lambda inputs: {"ct": model.ddim({v: inputs[v] for v in model.views}, inputs["noise"])}
    names = list(model.output_names)

    def serve(inputs):
        outputs = model(inputs, training=False)
        if isinstance(outputs, dict):
            return outputs
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        return dict(zip(names, outputs))

    return serve


def export_model(model, out_dir, config=None, overwrite=False):
    """Write ``out_dir/model.keras`` and the SavedModel ``out_dir/saved_model/``.

    Args:
        model: a functional Keras model with named inputs (the reconstruction
            model: ``frontal`` and ``lateral``, output ``ct``).
        out_dir: the folder to create. An earlier export there is replaced
            atomically; a folder holding anything else is refused (InputError),
            unless ``overwrite``.
        config: the run's configuration (a JSON-able dict, e.g.
            ``RunConfig.to_dict()``), written as ``config.json`` beside the
            model and inside the SavedModel (``assets.extra/config.json``).
        overwrite: replace ``out_dir`` even if it holds other files (they are deleted).

    Returns:
        dict with the paths ``keras`` and ``saved_model``.

    Example:
        >>> import os, tempfile
        >>> import keras, numpy as np, tensorflow as tf
        >>> frontal, lateral = keras.Input((4, 4, 1), name="frontal"), keras.Input((4, 4, 1), name="lateral")
        >>> ct = keras.layers.Reshape((4, 4, 2, 1), name="ct")(keras.layers.Concatenate()([frontal, lateral]))
        >>> model = keras.Model([frontal, lateral], ct)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     paths = export_model(model, os.path.join(d, "64-dense"), config={"data": {"size": 4}})
        ...     served = tf.saved_model.load(paths["saved_model"]).signatures["serving_default"]
        ...     out = served(frontal=tf.ones((1, 4, 4, 1)), lateral=tf.zeros((1, 4, 4, 1)))["ct"]
        ...     sorted(os.listdir(os.path.join(d, "64-dense")))
        ['config.json', 'model.keras', 'saved_model']
        >>> tuple(out.shape), float(out[0, 0, 0, 0, 0]), float(out[0, 0, 0, 1, 0])
        ((1, 4, 4, 2, 1), 1.0, 0.0)
    """
    import keras

    out_dir = os.path.abspath(os.fspath(out_dir))
    check_output_folder(out_dir, "model export", is_export, overwrite)
    specs = _input_specs(model)
    with atomic_dir(out_dir) as tmp:
        model.save(os.path.join(tmp, KERAS_FILE))
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(SERVING_ENDPOINT, _serving_fn(model), input_signature=[specs])
        archive.write_out(os.path.join(tmp, SAVED_MODEL_DIR), verbose=False)
        if config is not None:
            write_json(os.path.join(tmp, CONFIG_FILE), config)
            write_json(os.path.join(tmp, SAVED_MODEL_DIR, "assets.extra", CONFIG_FILE), config)
    log.info("exported %s (inputs %s) to %s", model.name, ", ".join(specs), out_dir)
    return {"keras": os.path.join(out_dir, KERAS_FILE), "saved_model": os.path.join(out_dir, SAVED_MODEL_DIR)}


def load_keras_model(path, compile=True):
    """Load a ``.keras`` model saved by this package.

    Args:
        path: the ``.keras`` file (or an export folder holding ``model.keras``).
        compile: restore the optimizer, loss and metrics too.

    Returns:
        the ``keras.Model``.

    Raises:
        InputError: the file is missing or cannot be read as a Keras model.

    Example:
        >>> import os, tempfile
        >>> import keras
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> with tempfile.TemporaryDirectory() as d:
        ...     model.save(os.path.join(d, "model.keras"))
        ...     loaded = load_keras_model(d, compile=False)  # the folder or the .keras file
        >>> loaded.count_params()
        3
        >>> load_keras_model("no/such/model.keras")
        Traceback (most recent call last):
        xprospect_tf.errors.InputError: no/such/model.keras: model file not found; pass the .keras file written by training or export
    """
    import keras

    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, KERAS_FILE)
    if not os.path.isfile(path):
        raise InputError(f"{path}: model file not found; pass the .keras file written by training or export")
    if not path.endswith(".keras"):
        raise InputError(f"{path}: not a .keras file; pass the .keras file written by training or export")
    try:
        return keras.saving.load_model(path, compile=compile)
    except Exception as e:  # zip, JSON, HDF5 and deserialization errors alike
        raise InputError(
            f"{path}: cannot load the Keras model ({type(e).__name__}: {e}); "
            "the file may be truncated or written by an incompatible version - export it again"
        ) from e
