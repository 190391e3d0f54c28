"""What Stairway's Jackson mapper does with a parsed value: a model, not a JVM.

Checked against real Jackson by ``tests/conformance`` (the oracle is the referee). Two entry
points, one per way a value is read:

* :func:`check_object` — ``readValue(text, Object.class)`` under ``NON_FINAL`` default typing,
  then ``type.isInstance`` (Stairway ≤0.0.60 ``FlightMap.get``; also the elements of a list,
  set or map asked for by class on any version);
* :func:`check_typed` — ``readValue(text, requestedType)`` (Stairway ≥0.0.61).

The rules (``reference/stairway-engine.md`` §5.5, verified by the oracle):

* In an ``Object`` context (the ≤0.0.60 reader, a whole-map value, a raw list's elements)
  String, Integer/Long/BigInteger, Double, Boolean and null are plain JSON; everything else is a
  ``["class", value]`` wrapper whose content the class's deserializer reads.
* A requested class that Jackson treats as final (String, boxed numbers, UUID, Instant, an enum
  without constant bodies, a final POJO / record / Lombok ``@Value``) is read from plain JSON and
  a wrapper is rejected; a non-final one (a POJO, an enum with constant bodies, List/Set/Map,
  BigDecimal) needs a wrapper whose class is a subtype of it. ``Optional`` reads its content in
  an ``Object`` context.
* Collections and maps are read as :data:`~.java.CONTAINERS` says (some only when empty or of
  one element, Guava's only by a mapper with GuavaModule — Stairway ≥0.0.62).

Both checks return the Java class the service gets (or ``"null"``) and append remarks to
``cx.notes``; a value Jackson or ``FlightMap.get`` would reject raises :class:`~.scalars.Reject`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import java
from .catalog import CONTAINER_KINDS, CatalogType, ReadAs, TypeKind
from .jackson import JsonFloat
from .scalars import (
    FINAL_READERS,
    INVALID_TYPE_ID,
    MISMATCHED,
    Reject,
    Stage,
    mismatched,
    read_enum,
    read_final_pojo,
    read_pojo,
    read_scalar_class,
    shown,
    token_word,
)


@dataclass(slots=True)
class Context:
    """How a value is read: by which mapper, knowing which classes; collects remarks."""

    guava: bool
    """The mapper has GuavaModule (Stairway ≥0.0.62): Guava immutable collections are readable."""
    classes: Mapping[str, CatalogType] = field(default_factory=dict)
    """Enums and POJOs the catalog names, by class (a POJO also under its listed subclasses)."""
    notes: list[str] = field(default_factory=list)


# --- readValue(text, Object.class) ------------------------------------------------------------


def read_object(node: Any, cx: Context) -> str:
    """``readValue(node, Object.class)``: natural JSON types plain, anything else wrapped."""
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
    return read_class(cls, value, cx)


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
    if not (java.is_class_name(cls) or java.array_component(cls) is not None):
        raise Reject(
            Stage.READ,
            "the array's first element is taken as a type id and is not a class name "
            "(a List.of(...), an immutable set or an array written without a type id?)",
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
    if len(node) == 2 and node[1] is None and cls not in java.NULL_IN_WRAPPER:
        # ["a.b.C"] reads null, but an explicit null after a type id only the boxed
        # number and boolean deserializers accept
        raise Reject(
            Stage.READ,
            f"an explicit null after the type id {shown(cls)}",
            f"{MISMATCHED}: Cannot deserialize value of type `{shown(cls)}` from Null value",
            node,
        )
    return cls, (node[1] if len(node) == 2 else None)


def read_class(cls: str, value: Any, cx: Context) -> str:
    """Read ``value`` with the deserializer of class ``cls`` (the content of a wrapper)."""
    if cls in java.SCALAR_CLASSES:
        return read_scalar_class(cls, value, cx.notes)
    container = java.CONTAINERS.get(cls)
    if container is not None:
        return read_container(container, value, cx)
    component = java.array_component(cls)
    if component is not None:
        return _read_array(cls, component, value, cx)
    known = cx.classes.get(cls)
    if known is not None:
        if known.kind is TypeKind.ENUM:
            return read_enum(value, known, cx.notes)
        return _pojo(cls, value, cx)
    return _read_unknown(cls, value, cx)


def _pojo(cls: str, value: Any, cx: Context) -> str:
    """A bean: a JSON object whose fields its class reads (checked: their collections)."""
    runtime = read_pojo(cls, value)
    check_fields(value, cx)
    return runtime


def check_fields(node: Any, cx: Context) -> None:
    """The collections inside a POJO's fields: their classes must be readable by this mapper.

    Field types are not in the catalog, so only what a field's own type id says is checked: a
    Guava collection on a mapper without GuavaModule, a JDK collection of a size its class
    cannot have, null elements a class refuses — wherever they are nested.
    """
    t = type(node)
    if t is dict:
        for item in node.values():
            check_fields(item, cx)
    elif t is list:
        if len(node) == 2 and type(node[0]) is str:
            container = java.CONTAINERS.get(node[0])
            content = node[1]
            shape = dict if container is not None and container.kind == java.MAP_KIND else list
            if container is not None and type(content) is shape:
                read_container(container, content, cx, items=False)
            check_fields(content, cx)
            return
        for item in node:
            check_fields(item, cx)


def _read_unknown(cls: str, value: Any, cx: Context) -> str:
    """A class the catalog does not name: a POJO (object content) or an enum (a constant)."""
    t = type(value)
    if value is None:
        return java.NULL  # ["a.b.C"] or ["a.b.C", null]: the class reads a null
    if t is dict:
        cx.notes.append(f"class {shown(cls)} is not in the catalog: assumed to exist")
        check_fields(value, cx)
        return cls
    if t is str or t is int:
        cx.notes.append(
            f"class {shown(cls)} is not in the catalog: assumed to be an enum with this constant"
        )
        return cls
    return read_pojo(cls, value)


def read_container(c: java.Container, value: Any, cx: Context, *, items: bool = True) -> str:
    """Read a collection or map class's content; ``items``: its elements are ``Object``-typed."""
    if value is None:
        return java.NULL
    shape: type = dict if c.kind == java.MAP_KIND else list
    if type(value) is not shape:
        what = "array" if shape is list else "object"
        raise Reject(
            Stage.READ,
            f"the content of a {c.name} wrapper must be a JSON {what}",
            mismatched(c.name, value),
            value,
        )
    content: Any = value
    elements = list(content.values()) if shape is dict else content
    size = len(elements)
    if c.nulls == java.SKIP and cx.guava:
        elements = [item for item in elements if item is not None]
        size = len(elements)  # Guava's map deserializer drops null values
    runtime = c.reads_as(size, cx.guava)
    if not runtime:
        if c.reads_as(size, True):
            reason = f"{c.name} is a Guava class and this reader's mapper has no GuavaModule"
            jackson = f"{java.INVALID_DEFINITION}: Cannot construct instance of `{c.name}`"
        else:
            reason = f"Jackson cannot make a {c.name} of {size} elements"
            jackson = f"{java.JSON_MAPPING}: cannot deserialize {c.name} of this size"
        raise Reject(Stage.READ, reason, jackson, value)
    if c.nulls == java.REFUSE and any(item is None for item in elements):
        raise Reject(
            Stage.READ,
            f"{c.name} does not accept null elements",
            "java.lang.NullPointerException",
            value,
        )
    if items:
        label = "element" if shape is list else "map value"
        hashed = c.kind == java.SET_KIND
        for i, item in enumerate(elements):
            try:
                element = read_object(item, cx)
                if hashed and is_broken(element, cx):
                    raise _broken(element, item, "adding it to a set hashes it")
            except Reject as reject:
                raise reject.within(f"{label} {i}") from None
    return runtime


