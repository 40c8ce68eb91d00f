"""Lazy package exports: public names resolve to their submodule on first use,
so importing a package does not import TensorFlow or Keras until needed."""

import importlib


def lazy_exports(package, exports):
    """Return ``(__getattr__, __dir__)`` for ``package`` serving ``exports``.

    Args:
        package: the package's ``__name__``.
        exports: dict public name -> submodule name.

    Example:
        >>> getattr_, dir_ = lazy_exports("xprospect_tf.data", {"Volume": "volume"})
        >>> getattr_("Volume").__name__
        'Volume'
    """

    def __getattr__(name):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    def __dir__():
        return sorted(exports)

    return __getattr__, __dir__
