"""Decode FlightMap values against a type catalog, the way the service's Stairway would.

:func:`decode_value` checks one stored value; :func:`decode_map` checks a flight's input or
working map. A value that decodes gives a :class:`Decoded`; one the service could not read gives
a :class:`Finding` that names the flight, key, expected type, the value's shape (never the
value), why this reader rejects it, the exception the service would raise, and whether
:func:`~.reencode.reencode` can rewrite it for this reader.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .catalog import ANY, SOURCES, Catalog, CatalogType, Source
from .errors import JacksonParseError
from .jackson import JsonTree, loads, to_typed
from .reader import ReaderVersion
from .reencode import NOT_REENCODABLE, rewrite_node
from .scalars import Reject, Stage
from .semantics import Context, check_object, check_typed
from .shape import shape

JSON_CONVERSION = "bio.terra.stairway.exception.JsonConversionException"
_LEGACY = ReaderVersion.LEGACY

When = Literal["rebuild", "get"]
"""When the engine hits a failure: ``rebuild`` — while it rebuilds the flight's maps from the
database (≤0.0.60 reads every value as Object then; ≥0.0.61 converts a legacy whole-map working
map then); ``get`` — when the flight's code asks for the key (``FlightMap.get``)."""


def context(reader: ReaderVersion, classes: Mapping[str, CatalogType] | None = None) -> Context:
    """How ``reader`` reads values: ≥0.0.61 readers are modelled with GuavaModule (0.0.62+)."""
    return Context(guava=reader is not _LEGACY, classes=classes if classes is not None else {})


@dataclass(frozen=True, slots=True)
class Decoded:
    """A value the reader hands to the service: ``java_class`` is what ``get`` returns."""

    expected: CatalogType
    reader: ReaderVersion
    java_class: str
    node: Any = field(repr=False)
    notes: tuple[str, ...] = ()

    @property
    def value(self) -> JsonTree:
        """The value as a tree (:class:`~.jackson.Typed` for wrappers). May hold secrets:
        show it only through :func:`~.secrets.mask`."""
        return to_typed(self.node)

    @property
    def shape(self) -> str:
        """The value's shape, without its content."""
        return shape(self.value, enum_values=self.expected.all_values)


@dataclass(frozen=True, slots=True)
class Finding:
    """A FlightMap entry the service could not read with this reader."""

    flight_id: str
    key: str
    source: Source
    expected: str
    found: str
    reader: ReaderVersion
    reason: str
    engine_exception: str
    reencodable: bool
    expected_type: CatalogType = field(default=ANY, repr=False, compare=False)
    when: When = "get"

    def render(self) -> str:
        """One line for people."""
        fix = "reencodable" if self.reencodable else "not reencodable"
        return (
            f"{self.flight_id} {self.source} {self.key}: expected {self.expected}, found "
            f"{self.found} — {self.reason} [{self.reader.label} reader: {self.engine_exception}]"
            f" ({fix})"
        )

    def to_json(self) -> dict[str, Any]:
        """The finding as JSON-ready data."""
        return {
            "flight_id": self.flight_id,
            "key": self.key,
            "source": self.source,
            "expected": self.expected,
            "found": self.found,
            "reader": self.reader.value,
            "reason": self.reason,
            "engine_exception": self.engine_exception,
            "reencodable": self.reencodable,
            "when": self.when,
        }


@dataclass(frozen=True, slots=True)
class MapReport:
    """The result of checking one flight's input or working map against the catalog."""

    flight_id: str
    class_name: str
    source: Source
    reader: ReaderVersion
    decoded: Mapping[str, Decoded]
    findings: tuple[Finding, ...]
    unknown_keys: tuple[str, ...]
    missing_keys: tuple[str, ...]
    known_class: bool

    @property
    def ok(self) -> bool:
        """True when every entry decodes and no required key is missing."""
        return not self.findings and not self.missing_keys


def decode_value(
    text: str,
    expected: CatalogType,
    reader: ReaderVersion,
    *,
    flight_id: str = "",
    key: str = "",
    source: Source = "input",
    classes: Mapping[str, CatalogType] | None = None,
) -> Decoded | Finding:
    """Decode one stored value as ``reader`` would when the service asks for ``expected``.

    ``classes``: the enums and POJOs the catalog names (default: those in ``expected``).
    Never raises: malformed JSON and anything unexpected become a :class:`Finding`.
    """
    try:
        try:
            node, trailing = loads(text)
        except JacksonParseError as err:
            return _malformed(err, expected, reader, flight_id, key, source)
        cx = context(reader, expected.named_classes if classes is None else classes)
        if trailing is not None:
            cx.notes.append(f"text after char {trailing} ignored (Jackson reads the first value)")
        try:
            if reader is _LEGACY:
                runtime = check_object(node, expected, cx)
            else:
                runtime = check_typed(node, expected, cx)
        except Reject as reject:
            return _rejected(node, reject, expected, reader, flight_id, key, source, cx)
        return Decoded(expected, reader, runtime, node, tuple(cx.notes))
    except RecursionError:
        problem = JacksonParseError("nesting too deep")
        return _malformed(problem, expected, reader, flight_id, key, source)
    except Exception as err:  # a bug here must not stop a scan; never echo the value
        return Finding(
            flight_id,
            key,
            source,
            expected.render(),
            f"{len(text)} chars",
            reader,
            f"decoder error {err.__class__.__name__}",
            "unknown",
            False,
            expected,
        )


