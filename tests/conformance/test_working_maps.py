"""``FlightMapUtils.fromJson`` (a ≥0.0.61 reader converting a legacy whole-map working map): the
per-key texts repairtool derives must be byte for byte those real Jackson writes."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repairtool.flightmap import dumps, java
from repairtool.flightmap.jackson import legacy_items
from repairtool.flightmap.scalars import Reject
from repairtool.flightmap.semantics import Context, read_object
from repairtool.flightmap.working import per_key_form
from tests.conformance.compare import Disagreements, value_label
from tests.conformance.conftest import CASES, DERANDOMIZE, TALLY, Tally
from tests.conformance.javavalues import CLASSES, Case, cases, describe
from tests.conformance.oracle_client import Oracle

MAPS_PER_BATCH = 20


def canonical(text: str | None) -> Any:
    """A text with the elements of every set wrapper sorted: a HashSet read back is iterated in
    the JVM's hash order (identity hashes for POJOs), which no model can predict."""
    if text is None:
        return None

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            items = [walk(x) for x in node]
            if len(items) == 2 and isinstance(items[0], str) and items[0] in java.SET_CLASSES:
                return [items[0], sorted(items[1], key=json.dumps)]
            return items
        return node

    return walk(json.loads(text))


def converted(whole: str) -> dict[str, str | None]:
    """Key → the text repairtool says fromJson writes (None: the value does not read)."""
    cx = Context(guava=True, classes=CLASSES)
    out: dict[str, str | None] = {}
    for key, node in legacy_items(whole).items():
        try:
            read_object(node, cx)
        except Reject:
            out[key] = None
            continue
        out[key] = dumps(per_key_form(node, cx))
    return out


def compare_conversions(oracle: Oracle, maps: list[list[Case]], found: Disagreements) -> None:
    wholes = oracle.write_map([[(c.key, describe(c.value)) for c in m] for m in maps])
    answers = oracle.read_maps(
        [
            {"reader": "typed", "source": "working", "rows": {}, "json": w, "gets": {}}
            for w in wholes
        ]
    )
    for entries, whole, answer in zip(maps, wholes, answers, strict=True):
        ours = converted(whole)
        truth: dict[str, Any] = dict(answer["texts"])
        for key in answer["rebuild_failures"]:
            truth[key] = None
        for case in entries:
            found.cases += 1
            if canonical(ours.get(case.key)) != canonical(truth.get(case.key)):
                found.add(
                    f"fromJson of {value_label(case.value)}",
                    f"{whole[:200]!r}: ours {ours.get(case.key)!r:.120} Jackson "
                    f"{truth.get(case.key)!r:.120}",
                )


def _maps() -> st.SearchStrategy[list[list[Case]]]:
    one = st.lists(cases(), min_size=1, max_size=5).map(
        lambda xs: [Case(f"k{i}", c.value, c.asked) for i, c in enumerate(xs)]
    )
    return st.lists(one, min_size=MAPS_PER_BATCH, max_size=MAPS_PER_BATCH)


_STATE: dict[str, Any] = {}


@settings(
    max_examples=max(1, CASES // (MAPS_PER_BATCH * 3 * 4)),
    deadline=None,
    derandomize=DERANDOMIZE,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(_maps())
def _conversions(maps: list[list[Case]]) -> None:
    found = Disagreements()
    compare_conversions(_STATE["oracle"], maps, found)
    _STATE["cases"] += found.cases
    TALLY.disagreements["fromJson conversions"] = max(
        TALLY.disagreements["fromJson conversions"], sum(found.counts.values())
    )
    assert not found, found.report()


def test_from_json_conversion_is_byte_identical(oracle: Oracle, tally: Tally) -> None:
    _STATE.update(oracle=oracle, cases=0)
    _conversions()
    tally.cases["fromJson conversions"] += _STATE["cases"]
    assert _STATE["cases"] >= CASES // 8


#: found by a random `inv conformance --cases 20000` run (2026-12-01): equal elements in a set
EQUAL_ELEMENTS = (
    '["java.util.HashMap",{'
    '"k0":["java.util.LinkedHashSet",[["java.math.BigDecimal",1E+3],"ya29.a0Af-token",'
    '["java.math.BigDecimal",1E+3],["java.lang.Long",-23486]]],'
    '"k1":["java.util.HashSet",["a","x","a",1,["java.lang.Integer",1],["java.lang.Long",1]]],'
    '"k2":["java.util.HashSet",[["java.math.BigDecimal",1E+3],["java.math.BigDecimal",1000],'
    '["java.math.BigDecimal",1.0E+3],0.0,-0.0,["java.lang.Double",0.0]]],'
    '"k3":["java.util.TreeSet",[["java.math.BigDecimal",1E+3],["java.math.BigDecimal",1000]]],'
    '"k4":["java.util.HashSet",[["java.util.UUID","8F0A3C55-1B2D-4E6F-8A9B-0C1D2E3F4A5B"],'
    '["java.util.UUID","8f0a3c55-1b2d-4e6f-8a9b-0c1d2e3f4a5b"],null,null]]'
    "}]"
)


def test_a_set_keeps_one_of_the_elements_java_holds_equal_as_jacksons_does(oracle: Oracle) -> None:
    (answer,) = oracle.read_maps(
        [{"reader": "typed", "source": "working", "rows": {}, "json": EQUAL_ELEMENTS, "gets": {}}]
    )
    truth = answer["texts"]
    assert not answer["rebuild_failures"]
    # strings and boxed numbers by type; BigDecimal by value and scale (a TreeSet: by value);
    # doubles by bits; UUIDs by value; one null
    assert [len(json.loads(truth[k])[1]) for k in ("k0", "k1", "k2", "k3", "k4")] == [3, 4, 5, 1, 2]
    ours = converted(EQUAL_ELEMENTS)
    assert {k: canonical(v) for k, v in ours.items()} == {k: canonical(v) for k, v in truth.items()}
