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

``final: true`` on a ``pojo`` (a final class, record or Lombok ``@Value``), ``bodies:`` on an
``enum`` (constants with a class body), the kinds ``set``, ``bigdecimal`` and ``optional``, and a
top-level ``classes:`` (enums/POJOs values may hold where the code asks for ``Object``) are
documented in the shipped catalog's header.

Loading is strict: an unknown kind, an unknown or missing field is a :class:`CatalogError` whose
one-line message names the file, the flight class and the key.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
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
"""Kinds whose Java class is always final: Jackson writes and (≥0.0.61) reads them without a
type id. An ``enum`` is final unless constants have bodies; a ``pojo`` when ``final: true``."""

CONTAINER_KINDS = frozenset({TypeKind.LIST, TypeKind.SET, TypeKind.MAP})

_JAVA_TYPES = {
    TypeKind.STRING: java.STRING,
    TypeKind.UUID: java.UUID,
    TypeKind.INT: java.INTEGER,
    TypeKind.LONG: java.LONG,
    TypeKind.BOOL: java.BOOLEAN,
    TypeKind.DOUBLE: java.DOUBLE,
    TypeKind.INSTANT: java.INSTANT,
    TypeKind.BIGDECIMAL: java.BIG_DECIMAL,
    TypeKind.LIST: java.LIST,
    TypeKind.SET: java.SET,
    TypeKind.MAP: java.MAP,
    TypeKind.OPTIONAL: java.OPTIONAL,
    TypeKind.ANY: java.OBJECT,
}

#: ``java_type`` of a final ``pojo`` whose class the catalog does not name (a drafted entry).
UNNAMED_FINAL_CLASS = "<a final class>"


def catalog_classes(types: Iterable[CatalogType]) -> dict[str, CatalogType]:
    """The enum and POJO classes named anywhere in ``types`` (a POJO also under the subclasses
    it lists), for reading their type ids where the requested type does not name them."""
    out: dict[str, CatalogType] = {}
    for top in types:
        for t in top.walk():
            if t.kind is TypeKind.ENUM and t.java_class:
                out.setdefault(t.java_class, t)
            elif t.kind is TypeKind.POJO:
                for name in (t.java_class, *t.classes):
                    if name:
                        out.setdefault(name, t)
    return out


@dataclass(frozen=True, slots=True)
class CatalogType:
    """One expected type. ``element`` is a list's or set's element or a map's value type
    (None = any).

    ``final`` (pojo): the class is final — a ``final`` class, a record, a Lombok ``@Value`` —
    so Jackson writes it without a type id and a ≥0.0.61 reader rejects one. ``bodies``
    (enum): the constants declared with a class body; such an enum class is not final.
    """

    kind: TypeKind
    java_class: str = ""
    values: tuple[str, ...] = ()
    element: CatalogType | None = None
    read_as: ReadAs = ReadAs.CLASS
    classes: tuple[str, ...] = ()
    final: bool = False
    bodies: tuple[str, ...] = ()
    # Derived in __post_init__ (the decoder reads them for every value):
    java_type: str = field(init=False, repr=False, compare=False)
    """The Java type as Stairway names it in ``JsonConversionException`` messages."""
    accepted_classes: frozenset[str] = field(init=False, repr=False, compare=False)
    """Runtime classes that pass ``type.isInstance`` (empty for ``any``: everything does)."""
    all_values: frozenset[str] = field(init=False, repr=False, compare=False)
    """The enum constants of this type and its element types (names from the catalog)."""
    is_final: bool = field(init=False, repr=False, compare=False)
    """Jackson treats the requested class as final: no type id is written or expected."""
    named_classes: dict[str, CatalogType] = field(init=False, repr=False, compare=False)
    """The enums and POJOs this type names (itself and its element types), by class."""
    _rendered: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_field = object.__setattr__
        element = self.element
        if (
            self.read_as is ReadAs.TYPE_REFERENCE
            and element is not None
            and element.kind in CONTAINER_KINDS
            and element.read_as is not ReadAs.TYPE_REFERENCE
        ):
            # a nested list inside a TypeReference<List<List<X>>> is typed too
            set_field(self, "element", replace(element, read_as=ReadAs.TYPE_REFERENCE))
        set_field(
            self,
            "is_final",
            (self.kind in FINAL_KINDS and not (self.kind is TypeKind.ENUM and self.bodies))
            or (self.kind is TypeKind.POJO and self.final),
        )
        set_field(self, "java_type", self._make_java_type())
        set_field(self, "named_classes", catalog_classes([self]))
        set_field(self, "accepted_classes", self._accepted_classes())
        set_field(self, "all_values", frozenset(v for t in self.walk() for v in t.values))
        set_field(self, "_rendered", self._render())

    def _make_java_type(self) -> str:
        if self.kind in (TypeKind.ENUM, TypeKind.POJO):
            return self.java_class or UNNAMED_FINAL_CLASS
        base = _JAVA_TYPES[self.kind]
        if self.kind in CONTAINER_KINDS and self.read_as is ReadAs.TYPE_REFERENCE:
            inner = self.element.java_type if self.element else java.OBJECT
            return (
                f"{base}<{java.STRING},{inner}>"
                if self.kind is TypeKind.MAP
                else f"{base}<{inner}>"
            )
        return base

    def _accepted_classes(self) -> frozenset[str]:
        if self.kind is TypeKind.ANY:
            return frozenset()
        if self.kind is TypeKind.LIST:
            return java.LIST_CLASSES | set(self.classes)
        if self.kind is TypeKind.SET:
            return java.SET_CLASSES | set(self.classes)
        if self.kind is TypeKind.MAP:
            return java.MAP_CLASSES | set(self.classes)
        if self.kind is TypeKind.POJO and not self.java_class:
            return frozenset(self.classes)
        return frozenset({self.java_type, *self.classes})

    def render(self) -> str:
        """Short text: ``uuid``, ``enum a.b.Stage{A,B}``, ``pojo a.b.Req``, ``list<uuid>``."""
        return self._rendered

    def _render(self) -> str:
        if self.kind is TypeKind.ENUM:
            bodies = f" (bodies: {','.join(self.bodies)})" if self.bodies else ""
            return f"enum {self.java_class}{{{','.join(self.values)}}}{bodies}"
        if self.kind is TypeKind.POJO:
            name = self.java_class or "(class not named)"
            return f"pojo {name}{' (final)' if self.final else ''}"
        if self.kind in CONTAINER_KINDS:
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
    declared: tuple[CatalogType, ...] = ()
    """Enums and POJOs values may hold where the code asks for no particular class (the YAML's
    top-level ``classes:``): whether they are final decides how Jackson writes them."""
    _by_class: dict[str, FlightSpec] = field(init=False, repr=False, compare=False)
    classes: dict[str, CatalogType] = field(init=False, repr=False, compare=False)
    """The enums and POJOs named anywhere in the catalog (keys and ``classes:``), by class."""

    def __post_init__(self) -> None:
        index: dict[str, FlightSpec] = {}
        for spec in self.flights:
            index.setdefault(spec.class_name, spec)
        object.__setattr__(self, "_by_class", index)
        named = [k.type for spec in self.flights for k in (*spec.input, *spec.working)]
        object.__setattr__(self, "classes", catalog_classes([*self.declared, *named]))

    def flight(self, class_name: str) -> FlightSpec | None:
        """The spec of a flight class, or None when the catalog does not know it."""
        return self._by_class.get(class_name)


