"""See the package docstring of xprospect_tf."""
