"""Model builders: reconstruction (Dense-64/512, ProjInj), CycleGAN, diffusion.

Names are imported lazily so that importing the package does not import Keras.
"""

import importlib

_EXPORTS = {
    "build_reconstruction_model": "reconstruction",
    "build_model": "reconstruction",
    "level_filters": "reconstruction",
    "MODEL_BUILDERS": "reconstruction",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'xprospect_tf.models' has no attribute {name!r}")
    module = importlib.import_module(f"xprospect_tf.models.{_EXPORTS[name]}")
    return getattr(module, name)


def __dir__():
    return __all__
