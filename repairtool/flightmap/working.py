"""The working map each reader generation rebuilds for a flight, and its decode
(``reference/stairway-engine.md`` §5.5, checked against real Jackson in ``tests/conformance``).

* ≤0.0.60 (``LEGACY``): ``flightlog.working_parameters`` whenever it is non-null, read as
  ``Map<String,Object>``; nothing otherwise — flightworking rows are never read (≤0.0.49 has
  none; 0.0.50–0.0.60 only compares them with the JSON). So a ≤0.0.60 reader sees no working map
  for rows a ≥0.0.61 engine wrote.
* ≥0.0.61 (``TYPED``): the flightworking rows of the latest flightlog row; only when there are
  none, ``working_parameters`` through ``FlightMapUtils.fromJson``: the whole map is read as
  ``Map<String,Object>`` and **every value is written out again** with ``writeValueAsString`` —
  ``["java.util.UUID","…"]`` becomes ``"…"``, an enum's or a final POJO's wrapper disappears, a
  ``List.of`` read back as an ``ArrayList`` is written as one — before the typed ``get``.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Hashable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from . import java
from .catalog import ANY, Catalog, CatalogType, TypeKind
from .decode import Finding, MapReport, decode_map
from .errors import JacksonParseError
from .jackson import JsonFloat, dumps, is_wrapper, legacy_items
from .reader import ReaderVersion
from .scalars import Reject
from .semantics import Context, read_object
from .shape import shape

Origin = Literal["flightworking", "working_parameters", "none"]

_FROM_JSON = (
    "bio.terra.stairway.exception.JsonConversionException: Failed to convert json string to map"
)


def decode_working_map(
    flight_id: str,
    class_name: str,
    rows: Mapping[str, str],
    working_parameters: str | None,
    catalog: Catalog,
    reader: ReaderVersion,
) -> tuple[Origin, MapReport]:
    """Decode the working map ``reader`` rebuilds from a flightlog row's ``working_parameters``
    and its flightworking ``rows``; also says where that map came from."""
    legacy = reader is ReaderVersion.LEGACY
    if not legacy and rows:
        return "flightworking", decode_map(flight_id, class_name, rows, catalog, reader, "working")
    if working_parameters is None:
        return "none", decode_map(flight_id, class_name, {}, catalog, reader, "working")
    try:
        items = legacy_items(working_parameters)
    except JacksonParseError as err:
        bad = _whole_map_finding(flight_id, reader, err.problem, working_parameters)
        report = decode_map(flight_id, class_name, {}, catalog, reader, "working")
        return "working_parameters", _with(report, (bad,), ())
    if legacy:
        texts = {key: dumps(node) for key, node in items.items()}
        return "working_parameters", decode_map(
            flight_id, class_name, texts, catalog, reader, "working"
        )
    # FlightMapUtils.fromJson: each value read as Object, then written again per key
    cx = Context(guava=True, classes=catalog.classes)
    converted: dict[str, str] = {}
    failed: list[Finding] = []
    for key, node in items.items():
        try:
            read_object(node, cx)
        except Reject as reject:
            failed.append(_value_finding(flight_id, key, reader, node, reject))
            continue
        converted[key] = dumps(per_key_form(node, cx))
    report = decode_map(flight_id, class_name, converted, catalog, reader, "working")
    gone = {f.key for f in failed}
    return "working_parameters", _with(
        report, tuple(failed), tuple(k for k in report.missing_keys if k not in gone)
    )


def _with(
    report: MapReport, extra: tuple[Finding, ...], missing: tuple[str, ...] | None
) -> MapReport:
    return MapReport(
        report.flight_id,
        report.class_name,
        report.source,
        report.reader,
        report.decoded,
        extra + report.findings,
        report.unknown_keys,
        report.missing_keys if missing is None else missing,
        report.known_class,
    )


def _whole_map_finding(flight_id: str, reader: ReaderVersion, problem: str, text: str) -> Finding:
    return Finding(
        flight_id,
        "<working_parameters>",
        "working",
        "a legacy whole-map FlightMap",
        f"{len(text)} chars",
        reader,
        f"flightlog.working_parameters is not a legacy FlightMap ({problem}); the engine reads "
        "it while it rebuilds the flight, so the flight cannot be rebuilt",
        f"{_FROM_JSON}; cause: com.fasterxml.jackson.core.JsonParseException",
        False,
        ANY,
        "rebuild",
    )


def _value_finding(
    flight_id: str, key: str, reader: ReaderVersion, node: Any, reject: Reject
) -> Finding:
    path = " / ".join(reject.path)
    found = shape(node) + (f"; {path}: {shape(reject.node)}" if path else "")
    return Finding(
        flight_id,
        key,
        "working",
        "any (a value of the legacy whole-map working map)",
        found,
        reader,
        f"{path + ': ' if path else ''}{reject.reason}; Stairway ≥0.0.61 reads a legacy "
        "working map (flightlog.working_parameters) as Map<String,Object> while it rebuilds the "
        "flight (FlightMapUtils.fromJson), so the flight cannot be rebuilt",
        f"{_FROM_JSON}; cause: {reject.jackson}",
        False,
        ANY,
        "rebuild",
    )


# --- what writeValueAsString writes for a value read as Object -----------------------------------


def per_key_form(node: Any, cx: Context) -> Any:
    """The per-key text (as a tree) Jackson writes for the value ``readValue(node, Object.class)``
    made: a final runtime class loses its wrapper; a collection is written under the class it was
    read back as. ``node`` must read (:func:`~.semantics.read_object` does not raise)."""
    if not is_wrapper(node):
        return node  # String, Integer, Long, Double, Boolean, null: written as they are
    cls, content = node
    runtime = _runtime(cls, content, cx)
    inner = _content(cls, content, cx)
    if _final(runtime, content, cx):
        return inner
    return [runtime, inner]


def _object_context(node: Any, cx: Context) -> Any:
    """A value whose declared type is Object: everything but the natural types keeps a wrapper."""
    if not is_wrapper(node):
        return node
    cls, content = node
    return [_runtime(cls, content, cx), _content(cls, content, cx)]


def _runtime(cls: str, content: Any, cx: Context) -> str:
    container = java.CONTAINERS.get(cls)
    if container is not None and isinstance(content, list | dict):
        kept = _kept(container, content, cx)
        return container.reads_as(len(kept), cx.guava) or cls
    return cls


def _kept(container: java.Container, content: Any, cx: Context) -> Any:
    """The content a read keeps: Guava's map deserializer drops null values; a set keeps one
    of the elements Java holds equal (see :func:`_distinct`)."""
    if container.nulls == java.SKIP and cx.guava and type(content) is dict:
        return {k: v for k, v in content.items() if v is not None}
    if container.kind == java.SET_KIND and type(content) is list and len(content) > 1:
        return _distinct(content, cx, sorted_set=_SORTED_SET.search(container.name) is not None)
    return content


_SORTED_SET = re.compile(r"(TreeSet|SortedSet|NavigableSet)$")
_UUID_TEXT = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def _distinct(items: list[Any], cx: Context, *, sorted_set: bool) -> list[Any]:
    """The elements a Java set keeps when the read adds them in order: the first of each group
    that `equals` (a sorted set: `compareTo`) holds equal. Equality is modelled for the values
    whose Java equality is their value — strings, booleans, boxed numbers (by type), BigInteger,
    BigDecimal (value and scale; a sorted set: value only), doubles (by bits), enum constants,
    UUIDs, null; any other element (a bean, a collection, a time) is kept, each distinct.
    Found by the conformance suite: Jackson's set of ``["a","x","a"]`` holds two elements."""
    seen: set[Hashable] = set()
    out: list[Any] = []
    for item in items:
        key = _equality_key(item, cx, sorted_set)
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
        out.append(item)
    return out


