"""Output folders and files: never delete or overwrite what a user owns, one writer at a time.

Every command that writes takes its output through this module:

- :func:`claim_folder` opens an output folder of one *kind* (a prepared
  dataset, a run, an export, a style run). A folder that does not exist, is
  empty, or already holds this tool's output of that kind is taken; any other
  folder (a user's files) is refused, and a path that is a file is refused. The
  folder is locked for the duration (a second command writing to it is told
  who holds it), and a folder the command created is removed again if the
  command fails before it wrote anything worth keeping.
- :func:`check_output_file` refuses to overwrite an existing file (unless
  asked to) and an unwritable location, before any work.

The lock is an advisory ``fcntl.flock`` on ``<folder>/.xprospect.lock`` (removed
when the command ends): the operating system releases it when the holding
process dies, even by ``kill -9``, so a stale lock file never blocks a later run.
"""

import contextlib
import json
import os
import shutil
import sys
import time

from xprospect_tf.errors import InputError

LOCK_FILE = ".xprospect.lock"


def _describe(path):
    with contextlib.suppress(OSError, ValueError):
        with open(path, encoding="utf-8") as f:
            holder = json.load(f)
        return f"pid {holder['pid']} ({holder['command']}, since {holder['since']})"
    return "another process"


@contextlib.contextmanager
def folder_lock(folder):
    """Hold an exclusive lock on ``folder`` (created if missing) while the block runs.

    Raises:
        InputError: another process holds the lock; the message says which.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     with folder_lock(d):
        ...         try:
        ...             with folder_lock(d):
        ...                 pass
        ...         except InputError as e:
        ...             print("in use by pid" in str(e))
        True
    """
    import fcntl

    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, LOCK_FILE)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InputError(
                f"{folder}: in use by {_describe(path)}; wait for that command to finish, "
                "or write to another folder") from None
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break  # locked the file that is still in place (not one a finishing holder removed)
        os.close(fd)
    try:
        command = " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:])[:200] if sys.argv else "python"
        holder = {"pid": os.getpid(), "command": command, "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        yield folder
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)  # removed while still held, so a waiting process re-checks the inode
        os.close(fd)  # closing the descriptor releases the lock


def _visible_entries(folder):
    return [e for e in os.listdir(folder) if e != LOCK_FILE]


def _check_writable(path, what):
    parent = os.path.abspath(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{path}: cannot write the {what} here ({parent} is not a writable folder); "
                         "choose another --out")


@contextlib.contextmanager
def claim_folder(folder, kind, is_own, overwrite=False, keep_on_error=None, lock=True):
    """Take ``folder`` as the output of one command, locked, for the block's duration.

    Args:
        folder: the output folder.
        kind: what the folder holds, for messages (``"prepared dataset"``, ``"run"``, ``"export"``).
        is_own: ``is_own(folder) -> bool``: whether an existing, non-empty folder
            already holds this tool's output of ``kind`` (it is then reused or
            resumed by the caller).
        overwrite: take a folder holding other files anyway (the caller may replace them).
        keep_on_error: ``keep_on_error(folder) -> bool``: on failure, whether a
            folder this call created is worth keeping (e.g. it holds finished
            cases to resume from); default: never, the folder is removed.
        lock: lock the folder (``False`` where the library locks it itself,
            e.g. :func:`~xprospect_tf.data.prepared.write_prepared`).

    Yields:
        ``folder``.

    Raises:
        InputError: the path is a file, not writable, holds other files, or is
            locked by another command.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     open(os.path.join(d, "thesis.txt"), "w").close()
        ...     try:
        ...         with claim_folder(d, "export", is_own=lambda f: False):
        ...             pass
        ...     except InputError as e:
        ...         print("holds other files" in str(e))
        True
    """
    folder = os.fspath(folder)
    created = check_output_folder(folder, kind, is_own, overwrite)
    try:
        with folder_lock(folder) if lock else contextlib.nullcontext(folder):
            yield folder
    except BaseException:
        if created and os.path.isdir(folder) and not (keep_on_error and keep_on_error(folder)):
            shutil.rmtree(folder, ignore_errors=True)
        raise


def check_output_folder(folder, kind, is_own, overwrite=False):
    """The checks of :func:`claim_folder`, without taking the folder.

    Returns:
        ``True`` when ``folder`` does not exist yet.

    Raises:
        InputError: the path is a file, not writable, or holds other files.
    """
    folder = os.fspath(folder)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise InputError(f"{folder}: exists and is a file, not a folder; choose another --out for the {kind}")
    _check_writable(folder, kind)
    if not os.path.exists(folder):
        return True
    entries = _visible_entries(folder)
    if entries and not is_own(folder) and not overwrite:
        shown = ", ".join(sorted(entries)[:3]) + (", ..." if len(entries) > 3 else "")
        raise InputError(
            f"{folder}: holds other files ({shown}), not a {kind} of this tool; nothing was "
            "changed. Choose a new or empty folder (or pass --overwrite to replace its contents)")
    return False


def check_output_file(path, what, suffixes=(), overwrite=False):
    """Refuse an output file that exists (unless ``overwrite``), is a folder, or cannot be written.

    Args:
        path: the file to write.
        what: what it is, for messages (``"predicted CT"``).
        suffixes: accepted endings (``(".nii", ".nii.gz")``); empty: any.
        overwrite: allow replacing an existing file.

    Returns:
        ``path``.

    Example:
        >>> check_output_file("ct.nii.gz", "predicted CT", (".nii", ".nii.gz"))
        'ct.nii.gz'
    """
    path = os.fspath(path)
    if suffixes and not path.endswith(tuple(suffixes)):
        raise InputError(f"{path}: the {what} must end in {' or '.join(suffixes)}")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a folder; give a file name for the {what}")
    if os.path.exists(path) and not overwrite:
        raise InputError(f"{path}: exists; choose another name for the {what} (or pass --overwrite)")
    _check_writable(os.path.dirname(os.path.abspath(path)), what)
    return path
