"""TestRunner: the runTest command line and SUMMARY_testRun.json (2021 field names)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from opskit.errors import CommandFailed, UsageError
from opskit.testrunner import SUMMARY_FILE, find_summaries, parse_summary, run_test_command

FIX = Path(__file__).parent / "fixtures" / "testrunner"


def test_run_test_command_is_the_2021_one() -> None:
    assert (
        run_test_command("kill-pod-jcarlton", "/tmp/TR")
        == './gradlew runTest --args="suites/kill-pod-jcarlton.json /tmp/TR"'
    )
    with pytest.raises(UsageError):
        run_test_command('x"; rm -rf /', "/tmp/TR")


def test_zero_timings_summary_is_a_failure() -> None:
    s = parse_summary(FIX / "SUMMARY_testRun-zero-timings.json")
    assert s.is_failure
    (script,) = s.test_script_result_summaries
    assert (script.total_run, script.num_completed, script.num_exceptions_thrown) == (1, 0, 0)
    assert script.elapsed_time_statistics.mean == 0.0
    assert s.lines() == [
        "WorkspaceLifecycle: FAILED - completed 0/1, exceptions 0, mean 0.0s, max 0.0s"
    ]


def test_passed_summary_round_trips_to_the_testrunner_field_names() -> None:
    path = FIX / "SUMMARY_testRun-passed.json"
    s = parse_summary(path)
    assert not s.is_failure
    original = json.loads(path.read_text())
    for key in (
        "startTimestamp",
        "startUserJourneyTimestamp",
        "endUserJourneyTimestamp",
        "endTimestamp",
    ):
        original.pop(key)
    assert s.to_json() == original
    assert s.started_at is not None and s.started_at.year == 2021


def test_wrong_shape_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / SUMMARY_FILE
    bad.write_text('{"id": "x"}')
    with pytest.raises(CommandFailed, match="not a TestRunner summary") as info:
        parse_summary(bad)
    assert "\n" not in str(info.value)


def test_find_summaries_in_suite_subdirectories(tmp_path: Path) -> None:
    sub = tmp_path / "WorkspaceLifecycle_0e9c2f41-7d3b-4a8e-b1c5-93f0a6d2e817"
    sub.mkdir()
    shutil.copy(FIX / "SUMMARY_testRun-passed.json", sub / SUMMARY_FILE)
    assert find_summaries(tmp_path) == [sub / SUMMARY_FILE]
    assert find_summaries(tmp_path, since=(sub / SUMMARY_FILE).stat().st_mtime + 10) == []
