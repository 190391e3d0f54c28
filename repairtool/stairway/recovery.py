"""The engine's recovery primitives, re-implemented safely: compare-and-set, audited, retried.

Each mutation
- takes the state its caller's plan was built from (`FlightState`: status, owner and the row
  version, the flight row's `xmin`) — never the state it happens to read when it runs;
- runs in one SERIALIZABLE transaction under the engine's DbRetry rule, from connect to COMMIT;
- first looks up its operation id (`op_id`): a retry after a commit whose acknowledgement was lost
  returns the first result (from the audit row) instead of applying the change twice;
- locks the flight row, compares it with the expectation and skips — never clobbers — a flight
  the engine moved on in between (a takeover by the same pod name changes the version too);
  the UPDATE repeats the comparison in its WHERE clause and its row count is checked;
- writes its audit row in the same transaction, iff the change applied;
- refuses (`LiveOwnerRefused`) to touch a RUNNING flight owned by an instance unless the caller
  gives the evidence for it (`Because`: the owner is dead, the make-flight failure, or force).

`enqueue_ready` publishes the READY message only after the commit of its own change.

SQL follows the engine (`stairway-engine.md` §1.4, §3.3, §4.1) plus the compare-and-set terms.
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text

from repairtool.errors import RepairToolError
from repairtool.stairway import audit
from repairtool.stairway.audit import Actor
from repairtool.stairway.db import DEFAULT_RETRY, RetryPolicy, run_in_transaction
from repairtool.stairway.errors import LiveOwnerRefused, shown
from repairtool.stairway.model import (
    RESUMABLE,
    AuditRecord,
    FlightState,
    FlightStatus,
    MutationResult,
    Outcome,
)
from repairtool.stairway.queue import QueueError, WorkQueue, ready_message
from repairtool.stairway.redact import mask_text

log = logging.getLogger("repairtool.recovery")

# `completed_time::text`: a value Python's datetime cannot hold (infinity) is still shown
STATE_SQL = (
    "SELECT status, stairway_id, completed_time::text AS completed_time, xmin::text AS version"
    " FROM flight WHERE flightid = :id FOR UPDATE"
)
RETURNING = (
    " RETURNING status, stairway_id, completed_time::text AS completed_time, xmin::text AS version"
)
REPLAYED = "applied by an earlier attempt whose commit acknowledgement was lost"


class Evidence(enum.StrEnum):
    """Why a RUNNING flight with an owner may be changed (recorded in the audit row)."""

    OWNER_DEAD = "owner_dead"  # liveness evidence: the owner has no live pod
    MAKE_FLIGHT_FAILURE = "make_flight_failure"  # the owner took it and cannot construct it
    FORCED = "forced"  # the operator overrode the liveness rule


@dataclass(frozen=True)
class Because:
    """The evidence a caller has for touching a live-owned flight, with a human detail."""

    evidence: Evidence
    detail: str = ""

    def to_json(self) -> dict[str, str]:
        return {"evidence": self.evidence.value, "detail": self.detail}


def _state(row: Any) -> dict[str, Any]:
    return {
        "status": row.status,
        "stairway_id": row.stairway_id,
        "completed_time": row.completed_time,
        "version": row.version,
    }


def _new_op() -> str:
    return str(uuid.uuid4())


def _result(
    action: str,
    flight_id: str | None,
    outcome: Outcome,
    op: str,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    detail: str = "",
    audit_id: int | None = None,
) -> MutationResult:
    return MutationResult(action, flight_id, outcome, before, after, detail, audit_id, op)


def _replayed(action: str, flight_id: str | None, record: AuditRecord) -> MutationResult:
    """The operation was applied by an earlier attempt whose commit acknowledgement was lost."""
    return _result(
        action,
        flight_id,
        Outcome.CHANGED,
        record.op_id,
        before=record.before,
        after=record.after,
        audit_id=record.audit_id,
        detail=REPLAYED,
    )


def _unknown(action: str, flight_id: str, op: str) -> MutationResult:
    return _result(
        action, flight_id, Outcome.NOT_FOUND, op, detail=f"Unknown flight id {shown(flight_id)}"
    )


def _who(owner: str | None) -> str:
    return shown(owner) if owner is not None else "nobody"


def _mismatch(expected: FlightState, row: Any) -> str:
    """Why the row is not in the expected state ("" when it is)."""
    same = row.status == str(expected.status) and row.stairway_id == expected.owner
    if same and (expected.version is None or row.version == expected.version):
        return ""
    want = f"{shown(expected.status)} owned by {_who(expected.owner)}"
    if expected.version is not None:
        want += f" (row version {expected.version})"
    found = f"{shown(row.status)} owned by {_who(row.stairway_id)} (row version {row.version})"
    if same:
        return f"flight moved on: changed since it was read (expected {want}, found {found})"
    return f"flight moved on: expected {want}, found {found}"


def require_evidence(
    action: str, flight_id: str, expected: FlightState, because: Because | None
) -> None:
    """The liveness rule: a RUNNING flight with an owner is touched only with evidence."""
    owned = str(expected.status) == FlightStatus.RUNNING and expected.owner is not None
    if owned and because is None:
        raise LiveOwnerRefused(
            f"{action} {shown(flight_id)}: it is RUNNING and owned by {_who(expected.owner)};"
            " changing it"
            " needs evidence that the owner is dead or cannot run it (a pod list without"
            " it, or the make-flight failure) or --force: a live owner would run it twice"
        )


def _cas_where(extra: str = "") -> str:
    return (
        " WHERE flightid = :id AND status = :status AND stairway_id IS NOT DISTINCT FROM :owner"
        " AND (CAST(:version AS text) IS NULL OR xmin::text = CAST(:version AS text))" + extra
    )


def _cas_params(flight_id: str, expected: FlightState) -> dict[str, Any]:
    return {
        "id": flight_id,
        "status": str(expected.status),
        "owner": expected.owner,
        "version": expected.version,
    }


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
    because: Because | None,
) -> MutationResult:
    require_evidence(cas.action, flight_id, expected, because)
    op = op_id or _new_op()
    audit.ensure_audit_table(engine, policy=policy)

    def body(conn: Connection) -> MutationResult:
        done = audit.find_op(conn, op)
        if done is not None:
            return _replayed(cas.action, flight_id, done)
        row = conn.execute(text(STATE_SQL), {"id": flight_id}).first()
        if row is None:
            return _unknown(cas.action, flight_id, op)
        before = _state(row)
        moved = _mismatch(expected, row)
        if moved:
            return _result(cas.action, flight_id, Outcome.SKIPPED, op, before=before, detail=moved)
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
            text(f"UPDATE flight SET {cas.set_sql}" + _cas_where() + RETURNING),
            _cas_params(flight_id, expected),
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
            evidence=because.to_json() if because else None,
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

    return run_in_transaction(engine, body, policy=policy, what=f"flight.{cas.action}", op_id=op)


def disown(
    engine: Engine,
    flight_id: str,
    *,
    expected: FlightState | None = None,
    expected_owner: str | None = None,
    because: Because | None = None,
    actor: Actor,
    op_id: str | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> MutationResult:
    """RUNNING → READY with the owner cleared (the engine's disown), if the flight is still in
    the `expected` state (`expected_owner=X` is short for RUNNING owned by X, any version). The
    flight is then picked up by the next recovery or a READY message."""
    if expected is None:
        expected = FlightState(FlightStatus.RUNNING, expected_owner)
    return _cas_update(
        engine,
        flight_id,
        expected,
        _Cas("disown", "status = 'READY', stairway_id = NULL"),
        actor,
        op_id,
        policy,
        because,
    )


def force_ready(
    engine: Engine,
    flight_id: str,
    *,
    expected: FlightState,
    because: Because | None = None,
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
        because,
    )


def force_fatal(
    engine: Engine,
    flight_id: str,
    *,
    expected: FlightState,
    because: Because | None = None,
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
        because,
    )


@dataclass(frozen=True)
class InstanceRecovery:
    """What `recover_instance` did: each flight it disowned, and whether the instance row went.

    The row is kept (`instance_deleted` False, `remaining` listing them) while RUNNING flights
    outside the plan still name the instance: the engine's disownRecovery finds an instance's
    flights through that row, so deleting it would strand them."""

    stairway_name: str
    stairway_id: str | None
    outcome: Outcome
    flights: tuple[MutationResult, ...]
    detail: str = ""
    instance_deleted: bool = False
    remaining: tuple[str, ...] = ()


def _expected_versions(
    expected_flights: Collection[str] | Mapping[str, str | None],
) -> tuple[list[str], list[str | None]]:
    if isinstance(expected_flights, Mapping):
        ids = list(expected_flights)
        return ids, [expected_flights[i] for i in ids]
    ids = list(expected_flights)
    return ids, [None] * len(ids)


def recover_instance(
    engine: Engine,
    stairway_name: str,
    *,
    actor: Actor,
    expected_id: str | None = None,
    expected_version: str | None = None,
    expected_flights: Collection[str] | Mapping[str, str | None] | None = None,
    because: Because | None = None,
    op_id: str | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> InstanceRecovery:
    """The engine's disownRecovery for a dead instance: its RUNNING flights → READY, owner
    cleared, and its `stairwayinstance` row deleted. The caller must know the instance is dead.

    Compare-and-set: `expected_id`/`expected_version` are the instance row as planned (a pod that
    registered again under the name has a new row version); `expected_flights` (ids, or id → row
    version) limits the disown to the flights planned on. The row is deleted only when no RUNNING
    flight names the instance afterwards; otherwise it is kept and those flights are reported.
    `because` is the evidence recorded in the flights' audit rows (default: the instance has no
    live pod)."""
    op = op_id or _new_op()
    audit.ensure_audit_table(engine, policy=policy)

    def flight_op(flight_id: str) -> str:
        return str(uuid.uuid5(uuid.UUID(op), flight_id))

    def body(conn: Connection) -> InstanceRecovery:
        done = audit.find_op(conn, op)
        if done is not None:
            return _replay_instance(conn, stairway_name, done, flight_op)
        inst = conn.execute(
            text(
                "SELECT stairway_id, xmin::text AS version FROM stairwayinstance"
                " WHERE stairway_name = :n FOR UPDATE"
            ),
            {"n": stairway_name},
        ).first()
        if inst is None:
            return InstanceRecovery(
                stairway_name,
                None,
                Outcome.NOT_FOUND,
                (),
                f"no stairwayinstance row named {shown(stairway_name)}",
            )
        sid = inst.stairway_id
        if (expected_id is not None and sid != expected_id) or (
            expected_version is not None and inst.version != expected_version
        ):
            return InstanceRecovery(
                stairway_name,
                sid,
                Outcome.SKIPPED,
                (),
                f"instance {shown(stairway_name)} registered again since it was read (id"
                f" {shown(sid)}, row"
                f" version {inst.version}): its pod may be alive",
            )
        params: dict[str, Any] = {"sid": sid}
        planned = ""
        if expected_flights is not None:
            ids, versions = _expected_versions(expected_flights)
            planned = (
                " JOIN unnest(CAST(:ids AS text[]), CAST(:versions AS text[])) AS e(id, version)"
                " ON e.id = f.flightid AND (e.version IS NULL OR e.version = f.xmin::text)"
            )
            params.update(ids=ids, versions=versions)
        rows = conn.execute(
            text(
                "WITH old AS (SELECT f.flightid, f.completed_time::text AS completed_time,"
                f" f.xmin::text AS version FROM flight f{planned}"
                " WHERE f.stairway_id = :sid AND f.status = 'RUNNING' FOR UPDATE OF f)"
                " UPDATE flight SET status = 'READY', stairway_id = NULL FROM old"
                " WHERE flight.flightid = old.flightid AND flight.stairway_id = :sid"
                " AND flight.status = 'RUNNING'"
                " RETURNING flight.flightid, old.completed_time AS old_completed,"
                " old.version AS old_version, flight.status, flight.stairway_id,"
                " flight.completed_time::text AS completed_time, flight.xmin::text AS version"
            ),
            params,
        ).all()
        remaining = tuple(
            conn.execute(
                text(
                    "SELECT flightid FROM flight WHERE stairway_id = :sid AND status = 'RUNNING'"
                    " ORDER BY flightid"
                ),
                {"sid": sid},
            ).scalars()
        )
        results: list[MutationResult] = []
        for r in sorted(rows, key=lambda r: r.flightid):
            fop = flight_op(r.flightid)
            before = {
                "status": "RUNNING",
                "stairway_id": sid,
                "completed_time": r.old_completed,
                "version": r.old_version,
            }
            after = _state(r)
            aid = audit.write(
                conn,
                op_id=fop,
                actor=actor,
                action="recover_instance",
                flight_id=r.flightid,
                before=before,
                after=after,
                evidence=(
                    because
                    or Because(
                        Evidence.OWNER_DEAD, f"instance {shown(stairway_name)} has no live pod"
                    )
                ).to_json(),
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
        disowned = [r.flight_id for r in results]
        if remaining:
            listed = ", ".join(shown(r) for r in remaining[:3]) + (
                ", …" if len(remaining) > 3 else ""
            )
            detail = (
                f"Disowned {len(disowned)} flights for stairway: {shown(sid)}; instance row kept:"
                f" {len(remaining)} RUNNING flights outside the plan still name it ({listed});"
                " deleting it would strand them"
            )
            deleted = False
        else:
            conn.execute(
                text("DELETE FROM stairwayinstance WHERE stairway_id = :sid"), {"sid": sid}
            )
            detail = f"Disowned {len(disowned)} flights for stairway: {shown(sid)}"
            deleted = True
        if not disowned and not deleted:
            return InstanceRecovery(
                stairway_name, sid, Outcome.SKIPPED, (), detail, False, remaining
            )
        audit.write(
            conn,
            op_id=op,
            actor=actor,
            action="delete_instance" if deleted else "recover_instance_kept",
            flight_id=None,
            before={
                "stairway_name": stairway_name,
                "stairway_id": sid,
                "version": inst.version,
                "disowned": disowned,
            },
            after={"deleted": deleted, "remaining": list(remaining)},
        )
        return InstanceRecovery(
            stairway_name, sid, Outcome.CHANGED, tuple(results), detail, deleted, remaining
        )

    return run_in_transaction(engine, body, policy=policy, what="flight.disownRecovery", op_id=op)


def _replay_instance(
    conn: Connection, stairway_name: str, done: AuditRecord, flight_op: Any
) -> InstanceRecovery:
    before = done.before or {}
    after = done.after or {}
    disowned = list(before.get("disowned", []))
    records = {r.flight_id: r for r in audit.find_ops(conn, [flight_op(f) for f in disowned])}
    flights = tuple(_replayed("recover_instance", f, records[f]) for f in disowned if f in records)
    remaining = tuple(after.get("remaining", []))
    return InstanceRecovery(
        stairway_name,
        before.get("stairway_id"),
        Outcome.CHANGED,
        flights,
        f"Disowned {len(flights)} flights for stairway: {before.get('stairway_id')} ({REPLAYED})",
        bool(after.get("deleted")),
        remaining,
    )


ENQUEUEABLE = frozenset({FlightStatus.READY, FlightStatus.READY_TO_RESTART, FlightStatus.QUEUED})


def enqueue_ready(
    engine: Engine,
    flight_id: str,
    *,
    queue: WorkQueue,
    expected: FlightState,
    actor: Actor,
    op_id: str | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> MutationResult:
    """Send the v1 `QUEUE_MESSAGE_READY` message for an unowned flight so a live replica resumes
    it now — compare-and-set end to end:

    1. one SERIALIZABLE transaction locks the flight, checks it is still in the `expected`
       unowned READY / READY_TO_RESTART / QUEUED state, marks it as the engine's `queueFlight`
       does (READY → QUEUED; the others keep their status, but the row is still written so its
       version moves on) with the comparison repeated in the UPDATE's WHERE and its row count
       checked, and writes the audit row;
    2. only after that COMMIT is the message published (a replay after a lost commit
       acknowledgement publishes it then); its id is added to the audit row;
    3. if publishing fails, a READY → QUEUED mark is undone (compare-and-set on the version this
       change left), audited, and `QueueError` is raised.

    A flight another pod owns, or one that moved on, is SKIPPED: no audit row, no message.
    Between the commit and the publish only a READY message can let a pod take a QUEUED flight
    (recoverReady scans READY and READY_TO_RESTART only), so the message goes to a flight that
    was unowned at the commit; a duplicate message for a flight a pod took meanwhile is what the
    engine itself tolerates ("did not resume flight")."""
    op = op_id or _new_op()
    audit.ensure_audit_table(engine, policy=policy)

    def body(conn: Connection) -> MutationResult:
        done = audit.find_op(conn, op)
        if done is not None:
            return _replayed("enqueue_ready", flight_id, done)
        row = conn.execute(text(STATE_SQL), {"id": flight_id}).first()
        if row is None:
            return _unknown("enqueue_ready", flight_id, op)
        before = _state(row)
        moved = _mismatch(expected, row)
        if moved:
            return _result(
                "enqueue_ready", flight_id, Outcome.SKIPPED, op, before=before, detail=moved
            )
        if row.stairway_id is not None or row.status not in {s.value for s in ENQUEUEABLE}:
            return _result(
                "enqueue_ready",
                flight_id,
                Outcome.SKIPPED,
                op,
                before=before,
                detail=f"not enqueueable: {shown(row.status)} owned by {_who(row.stairway_id)}"
                " (resume takes only unowned READY, READY_TO_RESTART or QUEUED flights here)",
            )
        new_status = "QUEUED" if row.status == FlightStatus.READY else row.status
        updated = conn.execute(
            text(
                "UPDATE flight SET status = :new"
                + _cas_where(" AND stairway_id IS NULL")
                + RETURNING
            ),
            {**_cas_params(flight_id, expected), "new": new_status},
        ).all()
        if len(updated) != 1:
            return _result(
                "enqueue_ready",
                flight_id,
                Outcome.SKIPPED,
                op,
                before=before,
                detail=f"compare-and-set matched {len(updated)} rows",
            )
        after = {**_state(updated[0]), "topic": queue.topic_path}
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
            audit_id=aid,
        )

    result = run_in_transaction(engine, body, policy=policy, what="flight.queued", op_id=op)
    if result.outcome is not Outcome.CHANGED:
        return result
    message = ready_message(flight_id)
    try:
        message_id = queue.publish(message)
    except RepairToolError as error:
        undone = _undo_enqueue(engine, flight_id, result, actor, policy)
        raise QueueError(
            f"the READY message for flight {shown(flight_id)} was not published ({error}); {undone}"
        ) from None
    try:
        audit.annotate(engine, op, {"message_id": message_id}, policy=policy)
    except RepairToolError as error:  # the message is out; only its id is missing in the audit
        log.warning("message id %s not recorded in the audit row of %s: %s", message_id, op, error)
    after = {**(result.after or {}), "message_id": message_id}
    detail = f"Queued message. Id: {message_id}; Msg: {message}"
    if result.detail == REPLAYED:
        detail += f" ({REPLAYED})"
    return _result(
        "enqueue_ready",
        flight_id,
        Outcome.CHANGED,
        op,
        before=result.before,
        after=after,
        detail=detail,
        audit_id=result.audit_id,
    )


def _undo_enqueue(
    engine: Engine, flight_id: str, done: MutationResult, actor: Actor, policy: RetryPolicy
) -> str:
    """After a failed publish: QUEUED → READY again if the flight is as our change left it."""
    before, after = done.before or {}, done.after or {}
    if before.get("status") != FlightStatus.READY or after.get("status") != FlightStatus.QUEUED:
        return f"flight {shown(flight_id)} keeps its status {shown(after.get('status'))}"
    left = FlightState(FlightStatus.QUEUED, None, after.get("version"))
    try:
        undo = _cas_update(
            engine,
            flight_id,
            left,
            _Cas("enqueue_ready_undone", "status = 'READY'"),
            actor,
            None,
            policy,
            None,
        )
    except RepairToolError as error:
        return f"setting flight {shown(flight_id)} back to READY failed too ({error})"
    if undo.outcome is Outcome.CHANGED:
        return f"flight {shown(flight_id)} set back to READY"
    return f"flight {shown(flight_id)} left as it is now ({undo.detail})"


def _masked(value: str, key: str) -> str:
    try:
        return mask_text(value, key)
    except RecursionError:  # a value nested deeper than the masker follows: never shown
        return f"<value nested too deeply to show, {len(value)} chars>"


def rewrite_input(
    engine: Engine,
    flight_id: str,
    key: str,
    *,
    old_value: str,
    new_value: str,
    actor: Actor,
    expected: FlightState | None = None,
    op_id: str | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> MutationResult:
    """Rewrite one `flightinput` value (re-encoding for a reader version), compare-and-set on the
    old stored text and, with `expected`, on the flight's state (the flight row is locked, not
    changed). The audit row keeps both texts with secrets masked."""
    op = op_id or _new_op()
    audit.ensure_audit_table(engine, policy=policy)

    def body(conn: Connection) -> MutationResult:
        done = audit.find_op(conn, op)
        if done is not None:
            return _replayed("rewrite_input", flight_id, done)
        if expected is not None:
            row = conn.execute(text(STATE_SQL), {"id": flight_id}).first()
            if row is None:
                return _unknown("rewrite_input", flight_id, op)
            moved = _mismatch(expected, row)
            if moved:
                return _result(
                    "rewrite_input",
                    flight_id,
                    Outcome.SKIPPED,
                    op,
                    before=_state(row),
                    detail=moved,
                )
        current = conn.execute(
            text("SELECT value FROM flightinput WHERE flightid = :id AND key = :k FOR UPDATE"),
            {"id": flight_id, "k": key},
        ).scalar_one_or_none()
        if current is None:
            return _result(
                "rewrite_input",
                flight_id,
                Outcome.NOT_FOUND,
                op,
                detail=f"flight {shown(flight_id)} has no input {shown(key)}",
            )
        before = {"key": key, "value": _masked(current, key)}
        if current != old_value:
            return _result(
                "rewrite_input",
                flight_id,
                Outcome.SKIPPED,
                op,
                before=before,
                detail=f"input {shown(key)} changed since it was read",
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
        after = {"key": key, "value": _masked(new_value, key)}
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

    return run_in_transaction(engine, body, policy=policy, what="flightinput.rewrite", op_id=op)


def is_resumable(status: str, owner: str | None) -> bool:
    """Whether the engine's resume() would take this flight."""
    return owner is None and status in {s.value for s in RESUMABLE}


__all__ = [
    "Actor",
    "Because",
    "Evidence",
    "InstanceRecovery",
    "disown",
    "enqueue_ready",
    "force_fatal",
    "force_ready",
    "is_resumable",
    "recover_instance",
    "require_evidence",
    "rewrite_input",
]