def _malformed(
    err: JacksonParseError,
    expected: CatalogType,
    reader: ReaderVersion,
    flight_id: str,
    key: str,
    source: Source,
) -> Finding:
    where = f" at char {err.position}" if err.position is not None else ""
    jackson = f"com.fasterxml.jackson.core.JsonParseException: {err.problem}"
    if reader is _LEGACY:
        reason = f"the text is not JSON ({err.problem}); {_WHOLE_MAP}"
        engine = f"{jackson} (readValue(value, Object.class) while rebuilding the FlightMap)"
    else:
        reason = f"the text is not JSON ({err.problem})"
        engine = _conversion(expected, jackson)
    return Finding(
        flight_id,
        key,
        source,
        expected.render(),
        f"malformed JSON{where}",
        reader,
        reason,
        engine,
        False,
        expected,
        "rebuild" if reader is _LEGACY else "get",
    )


_WHOLE_MAP = (
    "Stairway ≤0.0.60 reads every entry with readValue(value, Object.class) while it rebuilds "
    "the FlightMap, so the flight cannot be rebuilt at all"
)


def _conversion(expected: CatalogType, cause: str) -> str:
    return (
        f"{JSON_CONVERSION}: Failed to deserialize value '<value>' from JSON to type "
        f"{expected.java_type}; cause: {cause}"
    )


def _rejected(
    node: Any,
    reject: Reject,
    expected: CatalogType,
    reader: ReaderVersion,
    flight_id: str,
    key: str,
    source: Source,
    cx: Context,
) -> Finding:
    values = expected.all_values
    found = shape(node, enum_values=values)
    path = " / ".join(reject.path)
    if path:
        found += f"; {path}: {shape(reject.node, enum_values=values)}"
    where = f"{path}: " if path else ""
    if reject.stage is Stage.INSTANCE and path:
        reason = (
            f"{where}{reject.reason}; a container asked for by class has its elements read as "
            "Object and cast where the service uses them"
        )
        engine = (
            f"java.lang.ClassCastException: class {reject.runtime_class} cannot be cast to class "
            f"{reject.expected} (where the service uses {path})"
        )
    elif reject.stage is Stage.INSTANCE:
        shown = node if type(node) is str and node in expected.values else "<value>"
        reason = (
            f"{reject.reason}: Stairway ≤0.0.60 reads values with readValue(value, "
            "Object.class) and FlightMap.get checks type.isInstance"
        )
        engine = (
            f"java.lang.ClassCastException: Found value '{shown}' is not an instance of type "
            f"{expected.java_type}"
        )
    elif reader is _LEGACY:
        reason = f"{where}{reject.reason}; {_WHOLE_MAP}"
        engine = f"{reject.jackson} (readValue(value, Object.class) while rebuilding the FlightMap)"
    else:
        reason = (
            f"{where}{reject.reason}: Stairway ≥0.0.61 reads it with readValue(value, "
            f"{expected.java_type})"
        )
        engine = _conversion(expected, reject.jackson)
    reencodable = rewrite_node(node, expected, reader, cx.classes) is not NOT_REENCODABLE
    when: When = "rebuild" if reader is _LEGACY and reject.stage is Stage.READ else "get"
    return Finding(
        flight_id,
        key,
        source,
        expected.render(),
        found,
        reader,
        reason,
        engine,
        reencodable,
        expected,
        when,
    )


#: the most verdicts a `decode_map` memo keeps (a few MB of texts at most)
MEMO_LIMIT = 20_000


def decode_map(
    flight_id: str,
    class_name: str,
    rows: Mapping[str, str],
    catalog: Catalog,
    reader: ReaderVersion,
    source: Source = "input",
    memo: dict[tuple[str, str, str, str], Decoded | Finding] | None = None,
) -> MapReport:
    """Check one flight's input (``flightinput``) or working (``flightworking``) map.

    ``rows`` maps each key to its stored text (for a legacy whole-map JSON, use
    :func:`~.jackson.split_legacy_map`). Keys the catalog does not list are reported in
    ``unknown_keys``; on a ≤0.0.60 reader they are still checked, because that reader reads
    every entry while it rebuilds the FlightMap. Required catalog keys that are absent are
    reported in ``missing_keys``.

    ``memo``: verdicts already reached in this scan (same catalog, same reader), by class,
    source, key and stored text — a verdict depends on nothing else, and the same texts recur
    from flight to flight (a stage, a user's request, ``null``). Emptied when it reaches
    ``MEMO_LIMIT`` entries.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
    spec = catalog.flight(class_name)
    keys = spec.keys(source) if spec is not None else {}
    classes = catalog.classes
    decoded: dict[str, Decoded] = {}
    findings: list[Finding] = []
    unknown: list[str] = []
    for key, text in rows.items():
        key_spec = keys.get(key)
        expected = key_spec.type if key_spec is not None else ANY
        if key_spec is None:
            unknown.append(key)
            if reader is not _LEGACY:
                continue
        cached = memo.get((class_name, source, key, text)) if memo is not None else None
        if cached is not None:
            result = replace(cached, flight_id=flight_id) if type(cached) is Finding else cached
        else:
            result = decode_value(
                text, expected, reader, flight_id=flight_id, key=key, source=source, classes=classes
            )
            if key_spec is None and isinstance(result, Finding):
                result = replace(result, expected="any (key not in the catalog)")
            if memo is not None:
                if len(memo) >= MEMO_LIMIT:
                    memo.clear()  # start over: what recurs is soon back in
                memo[(class_name, source, key, text)] = result
        if isinstance(result, Finding):
            findings.append(result)
        elif key_spec is not None:
            decoded[key] = result
    missing = tuple(k for k, s in keys.items() if k not in rows and not s.optional)
    return MapReport(
        flight_id,
        class_name,
        source,
        reader,
        decoded,
        tuple(findings),
        tuple(unknown),
        missing,
        spec is not None,
    )
