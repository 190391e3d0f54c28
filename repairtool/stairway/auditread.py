"""The audit trail, read side: `list_audit`, the record type and who acts (`Actor`), without
SQLAlchemy — `repairtool flights audit` reads on the psycopg read path
(`repairtool.stairway.pgread`). Writing the trail (in the same transaction as the change it
records) stays in :mod:`repairtool.stairway.audit`, which re-exports these names.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from repairtool.stairway.errors import ForeignAuditTable, PermissionDenied
from repairtool.stairway.model import AuditRecord
from repairtool.stairway.pgread import Source, run_read
from repairtool.stairway.probe import AUDIT_SCHEMA, AUDIT_TABLE, AuditTableState, audit_table_state
from repairtool.stairway.retry import DEFAULT_RETRY, RetryPolicy
from repairtool.stairway.sql import rows

SCHEMA = AUDIT_SCHEMA
TABLE = AUDIT_TABLE

#: the columns of an audit record, in `audit_record`'s order (`evidence` may be selected as NULL)
RECORD_COLUMNS = "audit_id, op_id, at, actor, reason, action, flightid, before, after, tool_version"


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


def foreign_table(state: AuditTableState) -> ForeignAuditTable:
    """The one-line refusal for a `stairway_ops.audit` that is not ours."""
    return ForeignAuditTable(
        f"{TABLE} exists but is not repairtool's audit table ({state.why_not_ours}); nothing"
        " was changed — move that table out of the way (or drop it) so the audit trail can be"
        " created"
    )


def audit_record(r: Sequence[Any]) -> AuditRecord:
    """An `AuditRecord` from a row of `RECORD_COLUMNS` followed by `evidence`."""
    audit_id, op_id, at, actor, reason, action, flightid, before, after, version, evidence = r
    return AuditRecord(
        audit_id=audit_id,
        op_id=str(op_id),
        at=at,
        actor=actor,
        reason=reason,
        action=action,
        flight_id=flightid,
        before=before,
        after=after,
        tool_version=version,
        evidence=evidence,
    )


def list_audit(
    source: Source,
    *,
    flight_id: str | None = None,
    limit: int | None = 100,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> list[AuditRecord]:
    """The audit trail, newest first; empty when nothing was ever changed. `source`: a `ReadDb`
    or a SQLAlchemy `Engine`."""

    def body(conn: Any) -> list[AuditRecord]:
        state = audit_table_state(conn)
        if not state.exists:
            return []
        if not state.ours:
            raise foreign_table(state)
        if not state.readable:
            raise PermissionDenied(
                f"the database role may not read the audit trail ({TABLE}: needs USAGE on"
                f" schema {SCHEMA} and SELECT on the table)"
            )
        evidence = "evidence" if "evidence" not in state.missing_later else "NULL AS evidence"
        sql = f"SELECT {RECORD_COLUMNS}, {evidence} FROM {TABLE}"
        params: dict[str, Any] = {}
        if flight_id:
            sql += " WHERE flightid = %(flight)s"
            params["flight"] = flight_id
        sql += " ORDER BY audit_id DESC"
        if limit is not None:
            sql += " LIMIT %(limit)s"
            params["limit"] = limit
        return [audit_record(r) for r in rows(conn, sql, params)]

    return run_read(source, body, policy=policy, what="audit.list")
