"""End to end: kill the pod that owns a delayed flight, with real worker processes, real Postgres,
the real Pub/Sub emulator and the official kubernetes client — the 2021 experiment, replayed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from sandbox.config import DelayHookConfig
from sandbox.lifecycle import SandboxHandle
from sandbox.pubsub_emulator import find_launcher

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(120),
    pytest.mark.skipif(find_launcher() is None, reason="Pub/Sub emulator not installed"),
]

DELAY = DelayHookConfig(step_index=1, seconds=4.0)
STAGE_CAST = (
    "Found value 'MC_WORKSPACE' is not an instance of type "
    "bio.terra.workspace.service.workspace.model.WorkspaceStage"
)
TOKEN = "ya29.sandbox-secret-token-DO-NOT-LOG"


def _kill_owner_mid_flight(h: SandboxHandle, create: Callable[..., Any]) -> tuple[Any, str]:
    """Start a create on the first pod, wait for the DelayHook, delete that pod through the
    official client. Returns (the call, the owner pod)."""
    owner = h.wait_ready()[0]
    call = create(h, owner, token=TOKEN)
    h.wait_for_log(f"Delaying flight ID {call.flight_id}", pod=owner, timeout=20)
    row = h.flight(call.flight_id)
    assert row is not None and row["status"] == "RUNNING" and row["stairway_id"] == owner
    h.core_v1().delete_namespaced_pod(owner, h.namespace)
    result = call.join(30)
    assert isinstance(result, Exception) or result[0] >= 500, result  # the client lost its pod
    return call, owner


def repairtool(h: SandboxHandle, *args: str) -> tuple[int, dict[str, Any]]:
    """`repairtool orphans --json` against the sandbox: its database, its pods (kube API) and its
    work queue, exactly as an operator would run it."""
    argv = [
        sys.executable,
        "-m",
        "repairtool",
        "orphans",
        "--json",
        "--db",
        h.stairway_tcp_url().render_as_string(hide_password=False),
        "--kube",
        "--kubeconfig",
        str(h.kubeconfig),
        "--namespace",
        h.namespace,
        "--stalled-after",
        "1s",
        *args,
    ]
    env = dict(os.environ)
    if h.emulator_host:
        env["PUBSUB_EMULATOR_HOST"] = h.emulator_host
        argv += ["--cluster", h.config.stairway_cluster_name, "--project", h.config.project_id]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _no_token_in_logs(h: SandboxHandle) -> None:
    raw = "".join(p.read_text() for p in h.logs_dir.glob("*.jsonl"))
    assert raw and TOKEN not in raw


@pytest.mark.parametrize("engine_version", ["0.0.61", "1.1.14"])
def test_new_reader_recovers_flight_of_killed_pod(
    start_sandbox: Callable[..., SandboxHandle],
    create_workspace_async: Callable[..., Any],
    engine_version: str,
) -> None:
    h = start_sandbox(replicas=2, engine_version=engine_version, delay=DELAY)
    call, owner = _kill_owner_mid_flight(h, create_workspace_async)
    flight_id = call.flight_id

    row = h.wait_flight(flight_id, {"SUCCESS", "ERROR", "FATAL"}, timeout=40)
    assert row["status"] == "SUCCESS" and row["stairway_id"] is None

    disowned = h.wait_for_log(f"Disowned 1 flights for stairway: {owner}", timeout=5)
    recoverer = disowned["resource"]["labels"]["pod_name"]
    assert recoverer != owner
    assert h.messages(recoverer, "Found ready flights: 1")
    launches = [
        m
        for m in h.messages(contains=f" flightid: {flight_id}")
        if m.startswith("Launching flight class: ")
    ]
    assert len(launches) == 2  # submitted on the owner, resumed once: never run twice
    new_owner = launches[-1].split(" stairway: ")[1].split()[0]
    took = h.messages(contains=f"taking ownership of flight {flight_id}")
    assert f"Stairway {new_owner} taking ownership of flight {flight_id}" in took
    if len(took) > 1:  # two resumers raced: the loser's SERIALIZABLE commit failed and retried
        assert h.messages(contains="Caught SQL serialization error (40001) - retrying")
    assert new_owner != owner and new_owner in h.ready_pods()
    assert h.messages(new_owner, f"resumed flight: {flight_id}")
    assert owner not in h.instances()
    assert owner not in [p["name"] for p in h.pods()]

    # the rows the generation writes: step 0 by the dead pod, step 1 by the new owner
    log = h.flight_log(flight_id)
    assert [(r["step_index"], r["direction"], r["succeeded"]) for r in log] == [
        (0, "DO", True),
        (1, "DO", True),
    ]
    assert all(r["working_parameters"] is None for r in log)  # ≥0.0.61 stops writing it
    assert row["output_parameters"] is None
    with h.engine().connect() as conn:
        working = dict(
            conn.execute(
                text("SELECT key, value FROM flightworking WHERE flightlog_id = :id"),
                {"id": log[-1]["id"]},
            ).all()
        )
        assert working == {"response": f'"{call.workspace_id}"', "status_code": '"OK"'}
        persisted = conn.execute(text("SELECT to_regclass('flightpersisted') IS NOT NULL")).scalar()
        if engine_version == "1.1.14":
            meters = conn.execute(
                text(
                    "SELECT value FROM flightpersisted WHERE flightid = :f AND"
                    " key = 'StairwayProgressMeters'"
                ),
                {"f": flight_id},
            ).scalar()
            assert meters == (
                '["java.util.HashMap",{"STAIRWAY_STEP_PROGRESS":'
                '["bio.terra.stairway.ProgressMeter",{"v1":1,"v2":2}]}]'
            )
        else:
            assert not persisted
    with h.engine("wsm").connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM workspace")).scalar() == 1
    _no_token_in_logs(h)


def test_old_reader_orphans_flight_on_live_pod(
    start_sandbox: Callable[..., SandboxHandle], create_workspace_async: Callable[..., Any]
) -> None:
    """2021 attempt 1: the new owner commits ownership, then fails to rebuild the flight."""
    h = start_sandbox(replicas=2, engine_version="0.0.60", delay=DELAY)
    call, owner = _kill_owner_mid_flight(h, create_workspace_async)
    flight_id = call.flight_id

    warn = h.wait_for_log("Unexpected exception dispatching messages - continuing", timeout=20)
    taker = warn["resource"]["labels"]["pod_name"]
    assert warn["severity"] == "WARNING"
    message = warn["jsonPayload"]["message"]
    assert (
        "bio.terra.stairway.exception.MakeFlightException: Failed to make a flight from "
        "class 'class bio.terra.workspace.service.workspace.flight.WorkspaceCreateFlight'"
    ) in message
    assert f"Caused by: java.lang.ClassCastException: {STAGE_CAST}" in message
    assert "WorkspaceCreateFlight.<init>(WorkspaceCreateFlight.java:22)" in message
    assert h.messages(taker, f"Stairway {taker} taking ownership of flight {flight_id}")
    assert h.messages(contains=f"Disowned 1 flights for stairway: {owner}")
    assert h.messages(contains="Found ready flights: 1")

    # not acked → redelivered after the ack deadline → "did not resume" → acked
    h.wait_for_log(f"did not resume flight: {flight_id}", timeout=25)
    row = h.flight(flight_id)
    assert row is not None
    assert row["status"] == "RUNNING" and row["stairway_id"] == taker
    assert taker in h.ready_pods() and taker in h.instances()
    assert not h.messages(
        contains=f"Launching flight class: "
        f"bio.terra.workspace.service.workspace.flight.WorkspaceCreateFlight "
        f"stairway: {taker} flightid: {flight_id}"
    )
    # 0.0.60 wrote the legacy whole-map JSON and the flightworking rows
    (step0,) = h.flight_log(flight_id)
    assert step0["working_parameters"] == '["java.util.HashMap",{}]' and step0["id"] is not None
    _no_token_in_logs(h)

    # repairtool finds it: RUNNING on a live pod, no progress, inputs the 0.0.60 reader rejects
    code, doc = repairtool(h)
    assert code == 1 and doc["reader"] == "legacy"
    [finding] = [f for f in doc["findings"] if f["flight_id"] == flight_id]
    assert (finding["kind"], finding["owner"]) == ("stalled", taker)
    assert "make-flight failure" in finding["evidence"]["pattern"]
    assert finding["proposed_action"] == "reencode"
    # …and repairs it: re-encode the inputs for the 0.0.60 reader, disown, READY message; a live
    # pod resumes the flight and this time it is rebuilt and finishes
    code, fixed = repairtool(h, "--fix", "--yes", "--reason", "rehearsal: 2021 attempt 1")
    assert code == 0, fixed
    [applied] = [a for a in fixed["applied"] if a["flight_id"] == flight_id]
    assert applied["steps"] == ["rewrite_input", "disown", "enqueue"]
    row = h.wait_flight(flight_id, {"SUCCESS", "ERROR", "FATAL"}, timeout=40)
    assert row["status"] == "SUCCESS"
    assert repairtool(h)[1]["findings"] == []


def test_dropped_watch_and_no_replacement_leave_dead_owner(
    start_sandbox: Callable[..., SandboxHandle], create_workspace_async: Callable[..., Any]
) -> None:
    h = start_sandbox(replicas=2, engine_version="0.0.61", delay=DELAY)
    owner, survivor = h.wait_ready()
    h.set_switches(pod_watch_dropped=True, replace_deleted_pods=False)
    h.wait_for_log(
        "KubePodListener caught exception: java.lang.RuntimeException: IO Exception "
        "during hasNext method.",
        pod=survivor,
        timeout=10,
    )
    call = create_workspace_async(h, owner, token=TOKEN)
    h.wait_for_log(f"Delaying flight ID {call.flight_id}", pod=owner, timeout=20)
    h.core_v1().delete_namespaced_pod(owner, h.namespace)
    call.join(30)
    time.sleep(3.0)  # time enough for a listener (there is none) to recover it

    row = h.flight(call.flight_id)
    assert row is not None and row["status"] == "RUNNING" and row["stairway_id"] == owner
    assert [p["name"] for p in h.pods()] == [survivor]
    assert owner in h.instances()  # nobody ran disownRecovery for it
    assert not h.messages(contains="Disowned")
    assert not h.messages(survivor, f"DELETED : {owner}")

    # repairtool finds the dead owner (and its stale instance row) from the pod list
    code, doc = repairtool(h)
    kinds = {(f["kind"], f["flight_id"] or f["instance"]) for f in doc["findings"]}
    assert kinds == {("dead_owner", call.flight_id), ("stale_instance", owner)}
    # resume: disown + READY message → the surviving pod takes it over and finishes it
    code, fixed = repairtool(h, "--fix", "--yes", "--reason", "rehearsal: dead owner")
    assert code == 0, fixed
    row = h.wait_flight(call.flight_id, {"SUCCESS", "ERROR", "FATAL"}, timeout=40)
    assert row["status"] == "SUCCESS"
    assert h.messages(survivor, f"Stairway {survivor} taking ownership of flight {call.flight_id}")
    assert owner not in h.instances()


def test_no_queue_old_reader_crash_loops_on_startup(
    start_sandbox: Callable[..., SandboxHandle], create_workspace_async: Callable[..., Any]
) -> None:
    """Without a work queue recoverReady resumes inline: the ≤0.0.60 reader's
    MakeFlightException escapes recoverAndStart, the service does not start, and the container
    restarts into the same failure (STAIRCTL.md's "Unrecoverable Flight")."""
    h = start_sandbox(replicas=1, engine_version="0.0.60", queue="none", delay=DELAY)
    (owner,) = h.wait_ready()
    call = create_workspace_async(h, owner, token=TOKEN)
    h.wait_for_log(f"Delaying flight ID {call.flight_id}", pod=owner, timeout=20)
    h.core_v1().delete_namespaced_pod(owner, h.namespace)
    call.join(30)
    first = h.wait_for_log("Application run failed", timeout=20)
    pod = first["resource"]["labels"]["pod_name"]
    assert pod != owner
    assert "MakeFlightException" in first["jsonPayload"]["message"]
    assert STAGE_CAST in first["jsonPayload"]["message"]

    def restarted() -> bool:
        return any(
            p["name"] == pod
            and p["restart_count"] >= 1
            and len(h.messages(pod, "Application run failed")) >= 2
            for p in h.pods()
        )

    from sandbox.procs import wait_until

    assert wait_until(restarted, 20.0, 0.2)
    assert h.messages(pod, f"Recovering stairway {pod}")  # own name: a restarted container
    row = h.flight(call.flight_id)
    assert row is not None and row["status"] == "RUNNING" and row["stairway_id"] == pod
    assert h.ready_pods() == []
    status = h.core_v1().read_namespaced_pod(pod, h.namespace).status
    assert status.container_statuses[0].restart_count >= 1
