"""Model builders: reconstruction (Dense-64/512, ProjInj), CycleGAN, diffusion, classifiers.

Names are imported lazily so that importing the package does not import Keras.
"""

from xprospect_tf.lazy import lazy_exports

_EXPORTS = {
    "build_reconstruction_model": "reconstruction",
    "build_model": "reconstruction",
    "level_filters": "reconstruction",
    "MODEL_BUILDERS": "reconstruction",
    "BASELINES": "baselines",
    "build_baseline": "baselines",
    "mean_volume": "baselines",
    "CLASSIFIERS": "classifiers",
    "build_classifier": "classifiers",
    "CycleGAN": "cyclegan",
    "make_cyclegan": "cyclegan",
    "compile_cyclegan": "cyclegan",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
