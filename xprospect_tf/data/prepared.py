"""Prepared datasets: ``manifest.json`` + one TFRecord file per case, and their tf.data pipelines.

Layout of a prepared dataset folder::

    manifest.json              settings, split and provenance of every case
    cases/<case_id>.tfrecord   one tf.train.Example per file

Each record holds, for a cube side ``S`` (canonical ``vol[z, x, y]`` order):

- ``ct``: the windowed volume in [0, 1], ``S^3``, stored as little-endian
  uint16 ``round(v * 65535)``. The quantization error is at most
  ``0.5 / 65535 = 7.6e-6``, i.e. 0.015 HU for the paper's 2000 HU window, far
  below the 1 HU step (``1 / 2000`` in [0, 1] units); it halves the disk size
  of float32 (4 MiB per case at 128^3).
- ``ap`` ``(z, x)`` and ``lateral`` ``(z, y)``: mean-CT projections of the
  stored float32 volume (the paper's "mean CT" X-rays), float32.
- ``drr_ap`` and ``drr_lateral``: digitally reconstructed radiographs, float32.
- ``case_id``; optional extra 2D float32 fields (``styled_ap``,
  ``styled_lateral``) added later with :func:`add_case_fields`.

One file per case makes writing atomic and resumable (a case is done when its
file exists and the manifest lists it) and lets tf.data read files in parallel.
"""

import concurrent.futures
import dataclasses
import logging
import multiprocessing
import os
import re
import time

import numpy as np

from xprospect_tf.errors import ConfigError, InputError, XprospectError
from xprospect_tf.files import atomic_path, write_json

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CASES_DIR = "cases"
CT_LEVELS = 65535  # uint16 quantization of the [0, 1] volume
BASE_FIELDS = ("ap", "lateral", "drr_ap", "drr_lateral")
RESERVED_FIELDS = ("ct", "case_id") + BASE_FIELDS
INPUT_FIELDS = {
    "mean": ("ap", "lateral"),
    "drr": ("drr_ap", "drr_lateral"),
    "styled": ("styled_ap", "styled_lateral"),
}
SPLITS = ("train", "test", "all")
SHUFFLE_BUFFER = 16  # decoded cases held for shuffling; files are shuffled fully
MIN_SIZE = 8
VOLUME_SUFFIXES = (".nii.gz", ".nii", ".npz", ".npy")  # files that are one case each


def _tf():
    import tensorflow as tf

    return tf


# ----------------------------------------------------------------------------- sources


@dataclasses.dataclass(frozen=True)
class PhantomSource:
    """One synthetic chest phantom case, for :func:`write_prepared`.

    Args:
        case_id: the case id, e.g. ``"phantom-0003"``.
        seed: the seed passed to ``phantom_volume``.

    Example:
        >>> PhantomSource("phantom-0000", 7)
        PhantomSource(case_id='phantom-0000', seed=7)
    """

    case_id: str
    seed: int

    def __str__(self):
        return f"phantom:seed={self.seed}"


def phantom_sources(count, seed=0):
    """``count`` phantom cases ``phantom-0000``... with independent per-case seeds.

    Case ``i``'s seed is drawn from ``numpy.random.SeedSequence([seed, i])``, so
    cases do not repeat across nearby ``seed`` values and adding cases keeps the
    existing ones.

    Args:
        count: number of cases (>= 1).
        seed: dataset seed.

    Returns:
        A list of :class:`PhantomSource`.

    Example:
        >>> [s.case_id for s in phantom_sources(2)]
        ['phantom-0000', 'phantom-0001']
    """
    if int(count) < 1:
        raise ConfigError(f"count={count}: the number of phantom cases must be at least 1 (--count)")
    return [
        PhantomSource(f"phantom-{i:04d}", int(np.random.SeedSequence([int(seed), i]).generate_state(1)[0]))
        for i in range(int(count))
    ]


