"""The repair step of an attempt, as an operator does it with ``repairtool``.

``repairtool orphans`` dry run (human output for the runbooks, ``--json`` for the verdict),
``--fix --action A --reason R --yes`` when the experiment says so and the state it reaches,
the audit rows (``repairtool flights audit --json``), and the re-check (the dry run again).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opskit.experiment.lab import Lab, Timeline
from opskit.experiment.observe import wait_status
from opskit.journal import FlightStatus, RepairRecord, RepairState, TimelineEntry
from opskit.journal import flight_status as journal_status


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

    def record(self) -> RepairRecord:
        return RepairRecord(
            dry_run=self.dry_run, fix=self.fix, audit=self.audit, state_after=self.state_after
        )


def repair(lab: Lab, flight_id: str) -> RepairOutcome:
    """Dry run, the fix when the definition has one, audit rows, re-check."""
    tl = Timeline()
    lab.tools.orphans_dry_run()
    dry = lab.tools.orphans("orphans-dry-run-json")
    fix: dict[str, Any] | None = None
    repaired: str | None = None
    r = lab.defn.repair
    if r is not None:
        rc, fix = lab.tools.fix(flight_id, r.action, r.reason)
        tl.add("tool", "repair", f"repairtool orphans --fix --action {r.action} (exit {rc})")
        repaired = wait_status(lab, flight_id, r.expect_status)
        tl.add("db", "state-after-repair", f"flight {repaired}")
    audit = lab.tools.audit(flight_id)
    recheck = lab.tools.orphans("orphans-recheck")
    row = lab.db.flight(flight_id)
    status: FlightStatus = journal_status(row["status"] if row else "RUNNING")
    return RepairOutcome(
        dry_run=dry,
        fix=fix,
        repaired_status=repaired,
        audit=audit,
        recheck=recheck,
        state_after=RepairState(status=status, owner=row["stairway_id"] if row else None),
        timeline=tl.sorted(),
    )
