"""``manifest.json``: the settings, splits and provenance of a prepared dataset, as one object.

Every reader of a prepared dataset goes through :class:`Manifest`; none needs
to know the JSON layout::

    {"format_version": 1, "size": 128, "window": [-1000.0, 1000.0], "fov_mm": 400.0,
     "spacing_mm": 3.125, "split_seed": 0, "val_fraction": 0.2, "complete": true,
     "cases": [{"id", "source", "original_spacing", "original_shape", "file",
                "fields", "split", ["label", "finding"]}, ...],
     "failed": [{"source", "reason"}, ...], ["findings": {...}]}

Phantoms prepared with findings (``xprospect data phantoms --findings``) carry a
0/1 ``label`` (1: a lung nodule) and the ``finding`` per case, and the finding
settings under ``findings``; :meth:`Manifest.labels` reads the labels.

A case's ``split`` is ``train``, ``val`` or ``test``. A manifest written before
validation splits existed has no ``val_fraction`` and no ``val`` case: it reads
as ``val_fraction = 0`` (``xprospect data split`` holds validation cases out of it).
"""

import json
import os

from xprospect_tf.checks import (
    DEFAULT_FOV_MM,
    DEFAULT_VAL_FRACTION,
    DEFAULT_WINDOW,
    check_data_size,
    check_fov_mm,
    check_window,
)
from xprospect_tf.data.prepared.records import BASE_FIELDS, tensorflow
from xprospect_tf.errors import ConfigError, InputError
from xprospect_tf.files import write_json

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CASES_DIR = "cases"
ALL = "all"
SPLITS = ("train", "val", "test", ALL)
"""The splits a reader may ask for; every case carries one of them but ``"all"``,
which selects every case. A new split is added here (and in ``assign_splits``).
``val`` (validation, monitored during ``fit``) is empty in a dataset prepared
with ``val_fraction=0`` or by a version before it existed."""
_REQUIRED = ("format_version", "size", "window", "fov_mm", "cases")
_KNOWN = ("format_version", "size", "window", "fov_mm", "spacing_mm", "split_seed", "val_fraction",
          "complete", "cases", "failed")