def expand_sources(sources):
    """Turn paths, ``"phantom:N[:SEED]"`` strings and phantom sources into ``(case_id, source)`` pairs.

    A NIfTI (``.nii``, ``.nii.gz``) or RAD-ChestCT ``.npz``/``.npy`` file is a case; a folder that
    directly contains DICOM files is a case; any other folder is searched
    recursively for both. Case ids come from file/folder names relative to the
    given folder (``sub/ct1.nii.gz`` -> ``sub_ct1``); clashes get ``-2``, ``-3``.

    Args:
        sources: an iterable of the above (a single string is accepted too).

    Returns:
        A list of ``(case_id, source)``; ``source`` is a path or :class:`PhantomSource`.

    Raises:
        InputError: a path does not exist or a folder holds no CT files.

    Example:
        >>> expand_sources(["phantom:2"])[1][0]
        'phantom-0001'
    """
    if isinstance(sources, (str, os.PathLike, PhantomSource)):
        sources = [sources]
    pairs = []
    for src in sources:
        if isinstance(src, PhantomSource):
            pairs.append((src.case_id, src))
        elif isinstance(src, str) and src.startswith("phantom:"):
            pairs.extend((s.case_id, s) for s in _parse_phantom_spec(src))
        else:
            pairs.extend(_expand_path(os.fspath(src)))
    return _unique_ids(pairs)


def _parse_phantom_spec(spec):
    parts = spec.split(":")[1:]
    try:
        count, seed = int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
        if len(parts) > 2:
            raise ValueError
    except (ValueError, IndexError):
        raise ConfigError(f"{spec!r}: write phantom sources as 'phantom:COUNT' or 'phantom:COUNT:SEED'") from None
    return phantom_sources(count, seed)


def _expand_path(path):
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file or folder; check the CT source path")
    if os.path.isfile(path):
        return [(_strip_suffix(os.path.basename(path)), path)]
    if _has_dicom_files(path):
        return [(os.path.basename(os.path.normpath(path)), path)]
    found = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        rel = os.path.relpath(root, path)
        prefix = "" if rel == "." else rel.replace(os.sep, "_") + "_"
        if root != path and _has_dicom_files(root):
            found.append((prefix.rstrip("_"), root))
            dirs[:] = []
            continue
        for name in sorted(files):
            if name.lower().endswith(VOLUME_SUFFIXES):
                found.append((prefix + _strip_suffix(name), os.path.join(root, name)))
    if not found:
        raise InputError(
            f"{path}: no CT files found (NIfTI .nii/.nii.gz, RAD-ChestCT .npz/.npy, or folders of "
            "DICOM files); point to the files or to the folder that holds them"
        )
    return found


def _strip_suffix(name):
    for suffix in VOLUME_SUFFIXES + (".dcm",):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _has_dicom_files(folder):
    from xprospect_tf.data.dicom import is_dicom_file

    return any(e.is_file() and (e.name.lower().endswith(".dcm") or is_dicom_file(e.path))
               for e in os.scandir(folder))


def _unique_ids(pairs):
    seen, out = {}, []
    for case_id, src in pairs:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", case_id).strip("._") or "case"
        n = seen.get(base, 0) + 1
        seen[base] = n
        out.append((base if n == 1 else f"{base}-{n}", src))
    return out


# ----------------------------------------------------------------------------- one case


def case_arrays(volume, size, window=(-1000.0, 1000.0), fov_mm=400.0):
    """The arrays of one prepared case: windowed cube, mean-CT projections and DRRs.

    Paper Sec. 3.1: the CT is resampled into a ``size^3`` cube of side
    ``fov_mm``, windowed to [0, 1]; the "mean CT" X-rays are its means along
    ``y`` (frontal) and ``x`` (lateral).

    Args:
        volume: a :class:`~xprospect_tf.data.volume.Volume` in HU.
        size: cube side in voxels.
        window: ``(low, high)`` HU window mapped to [0, 1].
        fov_mm: cube side in mm.

    Returns:
        ``{"ct": (S, S, S), "ap", "lateral", "drr_ap", "drr_lateral": (S, S)}``, float32.

    Example:
        >>> arrays = case_arrays(phantom_volume(16), 16)   # doctest: +SKIP
        >>> arrays["ap"].shape
        (16, 16)
    """
    from xprospect_tf.data.projection import drr, mean_projections
    from xprospect_tf.data.transforms import hu_window, prepare_volume

    cube = prepare_volume(volume, size, fov_mm=fov_mm)
    ct = np.asarray(hu_window(cube.hu, window), dtype=np.float32)
    ap, lateral = mean_projections(ct)
    drr_ap, drr_lateral = drr(cube.hu, cube.spacing)
    arrays = {"ct": ct, "ap": ap, "lateral": lateral, "drr_ap": drr_ap, "drr_lateral": drr_lateral}
    return {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}