def is_broken(runtime: str, cx: Context) -> bool:
    """Jackson made an instance that throws when it is hashed or iterated."""
    return not cx.guava and runtime in java.BROKEN_WITHOUT_GUAVA


def _broken(runtime: str, node: Any, when: str) -> Reject:
    return Reject(
        Stage.READ,
        f"a mapper without GuavaModule makes a broken {runtime} (its internals are null) and "
        f"{when}, which throws",
        "java.lang.NullPointerException",
        node,
    )


def _read_array(cls: str, component: str, value: Any, cx: Context) -> str:
    """A Java array: ``[Ljava.lang.Object;`` elements are ``Object``-typed, ``[I`` ints, …"""
    if value is None:
        return java.NULL
    if component == "byte":
        if type(value) is str:
            return cls
        reason = "a byte[] is written as a Base64 string"
        raise Reject(Stage.READ, reason, mismatched(cls, value), value)
    if type(value) is not list:
        reason = f"the content of a {cls} wrapper must be a JSON array"
        raise Reject(Stage.READ, reason, mismatched(cls, value), value)
    boxed = java.PRIMITIVES.get(component)
    for i, item in enumerate(value):
        if item is None:
            continue  # null (0 for a primitive array)
        try:
            if boxed is not None:
                read_scalar_class(boxed, item, cx.notes)
            elif component in java.FINAL_SCALAR_CLASSES:
                read_scalar_class(component, item, cx.notes)
            elif component == java.OBJECT:
                read_object(item, cx)
            elif java.array_component(component) is not None:
                read_class(component, item, cx)
            else:
                _read_array_element(component, item, cx)
        except Reject as reject:
            raise reject.within(f"element {i}") from None
    return cls


def _read_array_element(component: str, item: Any, cx: Context) -> None:
    known = cx.classes.get(component)
    if known is not None and known.is_final:
        if known.kind is TypeKind.ENUM:
            read_enum(item, known, cx.notes)
        else:
            read_final_pojo(item, known)
        return
    if type(item) is list:
        read_object(item, cx)  # a non-final element class: [class, value]
        return
    if type(item) in (str, int, dict):
        cx.notes.append(f"array of {shown(component)}: assumed a final element class")
        return
    reason = "an array element of an unknown class"
    raise Reject(Stage.READ, reason, mismatched(component, item), item)


