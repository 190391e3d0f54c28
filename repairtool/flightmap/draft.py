"""Draft a type catalog from stored rows (``repairtool`` reads them from a live database).

Inference is conservative: a type id in the data (``["java.util.UUID", …]``) is taken as fact;
anything read from a plain value is a guess, marked ``inferred: true`` with a note saying what
to check — a plain string in UUID form may be asked for as ``UUID`` (before WSM PR #284) or as
``String`` (after it), a small integer may be a ``Long``, a ``seconds.nanos`` decimal may be an
``Instant``. Where the data cannot tell two readings apart, the draft takes the one under which
a value decodes for fewer readers, so nothing decodes falsely (checked against real Jackson by
``tests/conformance/test_draft.py``). It says plainly what the catalog cannot express (Java
arrays) and what rows cannot show (a final class's name, an ``Optional``). Notes never quote
stored values, except enum constants.
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
    plain_constants: set[str] = field(default_factory=set)
    root_final: set[str] = field(default_factory=set)
    """Final classes seen with a type id at a per-key row's root (no writer puts one there)."""
    items: _Seen | None = None

    def child(self) -> _Seen:
        if self.items is None:
            self.items = _Seen()
        return self.items

    def add(self, node: Any, root: bool = False) -> None:
        self.rows += 1
        t = type(node)
        if node is None:
            self.nulls += 1
        elif t is str:
            form = _string_form(node)
            self.forms[form] += 1
            if form == "constant-like string":
                self.plain_constants.add(node)
        elif t is bool:
            self.forms["bool"] += 1
        elif t is int:
            self.forms["int" if java.INT_MIN <= node <= java.INT_MAX else "long"] += 1
        elif t is JsonFloat:
            # JavaTimeModule writes an Instant as seconds.nanos (9 digits), the epoch as 0.0
            instant = _SECONDS_NANOS.fullmatch(node.text) or node.text == "0.0"
            self.forms["seconds.nanos" if instant else "double"] += 1
        elif t is dict:
            # immutable maps (Map.of, Guava) refuse null values: with a null field it is a class
            nulls = root and any(v is None for v in node.values())
            self.forms["plain object with a null field" if nulls else "plain object"] += 1
        elif is_wrapper(node) and java.is_class_name(node[0]):
            if root and _final_at_root(node[0], node[1]):
                self.root_final.add(node[0])
            self._add_wrapper(node[0], node[1])
        elif is_wrapper(node) and java.array_component(node[0]) is not None:
            self.forms["array"] += 1
        else:
            self.forms["plain array"] += 1
            for item in node:
                self.child().add(item)

    def _add_wrapper(self, cls: str, content: Any) -> None:
        self.classes[cls] += 1
        if cls in java.COLLECTION_CLASSES and type(content) is list:
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


def _final_at_root(cls: str, content: Any) -> bool:
    """A class no writer wraps at a per-key root: a final JDK scalar, or (a constant) an enum."""
    if cls in java.FINAL_SCALAR_CLASSES:
        return True
    return (
        cls not in java.KNOWN_CLASSES
        and type(content) is str
        and bool(_CONSTANT.fullmatch(content))
    )


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
        entry.add(node, root=True)
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
    guess = _infer_kind(entry)
    if not entry.root_final:
        return guess
    note = (
        "a type id on a final class at the root of a row: no writer puts one there unless the"
        " value was an Optional (the code may ask for Optional: type: optional) or a tool"
        " re-encoded it for ≤0.0.60"
    )
    return _Guess(guess.type, True, (*guess.notes, note))


