"""The type catalog: for each flight class and FlightMap key, the type the service's code asks for.

A catalog is YAML (see ``repairtool/catalogs/workspace-manager.yaml`` for a documented example)::

    version: 1
    flights:
      bio.terra.workspace.service.workspace.flight.WorkspaceCreateFlight:
        input:                       # flightinput keys; `working:` for the working map
          workspaceId: uuid          # shorthand: just the kind
          workspaceStage:
            type: enum
            class: bio.terra.workspace.service.workspace.model.WorkspaceStage
            values: [RAWLS_WORKSPACE, MC_WORKSPACE]
          spendProfileId: {type: string, optional: true}

Loading is strict: an unknown kind, an unknown or missing field is a :class:`CatalogError` whose
one-line message names the file, the flight class and the key.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from repairtool.yamlstrict import UniqueKeyLoader

from . import java
from .errors import CatalogError

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
    POJO = "pojo"
    LIST = "list"
    MAP = "map"
    ANY = "any"


class ReadAs(StrEnum):
    """How a list or map is asked for on a ≥0.0.61 reader.

    ``class``: ``get(key, List.class)`` — elements are read as ``Object`` (type ids needed for
    non-natural types) and cast when used. ``type_reference``: ``get(key, new
    TypeReference<List<UUID>>(){})`` (≥0.0.62) — elements are read into the element type.
    """

    CLASS = "class"
    TYPE_REFERENCE = "type_reference"


FINAL_KINDS = frozenset(
    {
        TypeKind.STRING,
        TypeKind.UUID,
        TypeKind.ENUM,
        TypeKind.INT,
        TypeKind.LONG,
        TypeKind.BOOL,
        TypeKind.DOUBLE,
        TypeKind.INSTANT,
    }
)
"""Kinds whose Java class is final: Jackson writes and (≥0.0.61) reads them without a type id."""

_JAVA_TYPES = {
    TypeKind.STRING: java.STRING,
    TypeKind.UUID: java.UUID,
    TypeKind.INT: java.INTEGER,
    TypeKind.LONG: java.LONG,
    TypeKind.BOOL: java.BOOLEAN,
    TypeKind.DOUBLE: java.DOUBLE,
    TypeKind.INSTANT: java.INSTANT,
    TypeKind.LIST: java.LIST,
    TypeKind.MAP: java.MAP,
    TypeKind.ANY: java.OBJECT,
}


@dataclass(frozen=True, slots=True)
class CatalogType:
    """One expected type. ``element`` is a list's element or a map's value type (None = any)."""

    kind: TypeKind
    java_class: str = ""
    values: tuple[str, ...] = ()
    element: CatalogType | None = None
    read_as: ReadAs = ReadAs.CLASS
    classes: tuple[str, ...] = ()
    # Derived in __post_init__ (the decoder reads them for every value):
    java_type: str = field(init=False, repr=False, compare=False)
    """The Java type as Stairway names it in ``JsonConversionException`` messages."""
    accepted_classes: frozenset[str] = field(init=False, repr=False, compare=False)
    """Runtime classes that pass ``type.isInstance`` (empty for ``any``: everything does)."""
    all_values: frozenset[str] = field(init=False, repr=False, compare=False)
    """The enum constants of this type and its element types (names from the catalog)."""
    _rendered: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_field = object.__setattr__
        set_field(self, "java_type", self._make_java_type())
        set_field(self, "accepted_classes", self._accepted_classes())
        set_field(self, "all_values", frozenset(v for t in self.walk() for v in t.values))
        set_field(self, "_rendered", self._render())

    def _make_java_type(self) -> str:
        if self.kind in (TypeKind.ENUM, TypeKind.POJO):
            return self.java_class
        base = _JAVA_TYPES[self.kind]
        if self.kind in (TypeKind.LIST, TypeKind.MAP) and self.read_as is ReadAs.TYPE_REFERENCE:
            inner = self.element.java_type if self.element else java.OBJECT
            return (
                f"{base}<{inner}>"
                if self.kind is TypeKind.LIST
                else f"{base}<{java.STRING},{inner}>"
            )
        return base

    def _accepted_classes(self) -> frozenset[str]:
        if self.kind is TypeKind.ANY:
            return frozenset()
        if self.kind is TypeKind.LIST:
            return java.LIST_CLASSES | set(self.classes)
        if self.kind is TypeKind.MAP:
            return java.MAP_CLASSES | set(self.classes)
        return frozenset({self.java_type, *self.classes})

    def render(self) -> str:
        """Short text: ``uuid``, ``enum a.b.Stage{A,B}``, ``pojo a.b.Req``, ``list<uuid>``."""
        return self._rendered

    def _render(self) -> str:
        if self.kind is TypeKind.ENUM:
            return f"enum {self.java_class}{{{','.join(self.values)}}}"
        if self.kind is TypeKind.POJO:
            return f"pojo {self.java_class}"
        if self.kind in (TypeKind.LIST, TypeKind.MAP):
            inner = self.element.render() if self.element else "any"
            how = " (TypeReference)" if self.read_as is ReadAs.TYPE_REFERENCE else ""
            return f"{self.kind.value}<{inner}>{how}"
        return self.kind.value

    def __str__(self) -> str:
        return self.render()

    def walk(self) -> Iterator[CatalogType]:
        """This type and its nested element types."""
        yield self
        if self.element is not None:
            yield from self.element.walk()


ANY = CatalogType(TypeKind.ANY)


@dataclass(frozen=True, slots=True)
class KeySpec:
    """One FlightMap key of a flight class. ``inferred`` marks a drafted guess to review."""

    key: str
    type: CatalogType
    optional: bool = False
    inferred: bool = False
    note: str = ""


@dataclass(frozen=True, slots=True)
class FlightSpec:
    """The input and working-map keys of one flight class."""

    class_name: str
    input: tuple[KeySpec, ...] = ()
    working: tuple[KeySpec, ...] = ()

    def keys(self, source: Source) -> dict[str, KeySpec]:
        """The keys of the input (``flightinput``) or working map (``flightworking``)."""
        specs = self.input if source == "input" else self.working
        return {spec.key: spec for spec in specs}


@dataclass(frozen=True, slots=True)
class Catalog:
    """Flight classes → keys → types; ``source`` names the file it was loaded from."""

    flights: tuple[FlightSpec, ...] = ()
    source: str = field(default="", compare=False)

    def flight(self, class_name: str) -> FlightSpec | None:
        """The spec of a flight class, or None when the catalog does not know it."""
        for spec in self.flights:
            if spec.class_name == class_name:
                return spec
        return None


# ---------------------------------------------------------------------------------------------
# YAML

_TYPE_FIELDS = {
    TypeKind.ENUM: {"class", "values"},
    TypeKind.POJO: {"class", "classes"},
    TypeKind.LIST: {"of", "read_as", "classes"},
    TypeKind.MAP: {"of", "read_as", "classes"},
}
_REQUIRED = {TypeKind.ENUM: ("class", "values"), TypeKind.POJO: ("class",)}
_KEY_FIELDS = {"optional", "inferred", "note"}
_KINDS = ", ".join(kind.value for kind in TypeKind)


def load_catalog(path: str | Path) -> Catalog:
    """Load and validate a catalog file. Raises :class:`CatalogError` (one line)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CatalogError(f"{path}: cannot read: {err.__class__.__name__}") from None
    try:
        return loads_catalog(text, str(path))
    except RecursionError:  # PyYAML and the type parser recurse: a deep or anchor-looped file
        raise CatalogError(f"{path}: nested too deeply, or a YAML anchor loops") from None


