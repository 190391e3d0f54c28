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
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, text

from repairtool.clock import rfc3339
from repairtool.flightmap import Catalog, ReaderVersion, decode_map
from repairtool.liveness import Liveness
from repairtool.stairway.audit import last_changes
from repairtool.stairway.db import DEFAULT_RETRY, RetryPolicy, run_read
from repairtool.stairway.errors import shown
from repairtool.stairway.queries import require_columns
from repairtool.stairway.version import require_stairway


class Kind(enum.StrEnum):
    DEAD_OWNER = "dead_owner"
    STALLED = "stalled"
    UNQUEUED = "unqueued"
    STALE_INSTANCE = "stale_instance"
    UNDECODABLE = "undecodable"
    UNOWNED_RUNNING = "unowned_running"


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


@dataclass(frozen=True)
class Options:
    stalled_after: dt.timedelta = dt.timedelta(minutes=10)
    unqueued_after: dt.timedelta = dt.timedelta(minutes=10)
    queue_retention: dt.timedelta = dt.timedelta(days=3)  # the engine's subscription retention
    class_name: str | None = None
    flight_ids: tuple[str, ...] = ()
    catalog: Catalog | None = None
    reader: ReaderVersion = ReaderVersion.TYPED


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
    rows = conn.execute(
        text(
            "SELECT f.flightid, f.class_name, f.status, f.stairway_id,"
            f" {_ts('f.submit_time')} AS submit_time, f.xmin::text AS version,"
            # the submit wrote the flight row and all its inputs in one transaction: one input
            # row's xmin is the submit's (looked up only when no later progress settles it)
            " CASE WHEN age(l.log_xmin) < age(f.xmin) THEN NULL ELSE"
            " COALESCE((SELECT i.xmin FROM flightinput i WHERE i.flightid = f.flightid LIMIT 1)"
            " = f.xmin, false) END AS unchanged_since_submit,"
            f" {changed_at}, l.log_time, l.step_index,"
            " COALESCE(age(l.log_xmin) < age(f.xmin), false) AS logged_after_change"
            f" FROM flight f LEFT JOIN LATERAL (SELECT {_ts('log_time')} AS log_time,"
            " step_index, xmin AS log_xmin FROM flightlog WHERE flightid = f.flightid"
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

    running = [r for r in rows if r.status == "RUNNING"]
    decode_failures = _decode_inputs(conn, running, options) if options.catalog else {}
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
                stalled = bool(failures)
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
                findings.append(_finding(Kind.DEAD_OWNER, r, failures, evidence))
            elif stalled:
                evidence["why"] = (
                    f"owner {'alive' if owner_live else 'possibly alive'}; {idle_text}"
                    + (f" (> {options.stalled_after})" if since.idle_since is not None else "")
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
            # a READY message for a READY flight is what recoverReady sends anyway: an unknown
            # time of the change is bounded from below here, and said so in `idle_for`
            ref = since.changed_at or since.lower_bound
            if ref is not None and now - ref > options.unqueued_after:
                evidence["why"] = (
                    f"{r.status} and unowned for {_age(now, ref)}"
                    + ("" if since.changed_at else " at most")
                    + "; only a pod start or a pod deletion (recoverReady) queues it"
                )
                findings.append(_finding(Kind.UNQUEUED, r, failures, evidence))
        elif r.status == "QUEUED" and r.stairway_id is None:
            ref = since.changed_at or since.lower_bound
            if ref is not None and now - ref > options.queue_retention:
                evidence["why"] = (
                    f"QUEUED for {_age(now, ref)}"
                    + ("" if since.changed_at else " at most")
                    + f", longer than the work-queue retention ({options.queue_retention});"
                    " its message has expired"
                )
                findings.append(_finding(Kind.UNQUEUED, r, failures, evidence))
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
        if f.class_name is None or options.catalog.flight(f.class_name) is None:
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
