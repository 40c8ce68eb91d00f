"""Keras metrics for training logs (backend-agnostic, keras.ops only)."""

import keras
from keras import ops


def psnr_per_sample(y_true, y_pred, data_range=1.0):
    """PSNR in dB of each sample of a batch: ``10 log10(R^2 / MSE_i)``.

    The MSE is floored at 1e-10 (PSNR at most 100 dB for ``R = 1``) so a perfect
    prediction gives a finite value.

    Args:
        y_true: ground truth, shape ``(B, ...)``.
        y_pred: prediction of the same shape.
        data_range: the span of possible values ``R``.

    Returns:
        tensor of shape ``(B,)``.

    Example:
        >>> round(float(psnr_per_sample(ops.zeros((1, 4)), ops.full((1, 4), 0.1))[0]), 3)
        20.0
    """
    y_true = ops.convert_to_tensor(y_true, dtype="float32")
    y_pred = ops.cast(y_pred, "float32")
    axes = tuple(range(1, len(y_true.shape)))
    err = ops.maximum(ops.mean(ops.square(y_pred - y_true), axis=axes), 1e-10)
    return 10.0 * ops.log(data_range**2 / err) / ops.log(10.0)


@keras.saving.register_keras_serializable(package="xprospect_tf")
class PSNR(keras.metrics.Mean):
    """Mean per-sample peak signal-to-noise ratio (dB) for training logs.

    The per-case PSNR of this project's Table 1 (ours: the paper reports test MSE
    only), averaged over all samples seen in the epoch; matches :func:`xprospect_tf.evaluation.metrics.psnr`
    averaged over cases.

    Args:
        data_range: the span of possible values (1 for volumes in [0, 1]).
        name: metric name in the logs.
        dtype: metric dtype.

    Example:
        >>> import numpy as np
        >>> metric = PSNR()
        >>> metric.update_state(np.zeros((2, 4, 4, 4, 1)), np.full((2, 4, 4, 4, 1), 0.1))  # MSE 0.01
        >>> round(float(metric.result()), 4)
        20.0
        >>> # in training: model.compile(optimizer="adam", loss="mse", metrics=[PSNR()])
    """

    def __init__(self, data_range=1.0, name="psnr", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.data_range = data_range

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = psnr_per_sample(y_true, y_pred, self.data_range)
        return super().update_state(values, sample_weight=sample_weight)

    def get_config(self):
        return {**super().get_config(), "data_range": self.data_range}
