"""Two honest baselines that need no training (Table 1's reference rows).

- ``mean-volume``: predict the training set's mean CT for every case. A model that
  does not beat it has learned nothing from the X-rays.
- ``back-projection``: the simplified back-projection of the two X-rays (the
  frontal image smeared along ``y``, the lateral along ``x``, averaged). It is
  exact for a volume that is constant along both ray directions.
"""

import numpy as np

from xprospect_tf.data.projection import back_projection


def mean_volume(dataset):
    """Voxel-wise mean of the ``ct`` volumes of a ``((ap, lateral), ct)`` dataset.

    Args:
        dataset: an iterable (e.g. ``tf.data.Dataset``, batched or not) of
            ``((ap, lateral), ct)`` with ``ct`` shaped ``(..., S, S, S, 1)``.

    Returns:
        float32 array ``(S, S, S, 1)``.
    """
    total, count = None, 0
    for _, ct in dataset:
        ct = np.asarray(ct, dtype=np.float64)
        batch = ct.reshape((-1,) + ct.shape[-4:])
        total = batch.sum(axis=0) if total is None else total + batch.sum(axis=0)
        count += batch.shape[0]
    if not count:
        raise ValueError("mean_volume: the dataset is empty")
    return (total / count).astype(np.float32)


def back_projection_volume(ap, lateral):
    """Back-project a batch of ``(B, S, S, 1)`` image pairs to ``(B, S, S, S, 1)`` volumes."""
    return back_projection(np.asarray(ap)[..., 0], np.asarray(lateral)[..., 0])[..., None]