def write_case(out_dir, case_id, volume, size, window=(-1000.0, 1000.0), fov_mm=400.0):
    """Prepare one case and write ``cases/<case_id>.tfrecord`` atomically.

    Args:
        out_dir: the prepared dataset folder.
        case_id: the case id (file-name safe).
        volume: a :class:`~xprospect_tf.data.volume.Volume` in HU.
        size: cube side in voxels.
        window: ``(low, high)`` HU window.
        fov_mm: cube side in mm.

    Returns:
        The case's manifest entry (without ``split``): ``id``, ``source``,
        ``original_spacing``, ``original_shape``, ``file``, ``fields``.

    Example:
        >>> write_case("data/ds", "phantom-0000", phantom_volume(16), 16)["file"]  # doctest: +SKIP
        'cases/phantom-0000.tfrecord'
    """
    arrays = case_arrays(volume, size, window, fov_mm)
    rel = f"{CASES_DIR}/{case_id}.tfrecord"
    _write_record(os.path.join(out_dir, rel), _example(case_id, arrays, size).SerializeToString())
    return {
        "id": case_id,
        "source": volume.source,
        "original_spacing": [float(s) for s in volume.spacing],
        "original_shape": [int(n) for n in volume.shape],
        "file": rel,
        "fields": [],
    }


def _example(case_id, arrays, size):
    tf = _tf()
    feature = {"case_id": _bytes_feature(case_id.encode())}
    for name, array in arrays.items():
        if name == "ct":
            _check_shape("ct", array, (size,) * 3)
            data = np.round(np.clip(array, 0.0, 1.0) * CT_LEVELS).astype("<u2")
        else:
            _check_shape(name, array, (size, size))
            data = np.asarray(array, dtype="<f4")
        feature[name] = _bytes_feature(data.tobytes())
    return tf.train.Example(features=tf.train.Features(feature=feature))


def _bytes_feature(value):
    tf = _tf()
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _check_shape(name, array, shape, where="prepared case"):
    array = np.asarray(array)
    if array.shape != shape:
        raise InputError(f"{where}: field {name!r} has shape {array.shape}, expected {shape}")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{where}: field {name!r} contains NaN or infinite values")


def _write_record(path, data):
    tf = _tf()
    with atomic_path(path) as tmp:
        with tf.io.TFRecordWriter(tmp) as writer:
            writer.write(data)


def _read_record(path):
    tf = _tf()
    try:
        return next(iter(tf.data.TFRecordDataset(path))).numpy()
    except (tf.errors.OpError, StopIteration) as e:
        raise InputError(
            f"{path}: cannot read the case record ({type(e).__name__}); "
            "delete it and rerun xprospect data prepare with the same --out to rewrite it"
        ) from None


def _prepare_task(task):
    """Worker: read/synthesize one source and write its case. Never raises."""
    out_dir, case_id, source, size, window, fov_mm = task
    t0 = time.perf_counter()
    try:
        volume = _load_source(source, size, fov_mm)
        entry = write_case(out_dir, case_id, volume, size, window, fov_mm)
        entry["source"] = str(source)
        return case_id, entry, None, time.perf_counter() - t0
    except XprospectError as e:
        reason = str(e)
    except Exception as e:  # a corrupt file may fail in any library; record it, go on
        log.debug("%s failed", source, exc_info=True)
        reason = f"{type(e).__name__}: {e}"
    return case_id, None, {"source": str(source), "reason": reason}, time.perf_counter() - t0


def _load_source(source, size, fov_mm):
    if isinstance(source, PhantomSource):
        from xprospect_tf.data.phantom import phantom_volume

        return phantom_volume(size=size, seed=source.seed, fov_mm=fov_mm)
    from xprospect_tf.data.readers import read_volume

    return read_volume(source)


# ----------------------------------------------------------------------------- dataset


def assign_splits(case_ids, test_fraction=0.2, test_count=None, seed=0):
    """Deterministic train/test split of ``case_ids``.

    The sorted ids are permuted by ``numpy.random.default_rng(seed)``; the first
    ``test_count`` (else ``round(test_fraction * n)``) become ``test``.

    Args:
        case_ids: iterable of case ids.
        test_fraction: fraction of test cases, used when ``test_count`` is None.
        test_count: fixed number of test cases (clipped to the number of cases).
        seed: split seed.

    Returns:
        ``{case_id: "train" | "test"}``.

    Example:
        >>> sorted(assign_splits(["a", "b", "c"], test_count=1).values())
        ['test', 'train', 'train']
    """
    ids = sorted(case_ids)
    n_test = int(round(test_fraction * len(ids))) if test_count is None else int(test_count)
    order = np.random.default_rng(seed).permutation(len(ids))
    test = {ids[i] for i in order[: min(n_test, len(ids))]}
    return {i: "test" if i in test else "train" for i in ids}


