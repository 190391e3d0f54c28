"""What a database has — the engine's tables and columns, our audit table — read through the
catalogs on either kind of connection (`repairtool.stairway.sql`), and the checks that turn a
shape this tool does not know into one clear line.

Detection asks all of it in one round trip (`CATALOG_SQL`, `COLUMNS_SQL`, `AUDIT_STATE_SQL`
pipelined) and checks the answers with the same functions the other reads use.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from repairtool.errors import NotStairwayDatabase
from repairtool.stairway.errors import UnsupportedSchema
from repairtool.stairway.schema import NEWEST_KNOWN
from repairtool.stairway.sql import rows

#: the engine's core tables (`require_stairway`)
CORE_TABLES = ("flight", "flightlog", "flightinput")

#: the columns this tool reads, per table (every engine generation since 0.0.10 has them)
READ_COLUMNS: dict[str, tuple[str, ...]] = {
    "flight": (
        "flightid",
        "submit_time",
        "class_name",
        "completed_time",
        "status",
        "serialized_exception",
        "stairway_id",
    ),
    "flightlog": ("flightid", "log_time", "step_index"),
    "flightinput": ("flightid", "key", "value"),
    "stairwayinstance": ("stairway_name", "stairway_id"),
}

COLUMNS_SQL = (
    "SELECT table_name, column_name FROM information_schema.columns"
    " WHERE table_schema = current_schema() AND table_name = ANY(%(t)s)"
)


def columns(conn: Any, tables: Sequence[str]) -> dict[str, set[str]]:
    """The columns of the given tables in the current schema (one catalog query)."""
    return columns_of(rows(conn, COLUMNS_SQL, {"t": list(tables)}))


def columns_of(found_rows: Iterable[tuple[Any, ...]]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for table, column in found_rows:
        found.setdefault(table, set()).add(column)
    return found


def check_columns(found: dict[str, set[str]], tables: Sequence[str] = tuple(READ_COLUMNS)) -> None:
    """Raise a one-line `UnsupportedSchema` naming the first table or column this tool reads that
    is missing (renamed, or a schema newer than the engines it knows)."""
    known = f"this tool knows the Stairway schemas up to {NEWEST_KNOWN}"
    for table in tables:
        if table not in found:
            raise UnsupportedSchema(
                f"table {table} is missing (or not readable by this role): not a Stairway"
                f" schema this tool knows ({known})"
            )
        for column in READ_COLUMNS[table]:
            if column not in found[table]:
                raise UnsupportedSchema(
                    f"column {table}.{column} is missing: renamed, or an engine newer than"
                    f" {NEWEST_KNOWN}? ({known})"
                )


def require_columns(conn: Any, tables: Sequence[str] = tuple(READ_COLUMNS)) -> None:
    """`check_columns` of the database behind `conn`."""
    check_columns(columns(conn, tables), tables)


def check_core_tables(present: dict[str, bool]) -> None:
    """Raise NotStairwayDatabase unless the engine's core tables are there."""
    missing = [t for t in CORE_TABLES if not present.get(t)]
    if missing:
        raise NotStairwayDatabase(
            f"not a Stairway database: table {missing[0]} is missing"
            " (wrong database or schema? the engine's tables live in the service's Stairway DB)"
        )


# -- our audit table ---------------------------------------------------------------------------

AUDIT_SCHEMA = "stairway_ops"
AUDIT_TABLE = f"{AUDIT_SCHEMA}.audit"

#: our columns and their types (`format_type` spelling); `evidence` was added later
AUDIT_COLUMNS = {
    "audit_id": "bigint",
    "op_id": "uuid",
    "at": "timestamp with time zone",
    "actor": "text",
    "reason": "text",
    "action": "text",
    "flightid": "character varying(36)",
    "before": "jsonb",
    "after": "jsonb",
    "tool_version": "text",
}
AUDIT_LATER_COLUMNS = {"evidence": "jsonb"}

AUDIT_STATE_SQL = (
    "SELECT c.relkind, a.attname, format_type(a.atttypid, a.atttypmod) AS type,"
    " has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT')"
    " AS readable,"
    " has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'INSERT')"
    " AS writable"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0"
    " AND NOT a.attisdropped WHERE n.nspname = %(schema)s AND c.relname = 'audit'"
)


@dataclass(frozen=True)
class AuditTableState:
    """What is at `stairway_ops.audit` and what this role may do with it."""

    exists: bool
    ours: bool
    why_not_ours: str  # "" when ours (or missing)
    missing_later: tuple[str, ...]  # our later columns an older table lacks
    readable: bool
    writable: bool

    @property
    def usable(self) -> bool:
        """Ours and readable: detection may take evidence from it."""
        return self.exists and self.ours and self.readable


def audit_state_of(found_rows: Sequence[tuple[Any, ...]]) -> AuditTableState:
    """The state the rows of `AUDIT_STATE_SQL` describe."""
    if not found_rows:
        return AuditTableState(False, False, "", (), False, False)
    relkind, _, _, readable, writable = found_rows[0]
    found = {r[1]: r[2] for r in found_rows if r[1] is not None}
    why = ""
    if relkind not in ("r", "p"):
        why = f"it is not a table (relkind {relkind})"
    else:
        for name, type_ in AUDIT_COLUMNS.items():
            if name not in found:
                why = f"column {name} is missing"
                break
            if found[name] != type_:
                why = f"column {name} is {found[name]}, not {type_}"
                break
    later = tuple(n for n in AUDIT_LATER_COLUMNS if n not in found)
    if not why:
        wrong = [n for n, t in AUDIT_LATER_COLUMNS.items() if n in found and found[n] != t]
        if wrong:
            why = f"column {wrong[0]} is {found[wrong[0]]}, not {AUDIT_LATER_COLUMNS[wrong[0]]}"
    return AuditTableState(True, not why, why, later, bool(readable), bool(writable))


def audit_table_state(conn: Any) -> AuditTableState:
    """Inspect `stairway_ops.audit` through the catalogs (readable by every role)."""
    return audit_state_of(rows(conn, AUDIT_STATE_SQL, {"schema": AUDIT_SCHEMA}))
