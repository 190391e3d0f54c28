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

Detection reads only what it needs, in two round trips on psycopg directly (no SQLAlchemy on
this path, `repairtool.stairway.pgread`): the catalogs (tables, columns, our audit table,
settings), then one statement that scans `flight` once for the non-terminal statuses and reaches,
through primary-key indexes, each one's newest flightlog row, our newest audit row, and — for the
RUNNING flights whose class the catalog knows — the inputs and working map its reader decodes.
The read is retried like the engine's DbRetry (a terminated backend is retried, not a
traceback).

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from repairtool.events import Event, Sink, discard, scan_progress
from repairtool.flightmap import Catalog, ReaderVersion
from repairtool.flightmap.decode import map_findings
from repairtool.flightmap.working import decode_working_map
from repairtool.liveness import Liveness
from repairtool.stairway.errors import shown
from repairtool.stairway.pgread import Source, estimate_rows, run_read
from repairtool.stairway.probe import (
    AUDIT_SCHEMA,
    AUDIT_STATE_SQL,
    AUDIT_TABLE,
    COLUMNS_SQL,
    CORE_TABLES,
    READ_COLUMNS,
    audit_state_of,
    check_columns,
    check_core_tables,
    columns_of,
)
from repairtool.stairway.retry import DEFAULT_RETRY, RetryPolicy


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
    #: the inputs (key → stored text) of the flights whose FlightMaps failed to decode, as
    #: detection read them: what a re-encoding plan rewrites (never in any output)
    inputs: Mapping[str, Mapping[str, str]] = field(default_factory=dict, repr=False)


NON_TERMINAL = ("RUNNING", "READY", "READY_TO_RESTART", "QUEUED")


def _iso(t: dt.datetime | None) -> str | None:
    # `clock.rfc3339(t, "seconds")` of the naive UTC times detection reads, without its detour
    # through an aware datetime (100,000 findings have 300,000 of them)
    return t.isoformat(timespec="seconds") + "Z" if t else None


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
    source: Source,
    liveness: Liveness,
    options: Options = Options(),
    *,
    policy: RetryPolicy = DEFAULT_RETRY,
    on_event: Sink = discard,
) -> Detection:
    """Find orphaned, stalled and unqueued flights and stale instances (one read-only
    transaction, retried like the engine's DbRetry). `source`: a `ReadDb` (psycopg) or a
    SQLAlchemy `Engine` (its pool's connections). `on_event` gets the scan's progress
    (`scan.start` with the planner's estimate of the non-terminal flights, `scan.progress` every
    few hundred flights, `scan.done`); nothing is asked for it when it is `discard`."""
    return run_read(
        source,
        lambda conn: detect_in(conn, liveness, options, on_event),
        policy=policy,
        what="detect",
    )


# Timestamps are read as `timestamp` in the session zone whatever the column's type (a newer
# schema's `timestamptz` included); a value that is not finite (±infinity) reads as NULL, one
# Python cannot hold (BC, after 9999) as datetime.min or datetime.max — what the connection's
# clamping loaders would make of it.
def _ts(expr: str) -> str:
    return (
        f"CASE WHEN isfinite({expr}) THEN LEAST(GREATEST(CAST({expr} AS timestamp),"
        " TIMESTAMP '0001-01-01'), TIMESTAMP '9999-12-31 23:59:59.999999') END"
    )


@dataclass(frozen=True)
class _Since:
    """When the flight row last changed (`changed_at`, or None when unknown) and from when the
    current owner's idleness counts (`idle_since`, None when unknown)."""

    changed_at: dt.datetime | None
    source: str
    idle_since: dt.datetime | None
    lower_bound: dt.datetime | None  # the row changed no earlier than this


