"""Writing prepared datasets: one case, a whole dataset (parallel, resumable, atomic), case edits."""

import concurrent.futures
import logging
import multiprocessing
import os
import threading
import time
import typing

import numpy as np

from xprospect_tf.checks import DEFAULT_FOV_MM, DEFAULT_VAL_FRACTION, DEFAULT_WINDOW
from xprospect_tf.data.prepared.manifest import CASES_DIR, MANIFEST, Manifest
from xprospect_tf.data.prepared.records import add_fields, case_arrays, encode_example, read_record, write_record
from xprospect_tf.data.prepared.sources import expand_sources, findings_settings, load_source, source_label
from xprospect_tf.errors import ConfigError, XprospectError
from xprospect_tf.outputs import folder_lock

log = logging.getLogger(__name__)


class PrepareTask(typing.NamedTuple):
    """One case for a worker of :func:`write_prepared`: where to write it, from what, at which settings.

    Example:
        >>> PrepareTask("data/ds", "ct0", "ct0.nii.gz", 16, DEFAULT_WINDOW, DEFAULT_FOV_MM).fov_mm
        400.0
    """

    out_dir: str
    case_id: str
    source: typing.Any  # a path or a PhantomSource
    size: int
    window: tuple
    fov_mm: float
    series: typing.Optional[str] = None  # DICOM SeriesInstanceUID (or index) for folders with several
    check_hu: bool = True  # refuse volumes whose intensities cannot be a CT (see read_volume)


class PrepareResult(typing.NamedTuple):
    """What a worker reports: the case's manifest entry, or ``failure`` ``{"source", "reason"}``."""

    case_id: str
    entry: typing.Optional[dict]
    failure: typing.Optional[dict]
    seconds: float


