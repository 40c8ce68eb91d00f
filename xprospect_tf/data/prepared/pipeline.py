"""Reading prepared datasets: the tf.data pipeline for ``fit``/evaluation, and one case as numpy."""

from xprospect_tf.data.prepared.manifest import Manifest
from xprospect_tf.data.prepared.records import RESERVED_FIELDS, parse_record, read_record, tensorflow
from xprospect_tf.errors import ConfigError

INPUT_FIELDS = {
    "mean": ("ap", "lateral"),
    "drr": ("drr_ap", "drr_lateral"),
    "styled": ("styled_ap", "styled_lateral"),
}
SHUFFLE_BUFFER = 16  # decoded cases held for shuffling; files are shuffled fully
_EPOCH_GRAPH_SEED = 20240611  # any constant: the graph-level seed of the epoch shuffles


def load_prepared(path, split="train", inputs="mean", batch_size=None, shuffle=False, seed=0,
                  cache=False, repeat=False, prefetch=True, with_ids=False, epoch=None, labels=None):
    """A tf.data pipeline over a prepared dataset: ``((ap, lateral), ct)`` per case.

    Order: shuffle file names -> read -> ``map`` (parallel decode) -> ``cache`` ->
    ``shuffle`` (small buffer) -> ``repeat`` -> ``batch`` -> ``prefetch``. Shuffling
    the file names first gives a full reshuffle each epoch without holding every
    decoded volume in memory (with ``cache`` the cached order is reshuffled
    only within the small buffer).

    With ``epoch`` set the dataset is instead an endless stream of epochs
    ``epoch, epoch + 1, ...``: each is one pass over the split, batched on its
    own (its last batch may be short), in an order that depends only on
    ``(seed, epoch)`` (not on TensorFlow's global seed). Starting the stream at epoch ``k``
    yields exactly the batches an uninterrupted stream yields from epoch ``k``
    on, which is what a resumed ``fit`` needs (pass ``steps_per_epoch``, see
    :func:`batches_per_epoch`). Each epoch is a full shuffle: of the file names
    without ``cache``, of the cached cases with it (the same order either way).

    Args:
        path: dataset folder (local or any ``tf.io.gfile`` path).
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
        inputs: ``"mean"`` (mean-CT projections), ``"drr"`` or ``"styled"``
            (fields added by the style-transfer workflow).
        batch_size: batch the dataset when set.
        shuffle: shuffle cases every epoch (deterministic given ``seed``).
        seed: shuffle seed.
        cache: ``True`` caches decoded cases in memory; a string caches to that file.
        repeat: repeat forever.
        prefetch: prefetch ``AUTOTUNE`` elements.
        labels: ``{case_id: 0/1}`` (e.g. ``Manifest.labels()``): the inputs become
            ``(ap, lateral, label)`` (a float32 scalar per case; a case missing
            from ``labels`` gets -1), for losses that read a case's label.
        with_ids: also yield the case id (bytes): ``((ap, lateral), ct, case_id)``;
            for evaluation, not ``fit`` (Keras would read it as sample weights).
        epoch: ``None`` (one pass per iteration, reshuffled at each iteration
            when ``shuffle``), or the first epoch of an endless, resumable
            stream of epochs (see above; ``repeat`` is implied).

    Returns:
        A ``tf.data.Dataset`` of float32 ``ap``, ``lateral`` ``(S, S, 1)`` and
        ``ct`` ``(S, S, S, 1)`` in [0, 1] (with a leading batch axis when batched).

    Raises:
        InputError: not a prepared dataset, an empty split, or styled inputs missing.

    Example:
        >>> import tempfile
        >>> from xprospect_tf.data.prepared import write_prepared
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = write_prepared("phantom:4", folder, size=8, test_count=1, workers=1, progress=False)
        ...     [tuple(t.shape) for t in next(iter(load_prepared(folder, "train", batch_size=2)))[0]]
        ...     val = load_prepared(folder, "val", with_ids=True)
        ...     [case_id.decode() for *_, case_id in val.as_numpy_iterator()]
        [(2, 8, 8, 1), (2, 8, 8, 1)]
        ['phantom-0003']
    """
    tf = tensorflow()
    manifest = Manifest.read(path)
    if inputs not in INPUT_FIELDS:
        raise ConfigError(f"inputs={inputs!r}: choose one of {tuple(INPUT_FIELDS)}")
    xray_names = INPUT_FIELDS[inputs]
    cases = manifest.entries(split, fields=xray_names)
    names = xray_names + ("ct",) + (("case_id",) if with_ids or labels is not None else ())
    table = None
    if labels is not None:
        keys = sorted(labels)
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(keys or [""], tf.string),
                                                tf.constant([float(labels[k]) for k in keys] or [-1.0], tf.float32)),
            default_value=-1.0)

    def to_element(record):
        f = parse_record(record, manifest.size, names)
        x = (f[xray_names[0]], f[xray_names[1]])
        if table is not None:
            x = x + (table.lookup(f["case_id"]),)
        return (x, f["ct"], f["case_id"]) if with_ids else (x, f["ct"])

    files = [manifest.file(c) for c in cases]
    if epoch is not None:
        ds = _epoch_stream(files, to_element, int(epoch), shuffle, seed, cache, batch_size)
        return ds.prefetch(tf.data.AUTOTUNE) if prefetch else ds
    files = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        files = files.shuffle(len(cases), seed=seed, reshuffle_each_iteration=True)
    ds = _decoded(files, to_element, len(cases))
    if cache:
        ds = ds.cache(cache if isinstance(cache, str) else "")
    if shuffle:
        ds = ds.shuffle(min(len(cases), SHUFFLE_BUFFER), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    if batch_size:
        ds = ds.batch(int(batch_size))
    if prefetch:
        ds = ds.prefetch(tf.data.AUTOTUNE)
    return ds


def _decoded(files, to_element, count):
    """Records of a dataset of file names, decoded in parallel, in file order."""
    tf = tensorflow()
    ds = tf.data.TFRecordDataset(files, num_parallel_reads=tf.data.AUTOTUNE)
    ds = ds.map(to_element, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.apply(tf.data.experimental.assert_cardinality(count))  # one record per file


def epoch_seed(seed, epoch):
    """The shuffle seed of one epoch: a pure function of ``(seed, epoch)`` (int64 tensors work).

    Example:
        >>> int(epoch_seed(0, 3)) == int(epoch_seed(0, 3)) != int(epoch_seed(0, 4))
        True
    """
    tf = tensorflow()
    key = tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)])
    return tf.random.stateless_uniform([], seed=key, minval=None, maxval=None, dtype=tf.int64)


