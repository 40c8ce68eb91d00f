"""Shared test set-up.

TensorFlow's CPU is split into 2 logical devices before anything initializes
TensorFlow, so MirroredStrategy can be tested on one CPU.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def _split_cpu():
    try:
        import tensorflow as tf
    except ImportError:
        return
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
        )
    except RuntimeError:
        pass  # already initialized


_split_cpu()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# -- shared data: built once per session, read-only (tests that change one take a copy) --


@pytest.fixture(scope="session")
def ct_folder(tmp_path_factory):
    """A folder of four tiny NIfTI CTs ``ct0..ct3.nii.gz`` (20^3 voxels of 2 mm, :func:`helpers.body_hu`)."""
    from tests.helpers import make_ct_folder

    folder = str(tmp_path_factory.mktemp("cts"))
    make_ct_folder(folder, count=4)
    return folder


@pytest.fixture(scope="session")
def ct_dataset(tmp_path_factory, ct_folder):
    """``ct_folder`` prepared at 16^3 over 40 mm: one test, one validation and two training cases.
    Read-only: use ``fresh_copy`` to change it."""
    from tests.helpers import prepare

    out = str(tmp_path_factory.mktemp("prepared") / "ds")
    prepare([ct_folder], out, test_count=1)
    return out


@pytest.fixture(scope="session")
def phantom_datasets(tmp_path_factory):
    """``make(count, test_count, val_fraction=0.2)``: a prepared 16^3 phantom dataset (seed 0),
    built once per session.

    Read-only: use ``fresh_copy`` to change one.
    """
    from tests.helpers import prepare_phantoms

    built = {}

    def make(count, test_count, val_fraction=0.2):
        key = count, test_count, val_fraction
        if key not in built:
            out = tmp_path_factory.mktemp("phantoms") / f"phantoms-{count}-{test_count}-{val_fraction:g}"
            built[key] = prepare_phantoms(out, count, test_count, val_fraction=val_fraction)
        return built[key]

    return make


@pytest.fixture(scope="session")
def phantom_dataset(phantom_datasets):
    """Six 16^3 phantoms: two test, one validation and three training cases (the end-to-end CLI
    tests' dataset). Read-only."""
    return phantom_datasets(6, 2)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, phantom_dataset):
    """A finished ``xprospect train`` run folder of 64-Dense, shrunk to seconds
    (:data:`tests.helpers.TINY_ROW`), on :func:`phantom_dataset`. Read-only."""
    from pipelines.cli import main
    from tests.helpers import TINY_ROW

    out = str(tmp_path_factory.mktemp("runs") / "64-dense")
    assert main(["train", "--row", "64-Dense", "--out", out, "--data", phantom_dataset, *TINY_ROW]) == 0
    return out


@pytest.fixture
def fresh_copy(tmp_path):
    """``copy(folder)``: a fresh copy of a shared dataset in this test's ``tmp_path``, for tests that change it."""
    from tests.helpers import copy_tree

    return lambda folder: copy_tree(folder, tmp_path)
