"""Mixed precision: the ``model.precision`` setting (ours; the paper trains in float32).

Keras 3 holds the default dtype policy globally (``keras.config.set_dtype_policy``);
a layer reads it when it is constructed and keeps it. :func:`precision_scope`
sets it only while a row's model is built (:func:`~xprospect_tf.models.build_model`,
:func:`~xprospect_tf.models.diffusion.build_diffusion_row`), so the layers of
that model compute in the row's precision and nothing built afterwards is
affected. What stays float32 under a mixed policy:

- the variables (Keras' mixed policies keep them float32 and cast per call);
- the model's output: the layer that ends a model is built with
  ``dtype=OUTPUT_DTYPE`` (the reconstruction model's sigmoid convolution ``ct``,
  the denoiser's ``prediction``), so the volume comes out float32;
- the losses, which Keras computes in ``floatx`` (float32).

Under ``mixed_float16`` ``Model.compile`` wraps the optimizer in a
``keras.optimizers.LossScaleOptimizer`` (the model's ``dtype_policy``, set in
the scope, tells it to), so small float16 gradients do not underflow.
"""

import contextlib

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
"""``model.precision`` choices: Keras dtype policy names."""

OUTPUT_DTYPE = "float32"
"""dtype of the layer that ends a model, whatever the precision."""


@contextlib.contextmanager
def precision_scope(precision):
    """Build layers under the dtype policy ``precision``; the previous policy is restored on exit.

    Args:
        precision: one of :data:`PRECISIONS`.

    Example:
        >>> import keras
        >>> with precision_scope("mixed_bfloat16"):
        ...     layer = keras.layers.Dense(2)
        >>> layer.compute_dtype, layer.variable_dtype, keras.config.dtype_policy().name
        ('bfloat16', 'float32', 'float32')
    """
    import keras

    from xprospect_tf.errors import ConfigError

    if precision not in PRECISIONS:
        raise ConfigError(f"model.precision = {precision!r} is not one of {', '.join(PRECISIONS)}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
