"""Experiment configuration: ``experiments.yaml`` -> frozen dataclasses.

One YAML file holds ``defaults``, data/training ``presets`` (``smoke``, ``paper``)
and one entry per Table 1 ``rows`` item. A run's configuration resolves, in order
of precedence (later wins)::

    defaults  <  row  <  preset  <  command-line overrides (--set key=value)

Every value is validated against the schema below at load time: an unknown key,
a wrong type or a value outside its choices raises :class:`ConfigError` naming
the key and the file and line where it was written.
"""

import dataclasses
import os
import typing

import yaml

from xprospect_tf.errors import ConfigError

SECTIONS = ("data", "model", "train", "style")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which cases, at which size and intensity window.

    ``source`` is ``phantom`` (the embedded synthetic chest phantom, generated on
    the fly) or the path of a prepared dataset (``xprospect data prepare``).
    ``fov_mm`` is the side of the cube, in mm, that a case is resampled into:
    400 mm holds an adult chest (about 350 mm wide, 250 mm deep).
    """

    source: str = "phantom"
    count: int = 100
    size: int = 64
    window: typing.Tuple[float, float] = (-1000.0, 1000.0)
    fov_mm: float = 400.0
    test_fraction: float = 0.2
    test_count: typing.Optional[int] = None
    split_seed: int = 0
    phantom_seed: int = 0


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which model a row trains (see ``xprospect_tf.models``)."""

    architecture: str = "unet-dense"
    dense_units: int = 512
    projinj: bool = False
    base_filters: int = 16
    levels: typing.Optional[int] = None


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How a row is trained."""

    loss: str = "mse"
    optimizer: str = "adam"
    learning_rate: float = 1e-4
    epochs: int = 50
    batch_size: int = 1
    steps_per_epoch: typing.Optional[int] = None
    seed: int = 0
    strategy: str = "default"
    run_eagerly: bool = False


@dataclasses.dataclass(frozen=True)
class StyleConfig:
    """The style-transfer CycleGANs (paper section 3.1) used by ``inputs: styled`` rows.

    ``domain_b`` is the set of real radiographs: ``default`` (DRRs of phantoms
    not in the dataset, no download), ``phantom-drr:N``, a CheXpert CSV or a
    folder of X-rays. The paper's choices are the defaults: Nadam, a learning
    rate far below CycleGAN's 2e-4 (the paper gives no number; 2e-5 here), EMA
    weights reset every ``ema_every`` steps, cycle lambda 20.
    """

    domain_b: str = "default"
    epochs: int = 20
    batch_size: int = 1
    filters: int = 32
    n_residual: typing.Optional[int] = None
    upsampling: str = "transpose"
    learning_rate: float = 2e-5
    cycle_lambda: float = 20.0
    ema_every: int = 100


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A fully resolved experiment: one Table 1 row under one preset."""

    row: str
    preset: str
    inputs: str
    description: str
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    style: StyleConfig = StyleConfig()

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d, where="config"):
        d = dict(d)
        _check_keys(d, {f.name for f in dataclasses.fields(cls)}, where, {})
        return cls(
            row=d["row"], preset=d["preset"], inputs=d["inputs"],
            description=d.get("description", ""),
            data=_build(DataConfig, d["data"], f"{where}: data"),
            model=_build(ModelConfig, d["model"], f"{where}: model"),
            train=_build(TrainConfig, d["train"], f"{where}: train"),
            style=_build(StyleConfig, d.get("style", {}), f"{where}: style"),
        )


CHOICES = {
    "inputs": ("mean", "drr", "styled"),
    "architecture": ("unet-dense", "mean-volume", "back-projection"),
    "loss": ("mse", "mae"),
    "optimizer": ("adam", "nadam"),
    "strategy": ("default", "mirrored"),
    "upsampling": ("transpose", "resize"),
}
POSITIVE = {"count", "size", "fov_mm", "dense_units", "base_filters", "levels",
            "learning_rate", "epochs", "batch_size", "steps_per_epoch", "test_count",
            "filters", "n_residual", "ema_every"}


