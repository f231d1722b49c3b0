"""Name -> object registries (datasets, models, samplers, robust methods).

A registry lookup of an unknown name raises :class:`crlkit.CrlkitError` listing the valid
names, so every ``make_*(name)`` in crlkit fails the same, helpful way.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any, Callable, Generic, Iterable, TypeVar

from crlkit.errors import CrlkitError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named table of constructors of one kind (``kind`` is used in error messages)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None):
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted."""

        def _add(o: T) -> T:
            if name in self._items and self._items[name] is not o:
                raise KeyError(f"{self.kind} {name!r} is already registered")
            self._items[name] = o
            return o

        return _add(obj) if obj is not None else _add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise CrlkitError(unknown_choice(self.kind, name, self._items)) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items


def unknown_choice(field: str, value: Any, choices: Iterable[str]) -> str:
    """The message for an invalid choice: names the field, the value and the valid choices."""
    choices = sorted(choices)
    hint = difflib.get_close_matches(str(value), choices, n=1)
    msg = f"unknown {field} {value!r}; valid choices: {', '.join(choices)}"
    if hint:
        msg += f" (did you mean {hint[0]!r}?)"
    return msg


def check_options(what: str, func: Callable, options: dict) -> None:
    """Raise CrlkitError if ``options`` holds a keyword that ``func`` does not accept."""
    params = inspect.signature(func).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    valid = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and n != "self"]
    for key in options:
        if key not in valid:
            raise CrlkitError(unknown_choice(f"option for {what}", key, valid))
