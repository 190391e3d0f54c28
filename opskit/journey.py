"""The WorkspaceLifecycle user journey against a Workspace-Manager-shaped API (local run-test).

TestRunner's ``WorkspaceLifecycle`` script creates a workspace (``MC_WORKSPACE``, random UUID),
gets it, and deletes it, asserting HTTP success after each step. :func:`run_journeys` does the
same over HTTP and summarises like TestRunner: per-journey elapsed time, completed/exception
counts, statistics in milliseconds and ``isFailure = numCompleted < totalRun ||
numExceptionsThrown > 0`` — written as ``<run>/<config>_<id>/SUMMARY_testRun.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from opskit.events import Reporter
from opskit.testrunner import (
    RAW_FILE,
    SUMMARY_FILE,
    ElapsedTimeStatistics,
    JourneyResult,
    TestRunSummary,
    TestScriptResultSummary,
)

#: a fixed, non-secret bearer token: the sandbox only checks that one is present
JOURNEY_TOKEN = "stairway-ops-run-test"


class HttpFailure(Exception):
    """A step did not answer 2xx (``ClientTestUtils.assertHttpSuccess``)."""


def _call(base: str, method: str, path: str, body: Any, timeout: float) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        base.rstrip("/") + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {JOURNEY_TOKEN}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raise HttpFailure(f"{method} {path}: HTTP {exc.code}") from None


def workspace_lifecycle(base_url: str, timeout: float) -> None:
    """create (MC_WORKSPACE) → get → delete, each step must succeed."""
    ws = str(uuid.uuid4())
    _call(base_url, "POST", "/api/workspaces/v1", {"id": ws, "stage": "MC_WORKSPACE"}, timeout)
    _call(base_url, "GET", f"/api/workspaces/v1/{ws}", None, timeout)
    _call(base_url, "DELETE", f"/api/workspaces/v1/{ws}", None, timeout)


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = max(0, math.ceil(p / 100 * len(ordered)) - 1)
    return ordered[k]


def summarize(
    name: str, results: list[JourneyResult], times: tuple[int, int, int, int]
) -> TestRunSummary:
    ms = [r.elapsed_ns / 1e6 for r in results if r.completed]
    stats = ElapsedTimeStatistics(
        min=min(ms, default=0.0),
        max=max(ms, default=0.0),
        mean=statistics.fmean(ms) if ms else 0.0,
        standard_deviation=statistics.pstdev(ms) if len(ms) > 1 else 0.0,
        median=statistics.median(ms) if ms else 0.0,
        percentile95=_percentile(ms, 95),
        percentile99=_percentile(ms, 99),
        sum=sum(ms),
    )
    completed = sum(1 for r in results if r.completed)
    exceptions = sum(1 for r in results if r.exception)
    script = TestScriptResultSummary(
        test_script_description=name,
        elapsed_time_statistics=stats,
        total_run=len(results),
        num_completed=completed,
        num_exceptions_thrown=exceptions,
        is_failure=completed < len(results) or exceptions > 0,
    )
    start, start_uj, end_uj, end = times
    return TestRunSummary(
        id=str(uuid.uuid4()),
        start_time=start,
        start_user_journey_time=start_uj,
        end_user_journey_time=end_uj,
        end_time=end,
        test_script_result_summaries=(script,),
    )


def run_journeys(
    base_url: str,
    run_dir: Path,
    reporter: Reporter,
    *,
    journeys: int = 1,
    timeout: float = 600.0,
    config_name: str = "WorkspaceLifecycle",
) -> TestRunSummary:
    """Run ``journeys`` WorkspaceLifecycle journeys in parallel; write and return the summary."""
    start = int(time.time() * 1000)
    results: list[JourneyResult] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        t0 = time.monotonic_ns()
        try:
            workspace_lifecycle(base_url, timeout)
            r = JourneyResult(config_name, f"journey-{i}", True, time.monotonic_ns() - t0, None)
        except Exception as exc:
            r = JourneyResult(config_name, f"journey-{i}", False, 0, f"{type(exc).__name__}: {exc}")
        with lock:
            results.append(r)
        reporter.emit(
            "test.journey",
            f"{r.thread}: " + ("completed" if r.completed else f"failed: {r.exception}"),
            completed=r.completed,
        )

    start_uj = int(time.time() * 1000)
    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(journeys)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 5)
    end_uj = int(time.time() * 1000)
    summary = summarize(config_name, results, (start, start_uj, end_uj, int(time.time() * 1000)))
    out = run_dir / f"{config_name}_{summary.id}"
    out.mkdir(parents=True, exist_ok=True)
    (out / SUMMARY_FILE).write_text(json.dumps(summary.to_json(), indent=2) + "\n")
    (out / RAW_FILE).write_text(
        json.dumps(
            [
                {
                    "userJourneyResults": [r.to_json() for r in results],
                    "summary": summary.to_json()["testScriptResultSummaries"][0],
                }
            ],
            indent=2,
        )
        + "\n"
    )
    reporter.emit("test.summary", f"summary: {out / SUMMARY_FILE}", path=str(out / SUMMARY_FILE))
    return dataclasses.replace(summary, journeys=tuple(sorted(results, key=lambda r: r.thread)))
