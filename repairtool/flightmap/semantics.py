"""What Stairway's Jackson mapper does with a parsed value: a model, not a JVM.

Two entry points, one per way a value is read:

* :func:`check_object` — ``readValue(text, Object.class)`` under ``NON_FINAL`` default typing,
  then ``type.isInstance`` (Stairway ≤0.0.60 ``FlightMap.get``; also the elements of a list or
  map asked for by class on any version);
* :func:`check_typed` — ``readValue(text, requestedType)`` (Stairway ≥0.0.61).

Both return the Java class the service gets (or ``"null"``) and append remarks to ``notes``;
a value Jackson or ``FlightMap.get`` would reject raises :class:`~.scalars.Reject`.
"""

from __future__ import annotations

from typing import Any

from . import java
from .catalog import CatalogType, ReadAs, TypeKind
from .jackson import JsonFloat
from .scalars import (
    FINAL_READERS,
    INVALID_TYPE_ID,
    MISMATCHED,
    Reject,
    Stage,
    mismatched,
    read_enum,
    read_pojo,
    read_scalar_class,
    shown,
    token_word,
)

# --- readValue(text, Object.class) ------------------------------------------------------------


def _catalog_class(context: CatalogType, cls: str) -> CatalogType | None:
    """The catalog type that names ``cls`` (an enum, a POJO, a listed list/map class)."""
    for t in context.walk():
        if t.kind is TypeKind.ENUM and t.java_class == cls:
            return t
        if t.kind is TypeKind.POJO and (t.java_class == cls or cls in t.classes):
            return t
        if t.kind in (TypeKind.LIST, TypeKind.MAP) and cls in t.classes:
            return t
    return None


def read_object(node: Any, context: CatalogType, notes: list[str]) -> str:
    """``readValue(node, Object.class)``: natural JSON types plain, anything else wrapped.

    ``context`` is the expected type; the enum and POJO classes in it are known classes.
    """
    t = type(node)
    if t is str:
        return java.STRING
    if t is bool:
        return java.BOOLEAN
    if t is int:
        if java.INT_MIN <= node <= java.INT_MAX:
            return java.INTEGER
        return java.LONG if java.LONG_MIN <= node <= java.LONG_MAX else java.BIG_INTEGER
    if t is JsonFloat or t is float:
        return java.DOUBLE
    if node is None:
        return java.NULL
    cls, value = _wrapper(node, java.OBJECT)
    return read_class(cls, value, context, notes)


def _wrapper(node: Any, base: str) -> tuple[str, Any]:
    """Split ``[type id, value]`` as ``AsArrayTypeDeserializer`` does for base type ``base``."""
    if type(node) is not list:
        raise Reject(
            Stage.READ,
            f"a plain JSON {token_word(node).lower()} has no type id, and with default typing "
            f"Jackson reads {base} only from a [class, value] wrapper",
            f"{MISMATCHED}: Unexpected token, expected START_ARRAY: need Array value to "
            f"contain `As.WRAPPER_ARRAY` type information for class {base}",
            node,
        )
    if not node or type(node[0]) is not str:
        raise Reject(
            Stage.READ,
            "a JSON array whose first element is not a string has no type id",
            f"{MISMATCHED}: Unexpected token, expected VALUE_STRING: need String, Number of "
            f"Boolean value that contains type id (for subtype of {base})",
            node,
        )
    cls = node[0]
    if not java.is_class_name(cls):
        raise Reject(
            Stage.READ,
            "the array's first element is taken as a type id and is not a class name "
            "(a List.of(...) or other final list written without a type id?)",
            f"{INVALID_TYPE_ID}: Could not resolve type id '<value>' as a subtype of "
            f"`{base}`: no such class found",
            node,
        )
    if len(node) > 2:
        raise Reject(
            Stage.READ,
            "the array has more than one value after its type id",
            f"{MISMATCHED}: Unexpected token, expected END_ARRAY: expected closing "
            "`JsonToken.END_ARRAY` after type information and deserialized value",
            node,
        )
    return cls, (node[1] if len(node) == 2 else None)


