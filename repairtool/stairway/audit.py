"""The audit trail: one row per change the toolkit made, in `stairway_ops.audit`.

The table lives in its own schema, is created on first use, and is written in the same
transaction as the change it records. The engine's own tables are never altered.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text

from repairtool import __version__
from repairtool.stairway.db import reading, run_in_transaction
from repairtool.stairway.model import AuditRecord

SCHEMA = "stairway_ops"
TABLE = f"{SCHEMA}.audit"

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
        tool_version text NOT NULL
    )""",
    f"CREATE INDEX IF NOT EXISTS audit_flightid_idx ON {TABLE} (flightid)",
)


def default_actor() -> str:
    """Who is acting: $STAIRWAY_OPS_ACTOR, else user@host."""
    actor = os.environ.get("STAIRWAY_OPS_ACTOR")
    if actor:
        return actor
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class Actor:
    """Who changes flights and why; required for every mutation."""

    reason: str
    name: str = ""

    @property
    def who(self) -> str:
        return self.name or default_actor()


def audit_table_exists(conn: Connection) -> bool:
    return bool(conn.execute(text(f"SELECT to_regclass('{TABLE}') IS NOT NULL")).scalar_one())


def ensure_audit_table(engine: Engine) -> None:
    """Create the audit schema and table if missing (idempotent, safe against a racing creator)."""

    def body(conn: Connection) -> None:
        if audit_table_exists(conn):
            return
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('stairway_ops.audit'))"))
        for stmt in DDL:
            conn.execute(text(stmt))

    run_in_transaction(engine, body, what="audit.create")


def find_op(conn: Connection, op_id: str) -> int | None:
    """The audit id of an operation already applied (the retry of a lost commit)."""
    row = conn.execute(
        text(f"SELECT audit_id FROM {TABLE} WHERE op_id = :op"), {"op": op_id}
    ).first()
    return int(row[0]) if row else None


def write(
    conn: Connection,
    *,
    op_id: str,
    actor: Actor,
    action: str,
    flight_id: str | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> int:
    """Insert one audit row in the caller's transaction; returns its id."""
    return int(
        conn.execute(
            text(
                f"INSERT INTO {TABLE} (op_id, actor, reason, action, flightid, before, after,"
                " tool_version) VALUES (:op, :actor, :reason, :action, :flight,"
                " CAST(:before AS jsonb), CAST(:after AS jsonb), :version) RETURNING audit_id"
            ),
            {
                "op": op_id,
                "actor": actor.who,
                "reason": actor.reason,
                "action": action,
                "flight": flight_id,
                "before": json.dumps(before, default=str) if before is not None else None,
                "after": json.dumps(after, default=str) if after is not None else None,
                "version": f"stairway-ops {__version__}",
            },
        ).scalar_one()
    )


def list_audit(
    engine: Engine, *, flight_id: str | None = None, limit: int | None = 100
) -> list[AuditRecord]:
    """The audit trail, newest first; empty when nothing was ever changed."""
    with reading(engine) as conn:
        if not audit_table_exists(conn):
            return []
        sql = (
            f"SELECT audit_id, op_id, at, actor, reason, action, flightid, before, after,"
            f" tool_version FROM {TABLE}"
        )
        params: dict[str, Any] = {}
        if flight_id:
            sql += " WHERE flightid = :flight"
            params["flight"] = flight_id
        sql += " ORDER BY audit_id DESC"
        if limit is not None:
            sql += " LIMIT :limit"
            params["limit"] = limit
        return [
            AuditRecord(
                audit_id=r.audit_id,
                op_id=str(r.op_id),
                at=r.at,
                actor=r.actor,
                reason=r.reason,
                action=r.action,
                flight_id=r.flightid,
                before=r.before,
                after=r.after,
                tool_version=r.tool_version,
            )
            for r in conn.execute(text(sql), params)
        ]
