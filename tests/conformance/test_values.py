"""One stored value at a time: repairtool's verdict for the text a real writer stored and the type
the code asks for must be the real reader's verdict, for both reader generations."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repairtool.flightmap import Decoded, ReaderVersion, decode_value
from tests.conformance.compare import Disagreements, type_label, value_label
from tests.conformance.conftest import CASES, DERANDOMIZE, TALLY, Tally
from tests.conformance.javavalues import CLASSES, Case, cases, describe, oracle_type
from tests.conformance.oracle_client import Oracle

READERS = {"legacy": ReaderVersion.LEGACY, "typed": ReaderVersion.TYPED}
CHECK_CLASS = False  # exploration switch: also compare the runtime class of what decodes


def when(stage: str) -> str:
    """The oracle's stage as repairtool names it: rebuilding the map, or at/after get."""
    return "rebuild" if stage == "rebuild" else "get"


BATCH = 40


def compare_values(oracle: Oracle, batch: list[tuple[Case, str]], found: Disagreements) -> None:
    """Write each value with the given writer mapper, read it with both readers, compare."""
    texts = []
    for gen in ("legacy", "modern"):
        mine = [c for c, g in batch if g == gen]
        texts += list(zip(mine, oracle.write([describe(c.value) for c in mine], gen), strict=True))
    items = [(case, text, reader) for case, text in texts for reader in READERS]
    verdicts = oracle.get([(r, text, oracle_type(c.asked)) for c, text, r in items])
    for (case, text, reader), truth in zip(items, verdicts, strict=True):
        found.cases += 1
        ours = decode_value(text, case.asked, READERS[reader], classes=CLASSES)
        ok = isinstance(ours, Decoded)
        if not ok and not truth.ok and when(truth.stage) != ours.when:  # type: ignore[union-attr]
            found.add(
                f"{reader}: asked {type_label(case.asked)}, value {value_label(case.value)}: "
                f"fails at {ours.when} for repairtool, at {truth.stage} for Jackson",  # type: ignore[union-attr]
                f"{text[:200]} {truth.exc.rsplit('.', 1)[-1]}: {truth.msg[:160]}",
            )
        elif (
            CHECK_CLASS
            and ok
            and truth.ok
            and (truth.cls or "null").split("$")[0] != ours.java_class.split("$")[0]
        ):  # type: ignore[union-attr]
            found.add(
                f"{reader}: asked {type_label(case.asked)}, value {value_label(case.value)}: "
                f"runtime class",
                f"{text[:120]} ours {ours.java_class} Jackson {truth.cls}",  # type: ignore[union-attr]
            )
        if ok != truth.ok:
            cls = (
                f"{reader}: asked {type_label(case.asked)}, value {value_label(case.value)}: "
                f"repairtool {'decodes' if ok else 'rejects'}, Jackson "
                f"{'reads it' if truth.ok else 'fails (' + truth.stage + ')'}"
            )
            why = truth.exc.rsplit(".", 1)[-1] + ": " + truth.msg[:160] if not truth.ok else ""
            mine = "" if ok else f" ours: {ours.reason[:160]}"  # type: ignore[union-attr]
            found.add(cls, f"{text[:200]} {why}{mine}")


@settings(
    max_examples=max(1, CASES // (BATCH * 2)),
    deadline=None,
    derandomize=DERANDOMIZE,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.lists(
        st.tuples(cases(), st.sampled_from(["legacy", "modern"])), min_size=BATCH, max_size=BATCH
    )
)
def _per_key_values(batch: list[tuple[Case, str]]) -> None:
    found = Disagreements()
    compare_values(_ORACLE[0], batch, found)
    _TOTAL[0] += found.cases
    TALLY.disagreements["per-key values"] = max(
        TALLY.disagreements["per-key values"], sum(found.counts.values())
    )
    assert not found, found.report()


_ORACLE: list[Oracle] = []
_TOTAL = [0]


def test_per_key_verdicts_match_jackson(oracle: Oracle, tally: Tally) -> None:
    _ORACLE[:] = [oracle]
    _TOTAL[0] = 0
    _per_key_values()
    tally.cases["per-key values"] += _TOTAL[0]
    assert _TOTAL[0] >= CASES // 2


#: Stored texts no writer produces but a hand-edited or re-encoded row may hold.
EDGE_TEXTS = [
    "5.",
    "5 x",
    "5x",
    "truex",
    "true x",
    "nullx",
    '"a"x',
    "{}x",
    "[]x",
    "1e5",
    "-0",
    "01",
    ".5",
    "+1",
    "NaN",
    '"a" "b"',
    " 5",
    "[1,]",
    "'a'",
    '"\\x"',
    "",
    "   ",
    '"1.5"',
    '"-5"',
    '"5."',
    '".5"',
    '"."',
    '" 12 "',
    '"99999999999999999999"',
    '"2021-04-05T10:14:23Z"',
    '"2021-04-05T10:14Z"',
    '"2021-04-05T24:00:00Z"',
    '"2021-04-05T23:59:60Z"',
    '"2021-04-05T10:14:23+01:00"',
    '"2021-02-30T10:14:23Z"',
    '"\\u000e\\u0004"',
    '" MC_WORKSPACE "',
    '"MC_WORKSPACE"',
    "1",
    "3000000000",
    '["java.util.UUID"]',
    '["java.util.UUID",null]',
    '["java.util.UUID","x","y"]',
    '["conformance.model.Stage","MC_WORKSPACE"]',
    '["conformance.model.Operation","CREATE"]',
    '["java.util.ArrayList",["a",1]]',
    '["java.util.Collections$EmptyList",["a"]]',
    '["java.util.Collections$SingletonList",[]]',
    '["java.util.Hashtable",{"a":null}]',
    '["com.google.common.collect.ImmutableMap",{"a":null,"b":"c"}]',
    '["com.google.common.collect.RegularImmutableMap",{}]',
    '["[I",[1,null,3]]',
    '["[Ljava.lang.String;",["a",null]]',
    '["java.lang.Long","5"]',
    '["java.lang.Integer",1.7]',
]
EDGE_TYPES = [
    "string",
    "uuid",
    "int",
    "long",
    "bool",
    "double",
    "instant",
    "bigdecimal",
    "any",
    "optional",
    {"type": "list", "of": "string"},
    {"type": "map", "read_as": "type_reference", "of": "string"},
]


def test_edge_texts_match_jackson(oracle: Oracle, tally: Tally) -> None:
    from repairtool.flightmap import parse_type
    from tests.conformance.javavalues import ENUMS

    asked = [parse_type(t) for t in EDGE_TYPES] + list(ENUMS)
    items = [(text, t, r) for text in EDGE_TEXTS for t in asked for r in READERS]
    verdicts = oracle.get([(r, text, oracle_type(t)) for text, t, r in items])
    found = Disagreements()
    for (text, t, reader), truth in zip(items, verdicts, strict=True):
        found.cases += 1
        ours = decode_value(text, t, READERS[reader], classes=CLASSES)
        if isinstance(ours, Decoded) != truth.ok:
            found.add(f"{reader} {type_label(t)} {text!r}", f"{truth.msg[:120]}")
        elif not truth.ok and when(truth.stage) != ours.when:  # type: ignore[union-attr]
            found.add(f"{reader} {type_label(t)} {text!r}: stage", truth.stage)
    tally.cases["edge texts"] += found.cases
    assert not found, found.report()
