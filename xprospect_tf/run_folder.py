"""Run folders: a folder that holds one run's ``config.json`` and outputs.

Reconstruction runs (``xprospect train``, a Table 1 row) and style runs
(``xprospect style train``) share one rule, written here once: a folder whose
``config.json`` has the same settings is the same run (it is reused, or an
interrupted fit resumes from its backup); one with other settings is refused,
or, for folders a workflow manages itself, deleted and started again.
"""

import json
import logging
import os
import shutil

from xprospect_tf.errors import ConfigError, InputError
from xprospect_tf.files import write_json

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"


class RunFolder:
    """One run's folder.

    Args:
        path: the folder (need not exist yet).
        kind: what the run is, for messages (``"run"``, ``"style run"``).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     run = RunFolder(d + "/run")
        ...     run.claim({"epochs": 2})          # a new folder: claimed, config written
        ...     run.claim({"epochs": 2})          # the same settings: the same run
        ...     run.read_config()
        False
        True
        {'epochs': 2}
    """

    def __init__(self, path, kind="run"):
        self.path = os.fspath(path)
        self.kind = kind

    def __repr__(self):
        return f"RunFolder({self.path!r})"

    def exists(self):
        """Whether the folder holds a run (a ``config.json``)."""
        return os.path.isfile(self.config_path)

    @property
    def config_path(self):
        return os.path.join(self.path, CONFIG_FILE)

    def file(self, *parts):
        """The path of a file inside the folder."""
        return os.path.join(self.path, *parts)

    def read_config(self):
        """The stored configuration dict, or ``None`` when the folder holds no run.

        Raises:
            InputError: ``config.json`` exists but is not readable JSON.
        """
        if not os.path.exists(self.config_path):
            return None
        try:
            with open(self.config_path, encoding="utf-8") as f:
                config = json.load(f)
        except (OSError, ValueError) as e:
            raise InputError(
                f"{self.config_path}: unreadable {self.kind} configuration ({e}); "
                "delete the folder to start the run again") from None
        if not isinstance(config, dict):
            raise InputError(f"{self.config_path}: not a {self.kind} configuration; delete the folder")
        return config

    def require_config(self, hint="train it first"):
        """The stored configuration; InputError naming the folder when there is none."""
        config = self.read_config()
        if config is None:
            raise InputError(f"{self.path}: not a {self.kind} folder (no {CONFIG_FILE}); {hint}")
        return config

    def claim(self, config, replace=False, write=True, compare=None):
        """Make the folder ready for a run with ``config``.

        Args:
            config: the run's settings, a JSON-able dict.
            replace: when the folder holds a run of other settings, delete it
                (folders a workflow manages) instead of raising ConfigError.
            write: write ``config.json`` (``False``: only check).
            compare: maps a config dict to the part that must match (default:
                the whole dict), e.g. to ignore settings a row does not use.

        Returns:
            ``True`` when the folder already held a run with the same settings.

        Raises:
            ConfigError: the folder holds a run of other settings and ``replace`` is false.
        """
        compare = compare or _plain
        old = self.read_config()
        same = old is not None and compare(old) == compare(config)
        if old is not None and not same:
            changed = changed_keys(compare(old), compare(config))
            if not replace:
                raise ConfigError(
                    f"{self.path}: holds a {self.kind} of other settings ({', '.join(changed)} differ); "
                    "use a new --out folder, or delete this one to start again")
            log.warning("%s: settings changed (%s); starting this %s again", self.path,
                        ", ".join(changed), self.kind)
            shutil.rmtree(self.path)
        if write:
            write_json(self.config_path, config)
        return same


def changed_keys(old, new, prefix=""):
    """The dotted keys whose values differ between two nested dicts.

    Example:
        >>> changed_keys({"train": {"epochs": 1, "seed": 0}}, {"train": {"epochs": 2, "seed": 0}})
        ['train.epochs']
    """
    keys = []
    for k in sorted(set(old) | set(new), key=str):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += changed_keys(a, b, f"{prefix}{k}.")
        elif a != b:
            keys.append(f"{prefix}{k}")
    return keys


def _plain(config):
    """``config`` as plain JSON data (tuples become lists), so a stored and a new config compare."""
    return json.loads(json.dumps(config, default=list))
