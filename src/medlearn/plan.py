"""Plans: the inspectable, editable decisions a task makes from a dataset fingerprint.

The nnU-Net idea (Isensee et al., Nat. Methods 2021): rules turn a dataset fingerprint and the
machine into every training choice. Here a plan is a (nested) dataclass saved as ``plan.json``;
every field can be overridden with ``--set section.field=value`` on the CLI or a YAML file, is
type-checked, and the final plan is printed before training.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from medlearn.errors import InputError
from medlearn.io import write_json

P = TypeVar("P", bound="Plan")


@dataclasses.dataclass
class Plan:
    """Base class. Subclasses are dataclasses whose fields are plain values or nested dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls: type[P], data: dict[str, Any], source: str = "plan") -> P:
        return _build(cls, data, source)

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
            if parts[-1] not in node:
                raise InputError(source, f"unknown plan field '{key}'", f"fields: {', '.join(flat_keys(self))}")
            node[parts[-1]] = value
        return type(self).from_dict(data, source)

    def describe(self) -> str:
        """The plan as YAML, for printing before training."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def flat_keys(plan: Plan) -> list[str]:
    """Every overridable dotted key of ``plan``."""
    out: list[str] = []

    def walk(prefix: str, node: Any) -> None:
        for key, value in node.items():
            if isinstance(value, dict) and value and dataclasses.is_dataclass(_field_type_hint(plan, prefix + key)):
                walk(f"{prefix}{key}.", value)
            else:
                out.append(prefix + key)

    walk("", plan.to_dict())
    return out


def _field_type_hint(plan: Plan, dotted: str) -> Any:
    cls: Any = type(plan)
    for part in dotted.split("."):
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
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _build(cls: type, data: dict[str, Any], source: str, prefix: str = "") -> Any:
    if not isinstance(data, dict):
        raise InputError(source, f"plan section '{prefix.rstrip('.') or 'root'}' must be a mapping")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise InputError(source, f"unknown plan field(s): {', '.join(prefix + u for u in sorted(unknown))}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, source, prefix + name)
    return cls(**kwargs)


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