class Manifest:
    """The manifest of a prepared dataset: settings, cases (with their split and file) and failures.

    Args:
        path: the dataset folder (local or any ``tf.io.gfile`` path).
        size: cube side in voxels.
        window: ``(low, high)`` HU window mapped to [0, 1].
        fov_mm: cube side in mm.
        split_seed: the seed the split was drawn with.
        val_fraction: the share of the non-test cases in the ``val`` split
            (0: none, as in a manifest written before validation splits existed).
        complete: whether preparation finished (and the split was assigned).
        cases: case entries (dicts with ``id``, ``file``, ``fields``, ``split``...).
        failed: ``{"source", "reason"}`` of the sources that could not be prepared.
        spacing_mm: voxel size (default ``fov_mm / size``).
        extra: other keys of ``manifest.json``, kept when it is saved.

    Example:
        >>> m = Manifest("data/ds", 16, val_fraction=0.5, cases=[
        ...     {"id": "b", "file": "cases/b.tfrecord", "fields": [], "split": "train"},
        ...     {"id": "c", "file": "cases/c.tfrecord", "fields": [], "split": "val"},
        ...     {"id": "a", "file": "cases/a.tfrecord", "fields": [], "split": "test"}])
        >>> m.ids(), m.ids("test"), m.counts(), m.window, m.spacing_mm
        (['a', 'b', 'c'], ['a'], {'train': 1, 'val': 1, 'test': 1}, (-1000.0, 1000.0), 25.0)
        >>> m.file("a")
        'data/ds/cases/a.tfrecord'
    """

    def __init__(self, path, size, window=DEFAULT_WINDOW, fov_mm=DEFAULT_FOV_MM, split_seed=0,
                 complete=False, cases=(), failed=(), spacing_mm=None, extra=None, val_fraction=0.0):
        self.path = os.fspath(path)
        self.size = check_data_size(size, "size")
        self.window = check_window(window, "window")
        self.fov_mm = check_fov_mm(fov_mm, "fov_mm")
        self.spacing_mm = self.fov_mm / self.size if spacing_mm is None else float(spacing_mm)
        self.split_seed = split_seed
        self.val_fraction = float(val_fraction)
        self.complete = bool(complete)
        self.cases = list(cases)
        self.failed = list(failed)
        self.extra = dict(extra or {})

    @classmethod
    def read(cls, path):
        """Read and validate the manifest of the dataset at ``path`` (local or ``tf.io.gfile``).

        Args:
            path: the dataset folder (or its ``manifest.json``).

        Returns:
            A :class:`Manifest`.

        Raises:
            InputError: no manifest, unreadable JSON, missing keys or an unknown format version.

        Example:
            >>> import tempfile
            >>> with tempfile.TemporaryDirectory() as folder:
            ...     Manifest(folder, 16, cases=[{"id": "a", "file": "cases/a.tfrecord"}]).save()
            ...     Manifest.read(folder).ids()
            ['a']
        """
        tf = tensorflow()
        path = os.fspath(path)
        folder = path[: -len(MANIFEST)].rstrip("/") if path.endswith(MANIFEST) else path
        file = join(folder, MANIFEST)
        if not tf.io.gfile.exists(file):
            raise InputError(f"{path}: not a prepared dataset (no {MANIFEST}); run xprospect data prepare")
        try:
            with tf.io.gfile.GFile(file, "r") as f:
                data = json.loads(f.read())
            missing = [k for k in _REQUIRED if k not in data]
        except (ValueError, TypeError) as e:
            raise InputError(f"{file}: corrupt manifest ({e}); delete the folder and prepare it again") from None
        if missing:
            raise InputError(f"{file}: manifest lacks {missing}; delete the folder and prepare it again")
        if data["format_version"] != FORMAT_VERSION:
            raise InputError(
                f"{file}: format version {data['format_version']}, this xprospect-tf reads "
                f"version {FORMAT_VERSION}; prepare the dataset again"
            )
        try:
            return cls(folder, data["size"], data["window"], data["fov_mm"], data.get("split_seed"),
                       data.get("complete", False), data["cases"], data.get("failed", []),
                       data.get("spacing_mm"), {k: v for k, v in data.items() if k not in _KNOWN},
                       data.get("val_fraction", 0.0))
        except ConfigError as e:
            raise InputError(f"{file}: corrupt manifest ({e}); delete the folder and prepare it again") from None

    def ids(self, split=ALL):
        """The sorted ids of the cases of ``split`` (one of :data:`SPLITS`)."""
        _check_split(split)
        return sorted(c["id"] for c in self.cases if split == ALL or c.get("split") == split)

    def counts(self):
        """The number of cases of each split: ``{"train": n, "val": n, "test": n}``."""
        return {split: len(self.ids(split)) for split in SPLITS if split != ALL}

    def describe_splits(self):
        """The split sizes for messages, e.g. ``"64 train, 16 val, 20 test"``."""
        return ", ".join(f"{n} {split}" for split, n in self.counts().items())

    def entries(self, split=ALL, fields=()):
        """The entries of the cases of ``split``, in manifest order, each holding ``fields``.

        Args:
            split: one of :data:`SPLITS`.
            fields: record fields every selected case must hold (e.g. ``styled_ap``).

        Returns:
            A non-empty list of case entries.

        Raises:
            ConfigError: an unknown split.
            InputError: preparation did not finish, the split is empty, or cases lack ``fields``.
        """
        _check_split(split)
        if not self.complete:
            raise InputError(f"{self.path}: preparation was not finished; "
                             "rerun xprospect data prepare with the same --out")
        cases = [c for c in self.cases if split == ALL or c["split"] == split]
        if not cases and split == "val":
            raise InputError(f"{self.path}: no validation ('val') cases in this prepared dataset "
                             f"(val_fraction = {self.val_fraction:g}); hold some out with "
                             f"xprospect data split {self.path} --val-fraction {DEFAULT_VAL_FRACTION:g}")
        if not cases:
            raise InputError(f"{self.path}: no {split!r} cases in this prepared dataset; prepare more cases")
        lacking = [c["id"] for c in cases if not set(fields) <= set(BASE_FIELDS) | set(c.get("fields", ()))]
        if lacking:
            raise InputError(
                f"{self.path}: {len(lacking)} {split!r} case(s) (e.g. {lacking[0]}) lack the fields "
                f"{tuple(fields)}; run the style-transfer workflow (xprospect style) on this dataset first"
            )
        return cases

    @property
    def findings(self):
        """The finding settings the phantoms were drawn with (a dict), or None."""
        return self.extra.get("findings")

    def labels(self, split=ALL):
        """``{case_id: 0/1}`` of the cases of ``split`` (1: positive, e.g. a nodule).

        Raises:
            InputError: a case has no label (the dataset was not prepared with
                findings): the message says to pass a labels CSV.

        Example:
            >>> Manifest("data/ds", 16, cases=[{"id": "a", "label": 1}, {"id": "b", "label": 0}]).labels()
            {'a': 1, 'b': 0}
        """
        _check_split(split)
        cases = [c for c in self.cases if split == ALL or c.get("split") == split]
        lacking = [c["id"] for c in cases if c.get("label") not in (0, 1)]
        if lacking:
            raise InputError(
                f"{self.path}: {len(lacking)} of {len(cases)} case(s) have no 0/1 label (e.g. {lacking[0]}); "
                "prepare phantoms with findings (xprospect data phantoms --findings) or give the labels "
                "as a CSV with columns case_id,label (--labels)")
        return {c["id"]: int(c["label"]) for c in sorted(cases, key=lambda c: c["id"])}

    def case(self, case_id):
        """The entry of case ``case_id``; InputError naming the dataset if there is none."""
        for entry in self.cases:
            if entry["id"] == case_id:
                return entry
        known = ", ".join(c["id"] for c in self.cases[:5])
        raise InputError(f"{self.path}: no case {case_id!r} in this prepared dataset (cases: {known}, ...)")

    def file(self, case):
        """The full path of a case's record (``tf.io.gfile`` URLs kept as URLs).

        Args:
            case: a case id, or a case entry (from :meth:`entries`).
        """
        return join(self.path, (case if isinstance(case, dict) else self.case(case))["file"])

    def check_matches(self, size=None, window=None, fov_mm=None, fix=None, val_fraction=None):
        """Raise ConfigError unless the dataset was prepared with these settings (``None``: not checked).

        Args:
            size: the cube side asked for.
            window: the HU window asked for.
            fov_mm: the field of view asked for.
            fix: what the message tells the user to do (default: the ``--set``
                options that match the dataset, or a new dataset; when only
                ``val_fraction`` differs, ``xprospect data split``, which
                divides the non-test cases again and keeps the test cases).
            val_fraction: the share of validation cases asked for.

        Raises:
            ConfigError: naming the dataset, the settings that differ and the fix.

        Example:
            >>> Manifest("data/ds", 16).check_matches(size=16, window=[-1000, 1000])
            >>> Manifest("data/ds", 16).check_matches(size=32)
            Traceback (most recent call last):
            ...
            xprospect_tf.errors.ConfigError: data/ds: prepared with size=16, not size=32; use this dataset with --set size=16, or prepare a new one with these settings
            >>> Manifest("data/ds", 16).check_matches(val_fraction=0.2)  # e.g. made by an older version
            Traceback (most recent call last):
            ...
            xprospect_tf.errors.ConfigError: data/ds: prepared with val_fraction=0, not val_fraction=0.2; use this dataset with --set val_fraction=0, or hold validation cases out of its non-test cases (its test cases stay): xprospect data split data/ds --val-fraction 0.2
        """
        checks = {"size": check_data_size, "window": check_window, "fov_mm": check_fov_mm,
                  "val_fraction": lambda v, k: float(v)}
        asked = {k: checks[k](v, k) for k, v in (("size", size), ("window", window), ("fov_mm", fov_mm),
                                                 ("val_fraction", val_fraction))
                 if v is not None}
        wrong = {k: v for k, v in asked.items() if v != getattr(self, k)}
        if wrong:
            have = ", ".join(f"{k}={_show(getattr(self, k))}" for k in wrong)
            want = ", ".join(f"{k}={_show(v)}" for k, v in wrong.items())
            if fix is None:
                fix = "use this dataset with " + " ".join(f"--set {k}={_show(getattr(self, k))}" for k in wrong)
                if list(wrong) == ["val_fraction"]:
                    fix += (", or hold validation cases out of its non-test cases (its test cases stay): "
                            f"xprospect data split {self.path} --val-fraction {_show(wrong['val_fraction'])}")
                else:
                    fix += ", or prepare a new one with these settings"
            raise ConfigError(f"{self.path}: prepared with {have}, not {want}; {fix}")

    def put(self, entry):
        """Add case ``entry`` (or replace the one with its id); cases stay sorted by id."""
        self.cases = sorted([c for c in self.cases if c["id"] != entry["id"]] + [entry], key=lambda c: c["id"])
        return entry

    def add_fields(self, case_id, names):
        """List the extra record fields ``names`` in case ``case_id``'s entry; returns the entry."""
        entry = self.case(case_id)
        entry["fields"] = sorted(set(entry.get("fields", ())) | set(names))
        return entry

    def save(self):
        """Write ``manifest.json`` into the (local) dataset folder, atomically."""
        write_json(os.path.join(self.path, MANIFEST), self.to_dict())

    def to_dict(self):
        """The JSON data of ``manifest.json``."""
        return {"format_version": FORMAT_VERSION, "size": self.size, "window": list(self.window),
                "fov_mm": self.fov_mm, "spacing_mm": self.spacing_mm, "split_seed": self.split_seed,
                "val_fraction": self.val_fraction, "complete": self.complete, "cases": self.cases,
                "failed": self.failed, **self.extra}

    def __repr__(self):
        return f"Manifest({self.path!r}, size={self.size}, cases={len(self.cases)}, complete={self.complete})"


def join(path, *parts):
    """``os.path.join`` for local paths; ``/``-joined for ``tf.io.gfile`` URLs (``gs://``, ``file://``)."""
    path = os.fspath(path)
    return "/".join([path.rstrip("/"), *parts]) if "://" in path else os.path.join(path, *parts)


def _check_split(split):
    if split not in SPLITS:
        raise ConfigError(f"split={split!r}: choose one of {SPLITS}")


def _show(value):
    if isinstance(value, tuple):
        return "[" + ",".join(f"{v:g}" for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)