def write_prepared(sources, out_dir, size, window=(-1000.0, 1000.0), fov_mm=400.0,
                   test_fraction=0.2, test_count=None, split_seed=0, workers=None, progress=True):
    """Prepare CT sources into a dataset folder (resumable, parallel, atomic).

    Cases already in ``out_dir``'s manifest whose file exists are kept; the
    others are written by ``workers`` processes (``1``: inline). A source that
    cannot be read is recorded under ``failed`` with its reason and the run goes
    on. The manifest is rewritten atomically after every case and marked
    ``complete`` at the end, when the split is assigned over the cases written.

    Args:
        sources: paths, ``"phantom:N[:SEED]"`` strings or :class:`PhantomSource` (see
            :func:`expand_sources`).
        out_dir: dataset folder (created).
        size: cube side in voxels.
        window: ``(low, high)`` HU window mapped to [0, 1].
        fov_mm: cube side in mm.
        test_fraction: fraction of test cases when ``test_count`` is None.
        test_count: fixed number of test cases.
        split_seed: seed of :func:`assign_splits`.
        workers: processes (default: CPU count, at most one per pending case).
        progress: log one INFO line per case (else DEBUG).

    Returns:
        The manifest dict.

    Raises:
        ConfigError: invalid settings, or ``out_dir`` holds a dataset with other settings.
        InputError: a source path does not exist.

    Example:
        >>> m = write_prepared(phantom_sources(4), "data/ph16", size=16, test_count=1)  # doctest: +SKIP
        >>> [c["split"] for c in m["cases"]].count("test")
        1
    """
    settings = _settings(size, window, fov_mm)
    _check_split_args(test_fraction, test_count, workers)
    candidates = expand_sources(sources)
    if test_count is not None and test_count >= len(candidates):
        raise ConfigError(
            f"test_count={test_count} leaves no training case among {len(candidates)} sources (--test-count)"
        )
    out_dir = os.fspath(out_dir)
    entries = _reusable_entries(out_dir, settings, {c for c, _ in candidates})
    manifest = {**settings, "split_seed": int(split_seed), "complete": False, "cases": [], "failed": []}
    pending = [(out_dir, c, s, settings["size"], tuple(settings["window"]), settings["fov_mm"])
               for c, s in candidates if c not in entries]
    log.info("%s: %d case(s) already prepared, %d to prepare at %d^3",
             out_dir, len(entries), len(pending), settings["size"])
    _save_manifest(out_dir, manifest, entries)
    level = logging.INFO if progress else logging.DEBUG
    for n, (case_id, entry, failure, seconds) in enumerate(_run_tasks(pending, workers), 1):
        if entry is not None:
            entries[case_id] = entry
        else:
            manifest["failed"].append(failure)
            log.warning("%s: failed: %s", failure["source"], failure["reason"])
        log.log(level, "%s %d/%d: %s (%.1f s)", "prepared" if entry is not None else "failed",
                n, len(pending), case_id, seconds)
        _save_manifest(out_dir, manifest, entries)
    splits = assign_splits(entries, test_fraction, test_count, split_seed)
    for case_id, entry in entries.items():
        entry["split"] = splits[case_id]
    manifest["complete"] = True
    _save_manifest(out_dir, manifest, entries)
    log.info("%s: %d case(s) (%d test), %d failed", out_dir, len(entries),
             list(splits.values()).count("test"), len(manifest["failed"]))
    return manifest


def _settings(size, window, fov_mm):
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
        raise ConfigError(f"size={size!r}: the cube side must be an integer of at least {MIN_SIZE} voxels (--size)")
    try:
        low, high = (float(w) for w in window)
    except (TypeError, ValueError):
        raise ConfigError(f"window={window!r}: give two HU values LOW HIGH (--window)") from None
    if not low < high:
        raise ConfigError(f"window={list(window)}: LOW must be below HIGH (--window)")
    if not float(fov_mm) > 0:
        raise ConfigError(f"fov_mm={fov_mm}: the field of view must be positive (--fov)")
    return {"format_version": FORMAT_VERSION, "size": int(size), "window": [low, high],
            "fov_mm": float(fov_mm), "spacing_mm": float(fov_mm) / int(size)}


def _check_split_args(test_fraction, test_count, workers):
    if not 0.0 <= float(test_fraction) < 1.0:
        raise ConfigError(f"test_fraction={test_fraction}: must be in [0, 1)")
    if test_count is not None and int(test_count) < 0:
        raise ConfigError(f"test_count={test_count}: must be zero or more (--test-count)")
    if workers is not None and int(workers) < 1:
        raise ConfigError(f"workers={workers}: must be at least 1 (--workers)")