# --- the two readers --------------------------------------------------------------------------


_NATURAL = {str: java.STRING, bool: java.BOOLEAN, JsonFloat: java.DOUBLE, float: java.DOUBLE}


def check_object(node: Any, t: CatalogType, cx: Context) -> str:
    """``readValue(node, Object.class)`` then ``t``'s ``isInstance`` (and its elements')."""
    natural = _NATURAL.get(type(node))
    if natural is not None and (natural in t.accepted_classes or t.kind is TypeKind.ANY):
        return natural  # a JSON-natural value of an accepted class: the common case
    runtime = read_object(node, cx)
    if runtime == java.NULL or t.kind is TypeKind.ANY:
        return runtime
    if runtime not in t.accepted_classes:  # isInstance (Optional: never an Object read's class)
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
    if t.kind in CONTAINER_KINDS and t.element is not None:
        if is_broken(runtime, cx):
            reject = _broken(runtime, node, "using its elements iterates it")
            reject.stage = Stage.INSTANCE
            raise reject
        content = node[1] if type(node) is list and len(node) > 1 else None
        shape = dict if t.kind is TypeKind.MAP else list
        if type(content) is not shape:
            # a collection class the catalog names but this toolkit cannot see (its own
            # deserializer is Jackson's collection one): the content must be the JSON shape
            what = "object" if shape is dict else "array"
            raise Reject(
                Stage.READ,
                f"the content of a {shown(runtime)} wrapper must be a JSON {what}",
                mismatched(runtime, content),
                content,
            )
        _check_items(content, t, check_object, cx)
    return runtime


def _check_items(content: Any, t: CatalogType, check: Any, cx: Context) -> None:
    element = t.element if t.element is not None else CatalogType(TypeKind.ANY)
    if t.kind is TypeKind.MAP:
        pairs: Iterable[tuple[int, Any]] = enumerate(content.values())
        label = "map value"
    else:
        pairs = enumerate(content)
        label = "element"
    for i, item in pairs:
        try:
            check(item, element, cx)
        except Reject as reject:
            raise reject.within(f"{label} {i}") from None


def check_typed(node: Any, t: CatalogType, cx: Context) -> str:
    """``readValue(node, t)`` as Stairway ≥0.0.61's ``FlightMap.get(key, type)`` does."""
    kind = t.kind
    if kind is TypeKind.ANY:
        return read_object(node, cx)
    if kind is TypeKind.OPTIONAL:
        if node is None:
            return java.OPTIONAL  # Optional.empty()
        # Optional's content is Object-typed, and there even String, Integer, Double and Boolean
        # need a type id (no natural-type shortcut): only a wrapper or null reads
        cls, value = _wrapper(node, java.OBJECT)
        read_class(cls, value, cx)
        return java.OPTIONAL
    if t.is_final:
        if kind is TypeKind.POJO:
            runtime = read_final_pojo(node, t)
            check_fields(node, cx)
            return runtime
        return FINAL_READERS[kind](node, t, cx.notes)
    if node is None:
        return java.NULL
    cls, value = _wrapper(node, t.java_type)
    if not _subtype(cls, t):
        raise Reject(
            Stage.READ,
            f"the wrapper's class {shown(cls)} is not {t.java_type} or a class the catalog "
            "lists for it",
            f"{INVALID_TYPE_ID}: Could not resolve type id '{shown(cls)}' as a subtype of "
            f"`{t.java_type}`: Not a subtype",
            node,
        )
    if kind is TypeKind.POJO:
        return _pojo(cls, value, cx)
    if kind is TypeKind.ENUM:
        read_enum(value, t, cx.notes)
        return t.java_class
    if kind is TypeKind.BIGDECIMAL:
        return read_scalar_class(java.BIG_DECIMAL, value, cx.notes)
    by_class = t.read_as is ReadAs.CLASS
    container = java.CONTAINERS.get(cls) or _listed_container(t)
    runtime = read_container(container, value, cx, items=by_class)
    if runtime != java.NULL and (t.element is not None or not by_class):
        _check_items(value, t, check_object if by_class else check_typed, cx)
    return runtime


def _subtype(cls: str, t: CatalogType) -> bool:
    """Whether type id ``cls`` names a subtype of the requested non-final type ``t``."""
    if t.kind is TypeKind.ENUM:
        return cls == t.java_class  # constants with bodies are written under the enum's name
    if t.kind is TypeKind.BIGDECIMAL:
        return cls == java.BIG_DECIMAL
    return cls in t.accepted_classes


def _listed_container(t: CatalogType) -> java.Container:
    """A list/set/map class the catalog lists (``classes:``): assumed to read like the JDK's."""
    base = {TypeKind.LIST: java.ARRAY_LIST, TypeKind.SET: "java.util.HashSet"}
    return java.CONTAINERS[base.get(t.kind, java.HASH_MAP)]
