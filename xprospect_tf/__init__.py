"""xprospect-tf: CT volume generation from paired chest X-rays.

A TensorFlow/Keras 3 reimplementation of "XprospeCT: CT Volume Generation from
Paired X-Rays" (Paulson et al., 2024). See ARCHITECTURE.md for the canonical
orientation every array in this package uses: volumes are ``vol[z, x, y]``
(superior->inferior, right->left, anterior->posterior).

Importing the package imports Keras and registers this package's layers and
models for ``keras.models.load_model`` (see :mod:`xprospect_tf.serialization`).
"""

from xprospect_tf.errors import ConfigError, InputError, TensorSizeError, XprospectError

__version__ = "0.1.0"

__all__ = ["XprospectError", "InputError", "ConfigError", "TensorSizeError", "__version__"]

# Register every layer and model with Keras, so keras.models.load_model reads
# .keras files written by this package without custom_objects.
from xprospect_tf import serialization  # noqa: E402,F401
