"""Describe a stored value's shape without its content (FlightMap values hold tokens).

A shape names JSON kinds, lengths, counts, and class names only when they are JDK classes, catalog
classes or conventional ``a.b.ClassName`` names — never a string's content. The one exception is
an enum constant the catalog lists, which is a name from the service's code, not data.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from . import java
from .jackson import JsonFloat, Typed
from .scalars import is_iso_instant, is_uuid_text

_SECONDS_NANOS = re.compile(r"-?\d+\.\d{9}")


def shape(tree: Any, *, enum_values: Collection[str] = ()) -> str:
    """Describe a parsed value (plain JSON or a :class:`Typed` tree) without its content.

    ``["x", v]`` arrays are described as wrappers, as ``readValue(…, Object.class)`` sees them.
    ``enum_values`` are the catalog's constants: a string equal to one of them is named.
    """
    t = type(tree)
    if t is str:
        return f"plain JSON string ({_string(tree, enum_values)})"
    if tree is None:
        return "JSON null"
    if t is bool:
        return "plain JSON boolean"
    if t is int:
        return f"plain JSON integer ({_integer(tree)})"
    if t is JsonFloat or t is float:
        return f"plain JSON decimal number ({_decimal(tree)})"
    if t is dict:
        return f"plain JSON object ({_count(len(tree), 'field')})"
    if t is Typed:
        return f"wrapper [{_class(tree.java_class)}, {_inner(tree.value, tree.java_class)}]"
    if t is list:
        return _array(tree)
    return f"{t.__name__} value"


def _string(text: str, enum_values: Collection[str]) -> str:
    size = _count(len(text), "char")
    if not text:
        return "empty"
    if text in enum_values:
        return f"{size}, matches enum constant {text}"
    if is_uuid_text(text):
        return f"{size}, UUID form"
    if len(text) < 40 and is_iso_instant(text):
        return f"{size}, ISO-8601 instant form"
    if text == "null":
        return f"{size}, the word null"
    return size


def _integer(value: int) -> str:
    if java.INT_MIN <= value <= java.INT_MAX:
        return "fits int"
    if java.LONG_MIN <= value <= java.LONG_MAX:
        return "beyond int, fits long"
    return "beyond long"


def _decimal(value: float) -> str:
    text = value.text if isinstance(value, JsonFloat) else repr(value)
    form = ", seconds.nanos form" if _SECONDS_NANOS.fullmatch(text) else ""
    return f"{_count(len(text), 'char')}{form}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _class(cls: str) -> str:
    if java.is_displayable_class(cls):
        return f'"{cls}"'
    if java.is_class_name(cls):
        return f"<class id, {_count(len(cls), 'char')}>"
    return f"<type id that is not a class name, {_count(len(cls), 'char')}>"


def _array(items: list[Any]) -> str:
    if not items:
        return "plain JSON array (empty)"
    if type(items[0]) is str:
        if len(items) == 1:
            return f"wrapper [{_class(items[0])}] without a value"
        if len(items) == 2:
            return f"wrapper [{_class(items[0])}, {_inner(items[1], items[0])}]"
        first = f"first a string of {_count(len(items[0]), 'char')}"
        return f"plain JSON array ({_count(len(items), 'element')}, {first})"
    return f"plain JSON array ({_count(len(items), 'element')}, first {_inner(items[0])})"


def _inner(value: Any, cls: str = "") -> str:
    """A few words for a value inside a wrapper of class ``cls``."""
    t = type(value)
    if t is str:
        return "string"
    if value is None:
        return "null"
    if t is bool:
        return "boolean"
    if t is int:
        return "integer"
    if t is JsonFloat or t is float:
        return "decimal"
    if t is dict:
        return f"object of {_count(len(value), 'field')}"
    if t is Typed:
        return f"wrapper [{_class(value.java_class)}, ...]"
    if t is list:
        if len(value) == 2 and type(value[0]) is str and cls not in java.LIST_CLASSES:
            return f"wrapper [{_class(value[0])}, ...]"
        return f"array of {_count(len(value), 'element')}"
    return t.__name__
