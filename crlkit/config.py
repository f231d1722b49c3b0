"""``--set key=value`` overrides -> frozen dataclass configs, with type checking.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class C:
...     beta: float = 4.0
>>> build_config(C, {"beta": "8"}, what="beta_vae")
C(beta=8.0)

Values given as strings (from the command line) are parsed to the field's declared type;
values given as Python objects are checked against it. Unknown keys and unparsable values
raise :class:`crlkit.CrlkitError` naming the key, the expected type and the valid keys.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from typing import Any, Callable, Iterable

from crlkit.errors import CrlkitError
from crlkit.registry import unknown_choice

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_assignments(items: Iterable[str] | None, *, flag: str = "--set") -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; a missing ``=`` raises CrlkitError."""
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CrlkitError(f"{flag} expects key=value; got {item!r}")
        out[key] = value.strip()
    return out


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(value: Any, tp: Any, *, key: str) -> Any:
    """Convert ``value`` (a CLI string or a Python object) to type ``tp`` or raise CrlkitError.

    Supported: int, float, bool, str, ``X | None``, ``tuple[X, ...]`` / ``tuple[X, Y]``,
    ``Literal[...]``, and ``Any`` (strings parsed as int/float/bool when they look like one).
    """
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(value, a, key=key)
            except CrlkitError as e:
                errors.append(str(e))
        raise CrlkitError(f"invalid value {value!r} for {key!r}: expected {_type_name(tp)}")
    if origin is typing.Literal:
        for a in args:
            if value == a or (isinstance(value, str) and str(a) == value):
                return a
        raise CrlkitError(unknown_choice(f"value for {key!r}", value, [str(a) for a in args]))
    if origin is tuple:
        if isinstance(value, str):
            parts = [p for p in value.strip("()[] ").split(",") if p.strip()]
        elif isinstance(value, (list, tuple)):
            parts = list(value)
        else:
            raise CrlkitError(f"invalid value {value!r} for {key!r}: expected a comma-separated tuple")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(p, args[0], key=key) for p in parts)
        if args and len(parts) != len(args):
            raise CrlkitError(f"invalid value {value!r} for {key!r}: expected {len(args)} comma-separated values")
        return tuple(coerce(p, a, key=key) for p, a in zip(parts, args or [Any] * len(parts)))
    if tp is Any:
        if isinstance(value, str):
            for conv in (int, float):
                try:
                    return conv(value)
                except ValueError:
                    pass
            if value.lower() in _TRUE | _FALSE:
                return value.lower() in _TRUE
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise CrlkitError(f"invalid value {value!r} for {key!r}: expected a bool (true/false)")
    if tp is int:
        if isinstance(value, bool):
            raise CrlkitError(f"invalid value {value!r} for {key!r}: expected an int")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                try:
                    f = float(value)
                except ValueError:
                    f = None
                if f is not None and f.is_integer():
                    return int(f)
        raise CrlkitError(f"invalid value {value!r} for {key!r}: expected an int")
    if tp is float:
        if isinstance(value, bool):
            raise CrlkitError(f"invalid value {value!r} for {key!r}: expected a float")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise CrlkitError(f"invalid value {value!r} for {key!r}: expected a float")
    if tp is str:
        if isinstance(value, str):
            return value
        raise CrlkitError(f"invalid value {value!r} for {key!r}: expected a string")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise CrlkitError(f"invalid value {value!r} for {key!r}: expected {_type_name(tp)}")


def config_fields(cls: type) -> dict[str, Any]:
    """``{field name: resolved type}`` of a dataclass (string annotations resolved)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls) if f.init}


def signature_fields(func: Callable, *, skip: Iterable[str] = ()) -> dict[str, Any]:
    """Keyword options of ``func`` with their types (from annotations, else the default's type)."""
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # unresolvable annotations: fall back to defaults
        hints = {}
    out = {}
    for name, p in inspect.signature(func).parameters.items():
        if name in ("self", *skip) or p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
            continue
        tp = hints.get(name)
        if tp is None:
            tp = type(p.default) if p.default not in (inspect.Parameter.empty, None) else Any
        out[name] = tp
    return out


def build_config(cls: type, overrides: dict[str, Any] | None = None, *, what: str = "config"):
    """Instantiate dataclass ``cls`` with ``overrides`` coerced to the declared field types."""
    fields = config_fields(cls)
    kwargs = {}
    for key, value in (overrides or {}).items():
        if key not in fields:
            raise CrlkitError(unknown_choice(f"key for {what}", key, fields))
        kwargs[key] = coerce(value, fields[key], key=key)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise CrlkitError(f"invalid {what} settings: {e}") from None


def route_overrides(overrides: dict[str, Any], targets: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Split flat ``overrides`` among named targets (e.g. "model", "train", "sampler").

    ``targets`` maps a target name to its ``{key: type}`` table. A key may be written
    ``target.key`` to pick the target explicitly; a bare key goes to the one target that has
    it (an ambiguous bare key is an error naming the prefixes to use).
    """
    out: dict[str, dict[str, Any]] = {t: {} for t in targets}
    for key, value in overrides.items():
        prefix, dot, bare = key.partition(".")
        if dot and prefix in targets:
            if bare not in targets[prefix]:
                raise CrlkitError(unknown_choice(f"{prefix} key", bare, targets[prefix]))
            out[prefix][bare] = value
            continue
        owners = [t for t, table in targets.items() if key in table]
        if not owners:
            valid = sorted({k for table in targets.values() for k in table})
            raise CrlkitError(unknown_choice("key", key, valid))
        if len(owners) > 1:
            raise CrlkitError(f"key {key!r} is ambiguous; write one of "
                              + ", ".join(f"{t}.{key}" for t in owners))
        out[owners[0]][key] = value
    return out


def coerce_options(options: dict[str, Any], table: dict[str, Any]) -> dict[str, Any]:
    """Coerce every value of ``options`` to the type in ``table`` (keys already checked)."""
    return {k: coerce(v, table[k], key=k) for k, v in options.items()}
