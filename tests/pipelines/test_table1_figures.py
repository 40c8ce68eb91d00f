"""``xprospect table1``'s figures from result files: which rows ``figure4_renderings.png`` shows.

The rows' result files are written by hand (no training), so each test takes a
second; the renderer is wrapped to record the volumes it is given.
"""

import os

import numpy as np
import pytest

from pipelines import table1
from pipelines.common import slug
from xprospect_tf.data.prepared import load_case, read_manifest
from xprospect_tf.evaluation import renderings


def _fake_results(out, rows, case_id, shape):
    """results.json-like dicts and example predictions for ``rows``: {name: (mse, parameters)}.
    Each row's prediction is a constant volume of its own value, so the figure's inputs can be told apart."""
    results = []
    for i, (row, (mse, params)) in enumerate(rows.items()):
        run_dir = os.path.join(out, slug(row))
        os.makedirs(run_dir)
        np.savez(os.path.join(run_dir, "example_prediction.npz"), case_id=case_id,
                 prediction=np.full(shape, 0.1 * (i + 1), np.float32))
        results.append({
            "row": row, "preset": "smoke", "inputs": "mean", "loss": "mse" if params else None,
            "optimizer": "adam" if params else None, "parameters": params, "train_time_s": 1.0,
            "style_train_time_s": None, "example_case": case_id,
            "summary": {"mse": [mse, 0.0], "psnr": [20.0, 0.0], "ssim": [0.5, 0.0]},
            "per_case": [{"case_id": case_id, "mse": mse}],
        })
    return results


@pytest.mark.parametrize("rows, shown", [
    # the paper's Figure 4: 64-Dense-Styled-Inputs left, 512-ProjInj right, whatever the table order or scores
    ({"512-ProjInj": (0.03, 10), "64-Dense": (0.01, 10), "64-Dense-Styled-Inputs": (0.02, 10),
      "Mean volume": (0.001, 0)}, ["64-Dense-Styled-Inputs", "512-ProjInj"]),
    # one of them absent (e.g. --rows without the styled row): the other one alone
    ({"64-Dense": (0.01, 10), "512-ProjInj": (0.03, 10)}, ["512-ProjInj"]),
    # neither: the trained row with the lowest test MSE stands in (a baseline does not)
    ({"Mean volume": (0.001, 0), "64-Dense": (0.02, 10), "512-Dense": (0.01, 10)}, ["512-Dense"]),
])
def test_figure4_renders_the_papers_rows_beside_the_ground_truth(phantom_dataset, tmp_path, monkeypatch,
                                                                  rows, shown):
    case_id = read_manifest(phantom_dataset).ids("test")[0]
    truth = load_case(phantom_dataset, case_id)["ct"]
    results = _fake_results(str(tmp_path), rows, case_id, truth.shape)
    drawn = []
    real = renderings.rendering_figure

    def recording(volumes, *args, **kwargs):
        drawn.append(volumes)
        return real(volumes, *args, **kwargs)

    monkeypatch.setattr(renderings, "rendering_figure", recording)
    table1.write_table(results, str(tmp_path), phantom_dataset)
    (volumes,) = drawn
    assert list(volumes) == ["Ground truth"] + [f"{row} prediction" for row in shown]
    np.testing.assert_array_equal(volumes["Ground truth"], truth)
    for row in shown:  # each panel is that row's own example prediction
        value = 0.1 * (list(rows).index(row) + 1)
        np.testing.assert_allclose(volumes[f"{row} prediction"], value)
    assert os.path.getsize(os.path.join(tmp_path, "figure4_renderings.png")) > 1000
    assert table1.figure4_rows(results) == shown
