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
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, Engine, text

from repairtool.detect import Action, Detection, Finding, Kind, blocking
from repairtool.errors import RepairToolError, UsageError
from repairtool.events import Event, Sink, discard
from repairtool.flightmap import Catalog, ReaderVersion, reencode
from repairtool.liveness import Confidence
from repairtool.stairway import recovery
from repairtool.stairway.audit import Actor, ensure_audit_table
from repairtool.stairway.db import DEFAULT_RETRY, RetryPolicy, run_read
from repairtool.stairway.errors import LiveOwnerRefused, PermissionDenied, shown
from repairtool.stairway.model import FlightState, FlightStatus, MutationResult, Outcome
from repairtool.stairway.queries import get_flight
from repairtool.stairway.queue import WorkQueue
from repairtool.stairway.recovery import Because, Evidence


@dataclass(frozen=True)
class Change:
    """One planned change: the finding, the action and its steps."""

    finding: Finding
    action: Action
    steps: tuple[str, ...]
    rewrites: tuple[tuple[str, str, str], ...] = field(default=(), repr=False)  # key, old, new

    @property
    def target(self) -> str:
        return self.finding.flight_id or f"instance {self.finding.instance}"

    def to_json(self) -> dict[str, Any]:
        return {
            "flight_id": self.finding.flight_id,
            "instance": self.finding.instance,
            "kind": self.finding.kind.value,
            "action": self.action.value,
            "steps": list(self.steps),
            "reencode_keys": [k for k, _, _ in self.rewrites],
        }


@dataclass(frozen=True)
class Refusal:
    finding: Finding
    action: Action
    why: str

    def to_json(self) -> dict[str, Any]:
        return {
            "flight_id": self.finding.flight_id,
            "instance": self.finding.instance,
            "kind": self.finding.kind.value,
            "action": self.action.value,
            "why": self.why,
        }


@dataclass(frozen=True)
class Plan:
    detection: Detection
    changes: tuple[Change, ...]
    refused: tuple[Refusal, ...]
    report_only: tuple[Finding, ...]
    deferred: tuple[Change, ...]  # beyond --limit
    queue: str | None  # topic the READY messages go to, or None (no work queue)
    force: bool = False  # the operator overrode the safety rules (recorded as evidence)

    @property
    def empty(self) -> bool:
        return not self.changes

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.changes:
            label = f"{c.action.value} ({c.finding.kind.value})"
            out[label] = out.get(label, 0) + 1
        return out


def _decode_failures(f: Finding) -> list[dict[str, Any]]:
    return list(f.evidence.get("decode_failures", []))


def build_plan(
    detection: Detection,
    *,
    action: Action | None = None,
    named: frozenset[str] = frozenset(),
    force: bool = False,
    limit: int | None = None,
    queue: WorkQueue | None = None,
    catalog: Catalog | None = None,
    reader: ReaderVersion = ReaderVersion.TYPED,
    inputs: dict[str, dict[str, str]] | None = None,
) -> Plan:
    """Turn findings into changes. `action` overrides each finding's proposed action (resume or
    fail); `inputs` (flight → key → stored text) is needed only for reencode."""
    if limit is not None and limit < 0:
        raise UsageError(f"--limit must be 0 or more, not {limit}")
    changes: list[Change] = []
    refused: list[Refusal] = []
    report_only: list[Finding] = []
    enqueue = ("enqueue",) if queue is not None else ()
    for f in detection.findings:
        if f.informational:
            continue  # a delay, reported only (`repairtool recover enqueue` re-sends by hand)
        if f.kind is Kind.STALE_INSTANCE:
            if detection.liveness.confidence is Confidence.LOW:
                report_only.append(f)
            else:
                changes.append(Change(f, Action.RECOVER_INSTANCE, ("recover_instance",)))
            continue
        wanted = f.proposed_action
        if action is not None and wanted is not Action.NONE:
            wanted = action
        if action is not None and f.flight_id in named:
            wanted = action
        if wanted is Action.NONE:
            report_only.append(f)
            continue
        failures = _decode_failures(f)
        if wanted is Action.FAIL and action is not Action.FAIL:
            refused.append(Refusal(f, wanted, _explicit_fail(f)))
            continue
        if f.kind is Kind.UNDECODABLE:
            _plan_undecodable(
                f, wanted, named, failures, catalog, reader, inputs or {}, changes, refused, force
            )
            continue
        stops = blocking(failures)
        if f.kind is Kind.STALLED and not stops and not force:
            refused.append(
                Refusal(
                    f,
                    wanted,
                    "owner is alive and nothing shows it cannot run the flight (no make-flight"
                    " failure); a slow step looks the same — use --force to act anyway",
                )
            )
            continue
        if wanted in (Action.RESUME, Action.ENQUEUE):
            if stops and not force:
                entries = ", ".join(sorted({f"{x['source']} {x['key']}" for x in stops}))
                refused.append(
                    Refusal(
                        f,
                        wanted,
                        f"{entries} fail to decode for the {reader.label} reader, so resuming"
                        " would not let the engine finish it"
                        f" ({f.evidence.get('decode', 'see the decode failures')});"
                        " use --action reencode or fail, or --force",
                    )
                )
                continue
            steps = enqueue if f.status != "RUNNING" else ("disown", *enqueue)
            if not steps:
                refused.append(Refusal(f, wanted, "no work queue to send the READY message to"))
                continue
            changes.append(Change(f, Action.RESUME if f.status == "RUNNING" else wanted, steps))
        elif wanted is Action.FAIL:
            changes.append(Change(f, Action.FAIL, ("force_fatal",)))
        elif wanted is Action.REENCODE:
            rewrites = _rewrites(f, failures, catalog, reader, inputs or {})
            if isinstance(rewrites, str):
                refused.append(Refusal(f, wanted, rewrites))
                continue
            resume = ("disown", *enqueue) if f.status == "RUNNING" else enqueue
            changes.append(Change(f, Action.REENCODE, ("rewrite_input", *resume), rewrites))
        else:
            report_only.append(f)
    deferred: list[Change] = []
    if limit is not None and len(changes) > limit:
        changes, deferred = changes[:limit], changes[limit:]
    return Plan(
        detection,
        tuple(changes),
        tuple(refused),
        tuple(report_only),
        tuple(deferred),
        queue.topic_path if queue else None,
        force,
    )


