"""Repair: detection builds one plan; the dry run renders it; `--fix` applies that same plan.

Each change is made of recovery-API steps (compare-and-set, audited):
- resume  = disown (RUNNING → READY, owner cleared) + READY message on the work queue;
- fail    = force FATAL;
- enqueue = READY message for a flight already unowned;
- reencode = rewrite each undecodable input for the reader, then resume;
- recover_instance = the engine's disownRecovery for a stale `stairwayinstance` row.

Safety rules (a refused change is listed with why, and never applied):
- force FATAL is irreversible: a finding may propose `fail` (only where the engine can neither
  finish nor undo the flight, see `detect.decode_proposal`), but a plan applies it only when the
  operator asked for `--action fail`; otherwise it is listed as refused, with the reason;
- a flight whose FlightMap the engine cannot rebuild, or whose inputs fail to decode for the
  reader, is never resumed (it would fail or be orphaned again) unless `force`; working-map
  values that fail at `get` do not stop a resume (the step that reads them fails and the flight
  undoes);
- a flight whose owner is alive is only touched with explicit evidence (the make-flight failure
  pattern) or `force`; naming it (`--flight`) only chooses it, it does not bypass this rule;
- stale instances are only recovered on real liveness evidence (a pod list, or names given).

Applying (`apply_plan`) is compare-and-set end to end: every step compares against the state
detection saw — status, owner and row version (`evidence.row_version`) — and the next step of the
same change against the state the previous step left; each step records its evidence (owner
dead, make-flight failure, forced) in the audit row. An error that stops the apply (database
unreachable after the retries, an unknown commit outcome, a missing privilege) leaves the changes
already made in place and reports which were not attempted.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, Engine, text

from repairtool.detect import Action, Finding, Kind, blocking
from repairtool.errors import RepairToolError, UsageError
from repairtool.events import Event, Sink, discard
from repairtool.plan import Change, Plan, Refusal, build_plan
from repairtool.stairway import recovery
from repairtool.stairway.audit import Actor, ensure_audit_table
from repairtool.stairway.db import DEFAULT_RETRY, RetryPolicy, run_read
from repairtool.stairway.errors import LiveOwnerRefused, PermissionDenied, shown
from repairtool.stairway.model import FlightState, FlightStatus, MutationResult, Outcome
from repairtool.stairway.queries import get_flight
from repairtool.stairway.queue import WorkQueue
from repairtool.stairway.recovery import Because, Evidence

__all__ = [
    "Applied",
    "Change",
    "Outcomes",
    "Plan",
    "Refusal",
    "apply_plan",
    "build_plan",
    "check_can_write",
    "read_inputs",
]


@dataclass(frozen=True)
class Applied:
    change: Change
    results: tuple[MutationResult, ...]
    ok: bool
    why: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            **self.change.to_json(),
            "results": [
                {
                    "step": r.action,
                    "flight_id": r.flight_id,
                    "outcome": r.outcome.value,
                    "before": r.before,
                    "after": r.after,
                    "detail": r.detail,
                    "audit_id": r.audit_id,
                }
                for r in self.results
            ],
            **({"why": self.why} if self.why else {}),
        }


@dataclass(frozen=True)
class Outcomes:
    """What `apply_plan` did: changes applied, skipped (the flight moved on, or a safety rule),
    failed (the error that stopped the apply) and not attempted after it."""

    applied: tuple[Applied, ...]
    skipped: tuple[Applied, ...]
    failed: tuple[Applied, ...] = ()
    not_attempted: tuple[Change, ...] = ()
    error: RepairToolError | None = None


def check_can_write(engine: Engine, plan: Plan, *, policy: RetryPolicy = DEFAULT_RETRY) -> None:
    """Before the first change: the audit table is ours (or can be created) and the role may
    UPDATE what the plan changes — so a SELECT-only role or a read-only replica fails with one
    line and nothing half-written."""
    if not plan.changes:
        return
    tables = {"flight"}
    if any(c.rewrites for c in plan.changes):
        tables.add("flightinput")
    if any(c.action is Action.RECOVER_INSTANCE for c in plan.changes):
        tables.add("stairwayinstance")

    def body(conn: Connection) -> list[str]:
        if conn.execute(text("SELECT pg_is_in_recovery()")).scalar():
            return ["the database is a read-only replica (in recovery)"]
        missing = []
        for table in sorted(tables):
            privilege = "DELETE" if table == "stairwayinstance" else "UPDATE"
            ok = conn.execute(
                text("SELECT has_table_privilege(CAST(:t AS regclass), :p)"),
                {"t": table, "p": privilege},
            ).scalar()
            if not ok:
                missing.append(f"{privilege} on {table}")
        return missing

    missing = run_read(engine, body, policy=policy, what="check privileges")
    if missing:
        raise PermissionDenied(
            f"--fix needs {', '.join(missing)}; the database role may only read (a dry run"
            " works): nothing was changed"
        )
    ensure_audit_table(engine, policy=policy)


def apply_plan(
    engine: Engine,
    plan: Plan,
    *,
    actor: Actor,
    queue: WorkQueue | None = None,
    rate: float | None = None,
    on_event: Sink = discard,
    policy: RetryPolicy = DEFAULT_RETRY,
    on_error: Literal["raise", "record"] = "raise",
) -> Outcomes:
    """Apply the plan's changes in order, each step a compare-and-set on what detection saw.

    Arguments are checked before anything is applied (`rate` must be a positive number), and so
    are the privileges the plan needs. An error that stops the apply part-way is raised
    (`on_error="raise"`) or returned in `Outcomes.error` with the changes not attempted
    (`"record"`, for callers that still report what was done)."""
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        raise UsageError(f"--rate must be a positive number of changes per second, not {rate}")
    check_can_write(engine, plan, policy=policy)
    applied: list[Applied] = []
    skipped: list[Applied] = []
    on_event(
        Event(
            "apply.start",
            f"applying {len(plan.changes)} changes",
            {"total": len(plan.changes), **plan.counts()},
        )
    )
    for n, change in enumerate(plan.changes):
        if rate and n:
            time.sleep(1.0 / rate)
        on_event(Event("change.start", f"{change.action.value} {change.target}"))
        try:
            result = _apply_one(engine, plan, change, actor, queue, policy)
        except RepairToolError as error:
            failed = Applied(change, (), False, str(error))
            rest = plan.changes[n + 1 :]
            on_event(
                Event(
                    "change.failed",
                    f"{change.action.value} {change.target}: {error}",
                    failed.to_json(),
                )
            )
            on_event(
                Event(
                    "apply.stopped",
                    f"{len(applied)} applied, {len(skipped)} skipped, stopped with"
                    f" {len(rest)} not attempted",
                )
            )
            if on_error == "raise":
                raise
            return Outcomes(tuple(applied), tuple(skipped), (failed,), tuple(rest), error)
        (applied if result.ok else skipped).append(result)
        on_event(
            Event(
                "change.done" if result.ok else "change.skipped",
                f"{change.action.value} {change.target}: "
                + ("done" if result.ok else f"skipped ({result.why})"),
                result.to_json(),
            )
        )
    on_event(Event("apply.done", f"{len(applied)} applied, {len(skipped)} skipped"))
    return Outcomes(tuple(applied), tuple(skipped))


def _because(plan: Plan, f: Finding) -> Because | None:
    """The evidence for touching a RUNNING flight with an owner (None: none, refused)."""
    if f.kind is Kind.DEAD_OWNER:
        return Because(
            Evidence.OWNER_DEAD,
            f"owner {shown(f.owner)} has no live pod ({plan.detection.liveness.source})",
        )
    if f.kind is Kind.STALLED and blocking(f.evidence.get("decode_failures", [])):
        return Because(Evidence.MAKE_FLIGHT_FAILURE, str(f.evidence.get("pattern", "")))
    if plan.force:
        return Because(Evidence.FORCED, "the operator forced it (--force)")
    return None


def _after_state(r: MutationResult, was: FlightState) -> FlightState:
    after = r.after or {}
    if "status" not in after:
        return was
    return FlightState(after["status"], after.get("stairway_id"), after.get("version"))


def _apply_one(
    engine: Engine,
    plan: Plan,
    change: Change,
    actor: Actor,
    queue: WorkQueue | None,
    policy: RetryPolicy,
) -> Applied:
    f = change.finding
    results: list[MutationResult] = []

    def stop(why: str) -> Applied:
        return Applied(change, tuple(results), False, why)

    if change.action is Action.RECOVER_INSTANCE:
        if f.instance is None:
            return stop("no instance name in the finding")
        versions = f.evidence.get("running_versions")
        rec = recovery.recover_instance(
            engine,
            f.instance,
            actor=actor,
            expected_id=f.owner,
            expected_version=f.evidence.get("row_version"),
            expected_flights=versions
            if isinstance(versions, dict)
            else f.evidence.get("running_flights", []),
            policy=policy,
        )
        results.extend(rec.flights)
        if rec.outcome is not Outcome.CHANGED or not rec.instance_deleted:
            return stop(rec.detail)
        return Applied(change, tuple(results), True, rec.detail)
    if f.flight_id is None or f.status is None:
        return stop("no flight in the finding")
    current = FlightState(f.status, f.owner, f.evidence.get("row_version"))
    because = _because(plan, f)
    try:
        for step in change.steps:
            if step == "rewrite_input":
                for key, old, new in change.rewrites:
                    r = recovery.rewrite_input(
                        engine,
                        f.flight_id,
                        key,
                        old_value=old,
                        new_value=new,
                        actor=actor,
                        expected=current,
                        policy=policy,
                    )
                    results.append(r)
                    if r.outcome is not Outcome.CHANGED:
                        return stop(r.detail)
            elif step == "disown":
                r = recovery.disown(
                    engine,
                    f.flight_id,
                    expected=current,
                    because=because,
                    actor=actor,
                    policy=policy,
                )
                results.append(r)
                if r.outcome is not Outcome.CHANGED:
                    return stop(r.detail)
                current = _after_state(r, current)
            elif step == "enqueue":
                if queue is None:
                    return stop("no work queue to send the READY message to")
                r = recovery.enqueue_ready(
                    engine,
                    f.flight_id,
                    queue=queue,
                    expected=current,
                    actor=actor,
                    policy=policy,
                )
                results.append(r)
                if r.outcome is not Outcome.CHANGED:
                    picked = _picked_up_after_disown(results, r)
                    if picked:
                        return Applied(change, tuple(results), True, picked)
                    return stop(r.detail)
                current = _after_state(r, current)
            elif step == "force_fatal":
                r = recovery.force_fatal(
                    engine,
                    f.flight_id,
                    expected=current,
                    because=because,
                    actor=actor,
                    policy=policy,
                )
                results.append(r)
                if r.outcome is not Outcome.CHANGED:
                    return stop(r.detail)
                current = _after_state(r, current)
    except LiveOwnerRefused as error:
        return stop(str(error))
    return Applied(change, tuple(results), True)


def _picked_up_after_disown(results: list[MutationResult], enqueue: MutationResult) -> str:
    """A flight our own disown made READY and a live pod took before the READY message: the
    resume happened without the message (recoverReady) — the change reached its goal."""
    disowned = any(r.action == "disown" and r.outcome is Outcome.CHANGED for r in results)
    now = enqueue.before or {}
    if disowned and now.get("status") == FlightStatus.RUNNING and now.get("stairway_id"):
        return f"picked up by {now['stairway_id']} before the READY message was needed"
    return ""


def read_inputs(engine: Engine, flight_ids: list[str]) -> dict[str, dict[str, str]]:
    """Inputs of the given flights (for re-encoding)."""
    return {fid: get_flight(engine, fid).inputs for fid in flight_ids}
