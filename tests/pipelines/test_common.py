"""``pipelines.common``: what the commands share (the dataset a run config asks for)."""

import pytest

from pipelines.common import ensure_dataset
from tests.helpers import FOV, SIZE
from xprospect_tf.config import DataConfig
from xprospect_tf.errors import ConfigError


def test_ensure_dataset_refuses_a_dataset_of_other_settings(ct_dataset):
    dataset = ct_dataset
    same = DataConfig(source=dataset, size=SIZE, fov_mm=FOV)
    assert ensure_dataset(same) == dataset
    with pytest.raises(ConfigError, match=f"{dataset}: prepared with size={SIZE}, not size=32.*--set size={SIZE}"):
        ensure_dataset(DataConfig(source=dataset, size=32, fov_mm=FOV))
    with pytest.raises(ConfigError, match=r"prepared with window=\[-1000,1000\], not window=\[-100,900\]"):
        ensure_dataset(DataConfig(source=dataset, size=SIZE, window=(-100.0, 900.0), fov_mm=FOV))
    with pytest.raises(ConfigError, match=f"prepared with fov_mm={FOV:g}, not fov_mm=400"):
        ensure_dataset(DataConfig(source=dataset, size=SIZE))
