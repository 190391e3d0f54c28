"""One stored value at a time: repairtool's verdict for the text a real writer stored and the type
the code asks for must be the real reader's verdict, for both reader generations."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repairtool.flightmap import Decoded, ReaderVersion, decode_value
from tests.conformance.compare import Disagreements, type_label, value_label
from tests.conformance.conftest import CASES, Tally
from tests.conformance.javavalues import Case, cases, describe, oracle_type
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
        ours = decode_value(text, case.asked, READERS[reader])
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
    derandomize=True,
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
    assert not found, found.report()


_ORACLE: list[Oracle] = []
_TOTAL = [0]


def test_per_key_verdicts_match_jackson(oracle: Oracle, tally: Tally) -> None:
    _ORACLE[:] = [oracle]
    _TOTAL[0] = 0
    _per_key_values()
    tally.cases["per-key values"] += _TOTAL[0]
    assert _TOTAL[0] >= CASES // 2