def _since(
    submit: dt.datetime | None,
    version: str,
    unchanged_since_submit: bool | None,
    commit_time: dt.datetime | None,
    last_log: dt.datetime | None,
    logged_after_change: bool,
    audit: tuple[dt.datetime, str] | None,
) -> _Since:
    changed_at: dt.datetime | None = None
    source = ""
    if commit_time is not None:
        changed_at, source = commit_time, "commit_timestamp"
    elif audit is not None and audit[1] == version:
        changed_at, source = audit[0], "audit"
    elif unchanged_since_submit and submit is not None:
        changed_at, source = submit, "submit"
    idle: dt.datetime | None
    if logged_after_change and last_log is not None:
        idle = last_log if changed_at is None or last_log >= changed_at else changed_at
        source = source or "progress_after_change"
    elif changed_at is not None:
        idle = changed_at if last_log is None or changed_at >= last_log else last_log
    else:
        idle = None
    lower = submit
    for t in (last_log, audit[0] if audit else None):
        if t is not None and (lower is None or t > lower):
            lower = t
    return _Since(changed_at, source or "unknown", idle, lower)


@dataclass(frozen=True)
class _Shape:
    """What the database has, from the catalogs (detection's first round trip)."""

    now: dt.datetime
    commit_timestamps: bool
    has_log_id: bool
    has_flightworking: bool
    audit: bool  # our audit table is there and readable: take evidence from it


def _probe(conn: psycopg.Connection[Any]) -> _Shape:
    """The catalogs in one round trip, checked in the order the reads need them: the engine's
    core tables, the columns this tool reads (one clear line naming what is missing)."""
    tables = [*READ_COLUMNS, "flightlog"]
    with conn.pipeline():
        settings = conn.execute(
            "SELECT LOCALTIMESTAMP, current_setting('track_commit_timestamp') = 'on',"
            + ", ".join(f" to_regclass('{t}') IS NOT NULL" for t in (*CORE_TABLES, "flightworking"))
        )
        found_columns = conn.execute(COLUMNS_SQL, {"t": list(dict.fromkeys(tables))})
        audit_rows = conn.execute(AUDIT_STATE_SQL, {"schema": AUDIT_SCHEMA})
    row = settings.fetchone()
    assert row is not None
    now, commit_timestamps, *present = row
    # the engine's timestamps are `timestamp without time zone` in the session zone
    assert isinstance(now, dt.datetime)
    check_core_tables(dict(zip(CORE_TABLES, present, strict=False)))
    found = columns_of(found_columns.fetchall())
    check_columns(found)
    return _Shape(
        now=now,
        commit_timestamps=bool(commit_timestamps),
        has_log_id="id" in found.get("flightlog", set()),
        has_flightworking=bool(present[-1]),
        audit=audit_state_of(audit_rows.fetchall()).usable,
    )


def _driver(conn: Any) -> psycopg.Connection[Any]:
    """The psycopg connection (a SQLAlchemy `Connection` hands over its driver's, in the same
    transaction)."""
    if isinstance(conn, psycopg.Connection):
        return conn
    driver: psycopg.Connection[Any] = conn.connection.driver_connection
    return driver


def _decoded_classes(options: Options) -> list[str] | None:
    if options.catalog is None:
        return None
    return [spec.class_name for spec in options.catalog.flights]