# ---------------------------------------------------------------------------------------------
# YAML

_TYPE_FIELDS = {
    TypeKind.ENUM: {"class", "values", "bodies"},
    TypeKind.POJO: {"class", "classes", "final"},
    TypeKind.LIST: {"of", "read_as", "classes"},
    TypeKind.SET: {"of", "read_as", "classes"},
    TypeKind.MAP: {"of", "read_as", "classes"},
}
_REQUIRED = {TypeKind.ENUM: ("class", "values")}
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
    unknown = set(doc) - {"version", "flights", "classes"}
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
    return Catalog(specs, source, _load_classes(source, doc.get("classes")))


def _load_classes(source: str, classes: Any) -> tuple[CatalogType, ...]:
    """``classes: {a.b.Name: {type: pojo, final: true}, a.b.Stage: {type: enum, values: […]}}``"""
    if classes is None:
        return ()
    if not isinstance(classes, dict):
        raise CatalogError(f"{source}: 'classes' must map class names to enum or pojo types")
    out = []
    for name, spec in classes.items():
        where = f"{source}: classes {name}"
        if not isinstance(name, str) or not java.is_class_name(name):
            raise CatalogError(f"{where}: a class must be a Java class name with its package")
        body = {"type": spec} if isinstance(spec, str) else spec
        if not isinstance(body, dict) or body.get("type") not in ("enum", "pojo"):
            raise CatalogError(f"{where}: expected type enum or pojo")
        if "class" in body:
            raise CatalogError(f"{where}: the class is the entry's name; leave out 'class'")
        out.append(_load_type(where, {**body, "class": name}))
    return tuple(out)


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
    final = spec.get("final", False)
    if not isinstance(final, bool):
        raise CatalogError(f"{where}: 'final' must be true or false")
    if kind is TypeKind.POJO and "class" not in spec and not final:
        raise CatalogError(
            f"{where}: type pojo needs field 'class' (only a final class may leave it out)"
        )
    java_class = spec.get("class", "")
    if "class" in spec and not (isinstance(java_class, str) and java.is_class_name(java_class)):
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
    values = _names(where, spec, "values", _is_identifier)
    bodies = _names(where, spec, "bodies", _is_identifier)
    if not set(bodies) <= set(values):
        raise CatalogError(f"{where}: 'bodies' may only name constants listed in 'values'")
    return CatalogType(
        kind,
        java_class=java_class,
        values=values,
        element=element,
        read_as=read_as,
        classes=_names(where, spec, "classes", java.is_class_name),
        final=final,
        bodies=bodies,
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
    doc: dict[str, Any] = {"version": 1}
    if catalog.declared:
        doc["classes"] = {}
        for t in catalog.declared:
            body = _dump_type(t)
            body = {"type": body} if isinstance(body, str) else body
            body.pop("class", None)
            doc["classes"][t.java_class] = body
    doc["flights"] = flights
    text = yaml.dump(
        doc,
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
    if t.bodies:
        out["bodies"] = list(t.bodies)
    if t.final:
        out["final"] = True
    if t.element is not None:
        out["of"] = _dump_type(t.element)
    if t.read_as is not ReadAs.CLASS:
        out["read_as"] = t.read_as.value
    if t.classes:
        out["classes"] = list(t.classes)
    return out["type"] if len(out) == 1 else out
