"""CheXpert (Irvin et al. 2019) index: frontal/lateral pairs and single-view lists.

XprospeCT (sections 2 and 3.1) trains its style-transfer CycleGANs on CheXpert
radiographs: "a total of 2,390 paired orthogonal X-rays" (how the pairs were chosen
is not stated; the pairing rule below is ours). CheXpert ships a CSV (``train.csv``, ``valid.csv``) with one row per
image; the columns used here are ``Path`` (e.g.
``CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg``),
``Frontal/Lateral`` (``Frontal`` or ``Lateral``) and ``AP/PA`` (``AP``, ``PA``,
... for frontal images). Only the ``csv`` module is used, so the full training
CSV (~220k rows) is indexed in well under a second.
"""

import csv
import os
import re

from xprospect_tf.errors import ConfigError, InputError

REQUIRED_COLUMNS = ("Path", "Frontal/Lateral", "AP/PA")
_VIEW_NUMBER = re.compile(r"view(\d+)", re.IGNORECASE)


def chexpert_pairs(csv_path, frontal="any", root=None):
    """One (frontal, lateral) image pair per CheXpert study that has both views.

    A study is the folder of an image (``<split>/<patient>/<study>``, the
    ``Path`` up to its last ``/``). When a
    study holds several images of one view, the lowest view number in the file
    name wins (``view1_frontal.jpg`` before ``view2_frontal.jpg``; ties and
    names without a number fall back to the path, alphabetically), so the
    choice is deterministic. Studies are returned in the order they first
    appear in the CSV.

    Args:
        csv_path: CheXpert CSV file (``train.csv`` or ``valid.csv``).
        frontal: ``"any"`` (AP or PA) or ``"PA"`` (keep only PA frontals; a
            study with only AP frontals then yields no pair).
        root: folder joined to the ``Path`` column. Default: the CSV's parent's
            parent, i.e. the folder holding ``CheXpert-v1.0-small/`` when the
            CSV is ``CheXpert-v1.0-small/train.csv``.

    Returns:
        list of ``(frontal_path, lateral_path)`` strings.

    Raises:
        InputError: missing file or missing column. ConfigError: bad ``frontal``.

    Example:
        >>> import os, tempfile
        >>> def write_chexpert(root):  # a CheXpert-v1.0-small/train.csv of two studies
        ...     os.makedirs(os.path.join(root, "CheXpert-v1.0-small"))
        ...     with open(os.path.join(root, "CheXpert-v1.0-small", "train.csv"), "w") as f:
        ...         for row in ["Path,Sex,Frontal/Lateral,AP/PA",
        ...                     "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,F,Frontal,AP",
        ...                     "CheXpert-v1.0-small/train/patient00001/study1/view2_lateral.jpg,F,Lateral,",
        ...                     "CheXpert-v1.0-small/train/patient00002/study1/view2_frontal.jpg,M,Frontal,PA",
        ...                     "CheXpert-v1.0-small/train/patient00002/study1/view1_frontal.jpg,M,Frontal,PA",
        ...                     "CheXpert-v1.0-small/train/patient00002/study1/view3_lateral.jpg,M,Lateral,"]:
        ...             print(row, file=f)
        ...     return os.path.join(root, "CheXpert-v1.0-small", "train.csv")
        >>> with tempfile.TemporaryDirectory() as d:
        ...     pairs = chexpert_pairs(write_chexpert(d), frontal="PA")
        ...     [tuple(os.path.relpath(p, d) for p in pair) for pair in pairs]
        [('CheXpert-v1.0-small/train/patient00002/study1/view1_frontal.jpg', 'CheXpert-v1.0-small/train/patient00002/study1/view3_lateral.jpg')]
    """
    mode = str(frontal).upper()
    if mode not in ("ANY", "PA"):
        raise ConfigError(f"chexpert_pairs: frontal={frontal!r} is not valid; use 'any' or 'PA'")
    studies = {}
    for path, view, projection in _rows(csv_path):
        if view == "frontal" and mode == "PA" and projection != "PA":
            continue
        if view not in ("frontal", "lateral"):
            continue
        best = studies.setdefault(path.rpartition("/")[0], {})
        if view not in best or _view_key(path) < _view_key(best[view]):
            best[view] = path
    base = _root(csv_path, root)
    return [
        (os.path.join(base, best["frontal"]), os.path.join(base, best["lateral"]))
        for best in studies.values()
        if "frontal" in best and "lateral" in best
    ]