def _detection_sql(shape: _Shape, options: Options) -> tuple[str, dict[str, Any]]:
    """One statement, as the floor query would be: the non-terminal flights (one scan of
    `flight`) and, through pk_flightlog, the newest flightlog row of each (LATERAL … LIMIT 1),
    with the row versions (xmin) that tell when ownership changed (see the module docstring);
    through audit_flightid_idx our newest audit row; with a catalog, for the RUNNING flights of a
    class it knows, their inputs and the working map their reader rebuilds (§5.5: the newest
    flightlog row's working_parameters and the flightworking rows hanging off its id)."""
    where = ["status = ANY(%(statuses)s)"]
    params: dict[str, Any] = {"statuses": list(NON_TERMINAL)}
    if options.class_name:
        op = "LIKE" if "*" in options.class_name else "="
        where.append(f"class_name {op} %(cls)s")
        params["cls"] = options.class_name.replace("*", "%")
    if options.flight_ids:
        where.append("flightid = ANY(%(ids)s)")
        params["ids"] = list(options.flight_ids)
    changed_at = (
        # permanent xids (frozen, bootstrap) have no commit timestamp to ask for
        f"CASE WHEN f.xmin::text::bigint > 2 THEN {_ts('pg_xact_commit_timestamp(f.xmin)')} END"
        if shape.commit_timestamps
        else "NULL::timestamp"
    )
    select = [
        "f.flightid, f.class_name, f.status, f.stairway_id,"
        f" {_ts('f.submit_time')}, f.xmin::text,"
        # the submit wrote the flight row and all its inputs in one transaction: one input
        # row's xmin is the submit's (looked up only when no later progress settles it)
        " CASE WHEN age(l.log_xmin) < age(f.xmin) THEN NULL ELSE"
        " COALESCE((SELECT i.xmin FROM flightinput i WHERE i.flightid = f.flightid LIMIT 1)"
        f" = f.xmin, false) END, {changed_at}, l.log_time, l.step_index,"
        " COALESCE(age(l.log_xmin) < age(f.xmin), false)"
    ]
    joins = [
        f"LEFT JOIN LATERAL (SELECT {_ts('log_time')} AS log_time, step_index, xmin AS log_xmin"
        + (", working_parameters" if options.catalog is not None else "")
        + (", id AS log_id" if options.catalog is not None and shape.has_log_id else "")
        + " FROM flightlog WHERE flightid = f.flightid AND log_time IS NOT NULL"
        " ORDER BY flightlog.log_time DESC LIMIT 1) l ON true"
    ]
    if shape.audit:
        select.append("a.at, a.version")
        at = _ts("CAST(at AT TIME ZONE current_setting('TimeZone') AS timestamp)")
        joins.append(
            f"LEFT JOIN LATERAL (SELECT {at} AS at, COALESCE(after->>'version', '') AS version"
            f" FROM {AUDIT_TABLE} WHERE flightid = f.flightid ORDER BY audit_id DESC LIMIT 1) a"
            " ON true"
        )
    else:
        select.append("NULL::timestamp, NULL::text")
    # the order of the findings (ORDER BY f.submit_time, f.flightid, done by the caller):
    # epoch seconds keep ±infinity apart, where the timestamp column reads NULL
    select.append("extract(epoch FROM f.submit_time)::float8")
    classes = _decoded_classes(options)
    if classes is not None:
        params["decoded"] = classes
        decoded = "f.status = 'RUNNING' AND f.class_name = ANY(%(decoded)s)"
        select.append("inp.keys, inp.vals, l.working_parameters")
        joins.append(
            "LEFT JOIN LATERAL (SELECT array_agg(key ORDER BY key) AS keys,"
            " array_agg(value ORDER BY key) AS vals FROM flightinput"
            f" WHERE flightid = f.flightid AND {decoded}) inp ON true"
        )
        if shape.has_log_id and shape.has_flightworking:
            select.append("w.keys, w.vals")
            joins.append(
                "LEFT JOIN LATERAL (SELECT array_agg(key ORDER BY key) AS keys,"
                " array_agg(value ORDER BY key) AS vals FROM flightworking"
                f" WHERE flightlog_id = l.log_id AND {decoded}) w ON true"
            )
        else:
            select.append("NULL::text[], NULL::text[]")
    sql = f"SELECT {', '.join(select)} FROM flight f {' '.join(joins)} WHERE " + " AND ".join(
        f"f.{w}" for w in where
    )
    return sql, params


#: rows per chunk of the streamed detection query
_CHUNK = 500


def _submitted_order(row: tuple[Any, ...]) -> tuple[int, float, str]:
    """ORDER BY submit_time, flightid (NULLs last); ties by flight id in code-point order (the
    database's collation may order unusual ids differently)."""
    epoch = row[13]
    return (0, epoch, row[0]) if epoch is not None else (1, 0.0, row[0])


def _outside_filter_sql(options: Options) -> tuple[str, dict[str, Any]]:
    """RUNNING flights per owner that the --class filter left out (an instance recovered for one
    class keeps its row while they remain)."""
    cls = (
        "class_name NOT LIKE %(cls)s"
        if "*" in (options.class_name or "")
        else "class_name <> %(cls)s"
    )
    return (
        "SELECT stairway_id, count(*) FROM flight WHERE status = 'RUNNING'"
        f" AND stairway_id IS NOT NULL AND ({cls} OR class_name IS NULL)"
        " GROUP BY stairway_id",
        {"cls": (options.class_name or "").replace("*", "%")},
    )


