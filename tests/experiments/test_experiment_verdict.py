"""The verdict is a pure function of what an attempt observed: each expectation is one check,
and any failed check makes the attempt (and the run) deviate."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from opskit.experiment.definition import load_definition
from opskit.experiment.verdict import (
    Check,
    FindingSeen,
    Observation,
    expected_lines,
    first_failure,
    judge,
    verdict_of,
)

FLIGHT = "7028cce9-5017-48dc-9c17-ce8b23517459"
KILLED = "workspacemanager-deployment-68f9b944d5-5gwdm"
SURVIVOR = "workspacemanager-deployment-68f9b944d5-9kgzp"
REPLACEMENT = "workspacemanager-deployment-68f9b944d5-bj2qd"

RECOVERED = (
    f"Delaying flight ID {FLIGHT} class x step 1 by PT5S",
    f"DELETED : {KILLED}",
    f"Recovering stairway {KILLED}",
    f"Disowned 1 flights for stairway: {KILLED}",
    f"Stairway {SURVIVOR} taking ownership of flight {FLIGHT}",
    f"Stairway {SURVIVOR} resumed flight: {FLIGHT}",
)


def multi_ok() -> Observation:
    """The multi-instance kill as the sandbox shows it: the survivor recovers, SUCCESS."""
    return Observation(
        flight_id=FLIGHT,
        final_status="SUCCESS",
        owner=None,
        owner_alive=None,
        killed=KILLED,
        replacement=REPLACEMENT,
        survivors=(SURVIVOR,),
        recoverer=SURVIVOR,
        messages=RECOVERED,
        steps=((0, "DO"), (1, "DO")),
        recheck_findings=0,
        steady_after=True,
    )


def names(checks: Sequence[Check]) -> list[str]:
    return [c.name for c in checks if not c.ok]


def test_multi_instance_recovered_by_the_survivor_passes() -> None:
    checks = judge(load_definition("multi-instance-pod-kill"), multi_ok())
    assert verdict_of(checks) == "pass", [c for c in checks if not c.ok]
    assert {c.name for c in checks} >= {
        "final-status",
        "owner",
        "recovered-by",
        "steps-once",
        "log-line",
        "findings",
        "recheck",
        "steady-state-after",
    }


def test_a_step_run_twice_deviates() -> None:
    obs = dataclasses.replace(multi_ok(), steps=((0, "DO"), (1, "DO"), (1, "DO")))
    checks = judge(load_definition("multi-instance-pod-kill"), obs)
    assert verdict_of(checks) == "fail" and names(checks) == ["steps-once"]
    bad = first_failure(checks)
    assert bad is not None and bad.detail == "logged twice: step 1 DO"


def test_recovery_by_the_replacement_is_not_the_survivors_listener() -> None:
    obs = dataclasses.replace(multi_ok(), recoverer=REPLACEMENT)
    assert names(judge(load_definition("multi-instance-pod-kill"), obs)) == ["recovered-by"]
    single = load_definition("single-instance-pod-kill")
    alone = dataclasses.replace(
        obs,
        survivors=(),
        messages=(
            *RECOVERED,
            f"Stairway {REPLACEMENT} taking ownership of flight {FLIGHT}",
            f"Stairway {REPLACEMENT} resumed flight: {FLIGHT}",
        ),
    )
    assert verdict_of(judge(single, alone)) == "pass"


def test_nobody_recovering_a_dead_owner_deviates_on_status_owner_and_recovery() -> None:
    obs = dataclasses.replace(
        multi_ok(),
        final_status="RUNNING",
        owner=KILLED,
        owner_alive=False,
        recoverer=None,
        messages=RECOVERED[:2],
        findings=(FindingSeen("dead_owner", FLIGHT), FindingSeen("stale_instance", None)),
        steps=((0, "DO"),),
        recheck_findings=2,
        steady_after=False,
    )
    failed = names(judge(load_definition("multi-instance-pod-kill"), obs))
    assert failed[:3] == ["final-status", "owner", "recovered-by"]
    assert {"log-line", "findings", "recheck", "steady-state-after"} <= set(failed)


def test_missing_log_line_names_the_line_with_values_filled() -> None:
    obs = dataclasses.replace(multi_ok(), messages=RECOVERED[:1])
    checks = judge(load_definition("multi-instance-pod-kill"), obs)
    missing = [c.detail for c in checks if c.name == "log-line" and not c.ok]
    assert f"missing: Disowned 1 flights for stairway: {KILLED}" in missing


def test_a_placeholder_without_a_value_fails_instead_of_matching_anything() -> None:
    obs = dataclasses.replace(multi_ok(), killed=None)
    lines = expected_lines(["DELETED : {killed}", "taking ownership of flight {flight}"], obs)
    assert lines == [
        ("DELETED : {killed}", None),
        ("taking ownership of flight {flight}", f"taking ownership of flight {FLIGHT}"),
    ]
    checks = judge(load_definition("multi-instance-pod-kill"), obs)
    assert any("a placeholder has no value" in c.detail for c in checks if not c.ok)


def decode_ok() -> Observation:
    return Observation(
        flight_id=FLIGHT,
        final_status="RUNNING",
        owner=SURVIVOR,
        owner_alive=True,
        killed=KILLED,
        replacement=REPLACEMENT,
        survivors=(SURVIVOR,),
        recoverer=SURVIVOR,
        messages=(
            f"Disowned 1 flights for stairway: {KILLED}",
            f"Stairway {SURVIVOR} taking ownership of flight {FLIGHT}",
            "Unexpected exception dispatching messages - continuing\n"
            "bio.terra.stairway.exception.MakeFlightException: Failed to make a flight from class"
            " 'class …WorkspaceCreateFlight'\nCaused by: java.lang.ClassCastException: Found"
            " value 'MC_WORKSPACE' is not an instance of type …WorkspaceStage",
            f"Stairway {REPLACEMENT} did not resume flight: {FLIGHT}",
        ),
        steps=((0, "DO"),),
        findings=(
            FindingSeen(
                "stalled",
                FLIGHT,
                "make-flight failure: the inputs cannot be decoded by the ≤0.0.60 reader",
                "reencode",
            ),
        ),
        repaired_status="SUCCESS",
        recheck_findings=0,
        steady_after=True,
    )


def test_decode_failure_left_running_on_a_live_pod_and_repaired_passes() -> None:
    checks = judge(load_definition("decode-failure-on-resume"), decode_ok())
    assert verdict_of(checks) == "pass", [c for c in checks if not c.ok]
    assert {"finding-pattern", "repair"} <= {c.name for c in checks}


def test_decode_failure_that_resumed_fine_deviates() -> None:
    """A reader that decodes fine: the flight finishes, nothing is found: not the 2021 bug."""
    obs = dataclasses.replace(
        decode_ok(),
        final_status="SUCCESS",
        owner=None,
        owner_alive=None,
        findings=(),
        repaired_status=None,
    )
    failed = names(judge(load_definition("decode-failure-on-resume"), obs))
    assert failed[:2] == ["final-status", "owner"]
    assert {"findings", "finding-pattern", "repair"} <= set(failed)


def test_a_repair_that_did_not_reach_its_status_deviates() -> None:
    obs = dataclasses.replace(decode_ok(), repaired_status="RUNNING", recheck_findings=1)
    failed = names(judge(load_definition("decode-failure-on-resume"), obs))
    assert failed == ["repair", "recheck"]


def test_a_finding_of_another_kind_or_pattern_deviates() -> None:
    other = FindingSeen("stalled", FLIGHT, "no flight log progress", "none")
    obs = dataclasses.replace(decode_ok(), findings=(other,))
    assert names(judge(load_definition("decode-failure-on-resume"), obs)) == ["finding-pattern"]
    dead = dataclasses.replace(other, kind="dead_owner")
    obs = dataclasses.replace(decode_ok(), findings=(dead,))
    assert names(judge(load_definition("decode-failure-on-resume"), obs))[0] == "findings"


def test_connection_drop_needs_the_retry_line_and_success() -> None:
    drop = load_definition("db-connection-drop")
    obs = Observation(
        flight_id=FLIGHT,
        final_status="SUCCESS",
        owner=None,
        owner_alive=None,
        messages=(
            f"Delaying flight ID {FLIGHT} class x step 1 by PT5S",
            "Caught SQL connection or resource error (08006) - retrying",
        ),
        steps=((0, "DO"), (1, "DO")),
        recheck_findings=0,
        steady_after=True,
    )
    checks = judge(drop, obs)
    assert verdict_of(checks) == "pass"
    assert "recovered-by" not in {c.name for c in checks}  # no pod was killed
    no_retry = dataclasses.replace(obs, messages=obs.messages[:1])
    assert names(judge(drop, no_retry)) == ["log-line"]


def test_a_method_that_could_not_run_deviates_first() -> None:
    obs = dataclasses.replace(multi_ok(), method_error="flight finished before step 1")
    checks = judge(load_definition("multi-instance-pod-kill"), obs)
    bad = first_failure(checks)
    assert bad is not None and (bad.name, bad.detail) == ("method", "flight finished before step 1")
    assert verdict_of(()) == "fail"
    no_flight = Observation(flight_id=None, final_status=None, owner=None, owner_alive=None)
    assert names(judge(load_definition("multi-instance-pod-kill"), no_flight)) == ["flight"]
