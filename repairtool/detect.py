"""Detection: flights the engine will never finish by itself, each with the evidence for it.

Kinds (strings are part of the `--json` contract):
- `dead_owner`: RUNNING, owner not among the live instances.
- `stalled`: RUNNING, owner alive, no flight log progress for longer than `stalled_after`. When the
  inputs fail to decode for the reader, this is the make-flight failure pattern (the 2021
  `MakeFlightException`: ownership taken, flight never launched).
- `unqueued`: READY / READY_TO_RESTART with no owner for longer than `unqueued_after` (nothing picks
  it up until a pod restarts), or QUEUED longer than the work-queue retention (message expired).
- `stale_instance`: a `stairwayinstance` row with no live pod (recovery never ran for it).
- `queued_overdue` (informational, proposed action none): QUEUED or READY, unowned, for longer
  than the work queue's ack deadline plus a margin but not yet `unqueued`. Its READY message
  went to a pod that never acked it (the pod died or hung): Pub/Sub redelivers it only after the
  deadline (100 s as the engine creates the subscription), so the flight is slow, maybe lost.

Detection reads only what it needs: one scan of `flight` for the non-terminal statuses, then the
flight log heads and inputs of those few flights through their primary-key indexes.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, text

from repairtool.clock import rfc3339
from repairtool.flightmap import Catalog, ReaderVersion, decode_map
from repairtool.liveness import Liveness
from repairtool.stairway.db import reading
from repairtool.stairway.version import require_stairway


class Kind(enum.StrEnum):
    DEAD_OWNER = "dead_owner"
    STALLED = "stalled"
    UNQUEUED = "unqueued"
    STALE_INSTANCE = "stale_instance"
    UNDECODABLE = "undecodable"
    QUEUED_OVERDUE = "queued_overdue"


#: kinds that report a delay, not a flight the engine will never finish: no action is proposed
#: and they do not change the exit code
INFORMATIONAL: frozenset[Kind] = frozenset({Kind.QUEUED_OVERDUE})

#: the ack deadline the engine creates its work-queue subscription with (stairway-engine.md §3.4)
ENGINE_ACK_DEADLINE = dt.timedelta(seconds=100)
ENGINE_ACK_DEADLINE_SOURCE = (
    "the engine's default: Stairway creates its subscription with a 100 s ack deadline"
    " (no work queue to read it from)"
)
#: how the age of an unowned flight is measured (the engine records no status-change time)
AGE_MEASURED_FROM = (
    "the last recorded activity (submit time, newest flight-log row, last repairtool change):"
    " the engine keeps no status-change time"
)


class Action(enum.StrEnum):
    """What a repair would do (`proposed_action` in `--json`)."""

    RESUME = "resume"  # disown (CAS) + READY message
    FAIL = "fail"  # force FATAL (CAS)
    ENQUEUE = "enqueue"  # READY message only (flight already unowned)
    RECOVER_INSTANCE = "recover_instance"  # the engine's disownRecovery: delete the row
    REENCODE = "reencode"  # rewrite undecodable inputs for the reader, then resume
    NONE = "none"  # report only


@dataclass(frozen=True)
class Finding:
    """One flight (or instance) the engine will not fix by itself."""

    kind: Kind
    flight_id: str | None
    class_name: str | None
    status: str | None
    owner: str | None
    proposed_action: Action
    evidence: dict[str, Any] = field(default_factory=dict)
    instance: str | None = None  # for stale_instance

    def to_json(self) -> dict[str, Any]:
        return {
            "flight_id": self.flight_id,
            "class_name": self.class_name,
            "status": self.status,
            "owner": self.owner,
            "kind": self.kind.value,
            "evidence": self.evidence,
            "proposed_action": self.proposed_action.value,
            **({"instance": self.instance} if self.instance else {}),
        }

    @property
    def informational(self) -> bool:
        """Reports a delay only: no action, no effect on the exit code."""
        return self.kind in INFORMATIONAL


@dataclass(frozen=True)
class Options:
    stalled_after: dt.timedelta = dt.timedelta(minutes=10)
    unqueued_after: dt.timedelta = dt.timedelta(minutes=10)
    queue_retention: dt.timedelta = dt.timedelta(days=3)  # the engine's subscription retention
    class_name: str | None = None
    flight_ids: tuple[str, ...] = ()
    catalog: Catalog | None = None
    reader: ReaderVersion = ReaderVersion.TYPED
    #: the work queue's ack deadline (a message no pod acked comes back after it) and where the
    #: figure comes from; `queued_overdue` = unowned longer than the deadline + `overdue_margin`
    ack_deadline: dt.timedelta = ENGINE_ACK_DEADLINE
    ack_deadline_source: str = ENGINE_ACK_DEADLINE_SOURCE
    overdue_margin: dt.timedelta = dt.timedelta(seconds=30)
    #: reads (deadline, source) when a flight may be overdue: at most once, and only then
    ack_deadline_reader: Callable[[], tuple[dt.timedelta, str]] | None = None


@dataclass(frozen=True)
class Detection:
    findings: tuple[Finding, ...]
    liveness: Liveness
    now: dt.datetime | None
    scanned: int  # non-terminal flights looked at
    instances: tuple[str, ...]


NON_TERMINAL = ("RUNNING", "READY", "READY_TO_RESTART", "QUEUED")


def _db_now(conn: Connection) -> dt.datetime:
    # the engine's timestamps are `timestamp without time zone` in the session zone
    now = conn.execute(text("SELECT LOCALTIMESTAMP")).scalar_one()
    assert isinstance(now, dt.datetime)
    return now


def _iso(t: dt.datetime | None) -> str | None:
    return rfc3339(t, "seconds") if t else None


def _age(now: dt.datetime, since: dt.datetime) -> str:
    secs = int((now - since).total_seconds())
    if secs < 120:
        return f"{secs}s"
    if secs < 7200:
        return f"{secs // 60}m"
    if secs < 172800:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


def detect(engine: Engine, liveness: Liveness, options: Options = Options()) -> Detection:
    """Find orphaned, stalled and unqueued flights and stale instances."""
    with reading(engine) as conn:
        require_stairway(conn)
        return detect_in(conn, liveness, options)


def detect_in(conn: Connection, liveness: Liveness, options: Options) -> Detection:
    now = _db_now(conn)
    where = ["status = ANY(:statuses)"]
    params: dict[str, Any] = {"statuses": list(NON_TERMINAL)}
    if options.class_name:
        where.append("class_name LIKE :cls" if "*" in options.class_name else "class_name = :cls")
        params["cls"] = options.class_name.replace("*", "%")
    if options.flight_ids:
        where.append("flightid = ANY(:ids)")
        params["ids"] = list(options.flight_ids)
    # One statement, as the floor query would be: the non-terminal flights (one scan of
    # `flight`) and, through pk_flightlog, the newest flightlog row of each (LATERAL … LIMIT 1).
    rows = conn.execute(
        text(
            "SELECT f.flightid, f.class_name, f.status, f.stairway_id, f.submit_time,"
            " l.log_time, l.step_index FROM flight f LEFT JOIN LATERAL (SELECT log_time,"
            " step_index FROM flightlog WHERE flightid = f.flightid ORDER BY log_time DESC"
            " LIMIT 1) l ON true WHERE "
            + " AND ".join(f"f.{w}" for w in where)
            + " ORDER BY f.submit_time, f.flightid"
        ),
        params,
    ).all()
    ids = [r.flightid for r in rows]
    last_log: dict[str, tuple[dt.datetime, int]] = {
        r.flightid: (r.log_time, r.step_index) for r in rows if r.log_time is not None
    }
    changed_by_us = _last_audit(conn, ids)
    instances: dict[str, str] = dict(
        conn.execute(text("SELECT stairway_name, stairway_id FROM stairwayinstance")).all()
    )
    live_ids: set[str] | None = None
    if liveness.live is not None:
        live_ids = set(liveness.live) | {sid for n, sid in instances.items() if n in liveness.live}
    registered_ids = set(instances.values())

    ack = _AckDeadline(options)
    running = [r for r in rows if r.status == "RUNNING"]
    decode_failures = _decode_inputs(conn, running, options) if options.catalog else {}
    findings: list[Finding] = []
    for r in rows:
        progress = last_log.get(r.flightid)
        last_at = progress[0] if progress else None
        # the engine keeps no status-change time; our own audit trail does for what we changed
        since = max(t for t in (r.submit_time, last_at, changed_by_us.get(r.flightid)) if t)
        evidence: dict[str, Any] = {
            "submitted": _iso(r.submit_time),
            "last_progress": _iso(last_at),
            "last_step": progress[1] if progress else None,
            "idle_for": _age(now, since),
            "liveness": liveness.source,
        }
        failures = decode_failures.get(r.flightid, [])
        if failures:
            evidence["decode_failures"] = failures
        if r.status == "RUNNING":
            owner_live = (
                (r.stairway_id in live_ids)
                if live_ids is not None
                else (r.stairway_id in registered_ids or None)
            )
            evidence["owner_registered"] = r.stairway_id in registered_ids
            if live_ids is not None and not owner_live:
                evidence["why"] = (
                    f"owner {r.stairway_id} has no live pod; the engine recovers its flights only"
                    " when a pod listener sees the DELETED event or a pod starts"
                )
                findings.append(_finding(Kind.DEAD_OWNER, r, failures, evidence))
            elif now - since > options.stalled_after:
                evidence["why"] = (
                    f"owner {'alive' if owner_live else 'possibly alive'}; no flight log progress"
                    f" for {_age(now, since)} (> {options.stalled_after})"
                )
                if failures:
                    evidence["pattern"] = (
                        "make-flight failure: the inputs cannot be decoded by the "
                        f"{options.reader.label} reader, so the owner took ownership, failed to"
                        " construct the flight (MakeFlightException) and left it RUNNING;"
                        " resume() never accepts RUNNING"
                    )
                findings.append(_finding(Kind.STALLED, r, failures, evidence))
        elif r.status in ("READY", "READY_TO_RESTART") and r.stairway_id is None:
            if now - since > options.unqueued_after:
                evidence["why"] = (
                    f"{r.status} and unowned for {_age(now, since)}; only a pod start or a pod"
                    " deletion (recoverReady) queues it"
                )
                findings.append(_finding(Kind.UNQUEUED, r, failures, evidence))
            elif ack.overdue(now - since):
                findings.append(_overdue_finding(r, now, since, ack, evidence))
        elif r.status == "QUEUED" and now - since > options.queue_retention:
            evidence["why"] = (
                f"QUEUED for {_age(now, since)}, longer than the work-queue retention"
                f" ({options.queue_retention}); its message has expired"
            )
            findings.append(_finding(Kind.UNQUEUED, r, failures, evidence))
        elif r.status == "QUEUED" and r.stairway_id is None and ack.overdue(now - since):
            findings.append(_overdue_finding(r, now, since, ack, evidence))
    if liveness.live is not None and not options.flight_ids:
        for name, sid in sorted(instances.items()):
            if name in liveness.live or name in liveness.terminating:
                continue
            owned = [r.flightid for r in running if r.stairway_id == sid]
            findings.append(
                Finding(
                    Kind.STALE_INSTANCE,
                    None,
                    None,
                    None,
                    sid,
                    Action.RECOVER_INSTANCE,
                    {
                        "why": "registered in stairwayinstance but no live pod; recovery never"
                        " ran for it",
                        "running_flights": owned,
                        "liveness": liveness.source,
                    },
                    instance=name,
                )
            )
    return Detection(tuple(findings), liveness, now, len(rows), tuple(sorted(instances)))


#: Pub/Sub's shortest ack deadline: no flight younger than this plus the margin is overdue
MIN_ACK_DEADLINE = dt.timedelta(seconds=10)


class _AckDeadline:
    """The ack deadline, read (once) only when a flight is old enough to be overdue at all."""

    def __init__(self, options: Options) -> None:
        self.deadline = options.ack_deadline
        self.source = options.ack_deadline_source
        self.margin = options.overdue_margin
        self._reader = options.ack_deadline_reader

    def overdue(self, age: dt.timedelta) -> bool:
        if age <= MIN_ACK_DEADLINE + self.margin:
            return False
        if self._reader is not None:
            self.deadline, self.source = self._reader()
            self._reader = None
        return age > self.deadline + self.margin


def _overdue_finding(
    r: Any, now: dt.datetime, since: dt.datetime, ack: _AckDeadline, evidence: dict[str, Any]
) -> Finding:
    """`queued_overdue`: unowned longer than one ack deadline (+ margin); informational."""
    deadline = int(ack.deadline.total_seconds())
    age = int((now - since).total_seconds())
    evidence |= {
        "age": _age(now, since),
        "age_seconds": age,
        "ack_deadline": f"{deadline}s",
        "ack_deadline_seconds": deadline,
        "ack_deadline_source": ack.source,
        "margin": f"{int(ack.margin.total_seconds())}s",
        "measured_from": AGE_MEASURED_FROM,
    }
    if r.status == "QUEUED":
        evidence["why"] = (
            f"QUEUED for {_age(now, since)}, longer than the ack deadline ({deadline}s) plus"
            f" {evidence['margin']}: its READY message went to a pod that did not ack it (the pod"
            " died or hung); Pub/Sub redelivers it only after the deadline, and a live pod then"
            " takes it. Slow, not yet lost: it becomes `unqueued` after the queue retention"
        )
    else:
        evidence["why"] = (
            f"{r.status} and unowned for {_age(now, since)}, longer than the ack deadline"
            f" ({deadline}s) plus {evidence['margin']}: nothing has queued it; a pod start or a"
            " pod deletion (recoverReady) will. It becomes `unqueued` after --unqueued-after"
        )
    evidence["note"] = "informational: no action proposed; the exit code ignores it"
    return Finding(
        Kind.QUEUED_OVERDUE,
        r.flightid,
        r.class_name,
        r.status,
        r.stairway_id,
        Action.NONE,
        evidence,
    )


def _last_audit(conn: Connection, ids: list[str]) -> dict[str, dt.datetime]:
    """When this toolkit last changed each flight (session time zone, like the engine's columns)."""
    from repairtool.stairway.audit import TABLE, audit_table_exists

    if not ids or not audit_table_exists(conn):
        return {}
    return dict(
        conn.execute(
            text(
                f"SELECT flightid, max(at) AT TIME ZONE current_setting('TimeZone') FROM {TABLE}"
                " WHERE flightid = ANY(:ids) GROUP BY flightid"
            ),
            {"ids": ids},
        ).all()
    )


def _finding(kind: Kind, r: Any, failures: list[dict[str, Any]], ev: dict[str, Any]) -> Finding:
    if failures:
        # re-encoding lets the flight finish; failing it abandons its work without undo
        action = Action.REENCODE if all(f["reencodable"] for f in failures) else Action.FAIL
    elif kind is Kind.DEAD_OWNER:
        action = Action.RESUME
    elif kind is Kind.UNQUEUED:
        action = Action.ENQUEUE
    else:
        ev["note"] = (
            "a live owner may still be running a slow step; repair it only by naming it"
            " (--flight ID)"
        )
        action = Action.NONE
    return Finding(kind, r.flightid, r.class_name, r.status, r.stairway_id, action, ev)


def _decode_inputs(
    conn: Connection, flights: list[Any], options: Options
) -> dict[str, list[dict[str, Any]]]:
    assert options.catalog is not None
    if not flights:
        return {}
    inputs: dict[str, dict[str, str]] = defaultdict(dict)
    for fid, key, value in conn.execute(
        text(
            "SELECT i.flightid, i.key, i.value FROM unnest(CAST(:ids AS varchar[])) AS r(flightid)"
            " JOIN flightinput i ON i.flightid = r.flightid"
        ),
        {"ids": [f.flightid for f in flights]},
    ):
        inputs[fid][key] = value
    out: dict[str, list[dict[str, Any]]] = {}
    for f in flights:
        if options.catalog.flight(f.class_name) is None:
            continue
        report = decode_map(
            f.flightid,
            f.class_name,
            inputs.get(f.flightid, {}),
            options.catalog,
            options.reader,
            source="input",
        )
        if report.findings:
            out[f.flightid] = [x.to_json() for x in report.findings]
    return out