def _infer_kind(entry: _Seen) -> _Guess:
    guesses = [_from_form(form, entry) for form in entry.forms]
    guesses += [_from_class(cls, entry) for cls in entry.classes]
    if not guesses:
        return _Guess(ANY, True, ("only null seen",) if entry.nulls else ())
    kinds = {g.type.kind for g in guesses}
    notes = tuple(dict.fromkeys(note for g in guesses for note in g.notes))
    inferred = any(g.inferred for g in guesses)
    if len({g.type for g in guesses}) == 1:
        return _Guess(guesses[0].type, inferred, notes)
    enums = {g.type for g in guesses if g.type.kind is TypeKind.ENUM}
    if len(enums) == 1 and kinds <= {TypeKind.ENUM, TypeKind.STRING} and entry.plain_constants:
        # an enum seen both with and without a type id at the root: a constant with a body has
        # its own final class (no type id); the others are the enum class, not final
        enum = enums.pop()
        bodies = tuple(sorted(entry.plain_constants - set(enum.values)))
        if bodies and entry.forms.keys() <= {"constant-like string"}:
            values = tuple(sorted({*enum.values, *bodies}))
            typed = CatalogType(
                TypeKind.ENUM, java_class=enum.java_class, values=values, bodies=bodies
            )
            return _Guess(
                typed,
                True,
                (
                    *notes,
                    "constants without a type id are taken to be those declared with a class"
                    " body; list all constants in declaration order",
                ),
            )
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
            (
                "plain JSON array without a type id: a List.of/Set.of/ImmutableSet or one-element"
                " ImmutableList (no reader reads it as a List or Set), or a Java array such as"
                " String[] (≥0.0.61 reads it when the code asks for the array class; the catalog"
                " cannot express arrays)",
            ),
        )
    if form == "array":
        return _Guess(
            ANY, True, ("a Java array with a type id: the catalog cannot express arrays",)
        )
    if form == "plain object with a null field":
        return _Guess(
            CatalogType(TypeKind.POJO, final=True),
            True,
            (
                "plain JSON object with a null field: a final class (a record, a final POJO, a"
                " Lombok @Value; immutable maps refuse nulls) whose name rows do not show —"
                " ≥0.0.61 reads it, ≤0.0.60 cannot; add class: … to re-encode it for ≤0.0.60",
            ),
        )
    if form == "plain object":
        return _Guess(
            ANY,
            True,
            (
                "plain JSON object without a type id: a final class (a record, a final POJO, a"
                " Lombok @Value: ≥0.0.61 reads it when the code asks for that class, ≤0.0.60"
                " cannot) or an immutable map (Map.of, ImmutableMap: no reader reads it as a"
                " Map); if the code asks for a class, write type: pojo, class: …, final: true",
            ),
        )
    kind = {"string": TypeKind.STRING, "bool": TypeKind.BOOL, "long": TypeKind.LONG}
    return _Guess(CatalogType(kind.get(form, TypeKind.DOUBLE)))


def _from_class(cls: str, entry: _Seen) -> _Guess:
    if cls in _SCALAR_KINDS:
        return _Guess(CatalogType(_SCALAR_KINDS[cls]))
    if cls == java.BIG_DECIMAL:
        return _Guess(CatalogType(TypeKind.BIGDECIMAL))
    kind = _CONTAINER_KIND.get(getattr(java.CONTAINERS.get(cls), "kind", ""))
    if kind is not None:
        element = _infer(entry.items) if entry.items is not None else _Guess(ANY)
        notes = tuple(f"elements: {note}" for note in element.notes)
        inferred = element.inferred
        if cls.startswith("com.google.common."):
            notes = (*notes, "a Guava immutable collection: ≤0.0.61 readers cannot read it")
        if _typed_elements_differ(element.type):
            inferred = True
            notes = (
                *notes,
                "read by class (get(key, List.class)) its elements are read as Object; with a"
                " TypeReference (≥0.0.62) an element of a final class (UUID, Long, Instant, an"
                " enum, a final POJO) must not carry the type id it has here: set read_as:"
                " type_reference if the code uses one",
            )
        return _Guess(CatalogType(kind, element=_element(element.type)), inferred, notes)
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


_WRAPPED_FINAL = frozenset(
    {TypeKind.UUID, TypeKind.LONG, TypeKind.INSTANT, TypeKind.ENUM, TypeKind.POJO}
)


def _typed_elements_differ(t: CatalogType) -> bool:
    """Elements a TypeReference reads differently from Object: final classes with type ids."""
    return any(e.kind in _WRAPPED_FINAL for e in t.walk())


_CONTAINER_KIND = {
    java.LIST_KIND: TypeKind.LIST,
    java.SET_KIND: TypeKind.SET,
    java.MAP_KIND: TypeKind.MAP,
}


def _element(t: CatalogType) -> CatalogType | None:
    return None if t.kind is TypeKind.ANY else t
