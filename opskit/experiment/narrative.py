"""The prose of an attempt's record — what happened, and the root cause — as pure functions.

The runbooks quote these sentences, so they are built only from what the attempt observed
(the fault's result, the engine's events, the flight's end, the client's summary) and are
unit-tested like :func:`opskit.experiment.verdict.judge`.
"""

from __future__ import annotations

from collections.abc import Sequence

from opskit.engine_events import Kind, TimelineItem
from opskit.experiment.definition import SWITCH_DEFAULTS, TERMINAL, ExperimentDefinition
from opskit.experiment.faults import (
    DropConnectionsResult,
    FaultResult,
    KillOwnerResult,
    OutageResult,
)
from opskit.experiment.lab import SubmittedFlight
from opskit.experiment.tools import ClientRun
from opskit.experiment.verdict import Observation


def client_saw(client: ClientRun) -> str:
    """``inv run-test``'s outcome in one sentence: exit code, each journey, the summary."""
    rc = "stopped, still waiting" if client.rc is None else f"exit {client.rc}"
    picked = [
        f"{j.thread}: " + ("completed" if j.completed else f"failed: {j.exception}")
        for j in client.journeys
    ]
    if client.summary is not None:
        picked += client.summary.lines()
    if client.error is not None:
        picked.append(f"error: {client.error.message}")
    return f"`inv run-test` {rc}: " + ("; ".join(picked) or "no summary")


def what_happened(
    defn: ExperimentDefinition,
    flight: SubmittedFlight,
    fault: FaultResult,
    obs: Observation,
    events: Sequence[TimelineItem],
    takers: Sequence[str],
    client: ClientRun | None,
) -> str:
    """The attempt as a paragraph, in the order things happened."""
    out = [
        f"`inv run-test` started the WorkspaceLifecycle journey; flight `{flight.flight_id}` was"
        f" submitted on `{flight.receiver}` and slept {defn.delay.seconds:g} s in step"
        f" {defn.delay.step}."
    ]
    switched = _switches_said(defn.method.switches.phase("before_fault"))
    if switched:
        out.insert(0, f"Before the fault: {switched}.")
    if isinstance(fault, KillOwnerResult) and fault.killed:
        ready = "became Ready" if fault.replacement_ready else "did not become Ready"
        whose = (
            "a pod that owned no flight," if defn.method.fault == "kill-idle-pod" else "its owner"
        )
        replaced = (
            f"replacement `{fault.replacement}` {ready}"
            if fault.replacement
            else "no replacement pod came"
        )
        out.append(
            f"`inv kill-pod` deleted {whose} `{fault.killed}` inside step"
            f" {defn.method.when_step}; {replaced}."
        )
    if isinstance(fault, OutageResult) and fault.flight_status:
        out.append(
            f"While the flight slept in step {defn.method.when_step}, `psql` made the service's own"
            " database refuse connections; the step failed and so did its undo, and the"
            f" flight was `{fault.flight_status}` when the outage ended."
        )
    after = _switches_said(defn.method.switches.phase("after_fault"))
    if after:
        out.append(f"Then: {after}.")
    if isinstance(fault, DropConnectionsResult) and fault.terminated:
        out.append(
            f"While the engine's write waited on the row the tool held, `psql` terminated"
            f" {len(fault.terminated)} client backends (the service's first, then the tools');"
            f" the tool's own connection reported `{fault.tool_saw}`."
        )
    if obs.method_error:
        out.append(f"The method did not go as planned: {obs.method_error}.")
    if obs.recoverer:
        out.append(f"`{obs.recoverer}` disowned the dead owner's flights.")
    retries = [i for i in events if i.event.kind is Kind.SQL_RETRY]
    if retries:
        n = len(retries)
        out.append(
            f"The engine logged {n} SQL {'retry' if n == 1 else 'retries'}"
            f" ({retries[0].event.detail}) and carried on."
        )
    if takers:
        out.append("Taking ownership: " + ", ".join(f"`{t}`" for t in dict.fromkeys(takers)) + ".")
    errors = [i for i in events if i.event.kind is Kind.DISPATCH_ERROR]
    if errors:
        out.append(f"`{errors[-1].pod}` failed to rebuild the flight: {errors[-1].event.detail}.")
    if obs.final_status in TERMINAL:
        out.append(f"The flight ended `{obs.final_status}`.")
    else:
        alive = "live" if obs.owner_alive else "dead"
        out.append(f"The flight was left `{obs.final_status}`, owned by {alive} pod `{obs.owner}`.")
    if client is not None:
        out.append(f"The client saw: {client_saw(client)}.")
    return " ".join(out)


