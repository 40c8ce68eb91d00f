"""``pipelines.common``: what the commands share (the dataset a run config asks for)."""

import dataclasses

import pytest

from pipelines.common import comparable, ensure_dataset
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


def test_ensure_dataset_refuses_a_dataset_split_with_another_val_fraction(ct_dataset):
    with pytest.raises(ConfigError, match=r"prepared with val_fraction=0.2, not val_fraction=0.5; use this dataset "
                                          r"with --set val_fraction=0.2, or .*xprospect data split .*--val-fraction 0.5"):
        ensure_dataset(DataConfig(source=ct_dataset, size=SIZE, fov_mm=FOV, val_fraction=0.5))
    with pytest.raises(ConfigError, match="not val_fraction=0;"):
        ensure_dataset(DataConfig(size=SIZE, fov_mm=FOV, val_fraction=0.0), data_dir=ct_dataset)


def test_ensure_dataset_splits_its_own_phantom_folder_again_for_another_val_fraction(phantom_datasets,
                                                                                    fresh_copy):
    from xprospect_tf.data.prepared import read_manifest

    folder = fresh_copy(phantom_datasets(6, 1))  # the phantoms a run prepared into its own data folder
    first = read_manifest(folder)
    assert first.counts() == {"train": 4, "val": 1, "test": 1}
    cfg = DataConfig(count=6, size=SIZE, test_count=1, val_fraction=0.4)
    assert ensure_dataset(cfg, default_dir=folder) == folder
    again = read_manifest(folder)
    assert again.counts() == {"train": 3, "val": 2, "test": 1} and again.ids("test") == first.ids("test")
    assert again.val_fraction == 0.4 and set(first.ids("val")) < set(again.ids("val"))


def test_a_run_of_a_version_without_validation_splits_compares_as_val_fraction_0():
    from xprospect_tf.config import load_experiments

    cfg = load_experiments().resolve("64-Dense", "smoke")
    old = comparable(cfg)
    del old["data"]["val_fraction"]
    assert comparable(old) != comparable(cfg)  # trained on every non-test case: not this run
    assert comparable(old) == comparable(dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, val_fraction=0)))
