"""The application: one module per workflow, wired to the ``xprospect`` CLI.

Each workflow module defines ``register(subparsers)``, which adds its
sub-command(s) with ``set_defaults(func=...)``. Modules import TensorFlow
lazily, inside the functions that need it, so ``xprospect --help`` is fast.
"""
