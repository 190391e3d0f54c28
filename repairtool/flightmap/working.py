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

from collections.abc import Mapping
from typing import Any, Literal

from . import java
from .catalog import ANY, Catalog, CatalogType, TypeKind
from .decode import Finding, MapReport, decode_map
from .errors import JacksonParseError
from .jackson import dumps, is_wrapper, legacy_items
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
    """The content a read keeps: Guava's map deserializer drops null values."""
    if container.nulls == java.SKIP and cx.guava and type(content) is dict:
        return {k: v for k, v in content.items() if v is not None}
    return content


def _content(cls: str, content: Any, cx: Context) -> Any:
    container = java.CONTAINERS.get(cls)
    if container is not None:
        if type(content) is list:
            return [_object_context(item, cx) for item in content]
        if type(content) is dict:
            kept = _kept(container, content, cx)
            return {k: _object_context(v, cx) for k, v in kept.items()}
        return content
    component = java.array_component(cls)
    if component == java.OBJECT and type(content) is list:
        return [_object_context(item, cx) for item in content]
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
