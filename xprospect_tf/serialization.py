"""Keras serialization: register every serializable class of xprospect_tf.

Importing :mod:`xprospect_tf` runs this module, so a notebook user can write::

    import keras, xprospect_tf
    model = keras.models.load_model("runs/512-dense/model.keras")

Every layer and model class carries
``keras.saving.register_keras_serializable(package="xprospect_tf")``; a class
is registered when its module is imported, so this module imports every module
under :mod:`xprospect_tf.layers` and :mod:`xprospect_tf.models`, and the
metrics a compiled model saves (PSNR). A new module in those packages is
picked up without being listed here.
"""

import importlib
import pkgutil

PACKAGES = ("xprospect_tf.layers", "xprospect_tf.models")
MODULES = ("xprospect_tf.training.metrics",)


def register_all():
    """Import every module that defines serializable classes (idempotent).

    Returns:
        the sorted names of the modules imported.
    """
    names = list(MODULES)
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        names += [info.name for info in pkgutil.walk_packages(package.__path__, package_name + ".")]
    for name in names:
        importlib.import_module(name)
    return sorted(names)


register_all()
