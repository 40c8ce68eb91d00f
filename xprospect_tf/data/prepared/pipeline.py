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


def load_prepared(path, split="train", inputs="mean", batch_size=None, shuffle=False, seed=0,
                  cache=False, repeat=False, prefetch=True, with_ids=False):
    """A tf.data pipeline over a prepared dataset: ``((ap, lateral), ct)`` per case.

    Order: shuffle file names -> read -> ``map`` (parallel decode) -> ``cache`` ->
    ``shuffle`` (small buffer) -> ``repeat`` -> ``batch`` -> ``prefetch``. Shuffling
    the file names first gives a full reshuffle each epoch without holding every
    decoded volume in memory (with ``cache`` the cached order is reshuffled
    only within the small buffer).

    Args:
        path: dataset folder (local or any ``tf.io.gfile`` path).
        split: ``"train"``, ``"test"`` or ``"all"``.
        inputs: ``"mean"`` (mean-CT projections), ``"drr"`` or ``"styled"``
            (fields added by the style-transfer workflow).
        batch_size: batch the dataset when set.
        shuffle: shuffle cases every epoch (deterministic given ``seed``).
        seed: shuffle seed.
        cache: ``True`` caches decoded cases in memory; a string caches to that file.
        repeat: repeat forever.
        prefetch: prefetch ``AUTOTUNE`` elements.
        with_ids: also yield the case id (bytes): ``((ap, lateral), ct, case_id)``;
            for evaluation, not ``fit`` (Keras would read it as sample weights).

    Returns:
        A ``tf.data.Dataset`` of float32 ``ap``, ``lateral`` ``(S, S, 1)`` and
        ``ct`` ``(S, S, S, 1)`` in [0, 1] (with a leading batch axis when batched).

    Raises:
        InputError: not a prepared dataset, an empty split, or styled inputs missing.

    Example:
        >>> import tempfile
        >>> from xprospect_tf.data.prepared import write_prepared
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = write_prepared("phantom:3", folder, size=8, test_count=1, workers=1, progress=False)
        ...     [tuple(t.shape) for t in next(iter(load_prepared(folder, "train", batch_size=2)))[0]]
        [(2, 8, 8, 1), (2, 8, 8, 1)]
    """
    tf = tensorflow()
    manifest = Manifest.read(path)
    if inputs not in INPUT_FIELDS:
        raise ConfigError(f"inputs={inputs!r}: choose one of {tuple(INPUT_FIELDS)}")
    xray_names = INPUT_FIELDS[inputs]
    cases = manifest.entries(split, fields=xray_names)
    names = xray_names + ("ct",) + (("case_id",) if with_ids else ())

    def to_element(record):
        f = parse_record(record, manifest.size, names)
        x = (f[xray_names[0]], f[xray_names[1]])
        return (x, f["ct"], f["case_id"]) if with_ids else (x, f["ct"])

    files = tf.data.Dataset.from_tensor_slices([manifest.file(c) for c in cases])
    if shuffle:
        files = files.shuffle(len(cases), seed=seed, reshuffle_each_iteration=True)
    ds = tf.data.TFRecordDataset(files, num_parallel_reads=tf.data.AUTOTUNE)
    ds = ds.map(to_element, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.apply(tf.data.experimental.assert_cardinality(len(cases)))  # one record per file
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
        ...     _ = write_prepared("phantom:2", folder, size=8, test_count=1, workers=1, progress=False)
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
