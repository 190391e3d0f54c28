"""TestRunner (DataBiosphere/terra-test-runner): the ``runTest`` command and its summary file.

``./gradlew runTest --args="suites/<suite>.json <outputDir>"`` runs in
``<checkout>/workspace-manager-clienttests``; for a suite, each configuration writes
``<outputDir>/<configName>_<summary id>/SUMMARY_testRun.json`` (TestRunSummary, terra-test-runner
0.0.3). :func:`parse_summary` reads that file into :class:`TestRunSummary` with the 2021 field
names kept as attribute names in snake_case.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opskit.errors import CommandFailed, UsageError

SUMMARY_FILE = "SUMMARY_testRun.json"
RAW_FILE = "RAWDATA_userJourneyResults.json"
#: the ``inv run-test --json-out`` document
DOCUMENT_SCHEMA = "stairway-ops.run-test/1"
_SAFE = re.compile(r"^[\w./~-]+$")


@dataclass(frozen=True)
class ElapsedTimeStatistics:
    """Per-script timing statistics in milliseconds (all 0 when no journey completed)."""

    min: float
    max: float
    mean: float
    standard_deviation: float
    median: float
    percentile95: float
    percentile99: float
    sum: float


@dataclass(frozen=True)
class TestScriptResultSummary:
    """One test script's result.

    ``isFailure = numCompleted < totalRun || numExceptionsThrown > 0`` (TestRunner's rule).
    """

    __test__ = False

    test_script_description: str
    elapsed_time_statistics: ElapsedTimeStatistics
    total_run: int
    num_completed: int
    num_exceptions_thrown: int
    is_failure: bool


@dataclass(frozen=True)
class JourneyResult:
    """One user journey (TestRunner's ``userJourneyResults`` entry, field names snake_case)."""

    description: str
    thread: str
    completed: bool
    elapsed_ns: int
    exception: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "userJourneyDescription": self.description,
            "threadName": self.thread,
            "completed": self.completed,
            "elapsedTimeNS": self.elapsed_ns,
            "exceptionThrown": self.exception,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JourneyResult:
        exc = data.get("exceptionThrown")
        return cls(
            description=str(data["userJourneyDescription"]),
            thread=str(data["threadName"]),
            completed=bool(data["completed"]),
            elapsed_ns=int(data["elapsedTimeNS"]),
            exception=None if exc is None else str(exc),
        )


@dataclass(frozen=True)
class TestRunSummary:
    """``SUMMARY_testRun.json``: times are epoch ms (-1 when unset)."""

    __test__ = False

    id: str
    start_time: int
    start_user_journey_time: int
    end_user_journey_time: int
    end_time: int
    test_script_result_summaries: tuple[TestScriptResultSummary, ...]
    source: str = ""
    #: the journeys behind the summary (``RAWDATA_userJourneyResults.json``), when known
    journeys: tuple[JourneyResult, ...] = ()

    @property
    def is_failure(self) -> bool:
        return any(s.is_failure for s in self.test_script_result_summaries)

    @property
    def started_at(self) -> dt.datetime | None:
        return _from_ms(self.start_time)

    @property
    def ended_at(self) -> dt.datetime | None:
        return _from_ms(self.end_time)

    def lines(self) -> list[str]:
        """A human summary, one line per script."""
        out = []
        for s in self.test_script_result_summaries:
            verdict = "FAILED" if s.is_failure else "passed"
            st = s.elapsed_time_statistics
            out.append(
                f"{s.test_script_description}: {verdict} -"
                f" completed {s.num_completed}/{s.total_run},"
                f" exceptions {s.num_exceptions_thrown}, mean {st.mean / 1000:.1f}s,"
                f" max {st.max / 1000:.1f}s"
            )
        return out

    def to_json(self) -> dict[str, Any]:
        """Back to the TestRunner field names."""
        return {
            "id": self.id,
            "startTime": self.start_time,
            "startUserJourneyTime": self.start_user_journey_time,
            "endUserJourneyTime": self.end_user_journey_time,
            "endTime": self.end_time,
            "testScriptResultSummaries": [
                {
                    "testScriptDescription": s.test_script_description,
                    "elapsedTimeStatistics": {
                        "min": s.elapsed_time_statistics.min,
                        "max": s.elapsed_time_statistics.max,
                        "mean": s.elapsed_time_statistics.mean,
                        "standardDeviation": s.elapsed_time_statistics.standard_deviation,
                        "median": s.elapsed_time_statistics.median,
                        "percentile95": s.elapsed_time_statistics.percentile95,
                        "percentile99": s.elapsed_time_statistics.percentile99,
                        "sum": s.elapsed_time_statistics.sum,
                    },
                    "totalRun": s.total_run,
                    "numCompleted": s.num_completed,
                    "numExceptionsThrown": s.num_exceptions_thrown,
                    "isFailure": s.is_failure,
                }
                for s in self.test_script_result_summaries
            ],
        }


def run_test_document(summary: TestRunSummary) -> dict[str, Any]:
    """``inv run-test --json-out``: the summary (TestRunner's fields) and its journeys."""
    return {
        "schema": DOCUMENT_SCHEMA,
        "is_failure": summary.is_failure,
        "summary": summary.to_json(),
        "journeys": [j.to_json() for j in summary.journeys],
    }


def read_raw_results(path: Path) -> tuple[JourneyResult, ...]:
    """The journeys of a ``RAWDATA_userJourneyResults.json`` (empty when absent or unreadable)."""
    try:
        data = json.loads(path.read_text())
        return tuple(
            JourneyResult.from_json(r) for script in data for r in script["userJourneyResults"]
        )
    except (OSError, ValueError, KeyError, TypeError):
        return ()


def _from_ms(ms: int) -> dt.datetime | None:
    return None if ms < 0 else dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def summary_from_json(data: Mapping[str, Any], source: str = "") -> TestRunSummary:
    """Build a summary from TestRunner's JSON (raises KeyError/TypeError on a wrong shape)."""

    def stats(d: Mapping[str, Any]) -> ElapsedTimeStatistics:
        return ElapsedTimeStatistics(
            min=float(d["min"]),
            max=float(d["max"]),
            mean=float(d["mean"]),
            standard_deviation=float(d["standardDeviation"]),
            median=float(d["median"]),
            percentile95=float(d["percentile95"]),
            percentile99=float(d["percentile99"]),
            sum=float(d["sum"]),
        )

    return TestRunSummary(
        id=str(data["id"]),
        start_time=int(data["startTime"]),
        start_user_journey_time=int(data["startUserJourneyTime"]),
        end_user_journey_time=int(data["endUserJourneyTime"]),
        end_time=int(data["endTime"]),
        test_script_result_summaries=tuple(
            TestScriptResultSummary(
                test_script_description=str(s["testScriptDescription"]),
                elapsed_time_statistics=stats(s["elapsedTimeStatistics"]),
                total_run=int(s["totalRun"]),
                num_completed=int(s["numCompleted"]),
                num_exceptions_thrown=int(s["numExceptionsThrown"]),
                is_failure=bool(s["isFailure"]),
            )
            for s in data["testScriptResultSummaries"]
        ),
        source=source,
    )


def parse_summary(path: Path) -> TestRunSummary:
    """Read one ``SUMMARY_testRun.json``; a wrong shape is a one-line :class:`OperationFailed`."""
    try:
        summary = summary_from_json(json.loads(path.read_text()), source=str(path))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CommandFailed(
            f"{path}: not a TestRunner summary ({type(exc).__name__}: {exc})"
        ) from None
    return dataclasses.replace(summary, journeys=read_raw_results(path.parent / RAW_FILE))


def find_summaries(output_dir: Path, since: float | None = None) -> list[Path]:
    """Summary files under ``output_dir`` (the dir itself, or one level of suite sub-dirs),
    optionally only those modified at or after ``since`` (epoch seconds), oldest first."""
    candidates = [output_dir / SUMMARY_FILE, *output_dir.glob(f"*/{SUMMARY_FILE}")]
    found = [p for p in candidates if p.is_file() and (since is None or p.stat().st_mtime >= since)]
    return sorted(found, key=lambda p: p.stat().st_mtime)


def run_test_command(suite: str, output_dir: str) -> str:
    """The exact command line: ``./gradlew runTest --args="suites/<suite>.json <outputDir>"``."""
    for value in (suite, output_dir):
        if not _SAFE.match(value):
            raise UsageError(f"unsafe TestRunner argument {value!r}")
    return f'./gradlew runTest --args="suites/{suite}.json {output_dir}"'
