"""Atomic file writes: a crash never leaves a half-written file that looks complete."""

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile

log = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_path(path, durable=False):
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary file keeps ``path``'s suffix (so writers that dispatch on the
    extension, like nibabel or matplotlib, still work). On any exception the
    temporary file is removed and ``path`` is left untouched. A process killed
    inside the block leaves only the temporary file (``.NAME.XXXXXXXX.tmp.SUFFIX``),
    which :func:`remove_temporaries` deletes. With ``durable`` the file is
    fsync'ed before the rename and the folder after it, so the new file also
    survives a power loss.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    base = os.path.basename(path)
    suffix = "".join(_suffixes(base))
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp" + suffix, dir=directory)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
    try:
        yield tmp
        if durable:
            fsync_path(tmp)
        os.replace(tmp, path)
        if durable:
            fsync_path(directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def fsync_path(path):
    """Flush a file's (or a folder's) data to disk; folders are skipped where the OS cannot."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if os.path.isdir(path) else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:
        if os.path.isdir(path):  # e.g. Windows: folders cannot be opened
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not os.path.isdir(path):
            raise
    finally:
        os.close(fd)


_TEMPORARY = re.compile(r"^\.(?P<base>.+)\.[A-Za-z0-9_]{8}\.(tmp|old)(?P<suffix>(\.[^.]+)*)$")


def is_temporary(name):
    """Whether a file or folder name is one that :func:`atomic_path`/:func:`atomic_dir` create.

    Example:
        >>> is_temporary(".last.keras.k3_9xq2a.tmp.keras"), is_temporary(".data.abcdefgh.tmp")
        (True, True)
        >>> is_temporary("last.keras"), is_temporary(".hidden.tmp")
        (False, False)
    """
    m = _TEMPORARY.match(name)
    return bool(m) and m.group("suffix") in ("", "".join(_suffixes(m.group("base"))))


def remove_temporaries(folder, recursive=False):
    """Delete the temporary files (and folders) a killed atomic write left in ``folder``.

    Only call this when no other process writes into ``folder``.

    Returns:
        The paths removed.
    """
    removed = []
    if not os.path.isdir(folder):
        return removed
    for root, dirs, names in os.walk(folder):
        for name in sorted(names + dirs):
            if not is_temporary(name):
                continue
            path = os.path.join(root, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
                dirs.remove(name)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
            removed.append(path)
        if not recursive:
            break
    if removed:
        log.info("%s: removed %d temporary file(s) left by an interrupted write", folder, len(removed))
    return removed


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _suffixes(name):
    parts = name.split(".")[1:]
    return ["." + p for p in parts[-2:]] if parts else []


@contextlib.contextmanager
def atomic_dir(path):
    """Yield a temporary folder beside ``path``; on success it replaces ``path``
    (an existing folder is swapped out, then deleted); on failure it is removed."""
    path = os.path.abspath(os.fspath(path))
    parent, base = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{base}.", suffix=".tmp", dir=parent)
    try:
        yield tmp
        old = None
        if os.path.exists(path):
            old = tempfile.mkdtemp(prefix=f".{base}.", suffix=".old", dir=parent)
            os.rmdir(old)
            os.replace(path, old)
        os.replace(tmp, path)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text(path, text):
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def write_json(path, obj):
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"cannot serialize {type(obj).__name__} to JSON")


def sorted_files(folder):
    """Every file below ``folder``, recursively, in a deterministic (sorted) order."""
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            yield os.path.join(root, name)
