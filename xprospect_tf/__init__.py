"""xprospect-tf: CT volume generation from paired chest X-rays.

A TensorFlow/Keras 3 reimplementation of "XprospeCT: CT Volume Generation from
Paired X-Rays" (Paulson et al., 2024). See ARCHITECTURE.md for the canonical
orientation every array in this package uses: volumes are ``vol[z, x, y]``
(superior->inferior, right->left, anterior->posterior).
"""

from xprospect_tf.errors import ConfigError, InputError, TensorSizeError, XprospectError

__version__ = "0.1.0"

__all__ = ["XprospectError", "InputError", "ConfigError", "TensorSizeError", "__version__"]
