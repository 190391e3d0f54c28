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

Loading is strict (pydantic models, one per kind, through :mod:`repairtool.datafile`): a key
given twice, an unknown kind, an unknown or missing field is a :class:`CatalogError` whose
one-line message names the file, the flight class and the key.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from repairtool.datafile import UniqueKeyLoader, read_text, validate

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
# YAML: parsed with duplicate keys refused, validated by pydantic models (the one data loader,
# :mod:`repairtool.datafile`), then built into the frozen dataclasses above.

_KINDS = ", ".join(kind.value for kind in TypeKind)


def _problem(message: str) -> PydanticCustomError:
    """A validation error whose message is the whole problem."""
    return PydanticCustomError("catalog", message.replace("{", "{{").replace("}", "}}"), {})


def _java_name(problem: str) -> AfterValidator:
    def check(name: str) -> str:
        if not java.is_class_name(name):
            raise _problem(problem)
        return name

    return AfterValidator(check)


def _names(items: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
    valid = java.is_class_name if info.field_name == "classes" else str.isidentifier
    bad = [item for item in items if not valid(item)]
    if bad:
        raise _problem(f"'{info.field_name}' has an invalid entry {bad[0]!r}")
    if len(set(items)) != len(items):
        raise _problem(f"'{info.field_name}' lists an entry twice")
    return items


def _shorthand(spec: Any) -> Any:
    """``uuid`` is ``{type: uuid}``; anything but a kind or a mapping is refused here."""
    if not isinstance(spec, str | dict):
        raise _problem(f"expected a kind ({_KINDS}) or a mapping with 'type'")
    return {"type": spec} if isinstance(spec, str) else spec


ClassName = Annotated[str, _java_name("'class' must be a Java class name with its package")]
Names = Annotated[tuple[str, ...], Field(strict=False)]  # a YAML list (of strict strings)
_Scalars = Literal["string", "uuid", "int", "long", "bool", "double", "instant", "bigdecimal"]


class _Kind(BaseModel):
    """One kind's fields, named as in :class:`CatalogType` (``class`` is ``java_class``)."""

    model_config = {"extra": "forbid", "strict": True, "frozen": True}
    _names = field_validator("values", "bodies", "classes", check_fields=False)(_names)

    def build(self) -> CatalogType:
        fields = {name: getattr(self, name) for name in type(self).model_fields}
        of = fields.pop("of", None)
        return CatalogType(TypeKind(fields.pop("type")), element=of and of.build(), **fields)


class _Scalar(_Kind):
    type: _Scalars | Literal["optional", "any"]


class _Enum(_Kind):
    type: Literal["enum"]
    java_class: ClassName = Field(alias="class")
    values: Names
    bodies: Names = ()

    @model_validator(mode="after")
    def _constants(self) -> _Enum:
        if not self.values:
            raise _problem("'values' must list the enum's constants")
        if not set(self.bodies) <= set(self.values):
            raise _problem("'bodies' may only name constants listed in 'values'")
        return self


class _Pojo(_Kind):
    type: Literal["pojo"]
    java_class: ClassName = Field("", alias="class")
    classes: Names = ()
    final: bool = False

    @model_validator(mode="after")
    def _named(self) -> _Pojo:
        if not self.java_class and not self.final:
            raise _problem("type pojo needs field 'class' (only a final class may leave it out)")
        return self


class _Container(_Kind):
    type: Literal["list", "set", "map"]
    of: _TypeDoc | None = None
    read_as: ReadAs = Field(ReadAs.CLASS, strict=False)
    classes: Names = ()


_TypeDoc = Annotated[
    _Scalar | _Enum | _Pojo | _Container, Field(discriminator="type"), BeforeValidator(_shorthand)
]
_Container.model_rebuild()


class _Type(BaseModel):
    """One type on its own (:func:`parse_type`); ``spec`` names no field in messages."""

    model_config = _Kind.model_config
    spec: _TypeDoc


class _Key(_Type):
    """A key: its type, in one mapping with ``optional``, ``inferred`` and ``note``."""

    optional: bool = False
    inferred: bool = False
    note: str = ""

    @model_validator(mode="before")
    @classmethod
    def _split(cls, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            return {"spec": data}
        flags = {name: data[name] for name in ("optional", "inferred", "note") if name in data}
        return {**flags, "spec": {k: v for k, v in data.items() if k not in flags}}


Keys = Annotated[dict[str, _Key], BeforeValidator(lambda keys: {} if keys is None else keys)]


class _Flight(BaseModel):
    model_config = _Kind.model_config
    input: Keys = {}
    working: Keys = {}


class _CatalogDoc(BaseModel):
    model_config = _Kind.model_config
    version: Literal[1] = 1
    classes: dict[ClassName, _TypeDoc] = {}
    flights: dict[
        Annotated[str, _java_name("a flight class must be a Java class name")], _Flight | None
    ]

    @model_validator(mode="before")
    @classmethod
    def _declared(cls, doc: Any) -> Any:
        """``classes: {a.b.Name: {type: pojo, …}}``: the entry's name is its ``class``."""
        if not isinstance(doc, dict) or not isinstance(doc.get("classes"), dict):
            return doc
        classes = {}
        for name, spec in doc["classes"].items():
            body = {"type": spec} if isinstance(spec, str) else spec
            if not isinstance(body, dict) or body.get("type") not in ("enum", "pojo"):
                raise _problem(f"classes {name}: expected type enum or pojo")
            if "class" in body:
                raise _problem(f"classes {name}: the class is the entry's name; leave out 'class'")
            classes[name] = {**body, "class": name}
        return {**doc, "classes": classes}

    def build(self, source: str) -> Catalog:
        def keys(flight: _Flight | None, section: Source) -> tuple[KeySpec, ...]:
            found = getattr(flight, section, {})
            return tuple(
                KeySpec(key, k.spec.build(), k.optional, k.inferred, k.note)
                for key, k in found.items()
            )

        flights = tuple(
            FlightSpec(n, keys(f, "input"), keys(f, "working")) for n, f in self.flights.items()
        )
        return Catalog(flights, source, tuple(t.build() for t in self.classes.values()))


_MUST = {
    **dict.fromkeys(("optional", "inferred", "final"), "be true or false"),
    **dict.fromkeys(("values", "bodies", "classes"), "be a list of strings (quote YES/NO/ON/OFF)"),
    **dict.fromkeys(("input", "working"), "map keys to types"),
    "version": "be 1 (unsupported catalog version)",
    "flights": "map flight class names to their keys",
    "note": "be a string",
    "class": "be a Java class name with its package",
    "read_as": "be class or type_reference",
}


def _explain(err: ErrorDetails) -> str:
    """One pydantic error in the catalog's words: ``flight F: input key k: of: <problem>``."""
    loc, where, kind, name = list(err["loc"]), [], "", ""
    if loc[:1] in (["flights"], ["classes"]) and len(loc) > 1:
        where.append(f"{'flight' if loc[0] == 'flights' else 'classes'} {loc[1]}")
        loc = loc[2:]
        if len(loc) > 1 and loc[0] in SOURCES:
            where.append(f"{loc[0]} key {loc[1]}")
            loc = loc[2:]
    tag_next = where[:1] != [] and where[0].startswith("classes")  # a union's loc names the kind
    for part in loc:
        if part in ("spec", "of"):
            where += ["of"] if part == "of" else []
            kind, tag_next = "", True
        elif isinstance(part, str):
            kind, name, tag_next = (part, name, False) if tag_next else (kind, part, False)
    problem = f"{name!r} must {_MUST[name]}" if name in _MUST else "expected a mapping"
    if err["type"] == "extra_forbidden":
        problem = f"unknown top-level field {name!r}"
        if where:
            problem = (
                f"field {name!r} is not allowed for type {kind}"
                if kind
                else (f"unknown field {name!r} (expected input, working)")
            )
    elif err["type"] == "missing":
        problem = f"type {kind} needs field {name!r}" if kind else f"missing field {name!r}"
    elif err["type"] == "union_tag_not_found":
        problem = "missing field 'type'"
    elif err["type"] == "union_tag_invalid":
        tag = str((err.get("ctx") or {}).get("tag"))[:40]
        problem = f"unknown type kind {tag!r} (expected one of: {_KINDS})"
    elif err["type"] in ("recursion_loop", "recursion_depth_exceeded"):
        where, problem = where[:2], "nested too deeply, or a YAML anchor loops"
    elif err["type"] == "catalog":
        problem = err["msg"]
    elif name == "classes" and not where:
        problem = "'classes' must map class names to enum or pojo types"
    elif name == "[key]":
        problem = "a key must be a string (quote it)"
    elif not name:
        problem += " with 'input' and/or 'working'"
    return ": ".join([*where, problem])


def load_catalog(path: str | Path) -> Catalog:
    """Load and validate a catalog file. Raises :class:`CatalogError` (one line)."""
    return loads_catalog(read_text(Path(path), str(path), CatalogError), str(path))


def load_builtin_catalog(name: str) -> Catalog:
    """Load a catalog shipped in ``repairtool/catalogs`` (e.g. ``workspace-manager``)."""
    ref = resources.files("repairtool").joinpath("catalogs", f"{name}.yaml")
    if not ref.is_file():
        raise CatalogError(f"repairtool/catalogs/{name}.yaml: no such built-in catalog")
    return loads_catalog(ref.read_text(encoding="utf-8"), f"repairtool/catalogs/{name}.yaml")


def loads_catalog(text: str, source: str = "<string>") -> Catalog:
    """Parse and validate catalog YAML; ``source`` names it in error messages."""
    try:
        doc = yaml.load(text, Loader=UniqueKeyLoader)
        valid = validate(_CatalogDoc, doc, shown=source, error=CatalogError, explain=_explain)
        return valid.build(source)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or err.__class__.__name__
        if "recursive" in problem:  # an anchor inside itself (the strict loader refuses it)
            raise CatalogError(f"{source}: nested too deeply, or a YAML anchor loops") from None
        raise CatalogError(f"{source}: invalid YAML{where}: {problem}") from None
    except RecursionError:  # PyYAML and the type builder recurse: a file nested thousands deep
        raise CatalogError(f"{source}: nested too deeply, or a YAML anchor loops") from None


def parse_type(spec: Any, where: str = "type") -> CatalogType:
    """One type in catalog notation: ``"uuid"`` or ``{"type": "enum", "class": …, …}``.

    Raises :class:`CatalogError` with ``where`` as the message's prefix.
    """
    doc = validate(_Type, {"spec": spec}, shown=where, error=CatalogError, explain=_explain)
    return doc.spec.build()


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
