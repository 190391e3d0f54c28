"""``catalog draft`` on rows real Jackson wrote: under the drafted catalog nothing decodes falsely,
and a guess is always said to be one.

For rows of generated flight classes (several flights per class, each key holding values of one
Java type), the draft must give a catalog where, for every stored value and both readers:

* nothing decodes falsely — when repairtool decodes a value under the drafted type, real
  Jackson asked for that drafted type reads it too;
* a key the draft does not mark ``inferred`` is decoded exactly as Jackson reads it;
* where Jackson's verdict for the drafted type differs from its verdict for the value's true
  type, the key is marked ``inferred`` with a note (the draft never guesses silently);
* a key holding Java arrays says that the catalog cannot express arrays.

Not generated here, because rows cannot show it: an ``Optional`` is stored as its content in an
Object context, which for a String/Integer/Double/Boolean or a non-final class (and for every
element of a collection) is exactly the bare value's text; only an Optional of a final class
(UUID, Long, Instant, an enum) carries a type id that betrays it (README: what the catalog
cannot express).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repairtool.flightmap import CatalogType, Decoded, TypeKind, decode_value, draft_catalog
from tests.conformance.compare import Disagreements, type_label, value_label
from tests.conformance.conftest import CASES, DERANDOMIZE, TALLY, Tally
from tests.conformance.javavalues import J, describe, oracle_type, types, values_for
from tests.conformance.oracle_client import Oracle
from tests.conformance.test_values import READERS

#: Optional contents whose per-key form shows a type id a bare value would not have
TELLING = {"UUID", "Long", "Instant", "Short", "Byte", "Float"}


def _no_bare_optional(value: J | None) -> bool:
    if value is None or value.t != "Optional":
        return True
    inner = value.v
    return inner is not None and (
        inner.t in TELLING or (inner.t == "enum" and inner.cls.endswith(".Stage"))
    )


def _no_optional_elements(t: CatalogType) -> bool:
    return t.kind is not TypeKind.ANY and all(
        e.kind is not TypeKind.OPTIONAL for e in t.walk() if e is not t
    )


@dataclass(frozen=True)
class DraftKey:
    key: str
    type: CatalogType
    values: tuple[J | None, ...]


@st.composite
def flight_class(draw: st.DrawFn) -> tuple[str, list[DraftKey]]:
    keys = []
    for i in range(draw(st.integers(1, 4))):
        t = draw(types().filter(_no_optional_elements))
        values = draw(st.lists(values_for(t).filter(_no_bare_optional), min_size=2, max_size=5))
        keys.append(DraftKey(f"k{i}", t, tuple(values)))
    return draw(st.sampled_from(["legacy", "modern"])), keys


def _mentions_arrays(values: tuple[J | None, ...]) -> bool:
    return any(v is not None and v.t == "array" for v in values)


def compare_draft(
    oracle: Oracle, classes: list[tuple[str, list[DraftKey]]], found: Disagreements
) -> None:
    rows: list[tuple[str, str, str]] = []
    truth_types: dict[tuple[str, str], CatalogType] = {}
    for n, (gen, keys) in enumerate(classes):
        cls = f"conformance.flight.Drafted{n}Flight"
        for k in keys:
            texts = oracle.write([describe(v) for v in k.values], gen)
            rows += [(cls, k.key, text) for text in texts]
            truth_types[(cls, k.key)] = k.type
    drafted = draft_catalog(rows)
    items: list[tuple[str, str, str, str, CatalogType, CatalogType]] = []
    for cls, key, text in rows:
        spec = drafted.flight(cls)
        assert spec is not None
        keyspec = spec.keys("input")[key]
        for reader in READERS:
            items.append((cls, key, text, reader, keyspec.type, truth_types[(cls, key)]))
    requests = []
    for _, _, text, reader, mine, true in items:
        asked = mine
        if mine.kind is TypeKind.POJO and not mine.java_class:
            # "a final class whose name rows do not show": the oracle asks for the real one,
            # which must be a final class for the draft to be right
            asked = true
            if not (true.kind is TypeKind.POJO and true.is_final):
                found.add("drafted a final class for what is not one", text[:160])
        requests += [(reader, text, oracle_type(asked)), (reader, text, oracle_type(true))]
    verdicts = iter(oracle.get(requests))
    values = {
        (f"conformance.flight.Drafted{n}Flight", k.key): k.values
        for n, (_, keys) in enumerate(classes)
        for k in keys
    }
    for cls, key, text, reader, mine, true in items:
        found.cases += 1
        under_draft, under_truth = next(verdicts), next(verdicts)
        keyspec = drafted.flight(cls).keys("input")[key]  # type: ignore[union-attr]
        ours = decode_value(text, mine, READERS[reader], classes=drafted.classes)
        label = f"{reader}: true {type_label(true)}, drafted {type_label(mine)}"
        if isinstance(ours, Decoded) and not under_draft.ok:
            found.add(f"{label}: decodes falsely", f"{text[:120]} {under_draft.msg[:100]}")
        elif not keyspec.inferred and isinstance(ours, Decoded) != under_draft.ok:
            found.add(f"{label}: not inferred, yet the verdict differs", text[:160])
        if under_draft.ok != under_truth.ok and not (keyspec.inferred and keyspec.note):
            found.add(f"{label}: a silent guess (Jackson's verdict differs)", text[:160])
    for (cls, key), vals in values.items():
        keyspec = drafted.flight(cls).keys("input")[key]  # type: ignore[union-attr]
        if _mentions_arrays(vals) and "array" not in keyspec.note:
            found.add("arrays seen, but the note does not say so", f"{key}: {keyspec.note}")


_STATE: dict[str, Any] = {}


@settings(
    max_examples=max(1, CASES // (8 * 3 * 3 * 2 * 3)),
    deadline=None,
    derandomize=DERANDOMIZE,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(flight_class(), min_size=8, max_size=8))
def _drafts(classes: list[tuple[str, list[DraftKey]]]) -> None:
    found = Disagreements()
    compare_draft(_STATE["oracle"], classes, found)
    _STATE["cases"] += found.cases
    TALLY.record("catalog draft", found.counts)
    assert not found, found.report()


def test_drafted_catalog_decodes_nothing_falsely(oracle: Oracle, tally: Tally) -> None:
    _STATE.update(oracle=oracle, cases=0)
    _drafts()
    tally.cases["catalog draft"] += _STATE["cases"]
    assert _STATE["cases"] >= CASES // 10


__all__ = ["value_label"]