def _reusable_entries(out_dir, settings, case_ids):
    """Entries of a previous run in ``out_dir`` that can be kept."""
    if not os.path.exists(os.path.join(out_dir, MANIFEST)):
        return {}
    old = read_manifest(out_dir)
    keys = ("format_version", "size", "window", "fov_mm")
    if any(old[k] != settings[k] for k in keys):
        raise ConfigError(
            f"{out_dir} holds a dataset prepared with size={old['size']}, window={old['window']}, "
            f"fov_mm={old['fov_mm']}, not size={settings['size']}, window={settings['window']}, "
            f"fov_mm={settings['fov_mm']}; use a new --out folder for different settings"
        )
    kept = {e["id"]: e for e in old["cases"]
            if e["id"] in case_ids and os.path.exists(os.path.join(out_dir, e["file"]))}
    dropped = len(old["cases"]) - len(kept)
    if dropped:
        log.warning("%s: %d case(s) of the previous run are missing or not among the sources; "
                    "they are (re)prepared or left out", out_dir, dropped)
    return kept


def _save_manifest(out_dir, manifest, entries):
    manifest["cases"] = [entries[k] for k in sorted(entries)]
    write_json(os.path.join(out_dir, MANIFEST), manifest)


def _run_tasks(tasks, workers):
    """Yield ``_prepare_task`` results as they complete; spawn-safe process pool."""
    workers = min(int(workers or os.cpu_count() or 1), max(len(tasks), 1))
    if workers == 1:
        yield from map(_prepare_task, tasks)
        return
    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = [pool.submit(_prepare_task, t) for t in tasks]
        for future in concurrent.futures.as_completed(futures):
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ----------------------------------------------------------------------------- reading


def read_manifest(path):
    """Read and validate a prepared dataset's manifest (local or ``tf.io.gfile`` path).

    Args:
        path: the dataset folder (or its ``manifest.json``).

    Returns:
        The manifest dict.

    Raises:
        InputError: no manifest, unreadable JSON or an unknown format version.

    Example:
        >>> read_manifest("data/ph16")["size"]  # doctest: +SKIP
        16
    """
    tf = _tf()
    path = os.fspath(path)
    file = path if path.endswith(MANIFEST) else _join(path, MANIFEST)
    if not tf.io.gfile.exists(file):
        raise InputError(f"{path}: not a prepared dataset (no {MANIFEST}); run xprospect data prepare")
    import json

    try:
        with tf.io.gfile.GFile(file, "r") as f:
            manifest = json.loads(f.read())
        missing = [k for k in ("format_version", "size", "window", "fov_mm", "cases") if k not in manifest]
    except (ValueError, TypeError) as e:
        raise InputError(f"{file}: corrupt manifest ({e}); delete the folder and prepare it again") from None
    if missing:
        raise InputError(f"{file}: manifest lacks {missing}; delete the folder and prepare it again")
    if manifest["format_version"] != FORMAT_VERSION:
        raise InputError(
            f"{file}: format version {manifest['format_version']}, this xprospect-tf reads "
            f"version {FORMAT_VERSION}; prepare the dataset again"
        )
    manifest.setdefault("failed", [])
    return manifest


def _join(path, *parts):
    path = os.fspath(path)
    if path.endswith(MANIFEST):
        path = path[: -len(MANIFEST)].rstrip("/")
    return "/".join([path.rstrip("/")] + list(parts)) if "://" in path else os.path.join(path, *parts)


def _select(manifest, path, split):
    if split not in SPLITS:
        raise ConfigError(f"split={split!r}: choose one of {SPLITS}")
    if not manifest.get("complete", False):
        raise InputError(f"{path}: preparation was not finished; rerun xprospect data prepare with the same --out")
    cases = [c for c in manifest["cases"] if split == "all" or c["split"] == split]
    if not cases:
        raise InputError(f"{path}: no {split!r} cases in this prepared dataset; prepare more cases")
    return cases


