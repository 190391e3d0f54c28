"""The conformance tally: cases compared with real Jackson and disagreements found, summed over
the session and printed at its end ("conformance: N cases compared with real Jackson, …").

A plugin (registered by ``tests/conftest.py``) rather than hooks of the conformance conftest:
under pytest-xdist the controller collects nothing, so it never loads that conftest, and the
tallies live in the workers. Each worker hands its tally to the controller through
``workeroutput``; the controller adds them up and prints the one summary. Every tallying test
compares its cases inside one worker, so the sum counts every case once.

A session in which a tallying test passed but no case reached the summary fails: a summary that
silently says nothing (or 0 cases) would hide a broken hand-over.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

#: The key under which a pytest-xdist worker hands its tally to the controller.
WORKER_OUTPUT_KEY = "stairway_conformance_tally"
#: The user property the ``tally`` fixture puts on a test that adds to the tally.
TALLYING = "conformance_tally"


@dataclass
class Tally:
    """Cases compared with the oracle and disagreements found, per test."""

    cases: Counter[str] = field(default_factory=Counter)
    disagreements: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    #: Tallying tests that passed (seen by the process that prints the summary).
    passed: int = 0

    def record(self, name: str, counts: Counter[str]) -> None:
        """Disagreements one batch found (hypothesis replays a failing batch while it shrinks)."""
        self.disagreements[name] = max(self.disagreements[name], sum(counts.values()))

    def dumps(self) -> str:
        return json.dumps(
            {"cases": self.cases, "disagreements": self.disagreements, "notes": self.notes}
        )

    def merge(self, text: str) -> None:
        """Add a tally another process (a pytest-xdist worker) wrote with ``dumps()``."""
        other = json.loads(text)
        self.cases.update(Counter(other["cases"]))
        self.disagreements.update(Counter(other["disagreements"]))
        self.notes.extend(other["notes"])

    def summary(self) -> list[str]:
        total = sum(self.cases.values())
        wrong = sum(self.disagreements.values())
        return [
            f"conformance: {total} cases compared with real Jackson, {wrong} disagreements"
            + "".join(f"; {name}: {n}" for name, n in sorted(self.cases.items()))
        ] + [f"conformance: {note}" for note in self.notes]


TALLY = Tally()


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count passed tallying tests (in the controller the workers' reports arrive here too)."""
    tallying = any(  # a worker's tuples may arrive as lists
        tuple(prop) == (TALLYING, True) for prop in report.user_properties
    )
    if report.when == "call" and report.passed and tallying:
        TALLY.passed += 1


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """In the pytest-xdist controller: add up the tally of a worker that finished."""
    tally = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT_KEY)
    if tally is not None:
        TALLY.merge(tally)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    if _is_worker(session.config):
        session.config.workeroutput[WORKER_OUTPUT_KEY] = TALLY.dumps()  # type: ignore[attr-defined]
        return
    interrupted = session.exitstatus == pytest.ExitCode.INTERRUPTED  # workers sent nothing
    if TALLY.passed and not sum(TALLY.cases.values()) and not interrupted:
        TALLY.notes.append(
            f"{TALLY.passed} tallying tests passed but no compared case reached this summary"
            " (the workers' tallies were lost); failing the session"
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _is_worker(terminalreporter.config):
        return
    if not TALLY.cases and not TALLY.disagreements and not TALLY.notes:
        return
    for line in TALLY.summary():
        terminalreporter.write_line(line)
