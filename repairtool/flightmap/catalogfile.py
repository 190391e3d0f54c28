"""Reading a type catalog file: YAML with duplicate keys refused, validated by pydantic models
(one per kind, unknown fields forbidden) through the one data-file loader
(:mod:`repairtool.datafile`), then built by :mod:`.catalog` into its frozen dataclasses.

Every problem is a one-line :class:`CatalogError` in the catalog's own words, naming the file,
the flight class, the key and what was expected::

    cat.yaml: flight a.b.F: input key stage: type enum needs field 'class'
    cat.yaml: flight a.b.F: working key ids: of: unknown type kind 'uid' (expected one of: …)

:mod:`.catalog` imports this module when a catalog is read, so that importing the FlightMap
package (every database command does, for the secrets masker) does not import pydantic.
"""

from __future__ import annotations

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

from repairtool.datafile import read_text, validate
from repairtool.yamlstrict import UniqueKeyLoader

from . import java
from .errors import CatalogError
from .kinds import SOURCES, ReadAs, TypeKind

_KINDS = ", ".join(kind.value for kind in TypeKind)


def _problem(message: str) -> PydanticCustomError:
    """A validation error whose message is the whole problem (no placeholders: no context)."""
    return PydanticCustomError("catalog", message)


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
    """A kind's fields, named as in :class:`.catalog.CatalogType` (``class``: ``java_class``)."""

    model_config = {"extra": "forbid", "strict": True, "frozen": True}
    _names = field_validator("values", "bodies", "classes", check_fields=False)(_names)


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


class CatalogDoc(BaseModel):
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


def load(path: str | Path) -> CatalogDoc:
    """A catalog file, validated (:func:`.catalog.load_catalog` builds the catalog)."""
    return loads(read_text(Path(path), str(path), CatalogError), str(path))


def loads(text: str, source: str) -> CatalogDoc:
    """Catalog YAML, validated; ``source`` names it in error messages."""
    try:
        doc = yaml.load(text, Loader=UniqueKeyLoader)
        return validate(CatalogDoc, doc, shown=source, error=CatalogError, explain=_explain)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or err.__class__.__name__
        if "recursive" in problem:  # an anchor inside itself (the strict loader refuses it)
            raise CatalogError(f"{source}: nested too deeply, or a YAML anchor loops") from None
        raise CatalogError(f"{source}: invalid YAML{where}: {problem}") from None
    except RecursionError:  # PyYAML recurses: a file nested thousands deep
        raise CatalogError(f"{source}: nested too deeply, or a YAML anchor loops") from None


def parse(spec: Any, where: str) -> BaseModel:
    """One type in catalog notation, validated; errors start with ``where``."""
    doc = validate(_Type, {"spec": spec}, shown=where, error=CatalogError, explain=_explain)
    return doc.spec