@dataclasses.dataclass(frozen=True)
class Experiments:
    """The parsed ``experiments.yaml``: defaults, presets and rows."""

    path: str
    defaults: dict
    presets: dict
    rows: dict  # name -> raw row dict (validated)
    lines: dict  # key path tuple -> line number, for messages

    @property
    def row_names(self):
        return list(self.rows)

    def resolve(self, row, preset="smoke", overrides=()):
        """Resolve ``row`` under ``preset`` with ``overrides`` into a :class:`RunConfig`.

        ``overrides`` are ``"key=value"`` strings; ``key`` is ``section.field``
        (``data.size``) or a bare field name when it is unambiguous (``size``).
        Values are YAML scalars (``128``, ``1e-4``, ``[-100, 900]``).
        """
        if row not in self.rows:
            raise ConfigError(
                f"{self.path}: no row named {row!r}; rows are: {', '.join(self.rows)}"
            )
        if preset not in self.presets:
            raise ConfigError(
                f"{self.path}: no preset named {preset!r}; presets are: {', '.join(self.presets)}"
            )
        raw_row = self.rows[row]
        merged = {s: {} for s in SECTIONS}
        for layer in (self.defaults, raw_row, self.presets[preset]):
            for s in SECTIONS:
                merged[s].update(layer.get(s) or {})
        top = {"inputs": raw_row.get("inputs", "mean"), "description": raw_row.get("description", "")}
        for item in overrides:
            _apply_override(item, merged, top)
        if top["inputs"] not in CHOICES["inputs"]:
            raise ConfigError(f"inputs: {top['inputs']!r} is not one of {CHOICES['inputs']}")
        return RunConfig(
            row=row, preset=preset, inputs=top["inputs"], description=top["description"],
            data=_build(DataConfig, merged["data"], "data"),
            model=_build(ModelConfig, merged["model"], "model"),
            train=_build(TrainConfig, merged["train"], "train"),
            style=_build(StyleConfig, merged["style"], "style"),
        )


def default_experiments_path():
    """The ``experiments.yaml`` to use: ``$XPROSPECT_EXPERIMENTS``, ./experiments.yaml,
    or the copy installed with the package."""
    env = os.environ.get("XPROSPECT_EXPERIMENTS")
    if env:
        return env
    if os.path.exists("experiments.yaml"):
        return "experiments.yaml"
    return os.path.join(os.path.dirname(__file__), "experiments.yaml")


