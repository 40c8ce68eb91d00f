"""Test-set evaluation: per-case metrics of any predictor on a prepared split.

Beside the per-case metrics of :func:`~xprospect_tf.evaluation.metrics.case_metrics`,
every row gets the two feature metrics of :mod:`xprospect_tf.evaluation.features`
(ours; X-ray2CTPA reports LPIPS and FVD with pretrained networks that cannot be
downloaded here): ``perceptual`` per case (an LPIPS-style distance on a fixed
random-weight 3D network) and ``fd``, the Frechet distance between the feature
sets of the predicted and the true test volumes (one number per test set).
``match`` is :func:`~xprospect_tf.evaluation.metrics.own_case_match`: the share
of test cases whose prediction is nearer its own truth than any other case's
(ours: it shows that a row's output follows its input).
"""

import numpy as np

from xprospect_tf.evaluation.metrics import case_metrics, own_case_match, summarize

MATCH_SIDE = 32  # volumes are block-averaged to at most this side for the own-case match


def evaluate_predictor(predict, dataset, keep=()):
    """Run ``predict`` over a test set and score every case.

    Args:
        predict: callable ``(ap, lateral) -> volumes`` on batches
            ``(B, S, S, 1)`` returning ``(B, S, S, S, 1)`` in [0, 1].
        dataset: batched ``tf.data.Dataset`` of ``((ap, lateral), ct, case_id)``
            (``load_prepared(..., with_ids=True, batch_size=...)``).
        keep: case ids whose predicted volume is returned (for figures).

    Returns:
        ``(per_case, summary, kept)``: a list of ``{"case_id", "mse", "mae",
        "psnr", "ssim", "perceptual"}`` dicts in dataset order, ``{metric: (mean, std)}``
        (and, for the whole set, ``"fd": (value, 0.0)`` and ``"match": (rate, margin)``), and
        ``{case_id: (S, S, S) prediction}`` for the ids in ``keep``.
    """
    from xprospect_tf.evaluation.features import frechet_distance, perceptual_distance, volume_features

    per_case, kept, features, small = [], {}, {"pred": [], "true": []}, {"pred": [], "true": []}
    for (ap, lateral), ct, ids in dataset:
        pred = np.asarray(predict(np.asarray(ap), np.asarray(lateral)))
        ct = np.asarray(ct)
        for i, case_id in enumerate(np.asarray(ids)):
            case_id = case_id.decode() if isinstance(case_id, bytes) else str(case_id)
            p, t = pred[i, ..., 0], ct[i, ..., 0]
            per_case.append({"case_id": case_id, **case_metrics(p, t), "perceptual": perceptual_distance(p, t)})
            features["pred"].append(volume_features([p])[0])
            features["true"].append(volume_features([t])[0])
            small["pred"].append(_block_mean(p, MATCH_SIDE))
            small["true"].append(_block_mean(t, MATCH_SIDE))
            if case_id in keep:
                kept[case_id] = p.astype(np.float32)
    if not per_case:
        raise ValueError("evaluate_predictor: the test set is empty")
    summary = summarize(per_case)
    if len(per_case) > 1:
        summary["fd"] = (frechet_distance(np.array(features["pred"]), np.array(features["true"])), 0.0)
        summary["match"] = own_case_match(small["pred"], small["true"])
    return per_case, summary, kept



def _block_mean(volume, side):
    """``volume`` averaged over blocks so that no side exceeds ``side`` (a power-of-two factor)."""
    from xprospect_tf.data.transforms import block_mean

    return block_mean(volume, np.maximum(1, np.array(volume.shape) // side))
