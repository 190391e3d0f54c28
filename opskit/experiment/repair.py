"""The repair step of an attempt, as an operator does it with ``repairtool`` (and ``inv``).

``repairtool orphans`` dry run (human output for the runbooks, ``--json`` for the verdict), then
the definition's repair steps in order — ``repairtool orphans --fix [--action A]``, ``repairtool
recover ACTION TARGET --fix``, ``inv restart`` — each followed by the flight's status (and, for a
step that leaves the flight waiting, the same status a while later), the audit rows
(``repairtool flights audit --json``), and the re-check (the dry run again).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opskit.experiment.definition import RepairStep, SwitchPhase
from opskit.experiment.lab import Lab, Timeline
from opskit.experiment.observe import wait_idle, wait_status
from opskit.journal import (
    FlightStatus,
    RepairRecord,
    RepairState,
    RepairStepRecord,
    TimelineEntry,
)
from opskit.journal import flight_status as journal_status
from repairtool.clock import rfc3339, utcnow


@dataclass(frozen=True)
class RepairOutcome:
    """The ``repairtool orphans --json`` documents of the attempt, and what the fix reached."""

    dry_run: dict[str, Any]
    fix: dict[str, Any] | None
    repaired_status: str | None
    audit: tuple[dict[str, Any], ...]
    recheck: dict[str, Any]
    state_after: RepairState
    timeline: tuple[TimelineEntry, ...]
    steps: tuple[RepairStepRecord, ...] = ()
    #: the killed pod's stairwayinstance row after the repair (None: no pod was killed)
    instance_after: str | None = None

    def record(self) -> RepairRecord:
        return RepairRecord(
            dry_run=self.dry_run,
            fix=self.fix,
            audit=self.audit,
            state_after=self.state_after,
            steps=self.steps or None,
            instance_after=self.instance_after,  # type: ignore[arg-type]
        )


def _status(lab: Lab, flight_id: str) -> FlightStatus | None:
    row = lab.db.flight(flight_id)
    return journal_status(row["status"]) if row else None


def run_step(
    lab: Lab, step: RepairStep, flight_id: str, killed: str | None, tl: Timeline
) -> RepairStepRecord:
    """One repair command, then the flight's status (and again after ``hold_seconds``)."""
    at = utcnow()
    doc: dict[str, Any] | None = None
    if step.run == "orphans-fix":
        scope = flight_id if step.scope == "flight" else None
        result, doc = lab.tools.fix(scope, step.action, step.reason)
        what = f"--action {step.action}" if step.action else "the proposed actions"
        tl.add("tool", "repair", f"repairtool orphans --fix ({what}) (exit {result.rc})")
    elif step.run == "recover":
        assert step.action is not None
        target = killed if step.target == "killed" and killed else flight_id
        result, doc = lab.tools.recover(step.action, target, step.reason)
        tl.add("tool", "repair", f"repairtool recover {step.action} {target} (exit {result.rc})")
    else:
        result = lab.tools.restart()
        tl.add("tool", "repair", f"inv restart: rolling restart (exit {result.rc})")
    status = (
        journal_status(wait_status(lab, flight_id, step.expect_status) or "RUNNING")
        if step.expect_status
        else _status(lab, flight_id)
    )
    tl.add("db", "state-after-step", f"flight {status} after {result.record.id}")
    held: FlightStatus | None = None
    if step.hold_seconds:
        time.sleep(step.hold_seconds)
        held = _status(lab, flight_id)
        tl.add(
            "db",
            "state-after-hold",
            f"flight still {held} {step.hold_seconds:g} s later (nothing else picked it up)"
            if held == status
            else f"flight {held} {step.hold_seconds:g} s later",
        )
    return RepairStepRecord(
        command_id=result.record.id,
        at=rfc3339(at),
        doc=doc,
        status_after=status,
        held_s=step.hold_seconds or None,
        status_after_hold=held,
    )


def repair(
    lab: Lab,
    flight_id: str,
    *,
    killed: str | None = None,
    switch: Callable[[SwitchPhase], None] | None = None,
) -> RepairOutcome:
    """Dry run, the definition's repair steps, audit rows, re-check. ``switch(phase)`` sets
    the sandbox switches of the ``after_detection`` phase once the dry run has run."""
    tl = Timeline()
    d = lab.defn
    if d.detection.wait_for_findings:
        idle = wait_idle(lab, flight_id)
        tl.add("db", "idle", f"flight idle for {idle:.0f} s: past the detection threshold")
    lab.tools.orphans_dry_run()
    dry = lab.tools.orphans("orphans-dry-run-json")
    if switch is not None:
        switch("after_detection")
    steps: list[RepairStepRecord] = []
    repaired: str | None = None
    r = d.repair
    if r is not None:
        for step in r.plan():
            steps.append(run_step(lab, step, flight_id, killed, tl))
        repaired = wait_status(lab, flight_id, r.expect_status)
        tl.add("db", "state-after-repair", f"flight {repaired}")
    fix = next(
        (s.doc for s in steps if s.command_id.startswith("orphans-fix") and s.doc is not None),
        None,
    )
    audit = lab.tools.audit(flight_id)
    recheck = lab.tools.orphans("orphans-recheck")
    row = lab.db.flight(flight_id)
    status: FlightStatus = journal_status(row["status"] if row else "RUNNING")
    instance: str | None = None
    if killed:
        present = lab.db.rows(
            "SELECT 1 FROM stairwayinstance WHERE stairway_name = :n", {"n": killed}
        )
        instance = "present" if present else "gone"
    return RepairOutcome(
        dry_run=dry,
        fix=fix,
        repaired_status=repaired,
        audit=audit,
        recheck=recheck,
        state_after=RepairState(status=status, owner=row["stairway_id"] if row else None),
        timeline=tl.sorted(),
        steps=tuple(steps),
        instance_after=instance,
    )
