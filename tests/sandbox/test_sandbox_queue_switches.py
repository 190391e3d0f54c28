"""The work-queue switches, end to end (issue 15): a READY message held past the ack deadline
makes the flight `queued_overdue` for `repairtool orphans` until a pod runs it; a detached
subscription is deleted and created again empty (the `lost-queue-message` experiment shows the
lost message and its repair by `enqueue`)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from sandbox.config import DelayHookConfig
from sandbox.lifecycle import SandboxHandle
from sandbox.pubsub_emulator import find_launcher
from tests.sandbox.test_sandbox_pod_kill import TOKEN, repairtool

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(150),
    pytest.mark.skipif(find_launcher() is None, reason="Pub/Sub emulator not installed"),
]

DELAY = DelayHookConfig(step_index=1, seconds=3.0)


def _queued_after_kill(
    h: SandboxHandle, create: Callable[..., Any], **switches: bool
) -> tuple[str, str]:
    """Switches on, then the owner of a delayed create is deleted: the survivor's pod listener
    disowns the flight and queues it. Returns (flight id, survivor)."""
    owner, survivor = h.wait_ready()
    h.set_switches(**switches)
    call = create(h, owner, token=TOKEN)
    h.wait_for_log(f"Delaying flight ID {call.flight_id}", pod=owner, timeout=20)
    h.core_v1().delete_namespaced_pod(owner, h.namespace)
    call.join(30)
    h.wait_for_log(f"Flight ID {call.flight_id} changed status to QUEUED.", timeout=20)
    return call.flight_id, survivor


def _kinds(doc: dict[str, Any], flight_id: str) -> set[str]:
    return {f["kind"] for f in doc["findings"] if f["flight_id"] == flight_id}


def test_a_message_held_past_the_ack_deadline_is_queued_overdue_until_the_flight_runs(
    start_sandbox: Callable[..., SandboxHandle], create_workspace_async: Callable[..., Any]
) -> None:
    h = start_sandbox(replicas=2, engine_version="0.0.61", delay=DELAY, ack_deadline_seconds=10)
    flight_id, _ = _queued_after_kill(h, create_workspace_async, hold_queue_messages=True)
    # the message reaches a pod, which neither runs nor acks it …
    received = f'"flightId":"{flight_id}"'
    deadline = time.monotonic() + 60
    doc: dict[str, Any] = {}
    while time.monotonic() < deadline:
        code, doc = repairtool(h, "--overdue-margin", "2s")
        if "queued_overdue" in _kinds(doc, flight_id):
            break
        time.sleep(2)
    assert _kinds(doc, flight_id) == {"queued_overdue"}, doc["findings"]
    assert code == 0  # informational only: the exit code is unchanged
    [finding] = [f for f in doc["findings"] if f["flight_id"] == flight_id]
    ev = finding["evidence"]
    assert (finding["status"], finding["proposed_action"]) == ("QUEUED", "none")
    assert ev["ack_deadline"] == "10s" and h.subscription_path in ev["ack_deadline_source"]
    # overdue: older than 10 s + 2 s; age_seconds is whole seconds, so 12.4 s reads 12
    assert ev["age_seconds"] >= 12 and "no status-change time" in ev["measured_from"]
    assert doc["plan"] == []
    # … and Pub/Sub gave it out again after the deadline (held again: at least two receipts).
    # The finding counts from the flight's last activity, the redelivery from the first receipt,
    # which can come seconds later on a loaded machine: wait up to two more ack deadlines.
    deadline = time.monotonic() + 25
    while True:
        receipts = [m for m in h.messages(contains="Received message: ") if received in m]
        if len(receipts) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert len(receipts) >= 2, receipts
    assert h.flight(flight_id)["status"] == "QUEUED"
    # the hold ends: the next redelivery (within one ack deadline) runs the flight
    h.set_switches(hold_queue_messages=False)
    row = h.wait_flight(flight_id, {"SUCCESS", "ERROR", "FATAL"}, timeout=40)
    assert row["status"] == "SUCCESS"
    code, doc = repairtool(h, "--overdue-margin", "2s")
    assert (code, _kinds(doc, flight_id)) == (0, set())
    # the other work-queue switch, on the same sandbox: the subscription goes away (a message
    # published now is lost for good) and comes back empty with the engine's settings
    h.set_switches(work_queue_detached=True)
    assert _subscription(h) is None
    h.set_switches(work_queue_detached=False)
    assert _subscription(h) == {"ackDeadlineSeconds": 10, "messageRetentionDuration": "259200s"}


def _subscription(h: SandboxHandle) -> dict[str, Any] | None:
    """The work-queue subscription's settings from the emulator's REST API (None: gone)."""
    url = f"http://{h.emulator_host}/v1/{h.subscription_path}"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            sub = json.loads(resp.read())
    except urllib.error.HTTPError as error:
        assert error.code == 404
        return None
    return {k: sub[k] for k in ("ackDeadlineSeconds", "messageRetentionDuration")}