def _equality_key(node: Any, cx: Context, sorted_set: bool) -> Hashable | None:
    t = type(node)
    if node is None:
        return ("null",)
    if t is str:
        return (java.STRING, node)
    if t is bool:
        return (java.BOOLEAN, node)
    if t is int:  # read as Object: an Integer, else a Long, else a BigInteger
        if java.INT_MIN <= node <= java.INT_MAX:
            return (java.INTEGER, node)
        return (java.LONG if java.LONG_MIN <= node <= java.LONG_MAX else java.BIG_INTEGER, node)
    if t is JsonFloat:  # read as Object: a Double
        return (java.DOUBLE, struct.pack(">d", node))
    if not is_wrapper(node):
        return None
    cls, content = node
    if cls in (java.LONG, java.INTEGER, java.SHORT, java.BYTE, java.BIG_INTEGER):
        return (cls, content) if type(content) is int else None
    if cls == java.BIG_DECIMAL and type(content) in (int, JsonFloat):
        return _big_decimal_key(content, sorted_set)
    if cls in (java.DOUBLE, java.FLOAT) and type(content) in (int, JsonFloat):
        fmt = ">d" if cls == java.DOUBLE else ">f"
        try:
            return (cls, struct.pack(fmt, float(content)))
        except OverflowError:
            return None
    if cls == java.UUID and type(content) is str and _UUID_TEXT.fullmatch(content):
        return (cls, content.lower())
    known = cx.classes.get(cls)
    if known is not None and known.kind is TypeKind.ENUM and type(content) is str:
        return (cls, content)  # a constant is a singleton
    return None


