"""Decode FlightMap values against a type catalog, the way the service's Stairway would.

:func:`decode_value` checks one stored value; :func:`decode_map` checks a flight's input or
working map. A value that decodes gives a :class:`Decoded`; one the service could not read gives
a :class:`Finding` that names the flight, key, expected type, the value's shape (never the
value), why this reader rejects it, the exception the service would raise, and whether
:func:`~.reencode.reencode` can rewrite it for this reader.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import orjson

from . import java
from .catalog import ANY, SOURCES, Catalog, CatalogType, FlightSpec, KeySpec, Source, TypeKind
from .errors import JacksonParseError
from .jackson import JsonFloat, JsonTree, loads, to_typed
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

    Verdicts are memoized (:func:`_form` says by what): the result is exactly what the full
    check (:func:`decode_full`) returns for this text, which ``tests/flightmap`` verifies.
    """
    result = _decode(text, expected, reader, flight_id, key, source, classes, True)
    assert result is not None
    return result


def _decode(
    text: str,
    expected: CatalogType,
    reader: ReaderVersion,
    flight_id: str,
    key: str,
    source: Source,
    classes: Mapping[str, CatalogType] | None,
    want_decoded: bool,
) -> Decoded | Finding | None:
    """:func:`decode_value`; None instead of a memoized :class:`Decoded` when the caller does
    not want it (a scan keeps only findings)."""
    form = _form(text, expected, classes)
    if form is None:
        return decode_full(text, expected, reader, flight_id, key, source, classes)
    verdict, node = form
    memo_key = (verdict, expected, reader, id(classes))
    entry = _VERDICTS.get(memo_key)
    if entry is not None and entry[0] is classes:
        result = entry[1]
        if type(result) is Finding:
            return _finding_for(result, flight_id, key, source, expected)
        if not want_decoded:
            return None
        if node is _REPARSE:
            node = result.node  # type: ignore[union-attr]
            if type(node) is list or type(node) is dict:
                node = loads(text)[0]  # a fresh tree: callers may change theirs
        return _decoded_for(result, node, expected)  # type: ignore[arg-type]
    result = decode_full(text, expected, reader, flight_id, key, source, classes)
    if type(result) is Finding and result.engine_exception == _DECODER_ERROR:
        return result  # its text names the value's length: not shared with other texts
    if len(_VERDICTS) >= VERDICT_LIMIT:
        _VERDICTS.clear()  # start over: what recurs is soon back in
    _VERDICTS[memo_key] = (classes, result)
    return result


def decode_full(
    text: str,
    expected: CatalogType,
    reader: ReaderVersion,
    flight_id: str = "",
    key: str = "",
    source: Source = "input",
    classes: Mapping[str, CatalogType] | None = None,
) -> Decoded | Finding:
    """:func:`decode_value` without its memo: parse the text and check it (the reference the
    memo is tested against)."""
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
            _DECODER_ERROR,
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


# --- the verdict memo -------------------------------------------------------------------------
#
# A verdict is a pure function of (text, expected type, reader, classes). The memo keeps one per
# *form* of text: the exact text when it is short (a stage, ``null``, a wrapped enum recur from
# flight to flight), or — for the unique texts that dominate a scan — a form whose every text
# gets the same verdict, because the full check reads nothing of it beyond what the form fixes:
#
# * a plain JSON string without escapes where ``string`` or ``any`` is asked for: String;
# * a plain JSON string in the 36-character UUID form (never an enum constant of the type):
#   every check sees only its length, that it is a UUID, that it is no number, instant, class
#   name or constant (the shape says "36 chars, UUID form");
# * ``["java.util.UUID","<UUID form>"]``: the same inside a wrapper;
# * an integer of at most 9 digits (an int, a long, an epoch second, a double) where a number
#   kind is asked for (not an enum: its ordinals depend on the value);
# * a decimal of at most 16 integer digits (within ``Instant``'s range and exact in a
#   ``Decimal``) where a long, a double, an instant or any is asked for, by its length and
#   whether it has 9 decimals (the shape's "seconds.nanos form").
#
# The memoized result is rebound to the new value (its node) and to the new flight, key and
# source. ``tests/flightmap/test_flightmap_memo.py`` compares memoized and full verdicts.

