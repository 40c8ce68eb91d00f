"""CT sources of a prepared dataset: phantom cases, paths, and the case ids they become."""

import dataclasses
import os
import re

import typing

import numpy as np

from xprospect_tf.errors import ConfigError, InputError

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".npz", ".npy")  # files that are one case each


@dataclasses.dataclass(frozen=True)
class PhantomFindings:
    """Draw each phantom's finding (a lung nodule in about half the seeds) at this difficulty.

    A prepared dataset of such phantoms records a 0/1 ``label`` per case (1: a
    nodule) and these settings in its manifest (``findings``).

    Args:
        radius_mm: ``(low, high)`` range of the nodule radius in mm.
        contrast_hu: the nodule's HU above the lung's nominal -850 HU.

    Example:
        >>> PhantomFindings().to_dict()
        {'nodule_radius_mm': [5.0, 12.0], 'nodule_contrast_hu': 880.0}
        >>> PhantomFindings((3, 6), 200).radius_mm
        (3.0, 6.0)
    """

    radius_mm: tuple = None
    contrast_hu: float = None

    def __post_init__(self):
        from xprospect_tf.data.phantom import (
            DEFAULT_NODULE_CONTRAST_HU,
            DEFAULT_NODULE_RADIUS_MM,
            check_nodule_contrast,
            check_nodule_radius,
        )

        radius = DEFAULT_NODULE_RADIUS_MM if self.radius_mm is None else self.radius_mm
        contrast = DEFAULT_NODULE_CONTRAST_HU if self.contrast_hu is None else self.contrast_hu
        object.__setattr__(self, "radius_mm", check_nodule_radius(radius, "nodule radius (--nodule-radius)"))
        object.__setattr__(self, "contrast_hu", check_nodule_contrast(contrast, "nodule contrast (--nodule-contrast)"))

    def to_dict(self):
        """The settings as ``manifest.json`` records them."""
        return {"nodule_radius_mm": list(self.radius_mm), "nodule_contrast_hu": self.contrast_hu}

    def label(self, seed):
        """``(label, finding)`` of phantom ``seed``: 1 with a nodule, else 0, and
        :func:`~xprospect_tf.data.phantom.phantom_findings`' dict."""
        from xprospect_tf.data.phantom import phantom_findings

        finding = phantom_findings(seed, self.radius_mm)
        return int(finding["nodule"]), finding


@dataclasses.dataclass(frozen=True)
class PhantomSource:
    """One synthetic chest phantom case, for :func:`~xprospect_tf.data.prepared.write_prepared`.

    Args:
        case_id: the case id, e.g. ``"phantom-0003"``.
        seed: the seed passed to ``phantom_volume``.
        findings: a :class:`PhantomFindings` to draw the seed's finding (and
            label the case), or ``None``: no finding, no label.

    Example:
        >>> PhantomSource("phantom-0000", 7)
        PhantomSource(case_id='phantom-0000', seed=7)
        >>> str(PhantomSource("phantom-0000", 7, PhantomFindings()))
        'phantom:seed=7:findings'
    """

    case_id: str
    seed: int
    findings: typing.Optional[PhantomFindings] = dataclasses.field(default=None, repr=False)

    def __str__(self):
        return f"phantom:seed={self.seed}" + (":findings" if self.findings is not None else "")


def phantom_sources(count, seed=0, findings=None):
    """``count`` phantom cases ``phantom-0000``... with independent per-case seeds.

    Case ``i``'s seed is drawn from ``numpy.random.SeedSequence([seed, i])``, so
    cases do not repeat across nearby ``seed`` values and adding cases keeps the
    existing ones.

    Args:
        count: number of cases (>= 1).
        seed: dataset seed.
        findings: a :class:`PhantomFindings` (draw findings, label the cases) or ``None``.

    Returns:
        A list of :class:`PhantomSource`.

    Example:
        >>> [s.case_id for s in phantom_sources(2)]
        ['phantom-0000', 'phantom-0001']
    """
    if int(count) < 1:
        raise ConfigError(f"count={count}: the number of phantom cases must be at least 1 (--count)")
    return [
        PhantomSource(f"phantom-{i:04d}", int(np.random.SeedSequence([int(seed), i]).generate_state(1)[0]),
                      findings)
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


def load_source(source, size, fov_mm, series=None, check_hu=True):
    """The HU :class:`~xprospect_tf.data.volume.Volume` of one source: a phantom is
    synthesized at ``size`` and ``fov_mm``, a path is read (``series``: the DICOM
    series to read from a folder holding several; ``check_hu``: see
    :func:`~xprospect_tf.data.readers.read_volume`)."""
    if isinstance(source, PhantomSource):
        from xprospect_tf.data.phantom import phantom_volume

        if source.findings is None:
            return phantom_volume(size=size, seed=source.seed, fov_mm=fov_mm)
        return phantom_volume(size=size, seed=source.seed, fov_mm=fov_mm, findings=True,
                              nodule_radius_mm=source.findings.radius_mm,
                              nodule_contrast_hu=source.findings.contrast_hu)
    from xprospect_tf.data.readers import read_volume

    return read_volume(source, series=series, check_hu=check_hu)


def source_label(source):
    """The manifest keys a source adds to its case entry: ``{"label", "finding"}`` for a
    phantom drawn with findings, else ``{}``.

    Example:
        >>> sorted(source_label(PhantomSource("p", 3, PhantomFindings())))
        ['finding', 'label']
        >>> source_label(PhantomSource("p", 3))
        {}
    """
    if isinstance(source, PhantomSource) and source.findings is not None:
        label, finding = source.findings.label(source.seed)
        return {"label": label, "finding": finding}
    return {}


def findings_settings(sources):
    """The ``findings`` settings (dict) shared by the phantom sources drawn with findings, or None.

    Raises:
        ConfigError: the sources mix different finding settings.
    """
    settings = {s.findings for s in sources if isinstance(s, PhantomSource) and s.findings is not None}
    if len(settings) > 1:
        raise ConfigError("the phantom sources mix different finding settings; prepare one dataset per setting")
    return settings.pop().to_dict() if settings else None


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