def write_case(out_dir, case_id, volume, size, window=DEFAULT_WINDOW, fov_mm=DEFAULT_FOV_MM):
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
        >>> import tempfile
        >>> from xprospect_tf.data.phantom import phantom_volume
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     write_case(folder, "phantom-0000", phantom_volume(16), 16)["file"]
        'cases/phantom-0000.tfrecord'
    """
    arrays = case_arrays(volume, size, window, fov_mm)
    rel = f"{CASES_DIR}/{case_id}.tfrecord"
    write_record(os.path.join(out_dir, rel), encode_example(case_id, arrays, size).SerializeToString())
    return {
        "id": case_id,
        "source": volume.source,
        "original_spacing": [float(s) for s in volume.spacing],
        "original_shape": [int(n) for n in volume.shape],
        "file": rel,
        "fields": [],
    }


def prepare_case(task):
    """Worker: read/synthesize one source and write its case. Never raises.

    Args:
        task: a :class:`PrepareTask`.

    Returns:
        A :class:`PrepareResult`.
    """
    t0 = time.perf_counter()
    try:
        volume = load_source(task.source, task.size, task.fov_mm, task.series, task.check_hu)
        entry = write_case(task.out_dir, task.case_id, volume, task.size, task.window, task.fov_mm)
        entry["source"] = str(task.source)
        entry.update(source_label(task.source))
        return PrepareResult(task.case_id, entry, None, time.perf_counter() - t0)
    except XprospectError as e:
        reason = str(e)
    except Exception as e:  # a corrupt file may fail in any library; record it, go on
        log.debug("%s failed", task.source, exc_info=True)
        reason = f"{type(e).__name__}: {e}"
    return PrepareResult(task.case_id, None, {"source": str(task.source), "reason": reason},
                         time.perf_counter() - t0)


def split_sizes(n, test_fraction=0.2, test_count=None, val_fraction=DEFAULT_VAL_FRACTION):
    """The ``(train, val, test)`` case counts that :func:`assign_splits` gives ``n`` cases.

    ``test = test_count`` (at most ``n``), else ``round(test_fraction * n)``;
    ``val = round(val_fraction * (n - test))``; the rest is ``train``.

    Example:
        >>> split_sizes(100), split_sizes(40, test_count=8), split_sizes(3, test_count=1)
        ((64, 16, 20), (26, 6, 8), (2, 0, 1))
    """
    n_test = min(int(round(test_fraction * n)) if test_count is None else int(test_count), n)
    n_val = int(round(val_fraction * (n - n_test)))
    return n - n_test - n_val, n_val, n_test


def assign_splits(case_ids, test_fraction=0.2, test_count=None, seed=0, val_fraction=DEFAULT_VAL_FRACTION):
    """Deterministic train/val/test split of ``case_ids``.

    The test cases are drawn first: the sorted ids are permuted by
    ``numpy.random.default_rng(seed)`` and the first ``test_count`` (else
    ``round(test_fraction * n)``) become ``test``, whatever ``val_fraction``.
    The other cases are divided into ``train`` and ``val`` by
    :func:`divide_train_val`, a function of those ids alone.

    Args:
        case_ids: iterable of case ids.
        test_fraction: fraction of test cases, used when ``test_count`` is None.
        test_count: fixed number of test cases (clipped to the number of cases).
        seed: split seed.
        val_fraction: share of the non-test cases that become ``val`` (0: none).

    Returns:
        ``{case_id: "train" | "val" | "test"}``.

    Example:
        >>> sorted(assign_splits(["a", "b", "c"], test_count=1, val_fraction=0).values())
        ['test', 'train', 'train']
        >>> sorted(assign_splits("abcdefghij", test_count=2).values())
        ['test', 'test', 'train', 'train', 'train', 'train', 'train', 'train', 'val', 'val']
    """
    ids = sorted(case_ids)
    _, _, n_test = split_sizes(len(ids), test_fraction, test_count, val_fraction)
    order = np.random.default_rng(seed).permutation(len(ids))
    test = {ids[i] for i in order[:n_test]}
    rest = divide_train_val([i for i in ids if i not in test], val_fraction, seed)
    return {i: "test" if i in test else rest[i] for i in ids}


_VAL_STREAM = 1  # the train/val draw has its own random stream, apart from the test draw's


def divide_train_val(case_ids, val_fraction=DEFAULT_VAL_FRACTION, seed=0):
    """Deterministic division of (non-test) ``case_ids`` into train and val.

    A pure function of the ids, ``val_fraction`` and ``seed``: the sorted ids
    are permuted by ``numpy.random.default_rng([seed, 1])`` and the first
    ``round(val_fraction * n)`` become ``val``. So the division can be drawn
    again from a manifest's non-test cases (:func:`split_prepared`), and a
    smaller ``val_fraction`` holds out a subset of a larger one's cases.

    Returns:
        ``{case_id: "train" | "val"}``.

    Example:
        >>> divide_train_val(["a", "b", "c", "d", "e"], 0.4, seed=0)
        {'a': 'train', 'b': 'val', 'c': 'train', 'd': 'train', 'e': 'val'}
    """
    ids = sorted(case_ids)
    n_val = int(round(val_fraction * len(ids)))
    order = np.random.default_rng([int(seed), _VAL_STREAM]).permutation(len(ids))
    val = {ids[i] for i in order[:n_val]}
    return {i: "val" if i in val else "train" for i in ids}


def write_prepared(sources, out_dir, size, window=DEFAULT_WINDOW, fov_mm=DEFAULT_FOV_MM,
                   test_fraction=0.2, test_count=None, split_seed=0, workers=None, progress=True,
                   series=None, check_hu=True, val_fraction=DEFAULT_VAL_FRACTION):
    """Prepare CT sources into a dataset folder (resumable, parallel, atomic).

    Cases already in ``out_dir``'s manifest whose file exists are kept; the
    others are written by ``workers`` processes (``1``: inline). A source that
    cannot be read is recorded under ``failed`` with its reason and the run goes
    on. The manifest is rewritten atomically after every case and marked
    ``complete`` at the end, when the split is assigned over the cases written
    (:func:`assign_splits`: the test cases first, then train/val). Run again
    on a finished dataset with another ``val_fraction``, it only divides the
    non-test cases again (:func:`split_prepared` does that without the sources).
    ``out_dir`` is locked meanwhile (:func:`xprospect_tf.outputs.folder_lock`):
    a second writer is refused with the holder named, not merged silently.

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
        val_fraction: share of the non-test cases held out for validation
            (the paper's 0.2 by default; 0: no ``val`` split).
        workers: processes (default: CPU count, at most one per pending case).
        progress: log one INFO line per case (else DEBUG).
        series: for DICOM folders holding several series, the SeriesInstanceUID
            (or index) to read (see :func:`~xprospect_tf.data.readers.read_volume`).
        check_hu: refuse volumes whose intensities cannot be a CT in HU (no air);
            ``False`` for a real CT with no air in it.

    Returns:
        The dataset's :class:`Manifest`.

    Raises:
        ConfigError: invalid settings, a split that leaves no training case (or no
            validation case although ``val_fraction > 0``), or ``out_dir`` holds a
            dataset with other settings.
        InputError: a source path does not exist.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     m = write_prepared("phantom:4", folder, size=8, test_count=1, workers=1, progress=False)
        ...     m.ids("test"), m.ids("val"), m.counts(), m.complete
        (['phantom-0002'], ['phantom-0003'], {'train': 2, 'val': 1, 'test': 1}, True)
    """
    manifest = Manifest(out_dir, size, window, fov_mm, split_seed=int(split_seed),  # checks the settings
                        val_fraction=val_fraction)
    _check_split_args(test_fraction, test_count, workers, val_fraction)
    candidates = expand_sources(sources)
    if test_count is not None and test_count >= len(candidates):
        raise ConfigError(
            f"test_count={test_count} leaves no training case among {len(candidates)} sources (--test-count)"
        )
    _check_split_sizes(len(candidates), test_fraction, test_count, val_fraction, "sources")
    findings = findings_settings(s for _, s in candidates)
    if findings is not None:
        manifest.extra["findings"] = findings
    with folder_lock(manifest.path):  # one writer at a time: the manifest is read, changed and saved
        for entry in _reusable_entries(manifest, {c for c, _ in candidates}):
            manifest.put(entry)
        done = set(manifest.ids())
        pending = [PrepareTask(manifest.path, c, s, manifest.size, manifest.window, manifest.fov_mm, series,
                               check_hu)
                   for c, s in candidates if c not in done]
        log.info("%s: %d case(s) already prepared, %d to prepare at %d^3",
                 manifest.path, len(done), len(pending), manifest.size)
        manifest.save()
        level = logging.INFO if progress else logging.DEBUG
        for n, result in enumerate(_run_tasks(pending, workers), 1):
            if result.entry is not None:
                manifest.put(result.entry)
            else:
                manifest.failed.append(result.failure)
                log.warning("%s: failed: %s", result.failure["source"], result.failure["reason"])
            log.log(level, "%s %d/%d: %s (%.1f s)", "prepared" if result.entry is not None else "failed",
                    n, len(pending), result.case_id, result.seconds)
            manifest.save()
        # failed sources may leave too few cases: refused before the split, the cases kept
        _check_split_sizes(len(manifest.cases), test_fraction, test_count, val_fraction, "cases prepared")
        splits = assign_splits(manifest.ids(), test_fraction, test_count, split_seed, val_fraction)
        for entry in manifest.cases:
            entry["split"] = splits[entry["id"]]
        manifest.complete = True
        manifest.save()
        log.info("%s: %d case(s) (%s), %d failed", manifest.path, len(manifest.cases),
                 manifest.describe_splits(), len(manifest.failed))
        return manifest


def split_prepared(path, val_fraction=DEFAULT_VAL_FRACTION):
    """Divide the non-test cases of a prepared dataset into train and val again; the test cases stay.

    The division is :func:`divide_train_val` of the non-test ids with the
    dataset's split seed: what :func:`write_prepared` would have assigned with
    this ``val_fraction``. No case is read or written, only ``manifest.json``
    (atomically, under the folder's lock). This gives a dataset prepared by a
    version without validation splits (or with another ``val_fraction``) the
    split a run asks for (CLI: ``xprospect data split``).

    Args:
        path: a local prepared dataset folder (preparation finished).
        val_fraction: share of the non-test cases held out for validation (0: none).

    Returns:
        The updated :class:`Manifest`.

    Raises:
        InputError: not a prepared dataset, or its preparation did not finish.
        ConfigError: ``val_fraction`` outside [0, 1), or leaving no training
            case (or no validation case although ``val_fraction > 0``).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     m = write_prepared("phantom:4", folder, size=8, test_count=1, workers=1, progress=False,
        ...                        val_fraction=0)
        ...     m.counts(), split_prepared(folder, 0.2).counts(), Manifest.read(folder).ids("val")
        ({'train': 3, 'val': 0, 'test': 1}, {'train': 2, 'val': 1, 'test': 1}, ['phantom-0003'])
    """
    _check_split_args(0.0, None, None, val_fraction)
    Manifest.read(path).entries()  # a finished dataset (before the lock would create a missing folder)
    with folder_lock(path):
        manifest = Manifest.read(path)
        non_test = [c["id"] for c in manifest.cases if c["split"] != "test"]
        _check_split_sizes(len(non_test), 0.0, None, val_fraction, "non-test cases")
        division = divide_train_val(non_test, val_fraction, manifest.split_seed or 0)
        for entry in manifest.cases:
            if entry["id"] in division:
                entry["split"] = division[entry["id"]]
        manifest.val_fraction = float(val_fraction)
        manifest.save()
    log.info("%s: split again with val_fraction=%g (%s)", manifest.path, manifest.val_fraction,
             manifest.describe_splits())
    return manifest


def add_case_fields(path, case_id, **arrays):
    """Add (or replace) extra 2D float32 fields of one case, e.g. ``styled_ap``.

    The record is rewritten atomically with the original fields unchanged, and
    the case's manifest entry lists the new field names. The dataset folder is
    locked meanwhile: another process writing to it at the same time gets an
    InputError naming the holder instead of silently losing an update.

    Args:
        path: local dataset folder.
        case_id: the case id.
        **arrays: ``name=(S, S) array``; names must not be core fields.

    Returns:
        The updated manifest entry.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = write_prepared("phantom:2", folder, size=8, test_count=1, workers=1, progress=False,
        ...                        val_fraction=0)
        ...     add_case_fields(folder, "phantom-0000", styled_ap=np.zeros((8, 8)))["fields"]
        ['styled_ap']
    """
    with folder_lock(path):  # read, change and save the manifest as one writer
        manifest = Manifest.read(path)
        file = manifest.file(case_id)
        record = add_fields(read_record(file), arrays, manifest.size, where=f"{path}: case {case_id}")
        write_record(file, record)
        entry = manifest.add_fields(case_id, arrays)
        manifest.save()
    return entry


def _check_split_args(test_fraction, test_count, workers, val_fraction):
    if not 0.0 <= float(test_fraction) < 1.0:
        raise ConfigError(f"test_fraction={test_fraction}: must be in [0, 1)")
    if not 0.0 <= float(val_fraction) < 1.0:
        raise ConfigError(f"val_fraction={val_fraction}: must be in [0, 1) (--val-fraction)")
    if test_count is not None and int(test_count) < 0:
        raise ConfigError(f"test_count={test_count}: must be zero or more (--test-count)")
    if workers is not None and int(workers) < 1:
        raise ConfigError(f"workers={workers}: must be at least 1 (--workers)")


def _check_split_sizes(n, test_fraction, test_count, val_fraction, what):
    """ConfigError naming ``val_fraction`` when the split of ``n`` cases leaves no training
    case, or no validation case although ``val_fraction > 0``."""
    n_train, n_val, n_test = split_sizes(n, test_fraction, test_count, val_fraction)
    if n_train + n_val == 0:  # no case at all, or only test cases: the test split's own rules apply
        return
    rest = f"the {n - n_test} non-test case(s) of {n} {what}" if n_test else f"{n} {what}"
    if n_train < 1:
        raise ConfigError(f"val_fraction={val_fraction:g} leaves no training case among {rest} "
                          "(--val-fraction); use a smaller val_fraction or more cases")
    if val_fraction and n_val < 1:
        raise ConfigError(
            f"val_fraction={val_fraction:g} leaves no validation case among {rest} (--val-fraction): "
            f"round({val_fraction:g} x {n - n_test}) = 0; use more cases, a larger val_fraction, or "
            "val_fraction=0 for no validation split (fit then monitors the training loss)")


def _reusable_entries(manifest, case_ids):
    """Entries of a previous run in ``manifest.path`` that can be kept (same settings, file present)."""
    if not os.path.exists(os.path.join(manifest.path, MANIFEST)):
        return []
    old = Manifest.read(manifest.path)
    old.check_matches(manifest.size, manifest.window, manifest.fov_mm,
                      fix="use a new --out folder for different settings")
    if old.findings != manifest.findings:
        raise ConfigError(f"{manifest.path}: prepared with findings={old.findings}, not "
                          f"findings={manifest.findings}; use a new --out folder for different settings")
    kept = [e for e in old.cases if e["id"] in case_ids and os.path.exists(os.path.join(old.path, e["file"]))]
    dropped = len(old.cases) - len(kept)
    if dropped:
        log.warning("%s: %d case(s) of the previous run are missing or not among the sources; "
                    "they are (re)prepared or left out", manifest.path, dropped)
    return kept


def _run_tasks(tasks, workers):
    """Yield :func:`prepare_case` results as they complete; spawn-safe process pool."""
    workers = min(int(workers or os.cpu_count() or 1), max(len(tasks), 1))
    if workers == 1:
        yield from map(prepare_case, tasks)
        return
    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                                  initializer=exit_with_parent, initargs=(os.getpid(),))
    try:
        futures = [pool.submit(prepare_case, t) for t in tasks]
        for future in concurrent.futures.as_completed(futures):
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


PARENT_POLL_S = 0.5


def exit_with_parent(parent_pid, poll_s=PARENT_POLL_S):
    """Worker initializer: end this process soon after ``parent_pid`` dies.

    A pool's workers outlive a parent killed with SIGKILL (nothing tells them);
    a daemon thread checks ``os.getppid()`` every ``poll_s`` seconds and exits
    the worker when it is no longer ``parent_pid`` (the orphan was re-parented).
    Portable (no ``prctl``), and harmless when the parent lives.
    """

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(1)  # no cleanup: the parent that would read our results is gone

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