#: each sandbox switch in words: (the fault is on, back to normal)
SWITCH_WORDS = {
    "replace_deleted_pods": (
        "the ReplicaSet replaces no deleted pod",
        "deleted pods are replaced again",
    ),
    "pod_watch_dropped": (
        "the pods' pod watches are cut (TCL's listener gives up)",
        "the pods' pod watches work again",
    ),
    "work_queue_detached": (
        "the work-queue subscription is deleted (messages published meanwhile are lost)",
        "the work-queue subscription exists again (empty)",
    ),
    "hold_queue_messages": (
        "pods that receive a READY message neither run nor ack it (as a pod that dies after"
        " taking it)",
        "pods run the READY messages they receive again",
    ),
}


def _switches_said(values: dict[str, bool]) -> str:
    """The switches in words (a fault is on when the value differs from the default)."""
    return "; ".join(
        SWITCH_WORDS[k][0 if v != SWITCH_DEFAULTS[k] else 1]
        for k, v in values.items()
        if k in SWITCH_WORDS
    )


def root_cause(defn: ExperimentDefinition, obs: Observation, events: Sequence[TimelineItem]) -> str:
    """Why the flight ended where it did, from the engine's own lines."""
    switched = defn.method.switches.phase("before_fault")
    if defn.method.fault == "wsm-db-outage":
        return (
            "The service's own database was unavailable while the flight was in step"
            f" {defn.method.when_step}: the step failed, and so did its undo (a dismal failure),"
            " so the engine set the flight FATAL with its completed time. Stairway never runs a"
            " FATAL flight again by itself."
        )
    if defn.method.fault == "kill-idle-pod":
        return (
            "The pod died owning no flight. With its peers' pod watches gone and no replacement"
            " pod starting, nobody ran disownRecovery for it: its stairwayinstance row stays"
            " (a stale instance) while the flight finished on its own pod."
        )
    if switched.get("work_queue_detached") and obs.final_status == "QUEUED":
        return (
            "The flight was disowned and queued while the work-queue subscription did not"
            " exist: Pub/Sub delivers a message only to subscriptions that exist, so no pod ever"
            " received it. Nothing rescans QUEUED flights: it stays QUEUED until the message"
            " is sent again."
        )
    if switched.get("hold_queue_messages") and obs.final_status == "QUEUED":
        return (
            "The READY message reached a pod that neither ran nor acked it (as a pod that dies"
            " right after taking a batch): Pub/Sub gives it out again only after the ack"
            " deadline, so the flight waits QUEUED for at least that long."
        )
    errors = [i for i in events if i.event.kind is Kind.DISPATCH_ERROR and i.event.detail]
    if errors:
        return (
            f"`{errors[-1].event.detail}`: the new owner could not rebuild the flight from"
            f" its stored inputs with the {defn.reader} FlightMap reader, so it took the"
            " flight and left it RUNNING; `resume()` never accepts a RUNNING flight."
        )
    if defn.method.fault == "drop-db-connections":
        if any(i.event.kind is Kind.SQL_RETRY for i in events) or any(
            "Caught SQL connection" in m for m in obs.messages
        ):
            return (
                "The service's connection was terminated mid-statement (SQLSTATE 57P01, which"
                " the engine's DbRetry reports as 08006); the statement was retried on a new"
                " connection and the flight went on."
            )
        return "The connections were cut, but no statement of the engine was on the wire."
    if obs.final_status in TERMINAL and obs.recoverer:
        return (
            "The owner pod died inside a step. Recovery (disownRecovery of the dead instance,"
            f" by `{obs.recoverer}`, then a READY message on the work queue) gave the flight"
            " to a live pod, which re-ran the interrupted step."
        )
    if obs.final_status == "RUNNING" and obs.owner_alive is False:
        return (
            "Nobody disowned the dead owner's flights: no pod listener saw the DELETED event"
            " (the watches were down) and no pod started (no replacement), so recoverStairway and"
            " recoverAndStart never ran for it. The engine has no heartbeat or lease: the flight"
            " stays RUNNING under a dead owner."
        )
    return "Not determined from the logs; see the timeline."
