"""Detection: flights the engine will never finish by itself, each with the evidence for it.

Kinds (strings are part of the `--json` contract):
- `dead_owner`: RUNNING, owner not among the live instances.
- `stalled`: RUNNING, owner alive, no flight log progress for longer than `stalled_after`. When the
  inputs fail to decode for the reader, this is the make-flight failure pattern (the 2021
  `MakeFlightException`: ownership taken, flight never launched).
- `unqueued`: READY / READY_TO_RESTART with no owner for longer than `unqueued_after` (nothing picks
  it up until a pod restarts), or QUEUED longer than the work-queue retention (message expired).
- `stale_instance`: a `stairwayinstance` row with no live pod (recovery never ran for it).
- `unowned_running`: RUNNING with no owner (`stairway_id` NULL). No engine path leaves a flight
  like this and nothing picks it up (resume() never takes RUNNING; disownRecovery selects by
  owner); reported only — repair it by naming it with an action.
- `queued_overdue` (informational, proposed action none): QUEUED or READY, unowned, for longer
  than the work queue's ack deadline plus a margin but not yet `unqueued`. Its READY message
  went to a pod that never acked it (the pod died or hung): Pub/Sub redelivers it only after the
  deadline (100 s as the engine creates the subscription), so the flight is slow, maybe lost.

Detection reads only what it needs: one scan of `flight` for the non-terminal statuses, then the
flight log heads and inputs of those few flights through their primary-key indexes. The read is
retried like the engine's DbRetry (a terminated backend is retried, not a traceback).

When did the current owner take the flight? The engine keeps no such time; `stalled` must not
count the time before it. The database's evidence, strongest first (`evidence.state_since_source`):
1. `commit_timestamp`: with `track_commit_timestamp = on` (a Cloud SQL flag), the commit time
   of the flight row's last change (`pg_xact_commit_timestamp(xmin)`) — the takeover itself;
2. `audit`: this toolkit's own audit row when its change is the row's last one (same version);
3. `submit`: the flight row still carries the `xmin` of its submit transaction (the one that
   wrote its `flightinput` rows): never taken over, owned since `submit_time`;
4. `progress_after_change`: the newest `flightlog` row was written by a later transaction than
   the flight row's last change (compared with `age(xmin)`): the current owner logged progress
   after it took the flight, so idleness counts from that log row.
Otherwise the flight changed hands after its last progress at an unknown time: it is `stalled`
only with explicit evidence (its inputs fail to decode for the reader: the make-flight failure),
with `idle_for` reported as unknown.
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
from repairtool.flightmap.working import decode_working_map
from repairtool.liveness import Liveness
from repairtool.stairway.audit import last_changes
from repairtool.stairway.db import DEFAULT_RETRY, RetryPolicy, run_read
from repairtool.stairway.errors import shown
from repairtool.stairway.queries import require_columns
from repairtool.stairway.version import column_exists, require_stairway, table_exists


class Kind(enum.StrEnum):
    DEAD_OWNER = "dead_owner"
    STALLED = "stalled"
    UNQUEUED = "unqueued"
    STALE_INSTANCE = "stale_instance"
    UNDECODABLE = "undecodable"
    UNOWNED_RUNNING = "unowned_running"
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


def detect(
    engine: Engine,
    liveness: Liveness,
    options: Options = Options(),
    *,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> Detection:
    """Find orphaned, stalled and unqueued flights and stale instances (one read-only
    transaction, retried like the engine's DbRetry)."""

    def body(conn: Connection) -> Detection:
        require_stairway(conn)
        return detect_in(conn, liveness, options)

    return run_read(engine, body, policy=policy, what="detect")


def _commit_timestamps(conn: Connection) -> bool:
    return bool(
        conn.execute(text("SELECT current_setting('track_commit_timestamp') = 'on'")).scalar()
    )


# Timestamps are read as `timestamp` in the session zone whatever the column's type (a newer
# schema's `timestamptz` included); a value that is not finite (±infinity) reads as NULL.
def _ts(expr: str) -> str:
    return f"CASE WHEN isfinite({expr}) THEN CAST({expr} AS timestamp) END"


@dataclass(frozen=True)
class _Since:
    """When the flight row last changed (`changed_at`, or None when unknown) and from when the
    current owner's idleness counts (`idle_since`, None when unknown)."""

    changed_at: dt.datetime | None
    source: str
    idle_since: dt.datetime | None
    lower_bound: dt.datetime | None  # the row changed no earlier than this


def _since(r: Any, audit: tuple[dt.datetime, str] | None) -> _Since:
    last_log: dt.datetime | None = r.log_time
    submit: dt.datetime | None = r.submit_time
    changed_at: dt.datetime | None = None
    source = ""
    if r.changed_at is not None:
        changed_at, source = r.changed_at, "commit_timestamp"
    elif audit is not None and audit[1] == r.version:
        changed_at, source = audit[0], "audit"
    elif r.unchanged_since_submit and submit is not None:
        changed_at, source = submit, "submit"
    if r.logged_after_change and last_log is not None:
        idle: dt.datetime | None = max(t for t in (last_log, changed_at) if t is not None)
        source = source or "progress_after_change"
    elif changed_at is not None:
        idle = max(t for t in (changed_at, last_log) if t is not None)
    else:
        idle = None
    known = [t for t in (submit, last_log, audit[0] if audit else None) if t is not None]
    return _Since(changed_at, source or "unknown", idle, max(known) if known else None)


def detect_in(conn: Connection, liveness: Liveness, options: Options) -> Detection:
    require_columns(conn)
    now = _db_now(conn)
    where = ["status = ANY(:statuses)"]
    params: dict[str, Any] = {"statuses": list(NON_TERMINAL)}
    if options.class_name:
        where.append("class_name LIKE :cls" if "*" in options.class_name else "class_name = :cls")
        params["cls"] = options.class_name.replace("*", "%")
    if options.flight_ids:
        where.append("flightid = ANY(:ids)")
        params["ids"] = list(options.flight_ids)
    changed_at = (
        # permanent xids (frozen, bootstrap) have no commit timestamp to ask for
        "CASE WHEN f.xmin::text::bigint > 2 THEN"
        f" {_ts('pg_xact_commit_timestamp(f.xmin)')} END AS changed_at"
        if _commit_timestamps(conn)
        else "NULL::timestamp AS changed_at"
    )
    # One statement, as the floor query would be: the non-terminal flights (one scan of
    # `flight`) and, through pk_flightlog, the newest flightlog row of each (LATERAL … LIMIT 1),
    # with the row versions (xmin) that tell when ownership changed (see the module docstring).
    # With a catalog the same row also gives the working map's source (§5.5): its
    # working_parameters and the id its flightworking rows hang off.
    inner = outer = ""
    if options.catalog is not None:
        log_id = "id" if column_exists(conn, "flightlog", "id") else "NULL::uuid"
        inner = f", working_parameters, {log_id} AS log_id"
        outer = ", l.working_parameters, l.log_id"
    rows = conn.execute(
        text(
            "SELECT f.flightid, f.class_name, f.status, f.stairway_id,"
            f" {_ts('f.submit_time')} AS submit_time, f.xmin::text AS version,"
            # the submit wrote the flight row and all its inputs in one transaction: one input
            # row's xmin is the submit's (looked up only when no later progress settles it)
            " CASE WHEN age(l.log_xmin) < age(f.xmin) THEN NULL ELSE"
            " COALESCE((SELECT i.xmin FROM flightinput i WHERE i.flightid = f.flightid LIMIT 1)"
            " = f.xmin, false) END AS unchanged_since_submit,"
            f" {changed_at}, l.log_time, l.step_index{outer},"
            " COALESCE(age(l.log_xmin) < age(f.xmin), false) AS logged_after_change"
            f" FROM flight f LEFT JOIN LATERAL (SELECT {_ts('log_time')} AS log_time,"
            f" step_index, xmin AS log_xmin{inner} FROM flightlog WHERE flightid = f.flightid"
            " AND log_time IS NOT NULL ORDER BY flightlog.log_time DESC LIMIT 1) l ON true WHERE "
            + " AND ".join(f"f.{w}" for w in where)
            + " ORDER BY f.submit_time, f.flightid"
        ),
        params,
    ).all()
    ids = [r.flightid for r in rows]
    changed_by_us = last_changes(conn, ids)
    instance_rows = conn.execute(
        text("SELECT stairway_name, stairway_id, xmin::text AS version FROM stairwayinstance")
    ).all()
    instances: dict[str, str] = {n: sid for n, sid, _ in instance_rows if n is not None}
    instance_versions = {n: v for n, _, v in instance_rows if n is not None}
    live_ids: set[str] | None = None
    if liveness.live is not None:
        live_ids = set(liveness.live) | {sid for n, sid in instances.items() if n in liveness.live}
    registered_ids = set(instances.values())

    ack = _AckDeadline(options)
    running = [r for r in rows if r.status == "RUNNING"]
    decode_failures = _decode_flights(conn, running, options) if options.catalog else {}
    findings: list[Finding] = []
    for r in rows:
        since = _since(r, changed_by_us.get(r.flightid))
        evidence: dict[str, Any] = {
            "submitted": _iso(r.submit_time),
            "last_progress": _iso(r.log_time),
            "last_step": r.step_index if r.log_time is not None else None,
            "row_version": r.version,
            "state_since": _iso(since.changed_at),
            "state_since_source": since.source,
            "liveness": liveness.source,
        }
        if since.idle_since is not None:
            evidence["idle_for"] = _age(now, since.idle_since)
        elif since.lower_bound is not None:
            evidence["idle_for"] = f"unknown (at most {_age(now, since.lower_bound)})"
        else:
            evidence["idle_for"] = "unknown"
        failures = decode_failures.get(r.flightid, [])
        if failures:
            evidence["decode_failures"] = failures
        if r.status == "RUNNING" and r.stairway_id is None:
            evidence["why"] = (
                "RUNNING with no owner (stairway_id NULL): no engine path leaves a flight like"
                " this, and nothing picks it up (resume() never takes RUNNING, disownRecovery"
                " selects by owner); check that no pod runs it, then name it with an action"
            )
            findings.append(
                Finding(
                    Kind.UNOWNED_RUNNING,
                    r.flightid,
                    r.class_name,
                    r.status,
                    None,
                    Action.NONE,
                    evidence,
                )
            )
        elif r.status == "RUNNING":
            owner_live = (
                (r.stairway_id in live_ids)
                if live_ids is not None
                else (r.stairway_id in registered_ids or None)
            )
            evidence["owner_registered"] = r.stairway_id in registered_ids
            if since.idle_since is not None:
                stalled = now - since.idle_since > options.stalled_after
                idle_text = f"no flight log progress for {_age(now, since.idle_since)}"
            else:
                # the owner took it after its last progress, at a time the database does not
                # keep: only explicit evidence makes it stalled
                stalled = bool(blocking(failures))
                idle_text = (
                    "taken over after its last progress at an unknown time (enable"
                    " track_commit_timestamp for the exact time)"
                )
            if live_ids is not None and not owner_live:
                evidence["why"] = (
                    f"owner {shown(r.stairway_id)} has no live pod; the engine recovers its flights"
                    " only"
                    " when a pod listener sees the DELETED event or a pod starts"
                )
                findings.append(_finding(Kind.DEAD_OWNER, r, failures, evidence, options.reader))
            elif stalled:
                evidence["why"] = (
                    f"owner {'alive' if owner_live else 'possibly alive'}; {idle_text}"
                    + (f" (> {options.stalled_after})" if since.idle_since is not None else "")
                )
                if any(f["source"] == "input" for f in blocking(failures)):
                    evidence["pattern"] = (
                        "make-flight failure: the inputs cannot be decoded by the "
                        f"{options.reader.label} reader, so the owner took ownership, failed to"
                        " construct the flight (MakeFlightException) and left it RUNNING;"
                        " resume() never accepts RUNNING"
                    )
                findings.append(_finding(Kind.STALLED, r, failures, evidence, options.reader))
        elif r.status in ("READY", "READY_TO_RESTART") and r.stairway_id is None:
            # a READY message for a READY flight is what recoverReady sends anyway: an unknown
            # time of the change is bounded from below here, and said so in `idle_for`
            ref = since.changed_at or since.lower_bound
            if ref is not None and now - ref > options.unqueued_after:
                evidence["why"] = (
                    f"{r.status} and unowned for {_age(now, ref)}"
                    + ("" if since.changed_at else " at most")
                    + "; only a pod start or a pod deletion (recoverReady) queues it"
                )
                findings.append(_finding(Kind.UNQUEUED, r, failures, evidence, options.reader))
            elif ref is not None and ack.overdue(now - ref):
                findings.append(_overdue_finding(r, now, ref, ack, evidence))
        elif r.status == "QUEUED" and r.stairway_id is None:
            ref = since.changed_at or since.lower_bound
            if ref is not None and now - ref > options.queue_retention:
                evidence["why"] = (
                    f"QUEUED for {_age(now, ref)}"
                    + ("" if since.changed_at else " at most")
                    + f", longer than the work-queue retention ({options.queue_retention});"
                    " its message has expired"
                )
                findings.append(_finding(Kind.UNQUEUED, r, failures, evidence, options.reader))
            elif ref is not None and ack.overdue(now - ref):
                findings.append(_overdue_finding(r, now, ref, ack, evidence))
    if liveness.live is not None and not options.flight_ids:
        outside = _running_outside_filter(conn, options) if options.class_name else {}
        for name, sid in sorted(instances.items()):
            if name in liveness.live or name in liveness.terminating:
                continue
            owned = [r for r in running if r.stairway_id == sid]
            ev: dict[str, Any] = {
                "why": "registered in stairwayinstance but no live pod; recovery never ran for it",
                "running_flights": [r.flightid for r in owned],
                "running_versions": {r.flightid: r.version for r in owned},
                "row_version": instance_versions.get(name),
                "liveness": liveness.source,
            }
            if outside.get(sid):
                ev["running_flights_outside_filter"] = outside[sid]
            findings.append(
                Finding(
                    Kind.STALE_INSTANCE,
                    None,
                    None,
                    None,
                    sid,
                    Action.RECOVER_INSTANCE,
                    ev,
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


def _running_outside_filter(conn: Connection, options: Options) -> dict[str, int]:
    """RUNNING flights per owner that the --class filter left out (an instance recovered for one
    class keeps its row while they remain)."""
    cls = "class_name NOT LIKE :cls" if "*" in (options.class_name or "") else "class_name <> :cls"
    return {
        sid: int(n)
        for sid, n in conn.execute(
            text(
                "SELECT stairway_id, count(*) FROM flight WHERE status = 'RUNNING'"
                f" AND stairway_id IS NOT NULL AND ({cls} OR class_name IS NULL)"
                " GROUP BY stairway_id"
            ),
            {"cls": (options.class_name or "").replace("*", "%")},
        ).all()
    }


def _finding(
    kind: Kind, r: Any, failures: list[dict[str, Any]], ev: dict[str, Any], reader: ReaderVersion
) -> Finding:
    decided: Action | None = None
    if failures:
        decided, ev["decode"] = decode_proposal(
            failures, reader, constructor_failed=kind is Kind.STALLED
        )
    if decided is not None:
        action = decided
    elif kind is Kind.DEAD_OWNER:
        action = Action.RESUME
    elif kind is Kind.UNQUEUED:
        action = Action.ENQUEUE
    else:
        ev["note"] = (
            "a live owner may still be running a slow step; repair it only by naming it"
            " (--flight ID) with --force"
        )
        action = Action.NONE
    return Finding(kind, r.flightid, r.class_name, r.status, r.stairway_id, action, ev)


def blocking(failures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The decode failures that stop a resumed flight from finishing: a value the engine cannot
    rebuild, and an input the flight reads (its constructor may). A working-map value that fails
    at ``get`` fails only the step that reads it, and the flight undoes."""
    return [f for f in failures if f.get("when") == "rebuild" or f["source"] == "input"]


def _entries(failures: list[dict[str, Any]]) -> str:
    return ", ".join(sorted({f"{f['source']} {f['key']}" for f in failures}))


def decode_proposal(
    failures: list[dict[str, Any]], reader: ReaderVersion, *, constructor_failed: bool
) -> tuple[Action | None, str]:
    """What the engine does when it resumes a flight whose FlightMap entries fail to decode for
    ``reader``, and what to propose: ``None`` when the failures do not stop a resume.

    ``fail`` (force FATAL, irreversible) only where the engine can neither finish nor undo the
    flight: it cannot rebuild it, or (``constructor_failed``: the owner took it and never
    launched it) its constructor fails on an input — and no re-encoding helps.
    """
    stops = blocking(failures)
    label = reader.label
    if not stops:
        return None, (
            f"working-map entries {_entries(failures)} fail when a step asks for them ({label}"
            " reader): that step fails and the flight undoes, so resuming lets the engine end it"
        )
    if all(f["reencodable"] and f["source"] == "input" for f in stops):
        return Action.REENCODE, (
            f"re-encoding {_entries(stops)} into the form the {label} reader reads lets the"
            " engine rebuild and run the flight"
        )
    rebuild = [f for f in stops if f.get("when") == "rebuild" and not f["reencodable"]]
    if rebuild:
        return Action.FAIL, (
            f"the engine cannot rebuild this flight: its {label} reader fails on"
            f" {_entries(rebuild)} while it rebuilds the FlightMaps, inside resume's own"
            " transaction, so every resume attempt fails and the flight stays READY or QUEUED"
            " (without a work queue the service fails to start); it can neither finish nor"
            " undo, and repairtool cannot re-encode it"
        )
    stuck = [f for f in stops if not f["reencodable"]]
    if constructor_failed:
        return Action.FAIL, (
            f"its owner took the flight and never launched it: the constructor fails on"
            f" {_entries(stuck)} ({label} reader), so every resume orphans it again and a flight"
            " that is never constructed cannot undo; it can neither finish nor undo, and"
            " repairtool cannot re-encode it"
        )
    return Action.NONE, (
        f"{_entries(stuck)} fails when the flight asks for it ({label} reader) and cannot be"
        " re-encoded: if its constructor reads it, resuming orphans the flight again; if a step"
        " does, that step fails and the flight undoes. repairtool cannot tell which; after"
        " checking the flight class, resume it with --force or fail it with --action fail"
    )


def _decode_flights(
    conn: Connection, flights: list[Any], options: Options
) -> dict[str, list[dict[str, Any]]]:
    """Decode failures of each flight's inputs and of the working map its reader rebuilds."""
    assert options.catalog is not None
    flights = [
        f
        for f in flights
        if f.class_name is not None and options.catalog.flight(f.class_name) is not None
    ]
    if not flights:
        return {}
    ids = [f.flightid for f in flights]
    inputs: dict[str, dict[str, str]] = defaultdict(dict)
    for fid, key, value in conn.execute(
        text(
            "SELECT i.flightid, i.key, i.value FROM unnest(CAST(:ids AS varchar[])) AS r(flightid)"
            " JOIN flightinput i ON i.flightid = r.flightid"
        ),
        {"ids": ids},
    ):
        inputs[fid][key] = value
    working = _latest_working_maps(conn, flights)
    out: dict[str, list[dict[str, Any]]] = {}
    for f in flights:
        report = decode_map(
            f.flightid,
            f.class_name,
            inputs.get(f.flightid, {}),
            options.catalog,
            options.reader,
            source="input",
        )
        failures = [x.to_json() for x in report.findings]
        latest = working.get(f.flightid)
        if latest is not None and (latest[0] is not None or latest[1]):
            _, wm = decode_working_map(
                f.flightid, f.class_name, latest[1], latest[0], options.catalog, options.reader
            )
            failures += [x.to_json() for x in wm.findings]
        if failures:
            out[f.flightid] = failures
    return out


def _latest_working_maps(
    conn: Connection, flights: list[Any]
) -> dict[str, tuple[str | None, dict[str, str]]]:
    """Each flight's newest flightlog row (read with it by `detect_in`): its
    ``working_parameters`` and flightworking rows."""
    out: dict[str, tuple[str | None, dict[str, str]]] = {
        f.flightid: (f.working_parameters, {}) for f in flights if f.log_time is not None
    }
    by_log = {f.log_id: f.flightid for f in flights if f.log_id is not None}
    if by_log and table_exists(conn, "flightworking"):
        for log_id, key, value in conn.execute(
            text("SELECT flightlog_id, key, value FROM flightworking WHERE flightlog_id = ANY(:l)"),
            {"l": list(by_log)},
        ):
            out[by_log[log_id]][1][key] = value
    return out