_DECODER_ERROR = "unknown"
#: the most verdicts the memo keeps (forms and texts of at most ``_EXACT_LIMIT`` chars)
VERDICT_LIMIT = 50_000
_EXACT_LIMIT = 256
_VERDICTS: dict[
    tuple[Hashable, CatalogType, ReaderVersion, int],
    tuple[Mapping[str, CatalogType] | None, Decoded | Finding],
] = {}
_REPARSE: Any = object()

_PLAIN_STRING = re.compile(r'"([^"\\\x00-\x1f]*)"')
_SMALL_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,8})")
_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]{0,15})\.([0-9]{1,18})")
_UUID_TEXT = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_WRAPPED_UUID = re.compile(r'\["java\.util\.UUID","(' + _UUID_TEXT + r')"\]')
_UUID = re.compile(_UUID_TEXT)
_UUID_PREFIX = '["java.util.UUID","'
_ARRAY_LIST_PREFIX = '["java.util.ArrayList",['
_UUID_ELEMENT = r'\["java\.util\.UUID","' + _UUID_TEXT + r'"\]'
_UUID_ARRAY_LIST = re.compile(
    r'\["java\.util\.ArrayList",\[(?:' + _UUID_ELEMENT + "(?:," + _UUID_ELEMENT + r")*)?\]\]"
)
_UUID_IN_LIST = re.compile('"(' + _UUID_TEXT + ')"')
_ANY_STRING_KINDS = frozenset({TypeKind.STRING, TypeKind.ANY})
_INT_KINDS = frozenset(
    {TypeKind.INT, TypeKind.LONG, TypeKind.DOUBLE, TypeKind.INSTANT, TypeKind.ANY}
)
_DECIMAL_KINDS = frozenset({TypeKind.LONG, TypeKind.DOUBLE, TypeKind.INSTANT, TypeKind.ANY})
_NUMBER_START = frozenset("-0123456789")
_STRING_FORM = ("plain string",)
_UUID_FORM = ("UUID string",)
_WRAPPED_UUID_FORM = ("wrapped UUID",)
_INT_FORM = ("small integer",)
_DECIMAL_FORM = "decimal"
_UUID_LIST_FORM = "ArrayList of wrapped UUIDs"
_FLAT_OBJECT_FORM = "POJO of scalar fields"


def _form(
    text: str, expected: CatalogType, classes: Mapping[str, CatalogType] | None
) -> tuple[Hashable, Any] | None:
    """The memo key of ``text`` read as ``expected`` and its parsed node (``_REPARSE``: parse
    it again when the memo has it), or None: not memoized."""
    first = text[:1]
    kind = expected.kind
    if first == '"':
        match = _PLAIN_STRING.fullmatch(text)
        if match is not None:
            content = match.group(1)
            if content not in expected.all_values:
                if kind in _ANY_STRING_KINDS:
                    return _STRING_FORM, content
                if len(content) == 36 and _UUID.fullmatch(content):  # is_uuid_text
                    return _UUID_FORM, content
    elif first == "[":
        if text.startswith(_UUID_PREFIX):
            match = _WRAPPED_UUID.fullmatch(text)
            if match is not None and match.group(1) not in expected.all_values:
                return _WRAPPED_UUID_FORM, [java.UUID, match.group(1)]
        elif text.startswith(_ARRAY_LIST_PREFIX):
            if _UUID_ARRAY_LIST.fullmatch(text):
                uuids = _UUID_IN_LIST.findall(text)
                if not expected.all_values.intersection(uuids):
                    node = [java.ARRAY_LIST, [[java.UUID, u] for u in uuids]]
                    return (_UUID_LIST_FORM, len(uuids)), node
        elif text.startswith('["'):
            form = _flat_object_form(
                text, classes if classes is not None else expected.named_classes
            )
            if form is not None:
                return form
    elif first in _NUMBER_START and kind in _INT_KINDS:
        if _SMALL_INT.fullmatch(text):
            return _INT_FORM, int(text)
        match = _DECIMAL.fullmatch(text)
        if match is not None and kind in _DECIMAL_KINDS:
            return (_DECIMAL_FORM, len(text), len(match.group(1)) == 9), JsonFloat(text)
    if len(text) <= _EXACT_LIMIT:
        return text, _REPARSE
    return None


