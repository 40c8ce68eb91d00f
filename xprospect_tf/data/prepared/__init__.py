"""Prepared datasets: ``manifest.json`` + one TFRecord file per case, and their tf.data pipelines.

Layout of a prepared dataset folder::

    manifest.json              settings, split and provenance of every case (:class:`Manifest`)
    cases/<case_id>.tfrecord   one tf.train.Example per file (:mod:`.records`)

One file per case makes writing atomic and resumable (a case is done when its
file exists and the manifest lists it) and lets tf.data read files in parallel.

Modules, one job each: :mod:`.sources` (what to prepare), :mod:`.records` (one
case's arrays and their TFRecord codec), :mod:`.manifest` (the dataset's
manifest), :mod:`.writer` (writing and editing datasets), :mod:`.pipeline`
(reading them with tf.data).
"""

from xprospect_tf.data.prepared.manifest import CASES_DIR, FORMAT_VERSION, MANIFEST, SPLITS, Manifest
from xprospect_tf.data.prepared.pipeline import (
    INPUT_FIELDS,
    SHUFFLE_BUFFER,
    batches_per_epoch,
    epoch_seed,
    load_case,
    load_prepared,
)
from xprospect_tf.data.prepared.records import BASE_FIELDS, CT_LEVELS, RESERVED_FIELDS, case_arrays
from xprospect_tf.data.prepared.sources import (
    VOLUME_SUFFIXES,
    PhantomFindings,
    PhantomSource,
    expand_sources,
    phantom_sources,
)
from xprospect_tf.data.prepared.writer import (
    PrepareTask,
    add_case_fields,
    assign_splits,
    divide_train_val,
    split_prepared,
    split_sizes,
    write_case,
    write_prepared,
)

__all__ = [
    "BASE_FIELDS", "CASES_DIR", "CT_LEVELS", "FORMAT_VERSION", "INPUT_FIELDS", "MANIFEST",
    "RESERVED_FIELDS", "SHUFFLE_BUFFER", "batches_per_epoch", "epoch_seed", "SPLITS", "VOLUME_SUFFIXES", "Manifest", "PhantomFindings", "PhantomSource",
    "PrepareTask", "add_case_fields", "assign_splits", "case_arrays", "divide_train_val", "expand_sources",
    "is_prepared_dataset", "load_case", "load_prepared", "phantom_sources", "read_manifest", "split_prepared",
    "split_sizes", "write_case", "write_prepared",
]


def is_prepared_dataset(folder):
    """Whether ``folder`` holds a prepared dataset (its ``manifest.json``)."""
    import os

    return os.path.isfile(os.path.join(os.fspath(folder), MANIFEST))


def read_manifest(path):
    """Read and validate a prepared dataset's manifest (local or ``tf.io.gfile`` path).

    The same as :meth:`Manifest.read`.

    Args:
        path: the dataset folder (or its ``manifest.json``).

    Returns:
        A :class:`Manifest`.

    Raises:
        InputError: no manifest, unreadable JSON, missing keys or an unknown format version.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     Manifest(folder, 16).save()
        ...     read_manifest(folder).size
        16
    """
    return Manifest.read(path)
