"""Draft a type catalog from stored rows (``repairtool`` reads them from a live database).

Inference is conservative: a type id in the data (``["java.util.UUID", …]``) is taken as fact;
anything read from a plain value is a guess, marked ``inferred: true`` with a note saying what
to check — a plain string in UUID form may be asked for as ``UUID`` (before WSM PR #284) or as
``String`` (after it), a small integer may be a ``Long``, a ``seconds.nanos`` decimal may be an
``Instant``. Notes never quote stored values, except enum constants found inside a type id.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import java
from .catalog import ANY, Catalog, CatalogType, FlightSpec, KeySpec, Source, TypeKind
from .errors import JacksonParseError
from .jackson import JsonFloat, is_wrapper, loads
from .scalars import is_iso_instant, is_uuid_text

_CONSTANT = re.compile(r"[A-Z][A-Z0-9_]{0,60}")
_SECONDS_NANOS = re.compile(r"-?\d+\.\d{9}")
_SCALAR_KINDS = {
    java.STRING: TypeKind.STRING,
    java.INTEGER: TypeKind.INT,
    java.LONG: TypeKind.LONG,
    java.BOOLEAN: TypeKind.BOOL,
    java.DOUBLE: TypeKind.DOUBLE,
    java.UUID: TypeKind.UUID,
    java.INSTANT: TypeKind.INSTANT,
}


@dataclass
class _Seen:
    """What was observed for one key (or for the elements of a container)."""

    rows: int = 0
    nulls: int = 0
    malformed: int = 0
    forms: Counter[str] = field(default_factory=Counter)
    classes: Counter[str] = field(default_factory=Counter)
    constants: dict[str, set[str]] = field(default_factory=dict)
    contents: dict[str, set[str]] = field(default_factory=dict)
    items: _Seen | None = None

    def child(self) -> _Seen:
        if self.items is None:
            self.items = _Seen()
        return self.items

    def add(self, node: Any) -> None:
        self.rows += 1
        t = type(node)
        if node is None:
            self.nulls += 1
        elif t is str:
            self.forms[_string_form(node)] += 1
        elif t is bool:
            self.forms["bool"] += 1
        elif t is int:
            self.forms["int" if java.INT_MIN <= node <= java.INT_MAX else "long"] += 1
        elif t is JsonFloat:
            self.forms["seconds.nanos" if _SECONDS_NANOS.fullmatch(node.text) else "double"] += 1
        elif t is dict:
            self.forms["plain object"] += 1
        elif is_wrapper(node) and java.is_class_name(node[0]):
            self._add_wrapper(node[0], node[1])
        else:
            self.forms["plain array"] += 1
            for item in node:
                self.child().add(item)

    def _add_wrapper(self, cls: str, content: Any) -> None:
        self.classes[cls] += 1
        if cls in java.LIST_CLASSES and type(content) is list:
            for item in content:
                self.child().add(item)
        elif cls in java.MAP_CLASSES and type(content) is dict:
            for item in content.values():
                self.child().add(item)
        elif cls not in java.KNOWN_CLASSES:
            constant = type(content) is str and _CONSTANT.fullmatch(content) is not None
            what = "constant" if constant else "object" if type(content) is dict else "other"
            self.contents.setdefault(cls, set()).add(what)
            if constant:
                self.constants.setdefault(cls, set()).add(content)


def _string_form(text: str) -> str:
    if is_uuid_text(text):
        return "uuid string"
    if _CONSTANT.fullmatch(text) and len(text) > 1:
        return "constant-like string"
    if len(text) < 40 and is_iso_instant(text):
        return "instant string"
    return "string"


@dataclass(frozen=True)
class _Guess:
    type: CatalogType
    inferred: bool = False
    notes: tuple[str, ...] = ()


def draft_catalog(rows: Iterable[tuple[str, str, str]], *, source: Source = "input") -> Catalog:
    """Infer a catalog from ``(flight class, key, stored text)`` rows.

    For ``input`` rows (one per flight and key) a key seen in fewer rows than the class's most
    frequent key is marked optional. Working-map keys are always optional (steps add them).
    """
    seen: dict[str, dict[str, _Seen]] = {}
    for class_name, key, text in rows:
        entry = seen.setdefault(class_name, {}).setdefault(key, _Seen())
        try:
            node, _ = loads(text)
        except JacksonParseError:
            entry.rows += 1
            entry.malformed += 1
            continue
        entry.add(node)
    flights = []
    for class_name, keys in seen.items():
        most = max(entry.rows for entry in keys.values())
        specs = tuple(
            _key_spec(key, entry, source == "working" or entry.rows < most)
            for key, entry in keys.items()
        )
        if source == "input":
            flights.append(FlightSpec(class_name, input=specs))
        else:
            flights.append(FlightSpec(class_name, working=specs))
    return Catalog(tuple(flights), "drafted")


def _key_spec(key: str, entry: _Seen, optional: bool) -> KeySpec:
    guess = _infer(entry)
    notes = list(guess.notes)
    if entry.malformed:
        notes.append(f"malformed JSON in {entry.malformed} of {entry.rows} rows")
    inferred = guess.inferred or bool(notes)
    if optional and entry.rows:
        notes.append(f"seen in {entry.rows} rows only")
    return KeySpec(key, guess.type, optional=optional, inferred=inferred, note="; ".join(notes))


def _infer(entry: _Seen) -> _Guess:
    guesses = [_from_form(form, entry) for form in entry.forms]
    guesses += [_from_class(cls, entry) for cls in entry.classes]
    if not guesses:
        return _Guess(ANY, True, ("only null seen",) if entry.nulls else ())
    kinds = {g.type.kind for g in guesses}
    notes = tuple(dict.fromkeys(note for g in guesses for note in g.notes))
    inferred = any(g.inferred for g in guesses)
    if len({g.type for g in guesses}) == 1:
        return _Guess(guesses[0].type, inferred, notes)
    mixed = "mixed forms: " + ", ".join(sorted(entry.forms) + sorted(_shown(entry.classes)))
    if kinds == {TypeKind.INT, TypeKind.LONG}:
        return _Guess(CatalogType(TypeKind.LONG), True, (*notes, mixed))
    if kinds <= {TypeKind.INT, TypeKind.LONG, TypeKind.DOUBLE, TypeKind.INSTANT}:
        return _Guess(CatalogType(TypeKind.DOUBLE), True, (*notes, mixed))
    for kind in (TypeKind.UUID, TypeKind.ENUM, TypeKind.STRING):
        same = {g.type for g in guesses if g.type.kind is kind}
        if len(same) == 1 and kinds <= {kind, TypeKind.STRING}:
            return _Guess(same.pop(), True, (*notes, mixed))
    return _Guess(ANY, True, (mixed,))


def _shown(classes: Counter[str]) -> list[str]:
    return [cls if java.is_displayable_class(cls) else "<class id>" for cls in classes]


def _from_form(form: str, entry: _Seen) -> _Guess:
    if form == "uuid string":
        return _Guess(
            CatalogType(TypeKind.UUID),
            True,
            ("plain strings in UUID form: the code may ask for UUID (≤0.0.60 fails) or String",),
        )
    if form == "constant-like string":
        return _Guess(
            CatalogType(TypeKind.STRING),
            True,
            ("values look like enum constants: if the code asks for an enum, use type: enum",),
        )
    if form == "instant string":
        return _Guess(CatalogType(TypeKind.STRING), True, ("ISO-8601 strings: maybe an Instant",))
    if form == "int":
        return _Guess(
            CatalogType(TypeKind.INT),
            True,
            ("could be long: a Long that fits an int is stored without a type id",),
        )
    if form == "seconds.nanos":
        return _Guess(
            CatalogType(TypeKind.INSTANT),
            True,
            ("seconds.nanos decimals: how JavaTimeModule writes an Instant",),
        )
    if form == "plain array":
        element = _infer(entry.items) if entry.items is not None else _Guess(ANY)
        return _Guess(
            CatalogType(TypeKind.LIST, element=_element(element.type)),
            True,
            ("plain JSON array without a type id (List.of?): no reader decodes it",),
        )
    if form == "plain object":
        return _Guess(ANY, True, ("plain JSON object without a type id: no reader decodes it",))
    kind = {"string": TypeKind.STRING, "bool": TypeKind.BOOL, "long": TypeKind.LONG}
    return _Guess(CatalogType(kind.get(form, TypeKind.DOUBLE)))


def _from_class(cls: str, entry: _Seen) -> _Guess:
    if cls in _SCALAR_KINDS:
        return _Guess(CatalogType(_SCALAR_KINDS[cls]))
    if cls in java.LIST_CLASSES or cls in java.MAP_CLASSES:
        kind = TypeKind.LIST if cls in java.LIST_CLASSES else TypeKind.MAP
        element = _infer(entry.items) if entry.items is not None else _Guess(ANY)
        notes = tuple(f"elements: {note}" for note in element.notes)
        return _Guess(CatalogType(kind, element=_element(element.type)), element.inferred, notes)
    if cls in java.KNOWN_CLASSES or not java.is_displayable_class(cls):
        return _Guess(ANY, True, ("a type id this draft does not handle",))
    contents = entry.contents.get(cls, set())
    if contents == {"constant"}:
        values = tuple(sorted(entry.constants[cls]))
        return _Guess(
            CatalogType(TypeKind.ENUM, java_class=cls, values=values),
            True,
            ("enum values are those seen in the data: list all constants in declaration order",),
        )
    if contents == {"object"}:
        return _Guess(CatalogType(TypeKind.POJO, java_class=cls))
    return _Guess(ANY, True, (f"type id {cls} with content of several shapes",))


def _element(t: CatalogType) -> CatalogType | None:
    return None if t.kind is TypeKind.ANY else t
