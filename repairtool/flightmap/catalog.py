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

Loading (:mod:`.catalogfile`: pydantic models through :mod:`repairtool.datafile`) is strict: a key
given twice, an unknown kind, an unknown or missing field is a :class:`CatalogError` whose
one-line message names the file, the flight class and the key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from . import java
from .errors import CatalogError
from .kinds import SOURCES as SOURCES
from .kinds import ReadAs as ReadAs
from .kinds import Source as Source
from .kinds import TypeKind as TypeKind

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
    _hash: int = field(init=False, repr=False, compare=False)

    def __hash__(self) -> int:
        # the hash dataclass would compute on every call, computed once (the decoder's memo
        # hashes the type of every value it checks)
        return self._hash

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
        set_field(
            self,
            "_hash",
            hash(
                (
                    self.kind,
                    self.java_class,
                    self.values,
                    self.element,
                    self.read_as,
                    self.classes,
                    self.final,
                    self.bodies,
                )
            ),
        )

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
    # Derived in __post_init__ (the decoder asks for them for every flight):
    _keys: dict[str, dict[str, KeySpec]] = field(init=False, repr=False, compare=False)
    _required: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _required_set: dict[str, frozenset[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keys = {
            source: {spec.key: spec for spec in specs}
            for source, specs in (("input", self.input), ("working", self.working))
        }
        object.__setattr__(self, "_keys", keys)
        required = {
            source: tuple(k for k, spec in by_key.items() if not spec.optional)
            for source, by_key in keys.items()
        }
        object.__setattr__(self, "_required", required)
        object.__setattr__(
            self, "_required_set", {source: frozenset(ks) for source, ks in required.items()}
        )

    def keys(self, source: Source) -> dict[str, KeySpec]:
        """The keys of the input (``flightinput``) or working map (``flightworking``)."""
        return dict(self._keys["input" if source == "input" else "working"])

    def key_specs(self, source: Source) -> Mapping[str, KeySpec]:
        """:meth:`keys` without the copy (read only)."""
        return self._keys["input" if source == "input" else "working"]

    def required(self, source: Source) -> tuple[str, ...]:
        """The keys of ``source`` that are not optional, in catalog order."""
        return self._required["input" if source == "input" else "working"]

    def required_set(self, source: Source) -> frozenset[str]:
        """:meth:`required` as a set."""
        return self._required_set["input" if source == "input" else "working"]


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
# YAML (read by :mod:`.catalogfile`; imported when needed: pydantic takes ~0.2 s to import)


def load_catalog(path: str | Path) -> Catalog:
    """Load and validate a catalog file. Raises :class:`CatalogError` (one line)."""
    from .catalogfile import load  # lazy: pydantic only for commands that read a catalog

    return _catalog(load(path), str(path))


def load_builtin_catalog(name: str) -> Catalog:
    """Load a catalog shipped in ``repairtool/catalogs`` (e.g. ``workspace-manager``)."""
    ref = resources.files("repairtool").joinpath("catalogs", f"{name}.yaml")
    if not ref.is_file():
        raise CatalogError(f"repairtool/catalogs/{name}.yaml: no such built-in catalog")
    text = ref.read_text(encoding="utf-8")
    source = f"repairtool/catalogs/{name}.yaml"
    # its snapshot when it was made from this text (no pydantic: 0.2 s on every orphans run)
    snapped = load_snapshot(name, text, source)
    return snapped if snapped is not None else loads_catalog(text, source)


#: a built-in catalog's snapshot (`repairtool.flightmap.snapshot` writes them)
SNAPSHOT_SUFFIX = ".snapshot.json"


def yaml_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def catalog_from_snapshot(doc: dict[str, Any], source: str) -> Catalog:
    """A catalog from its snapshot (`repairtool.flightmap.snapshot.to_plain`)."""

    def keys(items: list[dict[str, Any]]) -> tuple[KeySpec, ...]:
        return tuple(
            KeySpec(k["key"], _snapshot_type(k["type"]), k["optional"], k["inferred"], k["note"])
            for k in items
        )

    flights = tuple(
        FlightSpec(f["class_name"], keys(f["input"]), keys(f["working"])) for f in doc["flights"]
    )
    return Catalog(flights, source, tuple(_snapshot_type(t) for t in doc["declared"]))


def _snapshot_type(d: dict[str, Any]) -> CatalogType:
    return CatalogType(
        TypeKind(d["kind"]),
        d["java_class"],
        tuple(d["values"]),
        _snapshot_type(d["element"]) if d["element"] is not None else None,
        ReadAs(d["read_as"]),
        tuple(d["classes"]),
        d["final"],
        tuple(d["bodies"]),
    )


def load_snapshot(name: str, text: str, source: str) -> Catalog | None:
    """The built-in catalog `name` from its snapshot, or None when there is none or it was made
    from another YAML text than `text`."""
    ref = resources.files("repairtool").joinpath("catalogs", f"{name}{SNAPSHOT_SUFFIX}")
    if not ref.is_file():
        return None
    doc = json.loads(ref.read_text(encoding="utf-8"))
    if doc.get("yaml_sha256") != yaml_hash(text):
        return None
    return catalog_from_snapshot(doc, source)


def loads_catalog(text: str, source: str = "<string>") -> Catalog:
    """Parse and validate catalog YAML; ``source`` names it in error messages."""
    from .catalogfile import loads  # lazy: pydantic only for commands that read a catalog

    return _catalog(loads(text, source), source)


def parse_type(spec: Any, where: str = "type") -> CatalogType:
    """One type in catalog notation: ``"uuid"`` or ``{"type": "enum", "class": …, …}``.

    Raises :class:`CatalogError` with ``where`` as the message's prefix.
    """
    from .catalogfile import parse  # lazy: pydantic only for commands that read a catalog

    return _type(parse(spec, where))


def _type(doc: Any) -> CatalogType:
    """A validated type model of :mod:`.catalogfile` (its fields are named as here)."""
    fields = {name: getattr(doc, name) for name in type(doc).model_fields}
    of = fields.pop("of", None)
    return CatalogType(TypeKind(fields.pop("type")), element=of and _type(of), **fields)


def _catalog(doc: Any, source: str) -> Catalog:
    """A validated catalog model of :mod:`.catalogfile`."""

    def keys(flight: Any, section: Source) -> tuple[KeySpec, ...]:
        found = getattr(flight, section, {})
        return tuple(
            KeySpec(key, _type(k.spec), k.optional, k.inferred, k.note) for key, k in found.items()
        )

    flights = tuple(
        FlightSpec(n, keys(f, "input"), keys(f, "working")) for n, f in doc.flights.items()
    )
    return Catalog(flights, source, tuple(_type(t) for t in doc.classes.values()))


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
    text = _to_yaml(doc)
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    return comment + text


def _to_yaml(doc: dict[str, Any]) -> str:
    """`doc` as YAML: block mappings, flow lists (``values: [A, B]``)."""
    import yaml  # lazy: only `decode --draft-catalog` writes YAML; detection never imports it

    class Dumper(yaml.SafeDumper):
        pass

    def flow_list(dumper: yaml.SafeDumper, items: list[Any]) -> yaml.Node:
        return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=True)

    Dumper.add_representer(list, flow_list)
    text: str = yaml.dump(
        doc, Dumper=Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100
    )
    return text


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