def _explicit_fail(f: Finding) -> str:
    because = f.evidence.get("decode") or f.evidence.get("why") or "see the finding's evidence"
    return (
        f"force fatal is irreversible and is applied only with --action fail; proposed because"
        f" {because}"
    )


def _plan_undecodable(
    f: Finding,
    wanted: Action,
    named: frozenset[str],
    failures: list[dict[str, Any]],
    catalog: Catalog | None,
    reader: ReaderVersion,
    inputs: dict[str, dict[str, str]],
    changes: list[Change],
    refused: list[Refusal],
    force: bool = False,
) -> None:
    """`repairtool decode --fix`: rewrite inputs (no resume), or fail a flight nobody runs."""
    if wanted is Action.REENCODE:
        rewrites = _rewrites(f, failures, catalog, reader, inputs)
        if isinstance(rewrites, str):
            refused.append(Refusal(f, wanted, rewrites))
        else:
            changes.append(Change(f, Action.REENCODE, ("rewrite_input",), rewrites))
    elif wanted is Action.FAIL:
        if f.status == "RUNNING" and not force:
            refused.append(
                Refusal(
                    f,
                    wanted,
                    "RUNNING: its owner may be running it; repair it with `repairtool orphans`,"
                    " which checks the owner's liveness",
                )
            )
        else:
            changes.append(Change(f, Action.FAIL, ("force_fatal",)))
    else:
        refused.append(Refusal(f, wanted, "decode repairs are fail or reencode"))


def _rewrites(
    f: Finding,
    failures: list[dict[str, Any]],
    catalog: Catalog | None,
    reader: ReaderVersion,
    inputs: dict[str, dict[str, str]],
) -> tuple[tuple[str, str, str], ...] | str:
    stops = blocking(failures)
    if not stops:
        return "nothing to re-encode: what fails to decode does not stop a resume"
    if catalog is None or f.class_name is None or f.flight_id is None:
        return "re-encoding needs the type catalog"
    spec = catalog.flight(f.class_name)
    rows = inputs.get(f.flight_id, {})
    out: list[tuple[str, str, str]] = []
    for failure in stops:
        key = failure["key"]
        if failure["source"] != "input":
            return (
                f"{failure['source']} {key} cannot be re-encoded: repairtool rewrites flightinput"
                " values only"
            )
        keyspec = spec.keys("input").get(key) if spec else None
        if keyspec is None or key not in rows:
            return f"input {key} is not in the catalog; cannot re-encode it"
        new = reencode(rows[key], keyspec.type, reader, catalog.classes)
        if new is None:
            return f"input {key} cannot be re-encoded for the {reader.label} reader"
        out.append((key, rows[key], new))
    return tuple(out)


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
    on_event(Event("apply.start", f"applying {len(plan.changes)} changes", plan.counts()))
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
