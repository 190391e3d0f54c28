"""The audit trail: one row per change the toolkit made, in `stairway_ops.audit`.

The table lives in its own schema, is created on first use, and is written in the same
transaction as the change it records. The engine's own tables are never altered.

A `stairway_ops.audit` that is not ours (other columns or types) is never written to: writing
refuses with `ForeignAuditTable`, and detection simply does without audit evidence. A role that may
not read it (a SELECT-only role granted only the engine's tables) gets the same: dry runs work.

Reading the trail (`list_audit`) and `Actor` live in :mod:`repairtool.stairway.auditread`, on
the psycopg read path without SQLAlchemy; they are re-exported here.
"""

from __future__ import annotations

import datetime as dt
import json
import weakref
from typing import Any

from sqlalchemy import Connection, Engine, text

from repairtool import __version__
from repairtool.stairway.auditread import (
    RECORD_COLUMNS,
    Actor,
    audit_record,
    default_actor,
    foreign_table,
    list_audit,
)
from repairtool.stairway.db import DEFAULT_RETRY, RetryPolicy, run_in_transaction
from repairtool.stairway.errors import PermissionDenied
from repairtool.stairway.model import AuditRecord
from repairtool.stairway.probe import (
    AUDIT_COLUMNS,
    AUDIT_LATER_COLUMNS,
    AUDIT_SCHEMA,
    AUDIT_TABLE,
    audit_table_state,
)

SCHEMA = AUDIT_SCHEMA
TABLE = AUDIT_TABLE

DDL = (
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
        audit_id bigserial PRIMARY KEY,
        op_id uuid NOT NULL UNIQUE,
        at timestamptz NOT NULL DEFAULT now(),
        actor text NOT NULL,
        reason text NOT NULL,
        action text NOT NULL,
        flightid varchar(36),
        before jsonb,
        after jsonb,
        tool_version text NOT NULL,
        evidence jsonb
    )""",
    f"CREATE INDEX IF NOT EXISTS audit_flightid_idx ON {TABLE} (flightid)",
)

#: our columns and their types (`format_type` spelling); `evidence` was added later
COLUMNS = AUDIT_COLUMNS
LATER_COLUMNS = AUDIT_LATER_COLUMNS


__all__ = [
    "Actor",
    "annotate",
    "audit_table_exists",
    "default_actor",
    "ensure_audit_table",
    "find_op",
    "find_ops",
    "last_changes",
    "list_audit",
    "write",
]


def audit_table_exists(conn: Connection) -> bool:
    """Whether our audit table is there and readable (a foreign table counts as absent)."""
    return audit_table_state(conn).usable


#: engines whose audit table is known to be ready (checked once per engine)
_ready: weakref.WeakSet[Engine] = weakref.WeakSet()


def ensure_audit_table(engine: Engine, *, policy: RetryPolicy = DEFAULT_RETRY) -> None:
    """Create the audit schema and table if missing (idempotent, safe against a racing creator),
    add columns newer versions need; refuse a foreign table and explain a missing privilege."""
    if engine in _ready:
        return

    def body(conn: Connection) -> None:
        state = audit_table_state(conn)
        if state.exists and not state.ours:
            raise foreign_table(state)
        if state.exists and not state.missing_later:
            if not (state.writable and state.readable):
                raise PermissionDenied(
                    f"--fix needs SELECT and INSERT on {TABLE} (the audit trail); the database"
                    " role lacks one of them"
                )
            return
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('stairway_ops.audit'))"))
        for stmt in DDL:
            conn.execute(text(stmt))
        for name, type_ in LATER_COLUMNS.items():
            conn.execute(text(f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS {name} {type_}"))

    try:
        run_in_transaction(engine, body, policy=policy, what="audit.create")
    except PermissionDenied as error:
        if "--fix needs" in str(error):
            raise
        raise PermissionDenied(
            f"--fix needs a database role that may create schema {SCHEMA} (or INSERT into an"
            f" existing {TABLE}) and UPDATE the engine's flight table: {error}"
        ) from None
    _ready.add(engine)


def find_op(conn: Connection, op_id: str) -> AuditRecord | None:
    """The audit record of an operation already applied (the retry of a lost commit)."""
    row = conn.execute(
        text(f"SELECT {RECORD_COLUMNS}, evidence FROM {TABLE} WHERE op_id = :op"),
        {"op": op_id},
    ).first()
    return audit_record(tuple(row)) if row is not None else None


def find_ops(conn: Connection, op_ids: list[str]) -> list[AuditRecord]:
    """The audit records of several operations (those applied), in audit order."""
    if not op_ids:
        return []
    rows = conn.execute(
        text(
            f"SELECT {RECORD_COLUMNS}, evidence FROM {TABLE}"
            " WHERE op_id = ANY(CAST(:ops AS uuid[])) ORDER BY audit_id"
        ),
        {"ops": op_ids},
    ).all()
    return [audit_record(tuple(r)) for r in rows]


def _json(value: Any) -> str | None:
    return json.dumps(value, default=str) if value is not None else None


def write(
    conn: Connection,
    *,
    op_id: str,
    actor: Actor,
    action: str,
    flight_id: str | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    evidence: dict[str, Any] | None = None,
) -> int:
    """Insert one audit row in the caller's transaction; returns its id."""
    return int(
        conn.execute(
            text(
                f"INSERT INTO {TABLE} (op_id, actor, reason, action, flightid, before, after,"
                " tool_version, evidence) VALUES (:op, :actor, :reason, :action, :flight,"
                " CAST(:before AS jsonb), CAST(:after AS jsonb), :version,"
                " CAST(:evidence AS jsonb)) RETURNING audit_id"
            ),
            {
                "op": op_id,
                "actor": actor.who,
                "reason": actor.reason,
                "action": action,
                "flight": flight_id,
                "before": _json(before),
                "after": _json(after),
                "version": f"stairway-ops {__version__}",
                "evidence": _json(evidence),
            },
        ).scalar_one()
    )


def annotate(
    engine: Engine,
    op_id: str,
    extra: dict[str, Any],
    *,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> None:
    """Merge `extra` into the `after` of an operation's audit row (e.g. the id of the READY
    message, known only after the commit). Idempotent."""

    def body(conn: Connection) -> None:
        conn.execute(
            text(
                f"UPDATE {TABLE} SET after = COALESCE(after, '{{}}'::jsonb)"
                " || CAST(:extra AS jsonb) WHERE op_id = :op"
            ),
            {"op": op_id, "extra": json.dumps(extra, default=str)},
        )

    run_in_transaction(engine, body, policy=policy, what="audit.annotate")


def last_changes(conn: Connection, flight_ids: list[str]) -> dict[str, tuple[dt.datetime, str]]:
    """For each flight this toolkit changed: when it last did (session time zone, like the
    engine's columns) and the row version its change left. Empty when the audit table is absent,
    not ours or not readable by this role."""
    if not flight_ids or not audit_table_exists(conn):
        return {}
    rows = conn.execute(
        text(
            f"SELECT DISTINCT ON (flightid) flightid,"
            f" CAST(at AT TIME ZONE current_setting('TimeZone') AS timestamp) AS at,"
            f" COALESCE(after->>'version', '') AS version FROM {TABLE}"
            " WHERE flightid = ANY(:ids) ORDER BY flightid, audit_id DESC"
        ),
        {"ids": flight_ids},
    ).all()
    return {r.flightid: (r.at, r.version) for r in rows}
