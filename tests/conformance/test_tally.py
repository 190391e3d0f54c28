"""The conformance summary adds up what each pytest-xdist worker tallied."""

from __future__ import annotations

from collections import Counter

from tests.conformance.tally import Tally


def test_the_summary_adds_up_the_workers_tallies() -> None:
    first, second, controller = Tally(), Tally(), Tally()
    first.cases["per-key values"] += 2500
    first.record("per-key values", Counter())
    second.cases["re-encodings"] += 2400
    second.cases["edge texts"] += 1540
    second.record("re-encodings", Counter({"String": 2, "Long": 1}))
    second.notes.append("sandbox writer: 10 maps")
    for worker in (first, second):
        controller.merge(worker.dumps())
    assert controller.summary() == [
        "conformance: 6440 cases compared with real Jackson, 3 disagreements;"
        " edge texts: 1540; per-key values: 2500; re-encodings: 2400",
        "conformance: sandbox writer: 10 maps",
    ]


def test_a_lone_process_summary_is_its_own_tally() -> None:
    alone = Tally()
    alone.cases["catalog draft"] += 5000
    assert alone.summary() == [
        "conformance: 5000 cases compared with real Jackson, 0 disagreements; catalog draft: 5000"
    ]