def _flat_object_form(text: str, classes: Mapping[str, CatalogType]) -> tuple[Hashable, Any] | None:
    """``["<catalog POJO class>",{…}]`` whose fields are all scalars: nothing reads a scalar
    field of a POJO (only collections in fields are checked), so its class and number of fields
    fix the verdict."""
    try:
        # orjson parses as json does where nothing in it is a number with a fraction or
        # exponent or beyond 64 bits (it makes floats of those: checked below); what it refuses
        # (trailing text, a lone surrogate escape) takes the full path
        node = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if type(node) is not list or len(node) != 2:
        return None
    cls, content = node
    if type(content) is not dict or type(cls) is not str:
        return None
    known = classes.get(cls)
    if (
        known is None
        or known.kind is not TypeKind.POJO
        or cls in java.SCALAR_CLASSES
        or cls in java.CONTAINERS
        or java.array_component(cls) is not None
    ):
        return None
    for value in content.values():
        kind = type(value)
        if kind is list or kind is dict or kind is float:
            return None
    return (_FLAT_OBJECT_FORM, cls, len(content)), node


# Decoded and Finding are frozen dataclasses, whose __init__ sets each field through
# object.__setattr__; a memoized verdict is copied with the fields' slot setters instead (the
# same object, a third of the time). Both classes have no __post_init__.
_new = object.__new__


def _setter(cls: type, name: str) -> Callable[[Any, Any], None]:
    """The slot descriptor's setter of field ``name`` (it ignores the frozen __setattr__)."""
    descriptor: Any = vars(cls)[name]
    setter: Callable[[Any, Any], None] = descriptor.__set__
    return setter


_D_EXPECTED = _setter(Decoded, "expected")
_D_READER = _setter(Decoded, "reader")
_D_CLASS = _setter(Decoded, "java_class")
_D_NODE = _setter(Decoded, "node")
_D_NOTES = _setter(Decoded, "notes")
_F_FLIGHT = _setter(Finding, "flight_id")
_F_KEY = _setter(Finding, "key")
_F_SOURCE = _setter(Finding, "source")
_F_EXPECTED = _setter(Finding, "expected")
_F_FOUND = _setter(Finding, "found")
_F_READER = _setter(Finding, "reader")
_F_REASON = _setter(Finding, "reason")
_F_ENGINE = _setter(Finding, "engine_exception")
_F_REENCODABLE = _setter(Finding, "reencodable")
_F_TYPE = _setter(Finding, "expected_type")
_F_WHEN = _setter(Finding, "when")


def _decoded_for(memo: Decoded, node: Any, expected: CatalogType) -> Decoded:
    """``Decoded(expected, memo.reader, memo.java_class, node, memo.notes)``."""
    out: Decoded = _new(Decoded)
    _D_EXPECTED(out, expected)
    _D_READER(out, memo.reader)
    _D_CLASS(out, memo.java_class)
    _D_NODE(out, node)
    _D_NOTES(out, memo.notes)
    return out


def _finding_for(
    memo: Finding, flight_id: str, key: str, source: Source, expected: CatalogType
) -> Finding:
    """``memo`` for another value: another flight, key and source, the caller's type object."""
    out: Finding = _new(Finding)
    _F_FLIGHT(out, flight_id)
    _F_KEY(out, key)
    _F_SOURCE(out, source)
    _F_EXPECTED(out, memo.expected)
    _F_FOUND(out, memo.found)
    _F_READER(out, memo.reader)
    _F_REASON(out, memo.reason)
    _F_ENGINE(out, memo.engine_exception)
    _F_REENCODABLE(out, memo.reencodable)
    _F_TYPE(out, expected)
    _F_WHEN(out, memo.when)
    return out