def chexpert_images(csv_path, view="frontal", root=None):
    """All CheXpert images of one view, in CSV order (for unpaired style transfer).

    Args:
        csv_path: CheXpert CSV file.
        view: ``"frontal"`` or ``"lateral"``.
        root: folder joined to ``Path``; default as in :func:`chexpert_pairs`.

    Returns:
        list of image paths.

    Raises:
        InputError: missing file or missing column. ConfigError: bad ``view``.

    Example:
        >>> import os, tempfile
        >>> def write_chexpert(root):  # a CheXpert-v1.0-small/train.csv of two studies
        ...     os.makedirs(os.path.join(root, "CheXpert-v1.0-small"))
        ...     with open(os.path.join(root, "CheXpert-v1.0-small", "train.csv"), "w") as f:
        ...         for row in ["Path,Sex,Frontal/Lateral,AP/PA",
        ...                     "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,F,Frontal,AP",
        ...                     "CheXpert-v1.0-small/train/patient00001/study1/view2_lateral.jpg,F,Lateral,",
        ...                     "CheXpert-v1.0-small/train/patient00002/study1/view2_frontal.jpg,M,Frontal,PA",
        ...                     "CheXpert-v1.0-small/train/patient00002/study1/view1_frontal.jpg,M,Frontal,PA",
        ...                     "CheXpert-v1.0-small/train/patient00002/study1/view3_lateral.jpg,M,Lateral,"]:
        ...             print(row, file=f)
        ...     return os.path.join(root, "CheXpert-v1.0-small", "train.csv")
        >>> with tempfile.TemporaryDirectory() as d:
        ...     laterals = chexpert_images(write_chexpert(d), view="lateral")
        ...     [os.path.relpath(p, d).split("/", 2)[-1] for p in laterals]
        ['patient00001/study1/view2_lateral.jpg', 'patient00002/study1/view3_lateral.jpg']
    """
    wanted = str(view).lower()
    if wanted not in ("frontal", "lateral"):
        raise ConfigError(f"chexpert_images: view={view!r} is not valid; use 'frontal' or 'lateral'")
    base = _root(csv_path, root)
    return [os.path.join(base, path) for path, v, _ in _rows(csv_path) if v == wanted]


def _root(csv_path, root):
    if root is not None:
        return os.fspath(root)
    return os.path.dirname(os.path.dirname(os.path.abspath(os.fspath(csv_path))))


def _view_key(path):
    match = _VIEW_NUMBER.search(path.rpartition("/")[2])
    return (int(match.group(1)) if match else float("inf"), path)


def _rows(csv_path):
    """Yield ``(Path, 'frontal'|'lateral'|other, AP/PA)`` for each CSV row."""
    csv_path = os.fspath(csv_path)
    try:
        f = open(csv_path, newline="", encoding="utf-8-sig")
    except OSError as err:
        raise InputError(f"{csv_path}: cannot open the CheXpert CSV ({err.strerror}); check the path") from err
    with f:
        reader = csv.reader(f)
        header = next(reader, None) or []
        columns = [c.strip() for c in header]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise InputError(
                f"{csv_path}: not a CheXpert CSV: missing column(s) {', '.join(missing)} "
                f"(found {columns}); give train.csv or valid.csv from the CheXpert download"
            )
        ip, iv, ia = (columns.index(c) for c in REQUIRED_COLUMNS)
        width = max(ip, iv, ia)
        try:
            for line, row in enumerate(reader, start=2):
                if len(row) <= width:
                    if not any(cell.strip() for cell in row):
                        continue  # blank line
                    raise InputError(f"{csv_path}, line {line}: only {len(row)} column(s); the CSV is truncated or malformed")
                yield row[ip].strip(), row[iv].strip().lower(), row[ia].strip().upper()
        except csv.Error as err:
            raise InputError(f"{csv_path}: malformed CSV ({err})") from err