def detect_in(
    conn: Any, liveness: Liveness, options: Options, on_event: Sink = discard
) -> Detection:
    """Detection inside the caller's read transaction: `conn` is a psycopg connection or a
    SQLAlchemy `Connection` (its driver's connection is used, in the same transaction)."""
    conn = _driver(conn)
    shape = _probe(conn)
    now = shape.now
    # the instances first (a few rows): each RUNNING flight is then judged as its row arrives
    instance_list = conn.execute(
        "SELECT stairway_name, stairway_id, xmin::text FROM stairwayinstance"
    ).fetchall()
    outside: dict[str, int] = {}
    if liveness.live is not None and not options.flight_ids and options.class_name:
        found_outside = conn.execute(*_outside_filter_sql(options)).fetchall()
        outside = {sid: int(n) for sid, n in found_outside}
    instances: dict[str, str] = {n: sid for n, sid, _ in instance_list if n is not None}
    instance_versions = {n: v for n, _, v in instance_list if n is not None}
    live_ids: set[str] | None = None
    if liveness.live is not None:
        live_ids = set(liveness.live) | {sid for n, sid in instances.items() if n in liveness.live}
    registered_ids = set(instances.values())
    judge = _RunningJudge(now, liveness, options, live_ids, registered_ids)

    sql, params = _detection_sql(shape, options)
    progress = on_event is not discard
    if progress:
        total = estimate_rows(conn, sql, params)
        on_event(Event("scan.start", "scanning flights", {"total": total, "estimated": True}))
    # Streamed in chunks, unordered: each flight is judged (and a RUNNING one's FlightMaps
    # decoded) while the server still scans `flight` (a Gather without a merge: its workers keep
    # scanning while the leader reaches each flight's log row); only findings and the RUNNING
    # flights' (id, owner, row version) are kept, and sorted afterwards.
    running: list[tuple[tuple[int, float, str], str, str | None, str]] = []
    ordered: list[tuple[tuple[int, float, str], Finding]] = []
    failed_inputs: dict[str, dict[str, str]] = {}
    decoding = options.catalog is not None
    ack = _AckDeadline(options)
    shared: dict[Any, Any] = {}  # one str object per class name and status, not one per row
    scanned = 0
    cursor = conn.cursor()
    _native_timestamps(cursor)
    for row in cursor.stream(sql, params, size=_CHUNK):
        scanned += 1
        if progress and not scanned % _CHUNK:
            on_event(scan_progress(scanned, total))
        status = row[2]
        if status == "RUNNING":
            key = _submitted_order(row)
            running.append((key, row[0], row[3], row[5]))
            failures = _decode_row(row, options, failed_inputs) if decoding else []
            found = judge(row, failures)
            if found is not None:
                ordered.append((key, found))
        elif row[3] is None:
            found = _waiting(row, now, options, liveness, shared, ack)
            if found is not None:
                ordered.append((_submitted_order(row), found))
    if progress:
        on_event(Event("scan.done", f"{scanned} non-terminal flights", {"done": scanned}))
    running.sort(key=_first)
    ordered.sort(key=_first)
    findings = [f for _, f in ordered]
    if liveness.live is not None and not options.flight_ids:
        for name, sid in sorted(instances.items()):
            if name in liveness.live or name in liveness.terminating:
                continue
            owned = [(fid, ver) for _, fid, owner, ver in running if owner == sid]
            ev: dict[str, Any] = {
                "why": "registered in stairwayinstance but no live pod; recovery never ran for it",
                "running_flights": [fid for fid, _ in owned],
                "running_versions": dict(owned),
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
    return Detection(
        tuple(findings), liveness, now, scanned, tuple(sorted(instances)), failed_inputs
    )


class _RunningJudge:
    """What a RUNNING flight is (`dead_owner`, `stalled`, `unowned_running`) or None, from its
    detection row and its decode failures; the instances were read before the scan."""

    def __init__(
        self,
        now: dt.datetime,
        liveness: Liveness,
        options: Options,
        live_ids: set[str] | None,
        registered_ids: set[str],
    ) -> None:
        self.now = now
        self.liveness = liveness
        self.options = options
        self.live_ids = live_ids
        self.registered_ids = registered_ids

    def __call__(self, row: tuple[Any, ...], failures: list[dict[str, Any]]) -> Finding | None:
        now, options, live_ids = self.now, self.options, self.live_ids
        fid, cls, status, owner = row[:4]
        since, evidence = _evidence(row, now, self.liveness)
        if failures:
            evidence["decode_failures"] = failures
        flight = (fid, cls, status, owner)
        if owner is None:
            evidence["why"] = (
                "RUNNING with no owner (stairway_id NULL): no engine path leaves a flight like"
                " this, and nothing picks it up (resume() never takes RUNNING, disownRecovery"
                " selects by owner); check that no pod runs it, then name it with an action"
            )
            return Finding(Kind.UNOWNED_RUNNING, fid, cls, status, None, Action.NONE, evidence)
        owner_live = (
            (owner in live_ids) if live_ids is not None else (owner in self.registered_ids or None)
        )
        evidence["owner_registered"] = owner in self.registered_ids
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
                f"owner {shown(owner)} has no live pod; the engine recovers its flights"
                " only"
                " when a pod listener sees the DELETED event or a pod starts"
            )
            return _finding(Kind.DEAD_OWNER, flight, failures, evidence, options.reader)
        if not stalled:
            return None
        evidence["why"] = f"owner {'alive' if owner_live else 'possibly alive'}; {idle_text}" + (
            f" (> {options.stalled_after})" if since.idle_since is not None else ""
        )
        if any(f["source"] == "input" for f in blocking(failures)):
            evidence["pattern"] = (
                "make-flight failure: the inputs cannot be decoded by the "
                f"{options.reader.label} reader, so the owner took ownership, failed to"
                " construct the flight (MakeFlightException) and left it RUNNING;"
                " resume() never accepts RUNNING"
            )
        return _finding(Kind.STALLED, flight, failures, evidence, options.reader)


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
    flight: tuple[str, str | None, str, str | None],
    now: dt.datetime,
    since: dt.datetime,
    ack: _AckDeadline,
    evidence: dict[str, Any],
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
    fid, cls, status, owner = flight
    if status == "QUEUED":
        evidence["why"] = (
            f"QUEUED for {_age(now, since)}, longer than the ack deadline ({deadline}s) plus"
            f" {evidence['margin']}: its READY message went to a pod that did not ack it (the pod"
            " died or hung); Pub/Sub redelivers it only after the deadline, and a live pod then"
            " takes it. Slow, not yet lost: it becomes `unqueued` after the queue retention"
        )
    else:
        evidence["why"] = (
            f"{status} and unowned for {_age(now, since)}, longer than the ack deadline"
            f" ({deadline}s) plus {evidence['margin']}: nothing has queued it; a pod start or a"
            " pod deletion (recoverReady) will. It becomes `unqueued` after --unqueued-after"
        )
    evidence["note"] = "informational: no action proposed; the exit code ignores it"
    return Finding(Kind.QUEUED_OVERDUE, fid, cls, status, owner, Action.NONE, evidence)


