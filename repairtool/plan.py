"""The one plan: detection's findings turned into changes, refusals and report-only findings
(`build_plan`). The dry run prints it, `--fix` applies that same plan (`repairtool.repair`).

Pure: no database access here, so read commands build and print a plan without the database
layer that applies it. The safety rules are listed in `repairtool.repair`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from repairtool.detect import Action, Detection, Finding, Kind, blocking
from repairtool.errors import UsageError
from repairtool.flightmap import Catalog, ReaderVersion, reencode
from repairtool.liveness import Confidence

if TYPE_CHECKING:
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
    """The finding's decode failures (read only here; most findings have none)."""
    failures: list[dict[str, Any]] = f.evidence.get("decode_failures") or []
    return failures


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
        stops = blocking(failures) if failures else failures
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
