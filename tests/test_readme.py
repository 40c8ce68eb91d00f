"""The README's notebook (Colab) snippet runs as written, and its set-up commands match CI."""

import os
import re

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


def test_notebook_snippet_trains(tmp_path, monkeypatch):
    section = _readme().split("## In a notebook", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
    history = namespace["model"].history.history
    assert len(history["loss"]) == 2 and all(v == v for v in history["loss"])  # 2 epochs, no NaN
    assert os.path.exists(tmp_path / "phantoms-32" / "manifest.json")
    x = {"frontal": np.zeros((1, 32, 32, 1), np.float32), "lateral": np.ones((1, 32, 32, 1), np.float32)}
    np.testing.assert_array_equal(namespace["reloaded"].predict_on_batch(x), namespace["model"].predict_on_batch(x))


def test_ci_runs_the_readme_test_command():
    readme = _readme()
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        ci = f.read()
    test_line = next(line for line in readme.splitlines() if "pytest" in line and "pip install" in line)
    command = test_line.split("&&", 2)[-1].strip()  # after venv creation and activation
    assert command in ci