def _first(item: tuple[Any, ...]) -> Any:
    return item[0]


def _evidence(
    row: tuple[Any, ...], now: dt.datetime, liveness: Liveness
) -> tuple[_Since, dict[str, Any]]:
    """What every finding about a flight says: its times, row version and idleness."""
    submit, version, unchanged, commit_time, log_time, step, logged_after, audit_at = row[4:12]
    audit = (audit_at, row[12]) if audit_at is not None else None
    since = _since(submit, version, unchanged, commit_time, log_time, logged_after, audit)
    submitted = _iso(submit)
    evidence: dict[str, Any] = {
        "submitted": submitted,
        "last_progress": _iso(log_time),
        "last_step": step if log_time is not None else None,
        "row_version": version,
        # (most often the submit time itself: formatted once)
        "state_since": submitted if since.changed_at is submit else _iso(since.changed_at),
        "state_since_source": since.source,
        "liveness": liveness.source,
    }
    if since.idle_since is not None:
        evidence["idle_for"] = _age(now, since.idle_since)
    elif since.lower_bound is not None:
        evidence["idle_for"] = f"unknown (at most {_age(now, since.lower_bound)})"
    else:
        evidence["idle_for"] = "unknown"
    return since, evidence


def _waiting(
    row: tuple[Any, ...],
    now: dt.datetime,
    options: Options,
    liveness: Liveness,
    shared: dict[Any, Any],
    ack: _AckDeadline,
) -> Finding | None:
    """An unowned READY, READY_TO_RESTART or QUEUED flight that nothing will pick up
    (`unqueued`), or that waits longer than the ack deadline (`queued_overdue`), or None."""
    fid, cls, status = row[:3]
    since, evidence = _evidence(row, now, liveness)
    # a READY message for a READY flight is what recoverReady sends anyway: an unknown
    # time of the change is bounded from below here, and said so in `idle_for`
    ref = since.changed_at or since.lower_bound
    if ref is None:
        return None
    cls = shared.setdefault(cls, cls)
    status = shared.setdefault(status, status)
    flight = (fid, cls, status, None)
    if status == "QUEUED":
        if now - ref <= options.queue_retention:
            return (
                _overdue_finding(flight, now, ref, ack, evidence)
                if ack.overdue(now - ref)
                else None
            )
        evidence["why"] = (
            f"QUEUED for {_age(now, ref)}"
            + ("" if since.changed_at else " at most")
            + f", longer than the work-queue retention ({options.queue_retention});"
            " its message has expired"
        )
    else:
        if now - ref <= options.unqueued_after:
            return (
                _overdue_finding(flight, now, ref, ack, evidence)
                if ack.overdue(now - ref)
                else None
            )
        evidence["why"] = (
            f"{status} and unowned for {_age(now, ref)}"
            + ("" if since.changed_at else " at most")
            + "; only a pod start or a pod deletion (recoverReady) queues it"
        )
    return _finding(Kind.UNQUEUED, flight, [], evidence, options.reader)


