"""Case labels for classification from a CSV file (``case_id,label``), checked against a dataset.

Real datasets carry no finding of their own: their 0/1 labels (1 = positive,
e.g. pulmonary embolism in X-ray2CTPA) come from a CSV given to
``xprospect classify --labels``. Phantom datasets prepared with findings carry
theirs in ``manifest.json`` (:meth:`~xprospect_tf.data.prepared.Manifest.labels`).
"""

import csv
import os

from xprospect_tf.errors import InputError

ID_COLUMNS = ("case_id", "id")
LABEL_COLUMN = "label"
POSITIVE = ("1", "1.0", "true", "yes", "positive")
NEGATIVE = ("0", "0.0", "false", "no", "negative")


def read_labels_csv(path, case_ids=None):
    """Read ``{case_id: 0/1}`` from a CSV with a header naming ``case_id`` (or ``id``) and ``label``.

    A label is ``1``/``0`` (also ``true``/``false``, ``yes``/``no``,
    ``positive``/``negative``, any case). With ``case_ids`` (the dataset's
    cases) every one of them must have a label and the CSV may name no other
    case, so a typo never silently drops or invents a case.

    Args:
        path: the CSV file.
        case_ids: the ids the labels are for, or ``None`` (not checked).

    Returns:
        ``{case_id: 0 or 1}``, sorted by id.

    Raises:
        InputError: naming the file, the line and the fix: no such file, no
            header with those columns, an empty id, a bad label, a duplicate id,
            ids missing from the CSV or unknown to the dataset.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = os.path.join(folder, "labels.csv")
        ...     with open(path, "w") as f:
        ...         _ = f.write("case_id,label\\nb,1\\na,0\\n")
        ...     read_labels_csv(path, ["a", "b"])
        {'a': 0, 'b': 1}
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        what = "is a folder, not a file" if os.path.isdir(path) else "not found"
        raise InputError(f"{path}: labels CSV {what}; pass --labels FILE.csv with columns case_id,label")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"{path}: cannot read the labels CSV ({e}); write it as UTF-8 text with "
                         "columns case_id,label") from None
    rows = [(n, r) for n, r in enumerate(rows, 1) if any(c.strip() for c in r)]
    if not rows:
        raise InputError(f"{path}: the labels CSV is empty; write a header case_id,label and one line per case")
    header = [c.strip().lower() for c in rows[0][1]]
    id_col = next((header.index(c) for c in ID_COLUMNS if c in header), None)
    if id_col is None or LABEL_COLUMN not in header:
        raise InputError(f"{path}:{rows[0][0]}: the header must name the columns case_id and label "
                         f"(got {', '.join(rows[0][1])}); write e.g. 'case_id,label'")
    label_col = header.index(LABEL_COLUMN)
    labels = {}
    for line, row in rows[1:]:
        cells = row + [""] * (max(id_col, label_col) + 1 - len(row))
        case_id, text = cells[id_col].strip(), cells[label_col].strip()
        if not case_id:
            raise InputError(f"{path}:{line}: empty case id; every line needs a case_id and a label")
        if text.lower() in POSITIVE:
            value = 1
        elif text.lower() in NEGATIVE:
            value = 0
        else:
            raise InputError(f"{path}:{line}: label {text!r} of case {case_id!r} is not 0 or 1 "
                             "(1 = positive; true/false, yes/no and positive/negative also work)")
        if case_id in labels:
            raise InputError(f"{path}:{line}: case {case_id!r} is labelled twice; keep one line per case")
        labels[case_id] = value
    if not labels:
        raise InputError(f"{path}: the labels CSV has a header but no cases; add one line per case")
    if case_ids is not None:
        known = set(case_ids)
        missing = sorted(known - set(labels))
        unknown = sorted(set(labels) - known)
        if unknown:
            raise InputError(f"{path}: {len(unknown)} case id(s) are not in the dataset (e.g. "
                             f"{', '.join(unknown[:3])}); use the dataset's case ids (its manifest.json)")
        if missing:
            raise InputError(f"{path}: {len(missing)} case(s) of the dataset have no label (e.g. "
                             f"{', '.join(missing[:3])}); label every case")
    return dict(sorted(labels.items()))
