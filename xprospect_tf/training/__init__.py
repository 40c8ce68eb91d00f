"""Training utilities: losses, optimizers, metrics, callbacks, the tensor-size
guard (paper section 5.2) and the distribution strategy.

Names are imported lazily so that importing the package does not import
TensorFlow or Keras until a name is used.
"""

from xprospect_tf.lazy import lazy_exports

_EXPORTS = {
    "build_compiled_model": "rows",
    "build_baseline_model": "rows",
    "fit_row": "rows",
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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