def load_builtin_catalog(name: str) -> Catalog:
    """Load a catalog shipped in ``repairtool/catalogs`` (e.g. ``workspace-manager``)."""
    ref = resources.files("repairtool").joinpath("catalogs", f"{name}.yaml")
    if not ref.is_file():
        raise CatalogError(f"repairtool/catalogs/{name}.yaml: no such built-in catalog")
    return loads_catalog(ref.read_text(encoding="utf-8"), f"repairtool/catalogs/{name}.yaml")


def loads_catalog(text: str, source: str = "<string>") -> Catalog:
    """Parse and validate catalog YAML; ``source`` names it in error messages."""
    try:
        doc = yaml.load(text, Loader=UniqueKeyLoader)  # the safe loader, duplicate keys refused
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or err.__class__.__name__
        if "recursive" in problem:  # an anchor inside itself (the strict loader refuses it)
            raise CatalogError(f"{source}: nested too deeply, or a YAML anchor loops") from None
        raise CatalogError(f"{source}: invalid YAML{where}: {problem}") from None
    if not isinstance(doc, dict):
        raise CatalogError(f"{source}: a catalog is a mapping with a 'flights' field")
    unknown = set(doc) - {"version", "flights"}
    if unknown:
        raise CatalogError(f"{source}: unknown top-level field {_first(unknown)!r}")
    if doc.get("version", 1) != 1:
        raise CatalogError(f"{source}: unsupported catalog version {doc.get('version')!r}")
    flights = doc.get("flights")
    if flights is None:
        raise CatalogError(f"{source}: missing field 'flights'")
    if not isinstance(flights, dict):
        raise CatalogError(f"{source}: 'flights' must map flight class names to their keys")
    specs = tuple(_load_flight(source, name, body) for name, body in flights.items())
    return Catalog(specs, source)