def _epoch_stream(files, to_element, first_epoch, shuffle, seed, cache, batch_size):
    """Epochs ``first_epoch, first_epoch + 1, ...`` one after the other, each shuffled
    (over a buffer holding the whole split) with :func:`epoch_seed` and batched on its own."""
    tf = tensorflow()
    count = len(files)
    names = tf.data.Dataset.from_tensor_slices(files)
    cached = None
    if cache:  # decoded once, in manifest order; every epoch reorders the cached cases
        cached = _decoded(names, to_element, count).cache(cache if isinstance(cache, str) else "")

    def one_epoch(e):
        # Dataset.shuffle combines its seed with the graph's seed: fix that of this
        # function's graph, so that the order does not depend on TensorFlow's global seed
        tf.compat.v1.get_default_graph().seed = _EPOCH_GRAPH_SEED
        if cached is not None:
            ds = cached.shuffle(count, seed=epoch_seed(seed, e)) if shuffle else cached
        else:
            ds = _decoded(names.shuffle(count, seed=epoch_seed(seed, e)) if shuffle else names,
                          to_element, count)
        return ds.batch(int(batch_size)) if batch_size else ds

    return tf.data.Dataset.range(first_epoch, tf.int64.max).flat_map(one_epoch)


def batches_per_epoch(path, split, batch_size, inputs="mean"):
    """Batches in one pass over ``split`` (the last one may be short): ``fit``'s
    ``steps_per_epoch`` for a ``load_prepared(..., epoch=k)`` stream.

    Example:
        >>> import tempfile
        >>> from xprospect_tf.data.prepared import write_prepared
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = write_prepared("phantom:4", folder, size=8, test_count=1, workers=1, progress=False,
        ...                        val_fraction=0)
        ...     batches_per_epoch(folder, "train", 2)
        2
    """
    manifest = Manifest.read(path)
    count = len(manifest.entries(split, fields=INPUT_FIELDS[inputs]))
    return -(-count // int(batch_size))


def load_case(path, case_id):
    """All stored fields of one case as numpy arrays (for previews and evaluation).

    Args:
        path: dataset folder.
        case_id: the case id.

    Returns:
        ``{"case_id": str, "ct": (S, S, S), "ap", "lateral", "drr_ap",
        "drr_lateral", <extra fields>: (S, S)}``, float32 in canonical order.

    Example:
        >>> import tempfile
        >>> from xprospect_tf.data.prepared import write_prepared
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = write_prepared("phantom:2", folder, size=8, test_count=1, workers=1, progress=False,
        ...                        val_fraction=0)
        ...     load_case(folder, "phantom-0001")["ct"].shape
        (8, 8, 8)
    """
    manifest = Manifest.read(path)
    entry = manifest.case(case_id)
    names = RESERVED_FIELDS + tuple(entry.get("fields", ()))
    parsed = parse_record(read_record(manifest.file(case_id)), manifest.size, names)
    out = {k: v.numpy()[..., 0] for k, v in parsed.items() if k != "case_id"}
    out["case_id"] = parsed["case_id"].numpy().decode()
    return out
