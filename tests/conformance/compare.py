"""Compare repairtool's verdicts with the oracle's, and name the class of each disagreement."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from repairtool.flightmap import CatalogType, TypeKind
from tests.conformance.javavalues import J


def type_label(t: CatalogType) -> str:
    """A short class of a requested type: ``pojo(final)``, ``list<uuid>/type_reference`` …"""
    kind = t.kind.value
    if t.kind is TypeKind.POJO:
        return f"pojo({'final' if t.is_final else 'non-final'})"
    if t.kind is TypeKind.ENUM:
        return "enum(bodies)" if t.bodies else "enum"
    if t.kind in (TypeKind.LIST, TypeKind.SET, TypeKind.MAP):
        inner = type_label(t.element) if t.element is not None else "any"
        return f"{kind}<{inner}>/{t.read_as.value}"
    return kind


def value_label(value: J | None) -> str:
    """A short class of a Java value: ``UUID``, ``List.of[String]``, ``pojo Ref`` …"""
    if value is None:
        return "null"
    if value.t == "pojo":
        return f"pojo {value.cls.rsplit('.', 1)[-1]}"
    if value.t == "enum":
        return f"enum {value.cls.rsplit('.', 1)[-1]}"
    if value.t == "array":
        return f"array {value.cls.rsplit('.', 1)[-1]}"
    if value.t == "Optional":
        return f"Optional[{value_label(value.v)}]"
    if isinstance(value.v, tuple) and value.v and value.t not in ("pojo",):
        first = value.v[0]
        if isinstance(first, tuple):  # map entries
            first = first[1]
        return f"{value.t}[{value_label(first)}]"
    return value.t


@dataclass
class Disagreements:
    """Disagreements by class, with one example each."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    cases: int = 0

    def add(self, cls: str, example: str) -> None:
        self.counts[cls] += 1
        self.examples.setdefault(cls, example)

    def report(self) -> str:
        lines = [f"{sum(self.counts.values())} disagreements in {self.cases} cases:"]
        for cls, n in self.counts.most_common():
            lines.append(f"  {n:5} × {cls}\n          e.g. {self.examples[cls]}")
        return "\n".join(lines)

    def __bool__(self) -> bool:
        return bool(self.counts)


def only_double_digits_differ(ours: str, theirs: str) -> bool:
    """The texts differ only in how a double's digits are written, both denoting the same double
    (JDK 11–18's ``Double.toString`` is not always the shortest; see README): same structure,
    same key order, same values."""

    def parse(text: str) -> Any:
        return json.loads(text, parse_float=float, object_pairs_hook=list)

    try:
        return ours != theirs and parse(ours) == parse(theirs)
    except ValueError:
        return False
