"""Plans: the inspectable, editable decisions a task makes from a dataset fingerprint.

The nnU-Net idea (Isensee et al., Nat. Methods 2021): rules turn a dataset fingerprint and the
machine into every training choice. Here a plan is a (nested) dataclass saved as ``plan.json``;
every field can be overridden with ``--set section.field=value`` on the CLI or a YAML file, is
type- and range-checked (a field declares its range and meaning with :func:`setting`), and the
final plan is printed before training.

Every task's plan has the sections defined here, with the same names for the same things:
``train`` (:class:`TrainSection`: seed, max_epochs, max_minutes, patience, ensemble, checkpoint,
devices, precision) and ``network`` (:class:`NetworkSection`: name). Tasks subclass both to add
their own fields.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from medlearn.errors import InputError
from medlearn.io import write_json

P = TypeVar("P", bound="Plan")

# a YAML 1.1 float needs a dot ("1e-3" is read as text): numbers written as users write them
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def setting(default: Any = dataclasses.MISSING, *, help: str = "", min: float | None = None,  # noqa: A002
            max: float | None = None, exclusive_min: bool = False, factory: Any = dataclasses.MISSING) -> Any:
    """A plan field with its meaning and its allowed range (checked on every plan built or overridden).

    ``min``/``max`` bound a number (or every number of a list); ``exclusive_min`` makes the lower
    bound strict (e.g. a learning rate > 0). ``None`` is always allowed for optional fields.
    """
    metadata = {"help": help, "min": min, "max": max, "exclusive_min": exclusive_min}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class TrainSection:
    """Training settings every task has (tasks subclass this to add their own)."""

    seed: int = setting(0, help="base random seed; ensemble member k uses seed + k")
    max_epochs: int = setting(100, min=1, help="upper bound on passes over the training data")
    max_minutes: float | None = setting(None, min=0, exclusive_min=True,
                                        help="wall-clock budget of the whole training (members share it)")
    patience: int | None = setting(None, min=1, help="epochs without validation progress before stopping "
                                                     "(None: no early stopping)")
    ensemble: int = setting(1, min=1, max=64, help="members trained with seeds seed..seed+n-1, predictions averaged")
    checkpoint: str = setting("best_val", help="which weights a member keeps: best_val (best validation score) "
                                               "or final (end of the schedule)")
    devices: int | None = setting(None, min=1, help="GPUs / processes for DDP (None: one)")
    precision: Literal["fp32", "bf16"] = setting("fp32", help="bf16: bfloat16 autocast of the forward pass")


@dataclasses.dataclass
class NetworkSection:
    """The network every task names (tasks subclass this with the network's own settings)."""

    name: str = setting("", help="network (or estimator) name")


@dataclasses.dataclass
class Plan:
    """Base class. Subclasses are dataclasses whose fields are plain values or nested dataclasses,
    with a ``train`` section (a :class:`TrainSection`) and a ``network`` section."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls: type[P], data: dict[str, Any], source: str = "plan") -> P:
        plan = _build(cls, data, source)
        plan.check()
        return plan

    @classmethod
    def load(cls: type[P], path: str | Path) -> P:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(path, f"cannot read plan ({exc})") from exc
        return cls.from_dict(data, str(path))

    def apply_overrides(self: P, overrides: dict[str, Any], source: str = "--set") -> P:
        """Return a copy with dotted-key overrides applied, e.g. ``{"train.max_epochs": 5}``."""
        data = self.to_dict()
        for key, value in overrides.items():
            node = data
            parts = key.split(".")
            for part in parts[:-1]:
                if not isinstance(node.get(part), dict):
                    raise InputError(source, f"unknown plan field '{key}'", f"fields: {', '.join(flat_keys(self))}")
                node = node[part]
            if parts[-1] not in node or isinstance(node[parts[-1]], dict) and _is_section(self, key):
                raise InputError(source, f"unknown plan field '{key}'", f"fields: {', '.join(flat_keys(self))}")
            node[parts[-1]] = value
        return type(self).from_dict(data, source)

    def check(self) -> None:
        """Cross-field rules (after types and ranges were checked); raise :class:`InputError` naming the
        fields that clash. Subclasses extend it."""

    def describe(self) -> str:
        """The plan as YAML, for printing before training."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def field_table(cls) -> list[dict[str, str]]:
        """Every overridable field: dotted name, type, default, allowed range and meaning."""
        rows: list[dict[str, str]] = []

        def walk(prefix: str, klass: type) -> None:
            hints = typing.get_type_hints(klass)
            for f in dataclasses.fields(klass):
                hint = hints[f.name]
                if dataclasses.is_dataclass(hint):
                    walk(f"{prefix}{f.name}.", hint)
                    continue
                default = f.default if f.default is not dataclasses.MISSING else (
                    f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
                rows.append({"field": prefix + f.name, "type": _type_name(hint), "default": json.dumps(default),
                             "range": _range_text(f.metadata), "help": f.metadata.get("help", "")})

        walk("", cls)
        return rows


def _is_section(plan: Plan, dotted: str) -> bool:
    return dataclasses.is_dataclass(_field_type_hint(plan, dotted))


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return " | ".join(map(str, typing.get_args(hint)))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if origin in (list, tuple):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return f"list of {_type_name(args[0])}" if args else "list"
    if hint is type(None):
        return "null"
    return getattr(hint, "__name__", str(hint))


def _range_text(meta: typing.Mapping[str, Any]) -> str:
    lo, hi = meta.get("min"), meta.get("max")
    if lo is None and hi is None:
        return ""
    left = "" if lo is None else f"{'>' if meta.get('exclusive_min') else '>='} {lo:g}"
    right = "" if hi is None else f"<= {hi:g}"
    return ", ".join(p for p in (left, right) if p)


def flat_keys(plan: Plan) -> list[str]:
    """Every overridable dotted key of ``plan``."""
    return [row["field"] for row in type(plan).field_table()]


def _field_type_hint(plan: Plan, dotted: str) -> Any:
    cls: Any = type(plan)
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(cls):
            return None
        hints = typing.get_type_hints(cls)
        if part not in hints:
            return None
        cls = hints[part]
    return cls


def parse_overrides(items: list[str] | None, yaml_file: str | Path | None = None) -> dict[str, Any]:
    """Parse ``key=value`` strings (values as YAML scalars/lists) and an optional YAML file.

    The YAML file may be nested (``train: {max_epochs: 5}``) or flat with dotted keys; ``--set``
    items win over the file.
    """
    result: dict[str, Any] = {}
    if yaml_file:
        path = Path(yaml_file)
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(path, f"cannot read plan overrides ({exc})".replace("\n", " ")) from exc
        if not isinstance(loaded, dict):
            raise InputError(path, "plan overrides must be a mapping of field: value")
        result.update(_flatten(loaded))
    for item in items or []:
        if "=" not in item:
            raise InputError("--set", f"'{item}' is not key=value", "e.g. --set train.max_epochs=20")
        key, raw = item.split("=", 1)
        try:
            result[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise InputError("--set", f"cannot parse value of '{key}'") from exc
    return result


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _build(cls: type, data: dict[str, Any], source: str, prefix: str = "") -> Any:
    if not isinstance(data, dict):
        raise InputError(source, f"plan section '{prefix.rstrip('.') or 'root'}' must be a mapping")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise InputError(source, f"unknown plan field(s): {', '.join(prefix + u for u in sorted(unknown))}")
    kwargs = {}
    for name, value in data.items():
        key = prefix + name
        kwargs[name] = _coerce(hints[name], value, source, key)
        _check_range(fields[name].metadata, kwargs[name], source, key)
    return cls(**kwargs)


def _check_range(meta: typing.Mapping[str, Any], value: Any, source: str, key: str) -> None:
    lo, hi = meta.get("min"), meta.get("max")
    if (lo is None and hi is None) or value is None:
        return
    numbers = value if isinstance(value, (list, tuple)) else [value]
    for v in numbers:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        too_low = lo is not None and (v <= lo if meta.get("exclusive_min") else v < lo)
        if too_low or (hi is not None and v > hi) or (isinstance(v, float) and not math.isfinite(v)):
            raise InputError(source, f"'{key}' is {value!r}; allowed: {_range_text(meta)}")


def _coerce(hint: Any, value: Any, source: str, key: str) -> Any:
    """Check ``value`` against the field's type hint; convert where lossless (int -> float, list -> tuple)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, source, key + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, source, key)
            except InputError as exc:
                errors.append(exc)
        raise errors[-1] if errors else InputError(source, f"'{key}' has an invalid value {value!r}")
    if origin is typing.Literal:
        if isinstance(value, bool) and {"on", "off"} <= set(args):  # YAML 1.1 reads on/off as booleans
            value = "on" if value else "off"
        if value not in args:
            raise InputError(source, f"'{key}' must be one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise InputError(source, f"'{key}' must be a list, got {value!r}")
        inner = args[0] if args else Any
        typed = inner is not Any and inner is not Ellipsis
        items = [_coerce(inner, v, source, key) for v in value] if typed else list(value)
        return tuple(items) if origin is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise InputError(source, f"'{key}' must be a mapping, got {value!r}")
        return value
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise InputError(source, f"'{key}' must be true or false, got {value!r}")
    if hint is float:
        if isinstance(value, str) and _NUMBER.match(value.strip()):
            value = float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise InputError(source, f"'{key}' must be a number, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise InputError(source, f"'{key}' must be an integer, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise InputError(source, f"'{key}' must be text, got {value!r}")
    return value
