"""What happened and the root cause are pure functions of what an attempt observed: the fault's
result, the engine's log lines, the flight's end and the client's summary (no sandbox needed)."""

from __future__ import annotations

import datetime as dt

from opskit.engine_events import LogLine, classify_all
from opskit.experiment.definition import load_definition
from opskit.experiment.faults import DropConnectionsResult, KillOwnerResult
from opskit.experiment.lab import SubmittedFlight
from opskit.experiment.narrative import client_saw, root_cause, what_happened
from opskit.experiment.tools import ClientRun, TaskError
from opskit.experiment.verdict import Observation
from opskit.testrunner import JourneyResult, summary_from_json

FLIGHT = "7028cce9-5017-48dc-9c17-ce8b23517459"
KILLED = "workspacemanager-deployment-68f9b944d5-5gwdm"
SURVIVOR = "workspacemanager-deployment-68f9b944d5-9kgzp"
REPLACEMENT = "workspacemanager-deployment-68f9b944d5-bj2qd"
T0 = dt.datetime(2021, 4, 5, 14, 2, 5, tzinfo=dt.UTC)
SUBMITTED = SubmittedFlight(FLIGHT, KILLED, T0)
STATS = ("min", "max", "mean", "standardDeviation", "median", "percentile95", "percentile99")
STATS += ("sum",)


def events(*messages: tuple[str, str]) -> list:  # type: ignore[type-arg]
    return classify_all(
        LogLine(T0 + dt.timedelta(seconds=i), pod, message)
        for i, (pod, message) in enumerate(messages)
    )


def summary(failed: bool) -> ClientRun:
    doc = {
        "id": "x",
        "startTime": 1,
        "startUserJourneyTime": 1,
        "endUserJourneyTime": 2,
        "endTime": 2,
        "testScriptResultSummaries": [
            {
                "testScriptDescription": "WorkspaceLifecycle",
                "elapsedTimeStatistics": dict.fromkeys(STATS, 0.0 if failed else 6000.0),
                "totalRun": 1,
                "numCompleted": 0 if failed else 1,
                "numExceptionsThrown": 1 if failed else 0,
                "isFailure": failed,
            }
        ],
    }
    journey = JourneyResult(
        "WorkspaceLifecycle",
        "journey-0",
        not failed,
        0,
        "HttpFailure: POST /api/workspaces/v1: HTTP 502" if failed else None,
    )
    return ClientRun(1 if failed else 0, summary_from_json(doc), (journey,))


def test_the_client_sentence_comes_from_the_run_test_document() -> None:
    assert client_saw(summary(failed=True)) == (
        "`inv run-test` exit 1: journey-0: failed: HttpFailure: POST /api/workspaces/v1:"
        " HTTP 502; WorkspaceLifecycle: FAILED - completed 0/1, exceptions 1, mean 0.0s,"
        " max 0.0s"
    )
    assert client_saw(ClientRun(None, None)) == "`inv run-test` stopped, still waiting: no summary"
    error = TaskError(8, "PLATFORM_UNREACHABLE", "the sandbox is not running")
    assert client_saw(ClientRun(8, None, error=error)).endswith(
        "exit 8: error: the sandbox is not running"
    )


def test_a_recovered_pod_kill_reads_in_order_and_names_the_recoverer() -> None:
    defn = load_definition("multi-instance-pod-kill")
    kill = KillOwnerResult(KILLED, REPLACEMENT, True, (SURVIVOR,), ())
    engine = events(
        (SURVIVOR, f"Disowned 1 flights for stairway: {KILLED}"),
        (SURVIVOR, f"Stairway {SURVIVOR} taking ownership of flight {FLIGHT}"),
    )
    obs = Observation(
        flight_id=FLIGHT,
        final_status="SUCCESS",
        owner=None,
        owner_alive=None,
        killed=KILLED,
        replacement=REPLACEMENT,
        recoverer=SURVIVOR,
    )
    text = what_happened(defn, SUBMITTED, kill, obs, engine, [SURVIVOR], summary(failed=True))
    assert text.startswith(
        f"`inv run-test` started the WorkspaceLifecycle journey; flight `{FLIGHT}` was"
        f" submitted on `{KILLED}` and slept {defn.delay.seconds:g} s in step 1."
        f" `inv kill-pod` deleted its owner `{KILLED}` inside step 1; replacement"
        f" `{REPLACEMENT}` became Ready. `{SURVIVOR}` disowned the dead owner's flights."
        f" Taking ownership: `{SURVIVOR}`. The flight ended `SUCCESS`."
    )
    assert "HTTP 502" in text
    assert root_cause(defn, obs, engine).startswith(
        f"The owner pod died inside a step. Recovery (disownRecovery of the dead instance, by"
        f" `{SURVIVOR}`"
    )


def test_a_rebuild_failure_is_the_root_cause_of_a_flight_left_running() -> None:
    defn = load_definition("decode-failure-on-resume")
    engine = events(
        (
            SURVIVOR,
            "Unexpected exception dispatching messages - continuing\n"
            "bio.terra.stairway.exception.MakeFlightException: Failed to make a flight from"
            " class 'WorkspaceCreateFlight'\nCaused by: java.lang.ClassCastException: Found"
            " value 'MC_WORKSPACE' is not an instance of type WorkspaceStage",
        ),
    )
    obs = Observation(
        flight_id=FLIGHT, final_status="RUNNING", owner=SURVIVOR, owner_alive=True, killed=KILLED
    )
    cause = root_cause(defn, obs, engine)
    assert "ClassCastException" in cause and "0.0.60 FlightMap reader" in cause
    assert "`resume()` never accepts a RUNNING flight" in cause
    kill = KillOwnerResult(KILLED, REPLACEMENT, False, (SURVIVOR,), ())
    text = what_happened(defn, SUBMITTED, kill, obs, engine, [SURVIVOR], None)
    assert "did not become Ready" in text and f"`{SURVIVOR}` failed to rebuild the flight" in text
    assert text.endswith(f"The flight was left `RUNNING`, owned by live pod `{SURVIVOR}`.")


def test_cut_connections_are_told_by_what_psql_terminated_and_what_the_tool_saw() -> None:
    defn = load_definition("db-connection-drop")
    drop = DropConnectionsResult(
        ("101 workspacemanager", "102 stairway-ops experiment"), "OperationalError: x", ()
    )
    engine = events((KILLED, "Caught SQL connection or resource error (08006) - retrying"))
    obs = Observation(flight_id=FLIGHT, final_status="SUCCESS", owner=None, owner_alive=None)
    text = what_happened(defn, SUBMITTED, drop, obs, engine, [], None)
    assert "`psql` terminated 2 client backends" in text
    assert "reported `OperationalError: x`" in text and "1 SQL retry" in text
    assert root_cause(defn, obs, engine).startswith(
        "The service's connection was terminated mid-statement"
    )
    failed = DropConnectionsResult((), None, (), "the engine never waited on the held row")
    obs_failed = Observation(
        flight_id=FLIGHT,
        final_status="SUCCESS",
        owner=None,
        owner_alive=None,
        method_error=failed.error,
    )
    assert "The method did not go as planned: the engine never waited on the held row." in (
        what_happened(defn, SUBMITTED, failed, obs_failed, [], [], None)
    )
    assert root_cause(defn, obs_failed, []) == (
        "The connections were cut, but no statement of the engine was on the wire."
    )
