"""Every re-encoding repairtool proposes is read by the target reader — real Jackson — and is the
same Java value as the one the service stored."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repairtool.flightmap import Decoded, ReaderVersion, decode_value, reencode
from tests.conformance.compare import Disagreements, type_label, value_label
from tests.conformance.conftest import CASES, DERANDOMIZE, TALLY, Tally
from tests.conformance.javavalues import CLASSES, Case, cases, describe, oracle_type
from tests.conformance.oracle_client import Oracle

READERS = {"legacy": ReaderVersion.LEGACY, "typed": ReaderVersion.TYPED}
BATCH = 40


def unordered(text: str) -> Any:
    """A canonical rendering with every array's order ignored (sets iterate in hash order)."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return sorted((walk(x) for x in node), key=json.dumps)
        return node

    return walk(json.loads(text))


def compare_reencodings(oracle: Oracle, batch: list[tuple[Case, str]], found: Disagreements) -> int:
    """Returns how many re-encodings were proposed."""
    stored = []
    for gen in ("legacy", "modern"):
        mine = [c for c, g in batch if g == gen]
        stored += list(zip(mine, oracle.write([describe(c.value) for c in mine], gen), strict=True))
    proposals = []
    for case, text in stored:
        for reader, version in READERS.items():
            found.cases += 1
            verdict = decode_value(text, case.asked, version, classes=CLASSES)
            new = reencode(text, case.asked, version, CLASSES)
            if isinstance(verdict, Decoded):
                if new is None:
                    found.add(f"{reader}: a value that decodes is not kept", text[:160])
                continue
            if verdict.reencodable != (new is not None):
                found.add(f"{reader}: finding says reencodable={verdict.reencodable}", text[:160])
            if new is not None:
                proposals.append((case, text, reader, new))
    answers = oracle.batch(
        [
            {
                "op": "reread",
                "reader": reader,
                "text": new,
                "type": oracle_type(case.asked),
                "value": describe(case.value),
                "original_text": text,
            }
            for case, text, reader, new in proposals
        ]
    )
    for (case, text, reader, new), answer in zip(proposals, answers, strict=True):
        label = f"{reader}: asked {type_label(case.asked)}, value {value_label(case.value)}"
        if not answer["ok"]:
            found.add(f"{label}: the re-encoding is rejected", f"{text[:100]} -> {new[:100]}")
        elif unordered(answer["read"]) != unordered(answer["original"]):
            found.add(
                f"{label}: the re-encoding is another value",
                f"{answer['original'][:100]} became {answer['read'][:100]}",
            )
    return len(proposals)


_STATE: dict[str, Any] = {}


@settings(
    max_examples=max(1, CASES // (BATCH * 2 * 4)),
    deadline=None,
    derandomize=DERANDOMIZE,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.lists(
        st.tuples(cases(), st.sampled_from(["legacy", "modern"])), min_size=BATCH, max_size=BATCH
    )
)
def _reencodings(batch: list[tuple[Case, str]]) -> None:
    found = Disagreements()
    _STATE["proposed"] += compare_reencodings(_STATE["oracle"], batch, found)
    _STATE["cases"] += found.cases
    TALLY.disagreements["re-encodings"] = max(
        TALLY.disagreements["re-encodings"], sum(found.counts.values())
    )
    assert not found, found.report()


def test_every_reencoding_reads_back_as_the_same_value(oracle: Oracle, tally: Tally) -> None:
    _STATE.update(oracle=oracle, cases=0, proposed=0)
    _reencodings()
    tally.cases["re-encodings"] += _STATE["cases"]
    assert _STATE["proposed"] >= 50  # the generator does reach values that need re-encoding