def _parse_record(record, size, names):
    """Decode the ``names`` fields of one serialized record into float32 tensors with channel axis."""
    tf = _tf()
    parsed = tf.io.parse_single_example(record, {n: tf.io.FixedLenFeature([], tf.string) for n in names})
    out = {}
    for name in names:
        if name == "case_id":
            out[name] = parsed[name]
        elif name == "ct":
            ct = tf.cast(tf.io.decode_raw(parsed[name], tf.uint16, little_endian=True), tf.float32)
            out[name] = tf.reshape(ct / float(CT_LEVELS), (size, size, size, 1))
        else:
            out[name] = tf.reshape(tf.io.decode_raw(parsed[name], tf.float32, little_endian=True), (size, size, 1))
    return out


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
        >>> ds = load_prepared("data/ph16", "train", batch_size=2)  # doctest: +SKIP
        >>> model.fit(ds, epochs=1)  # doctest: +SKIP
    """
    tf = _tf()
    manifest = read_manifest(path)
    cases = _select(manifest, path, split)
    if inputs not in INPUT_FIELDS:
        raise ConfigError(f"inputs={inputs!r}: choose one of {tuple(INPUT_FIELDS)}")
    xray_names = INPUT_FIELDS[inputs]
    lacking = [c["id"] for c in cases
               if not set(xray_names) <= set(BASE_FIELDS) | set(c.get("fields", ()))]
    if lacking:
        raise InputError(
            f"{path}: {len(lacking)} {split!r} case(s) (e.g. {lacking[0]}) lack {inputs!r} inputs "
            f"{xray_names}; run the style-transfer workflow (xprospect style) on this dataset first"
        )
    size = int(manifest["size"])
    names = xray_names + ("ct",) + (("case_id",) if with_ids else ())

    def to_element(record):
        f = _parse_record(record, size, names)
        x = (f[xray_names[0]], f[xray_names[1]])
        return (x, f["ct"], f["case_id"]) if with_ids else (x, f["ct"])

    files = tf.data.Dataset.from_tensor_slices([_join(path, c["file"]) for c in cases])
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


def _find_case(manifest, path, case_id):
    for entry in manifest["cases"]:
        if entry["id"] == case_id:
            return entry
    known = ", ".join(c["id"] for c in manifest["cases"][:5])
    raise InputError(f"{path}: no case {case_id!r} in this prepared dataset (cases: {known}, ...)")


def load_case(path, case_id):
    """All stored fields of one case as numpy arrays (for previews and evaluation).

    Args:
        path: dataset folder.
        case_id: the case id.

    Returns:
        ``{"case_id": str, "ct": (S, S, S), "ap", "lateral", "drr_ap",
        "drr_lateral", <extra fields>: (S, S)}``, float32 in canonical order.

    Example:
        >>> load_case("data/ph16", "phantom-0000")["ct"].shape  # doctest: +SKIP
        (16, 16, 16)
    """
    manifest = read_manifest(path)
    entry = _find_case(manifest, path, case_id)
    names = RESERVED_FIELDS + tuple(entry.get("fields", ()))
    parsed = _parse_record(_read_record(_join(path, entry["file"])), int(manifest["size"]), names)
    out = {k: v.numpy()[..., 0] for k, v in parsed.items() if k != "case_id"}
    out["case_id"] = parsed["case_id"].numpy().decode()
    return out


def add_case_fields(path, case_id, **arrays):
    """Add (or replace) extra 2D float32 fields of one case, e.g. ``styled_ap``.

    The record is rewritten atomically with the original fields unchanged, and
    the case's manifest entry lists the new field names. Not safe to call from
    several processes on the same dataset at once (each rewrites the manifest).

    Args:
        path: local dataset folder.
        case_id: the case id.
        **arrays: ``name=(S, S) array``; names must not be core fields.

    Returns:
        The updated manifest entry.

    Example:
        >>> add_case_fields("data/ph16", "phantom-0000", styled_ap=a, styled_lateral=b)  # doctest: +SKIP
    """
    manifest = read_manifest(path)
    entry = _find_case(manifest, path, case_id)
    size = int(manifest["size"])
    tf = _tf()
    file = _join(path, entry["file"])
    example = tf.train.Example.FromString(_read_record(file))
    for name, array in arrays.items():
        if name in RESERVED_FIELDS or not name.isidentifier():
            raise ConfigError(f"{name!r}: cannot add a field of that name; core fields are {RESERVED_FIELDS}")
        _check_shape(name, array, (size, size), where=f"{path}: case {case_id}")
        data = np.asarray(array, dtype="<f4").tobytes()
        example.features.feature[name].CopyFrom(_bytes_feature(data))
    _write_record(file, example.SerializeToString())
    entry["fields"] = sorted(set(entry.get("fields", ())) | set(arrays))
    write_json(_join(path, MANIFEST), manifest)
    return entry