def _first(names: set[Any]) -> str:
    return sorted(map(str, names))[0]


def parse_type(spec: Any, where: str = "type") -> CatalogType:
    """One type in catalog notation: ``"uuid"`` or ``{"type": "enum", "class": …, …}``.

    Raises :class:`CatalogError` with ``where`` as the message's prefix.
    """
    return _load_type(where, spec)


def _load_flight(source: str, name: Any, body: Any) -> FlightSpec:
    where = f"{source}: flight {name}"
    if not isinstance(name, str) or not java.is_class_name(name):
        raise CatalogError(f"{where}: a flight class must be a Java class name")
    if body is None:
        return FlightSpec(name)
    if not isinstance(body, dict):
        raise CatalogError(f"{where}: expected a mapping with 'input' and/or 'working'")
    unknown = set(body) - set(SOURCES)
    if unknown:
        raise CatalogError(f"{where}: unknown field {_first(unknown)!r} (expected input, working)")
    sections: dict[str, tuple[KeySpec, ...]] = {}
    for section in SOURCES:
        keys = body.get(section) or {}
        if not isinstance(keys, dict):
            raise CatalogError(f"{where}: '{section}' must map keys to types")
        sections[section] = tuple(
            _load_key(f"{where}: {section} key {key}", key, spec) for key, spec in keys.items()
        )
    return FlightSpec(name, sections["input"], sections["working"])


def _load_key(where: str, key: Any, spec: Any) -> KeySpec:
    if not isinstance(key, str):
        raise CatalogError(f"{where}: a key must be a string (quote it)")
    if isinstance(spec, dict):
        extra = {name: spec[name] for name in _KEY_FIELDS if name in spec}
        body = {name: value for name, value in spec.items() if name not in _KEY_FIELDS}
    else:
        extra, body = {}, spec
    for flag in ("optional", "inferred"):
        if not isinstance(extra.get(flag, False), bool):
            raise CatalogError(f"{where}: '{flag}' must be true or false")
    note = extra.get("note", "")
    if not isinstance(note, str):
        raise CatalogError(f"{where}: 'note' must be a string")
    return KeySpec(
        key,
        _load_type(where, body),
        optional=bool(extra.get("optional", False)),
        inferred=bool(extra.get("inferred", False)),
        note=note,
    )