def _big_decimal_key(content: int | JsonFloat, sorted_set: bool) -> Hashable | None:
    """`new BigDecimal(text)`: equal to another when value and scale are (compareTo: the value)."""
    try:
        value = Decimal(content.text if type(content) is JsonFloat else str(content))
    except InvalidOperation:
        return None
    if sorted_set:
        return (java.BIG_DECIMAL, "value", value)  # Decimal equality is numeric
    sign, digits, exponent = value.as_tuple()
    if not any(digits):
        sign = 0  # BigDecimal has no negative zero
    return (java.BIG_DECIMAL, sign, int("".join(map(str, digits)) or "0"), exponent)


def _content(cls: str, content: Any, cx: Context) -> Any:
    container = java.CONTAINERS.get(cls)
    if container is not None:
        if type(content) is list:
            return [_object_context(item, cx) for item in _kept(container, content, cx)]
        if type(content) is dict:
            kept = _kept(container, content, cx)
            return {k: _object_context(v, cx) for k, v in kept.items()}
        return content
    component = java.array_component(cls)
    if component == java.OBJECT and type(content) is list:
        return [_object_context(item, cx) for item in content]
    if cls == java.UUID and type(content) is str and _UUID_TEXT.fullmatch(content):
        return content.lower()  # UUID.toString writes the canonical, lower-case form
    if cls in java.SCALAR_CLASSES:
        return content
    return _fields(content, cx)  # enum constants, POJO fields, arrays of other components


def _fields(node: Any, cx: Context) -> Any:
    """A POJO's fields: where a field holds a collection (always with a type id there, as its
    declared type is an interface) it is written under the class it was read back as."""
    t = type(node)
    if t is dict:
        return {k: _fields(v, cx) for k, v in node.items()}
    if t is not list:
        return node
    if len(node) == 2 and type(node[0]) is str:
        container = java.CONTAINERS.get(node[0])
        shape = dict if container is not None and container.kind == java.MAP_KIND else list
        if container is not None and type(node[1]) is shape:
            kept = _kept(container, node[1], cx)
            runtime = container.reads_as(len(kept), cx.guava) or node[0]
            return [runtime, _fields(kept, cx)]
        return [node[0], _fields(node[1], cx)]
    return [_fields(item, cx) for item in node]


def _final(runtime: str, content: Any, cx: Context) -> bool:
    """Whether the runtime class of the value read is final (no type id at the root)."""
    if runtime in java.SCALAR_CLASSES:
        return runtime in java.FINAL_SCALAR_CLASSES  # BigDecimal, BigInteger are not final
    container = java.CONTAINERS.get(runtime)
    if container is not None:
        return container.final
    component = java.array_component(runtime)
    if component is not None:
        return _final_component(component, cx)
    known = cx.classes.get(runtime)
    if known is not None and known.kind is TypeKind.ENUM:
        # a constant with a body has its own (final) class; the others are the enum class,
        # which is not final when any constant has a body
        return not known.bodies or content in known.bodies
    if known is not None:
        return known.is_final
    # an unknown class: a constant of an enum without bodies (final), else a POJO (not final)
    return type(content) in (str, int)


def _final_component(component: str, cx: Context) -> bool:
    if component in java.PRIMITIVES or component in ("byte", "char"):
        return True
    if component in java.FINAL_SCALAR_CLASSES:
        return True
    nested = java.array_component(component)
    if nested is not None:
        return _final_component(nested, cx)
    known: CatalogType | None = cx.classes.get(component)
    return known is not None and known.is_final
