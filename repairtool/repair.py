"""Repair: detection builds one plan; the dry run renders it; `--fix` applies that same plan.

Each change is made of recovery-API steps (compare-and-set, audited):
- resume  = disown (RUNNING → READY, owner cleared) + READY message on the work queue;
- fail    = force FATAL;
- enqueue = READY message for a flight already unowned;
- reencode = rewrite each undecodable input for the reader, then resume;
- recover_instance = the engine's disownRecovery for a stale `stairwayinstance` row.

Safety rules (a refused change is listed with why, and never applied):
- a flight whose inputs fail to decode for the reader is never resumed (it would be orphaned
  again) unless `force`;
- a flight whose owner is alive is only touched when it shows the make-flight failure pattern or
  when the operator named it (`--flight`);
- stale instances are only recovered on real liveness evidence (a pod list, or names given).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from repairtool.detect import Action, Detection, Finding, Kind
from repairtool.events import Event, Sink, discard
from repairtool.flightmap import Catalog, ReaderVersion, reencode
from repairtool.liveness import Confidence
from repairtool.stairway import recovery
from repairtool.stairway.audit import Actor
from repairtool.stairway.model import FlightState, MutationResult, Outcome
from repairtool.stairway.queries import get_flight
from repairtool.stairway.queue import WorkQueue


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
        if f.kind is Kind.UNDECODABLE:
            _plan_undecodable(
                f, wanted, named, failures, catalog, reader, inputs or {}, changes, refused
            )
            continue
        if f.kind is Kind.STALLED and f.flight_id not in named and not failures:
            refused.append(Refusal(f, wanted, "owner is alive; name the flight with --flight"))
            continue
        if wanted in (Action.RESUME, Action.ENQUEUE):
            if failures and not force:
                keys = ", ".join(sorted({x["key"] for x in failures}))
                refused.append(
                    Refusal(
                        f,
                        wanted,
                        f"inputs {keys} fail to decode for the {reader.label} reader: resuming"
                        " would orphan it again; use --action fail or reencode, or --force",
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
) -> None:
    """`repairtool decode --fix`: rewrite inputs (no resume), or fail a flight nobody runs."""
    if wanted is Action.REENCODE:
        rewrites = _rewrites(f, failures, catalog, reader, inputs)
        if isinstance(rewrites, str):
            refused.append(Refusal(f, wanted, rewrites))
        else:
            changes.append(Change(f, Action.REENCODE, ("rewrite_input",), rewrites))
    elif wanted is Action.FAIL:
        if f.status == "RUNNING" and f.flight_id not in named:
            refused.append(
                Refusal(
                    f,
                    wanted,
                    "RUNNING: check its owner with `repairtool orphans`, or name it with --flight",
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
    if not failures:
        return "nothing to re-encode: the inputs decode"
    if catalog is None or f.class_name is None or f.flight_id is None:
        return "re-encoding needs the type catalog"
    spec = catalog.flight(f.class_name)
    rows = inputs.get(f.flight_id, {})
    out: list[tuple[str, str, str]] = []
    for failure in failures:
        key = failure["key"]
        keyspec = spec.keys("input").get(key) if spec else None
        if keyspec is None or key not in rows:
            return f"input {key} is not in the catalog; cannot re-encode it"
        new = reencode(rows[key], keyspec.type, reader)
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
    applied: tuple[Applied, ...]
    skipped: tuple[Applied, ...]


def apply_plan(
    engine: Engine,
    plan: Plan,
    *,
    actor: Actor,
    queue: WorkQueue | None = None,
    rate: float | None = None,
    on_event: Sink = discard,
) -> Outcomes:
    """Apply the plan's changes in order, each step a compare-and-set on what detection saw."""
    applied: list[Applied] = []
    skipped: list[Applied] = []
    on_event(Event("apply.start", f"applying {len(plan.changes)} changes", plan.counts()))
    for n, change in enumerate(plan.changes):
        if rate and n:
            time.sleep(1.0 / rate)
        on_event(Event("change.start", f"{change.action.value} {change.target}"))
        result = _apply_one(engine, change, actor, queue)
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


def _apply_one(engine: Engine, change: Change, actor: Actor, queue: WorkQueue | None) -> Applied:
    f = change.finding
    results: list[MutationResult] = []

    def stop(why: str) -> Applied:
        return Applied(change, tuple(results), False, why)

    if change.action is Action.RECOVER_INSTANCE:
        assert f.instance is not None
        rec = recovery.recover_instance(
            engine,
            f.instance,
            actor=actor,
            expected_flights=f.evidence.get("running_flights", []),
        )
        results.extend(rec.flights)
        if rec.outcome is not Outcome.CHANGED:
            return stop(rec.detail)
        return Applied(change, tuple(results), True, rec.detail)
    assert f.flight_id is not None and f.status is not None
    expected = FlightState(f.status, f.owner)
    for step in change.steps:
        if step == "rewrite_input":
            for key, old, new in change.rewrites:
                r = recovery.rewrite_input(
                    engine, f.flight_id, key, old_value=old, new_value=new, actor=actor
                )
                results.append(r)
                if r.outcome is not Outcome.CHANGED:
                    return stop(r.detail)
        elif step == "disown":
            assert f.owner is not None
            r = recovery.disown(engine, f.flight_id, expected_owner=f.owner, actor=actor)
            results.append(r)
            if r.outcome is not Outcome.CHANGED:
                return stop(r.detail)
        elif step == "enqueue":
            assert queue is not None
            r = recovery.enqueue_ready(engine, f.flight_id, queue=queue, actor=actor)
            results.append(r)
            if r.outcome is not Outcome.CHANGED:
                return stop(r.detail)
        elif step == "force_fatal":
            r = recovery.force_fatal(engine, f.flight_id, expected=expected, actor=actor)
            results.append(r)
            if r.outcome is not Outcome.CHANGED:
                return stop(r.detail)
    return Applied(change, tuple(results), True)


def read_inputs(engine: Engine, flight_ids: list[str]) -> dict[str, dict[str, str]]:
    """Inputs of the given flights (for re-encoding)."""
    return {fid: get_flight(engine, fid).inputs for fid in flight_ids}