def _native_timestamps(cursor: psycopg.Cursor[Any]) -> None:
    """psycopg's own (C) timestamp loaders on this cursor: the detection query clamps what
    Python cannot hold itself (`_ts`), so the connection's clamping loaders — Python code
    called for every value — are not needed for it."""
    for name in ("timestamp", "timestamptz"):
        oid = psycopg.adapters.types[name].oid
        loader = psycopg.adapters.get_loader(oid, psycopg.pq.Format.TEXT)
        if loader is not None:
            cursor.adapters.register_loader(name, loader)


def _finding(
    kind: Kind,
    flight: tuple[str, str | None, str, str | None],
    failures: list[dict[str, Any]],
    ev: dict[str, Any],
    reader: ReaderVersion,
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
    fid, cls, status, owner = flight
    return Finding(kind, fid, cls, status, owner, action, ev)


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


def _decode_row(
    row: tuple[Any, ...],
    options: Options,
    failed_inputs: dict[str, dict[str, str]],
) -> list[dict[str, Any]]:
    """Decode failures of one RUNNING flight's inputs and of the working map its reader
    rebuilds (the row carries them when the catalog knows its class); a flight with failures
    leaves its inputs in `failed_inputs`."""
    catalog = options.catalog
    assert catalog is not None
    fid, cls, status, _owner = row[:4]
    if status != "RUNNING" or cls is None or catalog.flight(cls) is None:
        return []
    input_keys, input_values, working_parameters, work_keys, work_values = row[14:19]
    inputs = dict(zip(input_keys, input_values, strict=True)) if input_keys else {}
    found = map_findings(fid, cls, inputs, catalog, options.reader, source="input")
    failures = [x.to_json() for x in found]
    if row[8] is not None and (working_parameters is not None or work_keys):
        rows = dict(zip(work_keys, work_values, strict=True)) if work_keys else {}
        _, wm = decode_working_map(fid, cls, rows, working_parameters, catalog, options.reader)
        failures += [x.to_json() for x in wm.findings]
    if failures:
        failed_inputs[fid] = inputs
    return failures


def read_inputs(source: Source, flight_ids: list[str]) -> dict[str, dict[str, str]]:
    """The inputs (key → stored text) of the given flights, on the read path."""

    def body(conn: psycopg.Connection[Any]) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {fid: {} for fid in flight_ids}
        for fid, key, value in conn.execute(
            "SELECT flightid, key, value FROM flightinput WHERE flightid = ANY(%(ids)s)"
            " ORDER BY flightid, key",
            {"ids": flight_ids},
        ):
            out[fid][key] = value
        return out

    return run_read(source, body, what="read inputs")