def _load_type(where: str, spec: Any) -> CatalogType:
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, dict):
        raise CatalogError(f"{where}: expected a kind ({_KINDS}) or a mapping with 'type'")
    if "type" not in spec:
        raise CatalogError(f"{where}: missing field 'type'")
    try:
        kind = TypeKind(spec["type"])
    except ValueError:
        raise CatalogError(
            f"{where}: unknown type kind {str(spec['type'])!r} (expected one of: {_KINDS})"
        ) from None
    allowed = _TYPE_FIELDS.get(kind, set())
    unknown = set(spec) - allowed - {"type"}
    if unknown:
        raise CatalogError(f"{where}: field {_first(unknown)!r} is not allowed for type {kind}")
    for name in _REQUIRED.get(kind, ()):
        if name not in spec:
            raise CatalogError(f"{where}: type {kind} needs field {name!r}")
    java_class = spec.get("class", "")
    if kind in _REQUIRED and not (isinstance(java_class, str) and java.is_class_name(java_class)):
        raise CatalogError(f"{where}: 'class' must be a Java class name with its package")
    if kind is TypeKind.ENUM and not spec["values"]:
        raise CatalogError(f"{where}: 'values' must list the enum's constants")
    element = None
    if spec.get("of") is not None:
        element = _load_type(f"{where}: of", spec["of"])
    try:
        read_as = ReadAs(spec.get("read_as", ReadAs.CLASS))
    except ValueError:
        raise CatalogError(f"{where}: 'read_as' must be class or type_reference") from None
    return CatalogType(
        kind,
        java_class=java_class,
        values=_names(where, spec, "values", _is_identifier),
        element=element,
        read_as=read_as,
        classes=_names(where, spec, "classes", java.is_class_name),
    )


def _is_identifier(name: str) -> bool:
    return name.isidentifier()


def _names(where: str, spec: Mapping[str, Any], name: str, valid: Any) -> tuple[str, ...]:
    items = spec.get(name, [])
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise CatalogError(f"{where}: '{name}' must be a list of strings (quote YES/NO/ON/OFF)")
    bad = [item for item in items if not valid(item)]
    if bad:
        raise CatalogError(f"{where}: '{name}' has an invalid entry {bad[0]!r}")
    if len(set(items)) != len(items):
        raise CatalogError(f"{where}: '{name}' lists an entry twice")
    return tuple(items)


def dump_catalog(catalog: Catalog, header: str = "") -> str:
    """Write a catalog as YAML that :func:`loads_catalog` reads back to an equal catalog."""
    flights: dict[str, Any] = {}
    for spec in catalog.flights:
        body: dict[str, Any] = {}
        for section in SOURCES:
            keys = spec.input if section == "input" else spec.working
            if keys:
                body[section] = {key.key: _dump_key(key) for key in keys}
        flights[spec.class_name] = body or None
    text = yaml.dump(
        {"version": 1, "flights": flights},
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    return comment + text


class _Dumper(yaml.SafeDumper):
    """Block mappings, flow lists (``values: [A, B]``)."""


def _flow_list(dumper: yaml.SafeDumper, items: list[Any]) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=True)


_Dumper.add_representer(list, _flow_list)


def _dump_key(spec: KeySpec) -> Any:
    body = _dump_type(spec.type)
    extra: dict[str, Any] = {}
    if spec.optional:
        extra["optional"] = True
    if spec.inferred:
        extra["inferred"] = True
    if spec.note:
        extra["note"] = spec.note
    if not extra:
        return body
    return {**({"type": body} if isinstance(body, str) else body), **extra}


def _dump_type(t: CatalogType) -> Any:
    out: dict[str, Any] = {"type": t.kind.value}
    if t.java_class:
        out["class"] = t.java_class
    if t.values:
        out["values"] = list(t.values)
    if t.element is not None:
        out["of"] = _dump_type(t.element)
    if t.read_as is not ReadAs.CLASS:
        out["read_as"] = t.read_as.value
    if t.classes:
        out["classes"] = list(t.classes)
    return out["type"] if len(out) == 1 else out