def read_class(cls: str, value: Any, context: CatalogType, notes: list[str]) -> str:
    """Read ``value`` with the deserializer of class ``cls`` (the content of a wrapper)."""
    if cls in java.SCALAR_CLASSES:
        return read_scalar_class(cls, value, notes)
    if cls in java.LIST_CLASSES:
        return _read_container(cls, value, list, context, notes, True)
    if cls in java.MAP_CLASSES:
        return _read_container(cls, value, dict, context, notes, True)
    known = _catalog_class(context, cls)
    if known is None:
        notes.append(f"class {shown(cls)} is not in the catalog: assumed to exist")
        return cls
    if known.kind is TypeKind.ENUM:
        return read_enum(value, known, notes)
    if known.kind is TypeKind.LIST:
        return _read_container(cls, value, list, context, notes, True)
    if known.kind is TypeKind.MAP:
        return _read_container(cls, value, dict, context, notes, True)
    return read_pojo(cls, value)


def _read_container(
    cls: str, value: Any, shape: type, context: CatalogType, notes: list[str], items: bool
) -> str:
    """Read a list or map class's content; ``items``: its elements are ``Object``-typed."""
    if value is None:
        return java.NULL
    if type(value) is not shape:
        what = "array" if shape is list else "object"
        raise Reject(
            Stage.READ,
            f"the content of a {cls} wrapper must be a JSON {what}",
            mismatched(cls, value),
            value,
        )
    if not items:
        return cls
    content: Any = value
    label = "element" if shape is list else "map value"
    for i, item in enumerate(content if shape is list else content.values()):
        try:
            read_object(item, context, notes)
        except Reject as reject:
            raise reject.within(f"{label} {i}") from None
    return cls


# --- the two readers --------------------------------------------------------------------------


_NATURAL = {str: java.STRING, bool: java.BOOLEAN, JsonFloat: java.DOUBLE, float: java.DOUBLE}


def check_object(node: Any, t: CatalogType, notes: list[str]) -> str:
    """``readValue(node, Object.class)`` then ``t``'s ``isInstance`` (and its elements')."""
    natural = _NATURAL.get(type(node))
    if natural is not None and (natural in t.accepted_classes or t.kind is TypeKind.ANY):
        return natural  # a JSON-natural value of an accepted class: the common case
    runtime = read_object(node, t, notes)
    if runtime == java.NULL or t.kind is TypeKind.ANY:
        return runtime
    if runtime not in t.accepted_classes:
        runtime_shown = shown(runtime)
        reject = Reject(
            Stage.INSTANCE,
            f"the value reads back as {runtime_shown}, not {t.java_type}",
            "java.lang.ClassCastException",
            node,
        )
        reject.runtime_class = runtime_shown
        reject.expected = t.java_type
        raise reject
    if t.kind in (TypeKind.LIST, TypeKind.MAP) and t.element is not None:
        _check_items(node[1], t, check_object, notes)
    return runtime


def _check_items(content: Any, t: CatalogType, check: Any, notes: list[str]) -> None:
    element = t.element if t.element is not None else CatalogType(TypeKind.ANY)
    if t.kind is TypeKind.LIST:
        pairs = enumerate(content)
        label = "element"
    else:
        pairs = enumerate(content.values())
        label = "map value"
    for i, item in pairs:
        try:
            check(item, element, notes)
        except Reject as reject:
            raise reject.within(f"{label} {i}") from None


def check_typed(node: Any, t: CatalogType, notes: list[str]) -> str:
    """``readValue(node, t)`` as Stairway ≥0.0.61's ``FlightMap.get(key, type)`` does."""
    final = FINAL_READERS.get(t.kind)
    if final is not None:
        return final(node, t, notes)
    kind = t.kind
    if kind is TypeKind.ANY:
        return read_object(node, t, notes)
    if node is None:
        return java.NULL
    cls, value = _wrapper(node, t.java_type)
    if cls not in t.accepted_classes:
        raise Reject(
            Stage.READ,
            f"the wrapper's class {shown(cls)} is not {t.java_type} or a class the catalog "
            "lists for it",
            f"{INVALID_TYPE_ID}: Could not resolve type id '{shown(cls)}' as a subtype of "
            f"`{t.java_type}`: Not a subtype",
            node,
        )
    if kind is TypeKind.POJO:
        return read_pojo(cls, value)
    by_class = t.read_as is ReadAs.CLASS
    shape = list if kind is TypeKind.LIST else dict
    runtime = _read_container(cls, value, shape, t, notes, by_class)
    if runtime != java.NULL and (t.element is not None or not by_class):
        _check_items(value, t, check_object if by_class else check_typed, notes)
    return runtime
