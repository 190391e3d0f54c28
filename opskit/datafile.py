"""Strict loading of data files (envs/*.yaml, experiments/*.yaml) into frozen dataclasses.

Every problem is one line naming the file and the key: an unknown key, a missing required key, a
null where none is allowed, a value of the wrong type, a value outside a Literal's choices.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T")


def build(
    cls: type[T],
    data: Any,
    *,
    shown: str,
    error: type[Exception],
    prefix: str = "",
    skip: frozenset[str] | set[str] = frozenset(),
    duration: Callable[[Any], timedelta] | None = None,
) -> T:
    """`cls(**data)`, field by field, converting and checking each value against its type hint."""
    return typing.cast(T, _Loader(shown, error, duration).build(cls, data, prefix, skip))


class _Loader:
    def __init__(
        self, shown: str, error: type[Exception], duration: Callable[[Any], timedelta] | None
    ) -> None:
        self.shown = shown
        self.error = error
        self.duration = duration

    def fail(self, key: str, problem: str) -> Exception:
        return self.error(f"{self.shown}: key {key!r} {problem}")

    def build(self, cls: type, data: Any, prefix: str, skip: frozenset[str] | set[str]) -> Any:
        if not isinstance(data, Mapping):
            raise self.fail(prefix.rstrip("."), "must be a mapping")
        hints = get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in skip}
        for key in data:
            if key not in fields:
                raise self.error(f"{self.shown}: unknown key {prefix + str(key)!r}")
        kwargs: dict[str, Any] = {}
        for name, f in fields.items():
            key = prefix + name
            if name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise self.error(f"{self.shown}: missing key {key!r}")
                continue
            kwargs[name] = self.convert(hints[name], data[name], key)
        return cls(**kwargs)

    def convert(self, tp: Any, value: Any, key: str) -> Any:
        origin = get_origin(tp)
        if origin in (Union, types.UnionType):
            if value is None:
                if type(None) in get_args(tp):
                    return None
                raise self.fail(key, "must not be null")
            (inner,) = [a for a in get_args(tp) if a is not type(None)]
            return self.convert(inner, value, key)
        if value is None:
            raise self.fail(key, "must not be null")
        if origin is Literal:
            allowed = get_args(tp)
            if value not in allowed:
                choices = "|".join(str(a) for a in allowed)
                raise self.fail(key, f"must be one of {choices}, not {value!r}")
            return value
        if origin is tuple:
            if not isinstance(value, list):
                raise self.fail(key, "must be a list")
            item_tp = get_args(tp)[0]
            return tuple(self.convert(item_tp, v, f"{key}[{i}]") for i, v in enumerate(value))
        if dataclasses.is_dataclass(tp):
            return self.build(typing.cast(type, tp), value, key + ".", frozenset())
        if tp is timedelta and self.duration is not None:
            try:
                return self.duration(value)
            except ValueError as exc:
                raise self.error(f"{self.shown}: key {key!r}: {exc}") from None
        if tp is bool:
            if not isinstance(value, bool):
                raise self.fail(key, "must be true or false")
            return value
        if tp is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.fail(key, "must be an integer")
            return value
        if tp is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.fail(key, "must be a number")
            return float(value)
        if tp is str:
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise self.fail(key, "must be a string")
            return str(value)
        raise TypeError(f"unsupported field type {tp!r}")  # pragma: no cover - model bug