def clear_memo() -> None:
    """Forget every memoized verdict (tests compare memoized and full verdicts from scratch)."""
    _VERDICTS.clear()


_NO_KEYS: Mapping[str, KeySpec] = {}

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
    ``MEMO_LIMIT`` entries. (:func:`decode_value` memoizes verdicts by form of text too, which
    covers the texts that never recur; a scan that needs only findings uses neither this
    report nor this memo: :func:`map_findings`.)
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
    spec = catalog.flight(class_name)
    decoded: dict[str, Decoded] = {}
    unknown: list[str] = []
    findings = _check_map(
        flight_id, class_name, spec, rows, catalog, reader, source, decoded, unknown, memo
    )
    missing: tuple[str, ...] = ()
    if spec is not None and not rows.keys() >= spec.required_set(source):
        missing = tuple(k for k in spec.required(source) if k not in rows)
    return _map_report(
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


def map_findings(
    flight_id: str,
    class_name: str,
    rows: Mapping[str, str],
    catalog: Catalog,
    reader: ReaderVersion,
    source: Source = "input",
) -> list[Finding]:
    """The findings :func:`decode_map` reports for this map, without the rest of its report
    (a scan of every flight needs only them)."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
    spec = catalog.flight(class_name)
    return _check_map(flight_id, class_name, spec, rows, catalog, reader, source, None, None, None)


def _check_map(
    flight_id: str,
    class_name: str,
    spec: FlightSpec | None,
    rows: Mapping[str, str],
    catalog: Catalog,
    reader: ReaderVersion,
    source: Source,
    decoded: dict[str, Decoded] | None,
    unknown: list[str] | None,
    memo: dict[tuple[str, str, str, str], Decoded | Finding] | None,
) -> list[Finding]:
    """Decode each entry of a map; the findings, and into ``decoded`` / ``unknown`` (when
    given) the values that decode and the keys the catalog does not list."""
    keys = spec.key_specs(source) if spec is not None else _NO_KEYS
    classes = catalog.classes
    want = decoded is not None
    findings: list[Finding] = []
    for key, text in rows.items():
        key_spec = keys.get(key)
        if key_spec is None:
            if unknown is not None:
                unknown.append(key)
            if reader is not _LEGACY:
                continue
        cached = memo.get((class_name, source, key, text)) if memo is not None else None
        result: Decoded | Finding | None
        if cached is not None:
            result = (
                _finding_for(cached, flight_id, key, source, cached.expected_type)
                if type(cached) is Finding
                else cached
            )
        else:
            expected = key_spec.type if key_spec is not None else ANY
            result = _decode(
                text, expected, reader, flight_id, key, source, classes, want or memo is not None
            )
            if key_spec is None and type(result) is Finding:
                result = replace(result, expected="any (key not in the catalog)")
            if memo is not None and result is not None:
                if len(memo) >= MEMO_LIMIT:
                    memo.clear()  # start over: what recurs is soon back in
                memo[(class_name, source, key, text)] = result
        if type(result) is Finding:
            findings.append(result)
        elif decoded is not None and key_spec is not None:
            decoded[key] = result  # type: ignore[assignment]
    return findings


_MAP_REPORT_FIELDS = tuple(
    _setter(MapReport, name)
    for name in (
        "flight_id",
        "class_name",
        "source",
        "reader",
        "decoded",
        "findings",
        "unknown_keys",
        "missing_keys",
        "known_class",
    )
)


def _map_report(*values: Any) -> MapReport:
    """``MapReport(*values)``, through the slots' setters (see `_decoded_for`)."""
    out: MapReport = _new(MapReport)
    for set_field, value in zip(_MAP_REPORT_FIELDS, values, strict=True):
        set_field(out, value)
    return out
