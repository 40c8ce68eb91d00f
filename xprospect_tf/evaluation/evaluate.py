"""Test-set evaluation: per-case metrics of any predictor on a prepared split."""

import numpy as np

from xprospect_tf.evaluation.metrics import case_metrics, summarize


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
        "psnr", "ssim"}`` dicts in dataset order, ``{metric: (mean, std)}``, and
        ``{case_id: (S, S, S) prediction}`` for the ids in ``keep``.
    """
    per_case, kept = [], {}
    for (ap, lateral), ct, ids in dataset:
        pred = np.asarray(predict(np.asarray(ap), np.asarray(lateral)))
        ct = np.asarray(ct)
        for i, case_id in enumerate(np.asarray(ids)):
            case_id = case_id.decode() if isinstance(case_id, bytes) else str(case_id)
            p, t = pred[i, ..., 0], ct[i, ..., 0]
            per_case.append({"case_id": case_id, **case_metrics(p, t)})
            if case_id in keep:
                kept[case_id] = p.astype(np.float32)
    if not per_case:
        raise ValueError("evaluate_predictor: the test set is empty")
    return per_case, summarize(per_case), kept
