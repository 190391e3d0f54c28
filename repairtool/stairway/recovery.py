"""The engine's recovery primitives, re-implemented safely: compare-and-set, audited, retried.

Each mutation
- runs in one SERIALIZABLE transaction under the engine's DbRetry rule;
- first checks whether this operation (its `op_id`) was already applied — a retry after a commit
  whose acknowledgement was lost returns the earlier result instead of applying it twice;
- compares the flight's (status, stairway_id) with what the caller saw and skips, never clobbers,
  a flight the engine moved on in between; checks the UPDATE's row count;
- writes its audit row in the same transaction.

SQL follows the engine (`stairway-engine.md` §1.4, §3.3, §4.1) plus the compare-and-set terms.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text

from repairtool.stairway import audit
from repairtool.stairway.audit import Actor
from repairtool.stairway.db import DEFAULT_RETRY, RetryPolicy, run_in_transaction
from repairtool.stairway.model import (
    RESUMABLE,
    FlightState,
    FlightStatus,
    MutationResult,
    Outcome,
)
from repairtool.stairway.queue import WorkQueue, ready_message
from repairtool.stairway.redact import mask_text

STATE_SQL = "SELECT status, stairway_id, completed_time FROM flight WHERE flightid = :id"


def _state(row: Any) -> dict[str, Any]:
    return {
        "status": row.status,
        "stairway_id": row.stairway_id,
        "completed_time": row.completed_time.isoformat() if row.completed_time else None,
    }


def _new_op() -> str:
    return str(uuid.uuid4())


def _result(
    action: str,
    flight_id: str,
    outcome: Outcome,
    op: str,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    detail: str = "",
    audit_id: int | None = None,
) -> MutationResult:
    return MutationResult(action, flight_id, outcome, before, after, detail, audit_id, op)


def _replayed(action: str, flight_id: str, audit_id: int, op: str) -> MutationResult:
    """The operation was applied by an earlier attempt whose commit acknowledgement was lost."""
    return _result(
        action,
        flight_id,
        Outcome.CHANGED,
        op,
        audit_id=audit_id,
        detail="applied by an earlier attempt whose commit acknowledgement was lost",
    )


def _unknown(action: str, flight_id: str, op: str) -> MutationResult:
    return _result(
        action, flight_id, Outcome.NOT_FOUND, op, detail=f"Unknown flight id {flight_id}"
    )


@dataclass(frozen=True)
class _Cas:
    action: str
    set_sql: str  # the SET clause
    refuse_if: FlightStatus | None = None  # the engine's "Flight is already X"


def _cas_update(
    engine: Engine,
    flight_id: str,
    expected: FlightState,
    cas: _Cas,
    actor: Actor,
    op_id: str | None,
    policy: RetryPolicy,
) -> MutationResult:
    op = op_id or _new_op()
    audit.ensure_audit_table(engine)

    def body(conn: Connection) -> MutationResult:
        done = audit.find_op(conn, op)
        if done is not None:
            return _replayed(cas.action, flight_id, done, op)
        row = conn.execute(text(STATE_SQL), {"id": flight_id}).first()
        if row is None:
            return _unknown(cas.action, flight_id, op)
        before = _state(row)
        if row.status != str(expected.status) or row.stairway_id != expected.owner:
            return _result(
                cas.action,
                flight_id,
                Outcome.SKIPPED,
                op,
                before=before,
                detail=f"flight moved on: expected {expected.status} owned by {expected.owner},"
                f" found {row.status} owned by {row.stairway_id}",
            )
        if cas.refuse_if is not None and row.status == cas.refuse_if.value:
            return _result(
                cas.action,
                flight_id,
                Outcome.SKIPPED,
                op,
                before=before,
                detail=f"Flight is already {cas.refuse_if.value}",
            )
        updated = conn.execute(
            text(
                f"UPDATE flight SET {cas.set_sql} WHERE flightid = :id AND status = :status"
                " AND stairway_id IS NOT DISTINCT FROM :owner"
                " RETURNING status, stairway_id, completed_time"
            ),
            {"id": flight_id, "status": str(expected.status), "owner": expected.owner},
        ).all()
        if len(updated) != 1:
            return _result(
                cas.action,
                flight_id,
                Outcome.SKIPPED,
                op,
                before=before,
                detail=f"compare-and-set matched {len(updated)} rows",
            )
        after = _state(updated[0])
        audit_id = audit.write(
            conn,
            op_id=op,
            actor=actor,
            action=cas.action,
            flight_id=flight_id,
            before=before,
            after=after,
        )
        return _result(
            cas.action,
            flight_id,
            Outcome.CHANGED,
            op,
            before=before,
            after=after,
            audit_id=audit_id,
        )

    return run_in_transaction(engine, body, policy=policy, what=f"flight.{cas.action}")


def disown(
    engine: Engine,
    flight_id: str,
    *,
    expected_owner: str,
    actor: Actor,
    op_id: str | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> MutationResult:
    """RUNNING → READY with the owner cleared (the engine's disown), if still owned by
    `expected_owner`. The flight is then picked up by the next recovery or a READY message."""
    return _cas_update(
        engine,
        flight_id,
        FlightState(FlightStatus.RUNNING, expected_owner),
        _Cas("disown", "status = 'READY', stairway_id = NULL"),
        actor,
        op_id,
        policy,
    )


def force_ready(
    engine: Engine,
    flight_id: str,
    *,
    expected: FlightState,
    actor: Actor,
    op_id: str | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> MutationResult:
    """Control.forceReady: any state → READY, owner cleared (skipped if already READY)."""
    return _cas_update(
        engine,
        flight_id,
        expected,
        _Cas("force_ready", "status = 'READY', stairway_id = NULL", FlightStatus.READY),
        actor,
        op_id,
        policy,
    )


def force_fatal(
    engine: Engine,
    flight_id: str,
    *,
    expected: FlightState,
    actor: Actor,
    op_id: str | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> MutationResult:
    """Control.forceFatal: → FATAL with completed_time set and owner cleared (final: the engine
    never runs a FATAL flight again, and grooming deletes it after the retention period)."""
    return _cas_update(
        engine,
        flight_id,
        expected,
        _Cas(
            "force_fatal",
            "completed_time = CURRENT_TIMESTAMP, status = 'FATAL', stairway_id = NULL",
            FlightStatus.FATAL,
        ),
        actor,
        op_id,
        policy,
    )


@dataclass(frozen=True)
class InstanceRecovery:
    """What `recover_instance` did: the instance row and each flight it disowned."""

    stairway_name: str
    stairway_id: str | None
    outcome: Outcome
    flights: tuple[MutationResult, ...]
    detail: str = ""
    remaining: tuple[str, ...] = ()
    """RUNNING flights that still name the instance; while there are any its row is kept."""


def recover_instance(
    engine: Engine,
    stairway_name: str,
    *,
    actor: Actor,
    expected_flights: Collection[str] | None = None,
    op_id: str | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> InstanceRecovery:
    """The engine's disownRecovery for a dead instance: its RUNNING flights → READY, owner
    cleared, and its `stairwayinstance` row deleted. With `expected_flights`, only those flights
    are disowned (the ones the caller planned on). The caller must know the instance is dead."""
    op = op_id or _new_op()
    audit.ensure_audit_table(engine)

    def body(conn: Connection) -> InstanceRecovery:
        if audit.find_op(conn, op) is not None:
            return InstanceRecovery(
                stairway_name,
                None,
                Outcome.CHANGED,
                (),
                "applied by an earlier attempt whose commit acknowledgement was lost",
            )
        sid = conn.execute(
            text("SELECT stairway_id FROM stairwayinstance WHERE stairway_name = :n"),
            {"n": stairway_name},
        ).scalar_one_or_none()
        if sid is None:
            return InstanceRecovery(
                stairway_name,
                None,
                Outcome.NOT_FOUND,
                (),
                f"no stairwayinstance row named {stairway_name}",
            )
        params: dict[str, Any] = {"sid": sid}
        only = ""
        if expected_flights is not None:
            only = " AND flightid = ANY(:ids)"
            params["ids"] = list(expected_flights)
        rows = conn.execute(
            text(
                "UPDATE flight SET status = 'READY', stairway_id = NULL"
                f" WHERE stairway_id = :sid AND status = 'RUNNING'{only}"
                " RETURNING flightid, status, stairway_id, completed_time"
            ),
            params,
        ).all()
        results: list[MutationResult] = []
        for r in rows:
            fop = str(uuid.uuid5(uuid.UUID(op), r.flightid))
            before = {"status": "RUNNING", "stairway_id": sid, "completed_time": None}
            after = _state(r)
            aid = audit.write(
                conn,
                op_id=fop,
                actor=actor,
                action="recover_instance",
                flight_id=r.flightid,
                before=before,
                after=after,
            )
            results.append(
                _result(
                    "recover_instance",
                    r.flightid,
                    Outcome.CHANGED,
                    fop,
                    before=before,
                    after=after,
                    audit_id=aid,
                )
            )
        remaining = tuple(
            conn.execute(
                text(
                    "SELECT flightid FROM flight WHERE stairway_id = :sid AND status = 'RUNNING'"
                    " ORDER BY flightid"
                ),
                {"sid": sid},
            ).scalars()
        )
        if remaining:
            # the engine recovers an instance's flights by its id, looked up by name: deleting
            # the row now would strand these for good
            return InstanceRecovery(
                stairway_name,
                sid,
                Outcome.CHANGED if rows else Outcome.SKIPPED,
                tuple(results),
                f"Disowned {len(rows)} flights for stairway: {sid}; kept the stairwayinstance"
                f" row: RUNNING flights still name it ({', '.join(remaining)})",
                remaining,
            )
        conn.execute(text("DELETE FROM stairwayinstance WHERE stairway_id = :sid"), {"sid": sid})
        audit.write(
            conn,
            op_id=op,
            actor=actor,
            action="delete_instance",
            flight_id=None,
            before={
                "stairway_name": stairway_name,
                "stairway_id": sid,
                "disowned": [r.flightid for r in rows],
            },
            after=None,
        )
        return InstanceRecovery(
            stairway_name,
            sid,
            Outcome.CHANGED,
            tuple(results),
            f"Disowned {len(rows)} flights for stairway: {sid}",
        )

    return run_in_transaction(engine, body, policy=policy, what="flight.disownRecovery")


ENQUEUEABLE = frozenset({FlightStatus.READY, FlightStatus.READY_TO_RESTART, FlightStatus.QUEUED})


def enqueue_ready(
    engine: Engine,
    flight_id: str,
    *,
    queue: WorkQueue,
    actor: Actor,
    op_id: str | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> MutationResult:
    """Publish the v1 `QUEUE_MESSAGE_READY` message for an unowned flight so a live replica
    resumes it now, then (like the engine's `queueFlight`) mark a READY flight QUEUED."""
    op = op_id or _new_op()
    audit.ensure_audit_table(engine)
    with engine.connect() as conn:
        row = conn.execute(text(STATE_SQL), {"id": flight_id}).first()
    if row is None:
        return _unknown("enqueue_ready", flight_id, op)
    before = _state(row)
    if row.stairway_id is not None or row.status not in {s.value for s in ENQUEUEABLE}:
        return _result(
            "enqueue_ready",
            flight_id,
            Outcome.SKIPPED,
            op,
            before=before,
            detail=f"not enqueueable: {row.status} owned by {row.stairway_id}"
            " (resume takes only unowned READY, READY_TO_RESTART or QUEUED flights here)",
        )
    message = ready_message(flight_id)
    message_id = queue.publish(message)

    def body(conn: Connection) -> MutationResult:
        done = audit.find_op(conn, op)
        if done is not None:
            return _result(
                "enqueue_ready",
                flight_id,
                Outcome.CHANGED,
                op,
                before=before,
                detail="applied by an earlier attempt",
                audit_id=done,
            )
        conn.execute(
            text(
                "UPDATE flight SET status = 'QUEUED' WHERE stairway_id IS NULL"
                " AND flightid = :id AND status = 'READY'"
            ),
            {"id": flight_id},
        )
        now = conn.execute(text(STATE_SQL), {"id": flight_id}).first()
        after = (
            {**_state(now), "message_id": message_id, "topic": queue.topic_path} if now else None
        )
        aid = audit.write(
            conn,
            op_id=op,
            actor=actor,
            action="enqueue_ready",
            flight_id=flight_id,
            before=before,
            after=after,
        )
        return _result(
            "enqueue_ready",
            flight_id,
            Outcome.CHANGED,
            op,
            before=before,
            after=after,
            detail=f"Queued message. Id: {message_id}; Msg: {message}",
            audit_id=aid,
        )

    return run_in_transaction(engine, body, policy=policy, what="flight.queued")


def rewrite_input(
    engine: Engine,
    flight_id: str,
    key: str,
    *,
    old_value: str,
    new_value: str,
    actor: Actor,
    op_id: str | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> MutationResult:
    """Rewrite one `flightinput` value (re-encoding for a reader version), compare-and-set on the
    old stored text. The audit row keeps both texts with secrets masked."""
    op = op_id or _new_op()
    audit.ensure_audit_table(engine)

    def body(conn: Connection) -> MutationResult:
        done = audit.find_op(conn, op)
        if done is not None:
            return _replayed("rewrite_input", flight_id, done, op)
        current = conn.execute(
            text("SELECT value FROM flightinput WHERE flightid = :id AND key = :k"),
            {"id": flight_id, "k": key},
        ).scalar_one_or_none()
        if current is None:
            return _result(
                "rewrite_input",
                flight_id,
                Outcome.NOT_FOUND,
                op,
                detail=f"flight {flight_id} has no input {key!r}",
            )
        before = {"key": key, "value": mask_text(current, key)}
        if current != old_value:
            return _result(
                "rewrite_input",
                flight_id,
                Outcome.SKIPPED,
                op,
                before=before,
                detail=f"input {key!r} changed since it was read",
            )
        n = conn.execute(
            text(
                "UPDATE flightinput SET value = :new WHERE flightid = :id AND key = :k"
                " AND value = :old"
            ),
            {"id": flight_id, "k": key, "old": old_value, "new": new_value},
        ).rowcount
        if n != 1:
            return _result(
                "rewrite_input",
                flight_id,
                Outcome.SKIPPED,
                op,
                before=before,
                detail=f"compare-and-set matched {n} rows",
            )
        after = {"key": key, "value": mask_text(new_value, key)}
        aid = audit.write(
            conn,
            op_id=op,
            actor=actor,
            action="rewrite_input",
            flight_id=flight_id,
            before=before,
            after=after,
        )
        return _result(
            "rewrite_input",
            flight_id,
            Outcome.CHANGED,
            op,
            before=before,
            after=after,
            audit_id=aid,
        )

    return run_in_transaction(engine, body, policy=policy, what="flightinput.rewrite")


def is_resumable(status: str, owner: str | None) -> bool:
    """Whether the engine's resume() would take this flight."""
    return owner is None and status in {s.value for s in RESUMABLE}


__all__ = [
    "Actor",
    "InstanceRecovery",
    "disown",
    "enqueue_ready",
    "force_fatal",
    "force_ready",
    "is_resumable",
    "recover_instance",
    "rewrite_input",
]
