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
