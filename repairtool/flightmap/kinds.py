"""The catalog's vocabulary: FlightMap sources, type kinds, how a container is asked for.

Shared by :mod:`.catalog` (the in-memory catalog) and :mod:`.catalogfile` (reading one).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

Source = Literal["input", "working"]
SOURCES: tuple[Source, ...] = ("input", "working")


class TypeKind(StrEnum):
    """What the service's code asks ``FlightMap.get`` for."""

    STRING = "string"
    UUID = "uuid"
    ENUM = "enum"
    INT = "int"
    LONG = "long"
    BOOL = "bool"
    DOUBLE = "double"
    INSTANT = "instant"
    BIGDECIMAL = "bigdecimal"
    POJO = "pojo"
    LIST = "list"
    SET = "set"
    MAP = "map"
    OPTIONAL = "optional"
    ANY = "any"


class ReadAs(StrEnum):
    """How a list or map is asked for on a ≥0.0.61 reader.

    ``class``: ``get(key, List.class)`` — elements are read as ``Object`` (type ids needed for
    non-natural types) and cast when used. ``type_reference``: ``get(key, new
    TypeReference<List<UUID>>(){})`` (≥0.0.62) — elements are read into the element type.
    """

    CLASS = "class"
    TYPE_REFERENCE = "type_reference"
