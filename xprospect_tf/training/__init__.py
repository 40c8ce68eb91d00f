"""Training utilities: losses, optimizers, metrics, callbacks, the tensor-size
guard (paper section 5.2) and the distribution strategy.

Names are imported lazily so that importing the package does not import
TensorFlow or Keras until a name is used.
"""

import importlib

_EXPORTS = {
    "get_loss": "losses",
    "get_optimizer": "optimizers",
    "PSNR": "metrics",
    "SizeReport": "guard",
    "tensor_size_report": "guard",
    "check_tensor_sizes": "guard",
    "get_strategy": "strategy",
    "global_batch_size": "strategy",
    "standard_callbacks": "callbacks",
    "AtomicCheckpoint": "callbacks",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'xprospect_tf.training' has no attribute {name!r}")
    module = importlib.import_module(f"xprospect_tf.training.{_EXPORTS[name]}")
    return getattr(module, name)


def __dir__():
    return __all__