def load_experiments(path=None):
    """Parse and validate ``experiments.yaml``; raise :class:`ConfigError` on any problem."""
    path = os.fspath(path or default_experiments_path())
    if not os.path.exists(path):
        raise ConfigError(f"{path}: experiments file not found; pass --experiments PATH")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        node = yaml.compose(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    lines = {}
    doc = _to_python(node, (), lines) if node is not None else {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping with keys version, defaults, presets, rows")
    where = lambda keys: f"{path}:{lines.get(tuple(keys), 1)}"  # noqa: E731
    _check_keys(doc, {"version", "defaults", "presets", "rows"}, path, lines)
    defaults = doc.get("defaults") or {}
    _check_sections(defaults, ("defaults",), where)
    presets = doc.get("presets") or {}
    for name, p in presets.items():
        _check_sections(p, ("presets", name), where)
    rows = {}
    for i, r in enumerate(doc.get("rows") or []):
        if not isinstance(r, dict) or "name" not in r:
            raise ConfigError(f"{where(('rows', i))}: each row needs a 'name'")
        allowed = {"name", "description", "inputs"} | set(SECTIONS)
        for k in r:
            if k not in allowed:
                raise ConfigError(
                    f"{where(('rows', i, k))}: unknown key {k!r} in row {r['name']!r}; "
                    f"allowed: {', '.join(sorted(allowed))}"
                )
        if r.get("inputs", "mean") not in CHOICES["inputs"]:
            raise ConfigError(
                f"{where(('rows', i, 'inputs'))}: inputs {r['inputs']!r} is not one of {CHOICES['inputs']}"
            )
        _check_sections({s: r.get(s) for s in SECTIONS if s in r}, ("rows", i), where)
        if r["name"] in rows:
            raise ConfigError(f"{where(('rows', i))}: duplicate row name {r['name']!r}")
        rows[r["name"]] = r
    exp = Experiments(path=path, defaults=defaults, presets=presets, rows=rows, lines=lines)
    for name in rows:  # every row must resolve under every preset
        for preset in presets:
            exp.resolve(name, preset)
    return exp


# -- validation ----------------------------------------------------------------

_SCHEMA = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "style": StyleConfig}


def _check_sections(d, keys, where):
    if not isinstance(d, dict):
        raise ConfigError(f"{where(keys)}: expected a mapping")
    for s, values in d.items():
        if s not in _SCHEMA:
            raise ConfigError(
                f"{where(keys + (s,))}: unknown section {s!r}; allowed: {', '.join(SECTIONS)}"
            )
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{where(keys + (s,))}: {s} must be a mapping")
        for k, v in values.items():
            _check_value(_SCHEMA[s], k, v, where(keys + (s, k)))


def _fields(cls):
    return {f.name: f for f in dataclasses.fields(cls)}


def _check_keys(d, allowed, where, lines):
    for k in d:
        if k not in allowed:
            line = lines.get((k,))
            loc = f"{where}:{line}" if line else where
            raise ConfigError(f"{loc}: unknown key {k!r}; allowed: {', '.join(sorted(allowed))}")


def _check_value(cls, key, value, where):
    fields = _fields(cls)
    if key not in fields:
        raise ConfigError(
            f"{where}: unknown key {key!r}; {cls.__name__} keys are: {', '.join(fields)}"
        )
    return _coerce(fields[key].type, key, value, where)


def _coerce(tp, key, value, where):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union and type(None) in args:
        if value is None:
            return None
        tp = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(tp), typing.get_args(tp)
    bad = ConfigError(f"{where}: {key} = {value!r} is not a valid {_type_name(tp)}")
    if origin in (tuple, typing.Tuple):
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise bad
        out = tuple(_coerce(a, key, v, where) for a, v in zip(args, value))
        if key == "window" and not out[0] < out[1]:
            raise ConfigError(f"{where}: window {list(out)} must be [low, high] with low < high")
        return out
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        value = float(value)
    elif tp is str:
        if not isinstance(value, str):
            raise bad
    if key in CHOICES and value not in CHOICES[key]:
        raise ConfigError(f"{where}: {key} = {value!r} is not one of {', '.join(CHOICES[key])}")
    if key in POSITIVE and value <= 0:
        raise ConfigError(f"{where}: {key} must be positive, got {value!r}")
    if key == "test_fraction" and not 0.0 < value < 1.0:
        raise ConfigError(f"{where}: test_fraction must be between 0 and 1, got {value!r}")
    return value


def _type_name(tp):
    return {int: "integer", float: "number", bool: "boolean (true/false)", str: "string"}.get(
        tp, "pair [low, high]"
    )


def _build(cls, values, where):
    kwargs = {}
    for k, v in values.items():
        kwargs[k] = _check_value(cls, k, v, f"{where}.{k}")
    return cls(**kwargs)


def _apply_override(item, merged, top):
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set size=128")
    key, text = item.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    if key in ("inputs", "description"):
        top[key] = value
        return
    if "." in key:
        section, field = key.split(".", 1)
        if section not in _SCHEMA:
            raise ConfigError(f"--set {item!r}: unknown section {section!r}; use one of {SECTIONS}")
    else:
        owners = [s for s in SECTIONS if key in _fields(_SCHEMA[s])]
        if not owners:
            known = sorted({f for s in SECTIONS for f in _fields(_SCHEMA[s])} | {"inputs"})
            raise ConfigError(f"--set {item!r}: unknown setting {key!r}; known: {', '.join(known)}")
        section, field = owners[0], key
    _check_value(_SCHEMA[section], field, value, f"--set {item}")
    merged[section][field] = value


def _to_python(node, path, lines):
    """Convert a composed YAML node to Python, recording each key's line."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out = {}
        for k, v in node.value:
            key = yaml.safe_load(yaml.serialize(k)) if not isinstance(k, yaml.ScalarNode) else k.value
            lines[path + (key,)] = k.start_mark.line + 1
            out[key] = _to_python(v, path + (key,), lines)
            lines[path + (key,)] = k.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(v, path + (i,), lines) for i, v in enumerate(node.value)]
    return yaml.safe_load(yaml.serialize(node))
