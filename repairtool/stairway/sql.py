"""One statement on either kind of connection: psycopg's own (the read path,
`repairtool.stairway.pgread`) or a SQLAlchemy `Connection` (mutations, the library API).

Statements use psycopg's placeholders (`%(name)s`; a literal `%` is written `%%`): on a
SQLAlchemy connection they go to the same driver through `exec_driver_sql`, so its error
handling (wrapping, invalidation, `hide_parameters`) applies there unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg


def rows(conn: Any, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """The rows of one statement, as tuples."""
    if isinstance(conn, psycopg.Connection):
        return conn.execute(sql, params).fetchall()
    return [tuple(r) for r in conn.exec_driver_sql(sql, dict(params or {}))]


def scalar(conn: Any, sql: str, params: Mapping[str, Any] | None = None) -> Any:
    """The first column of the first row (None when there is no row)."""
    found = rows(conn, sql, params)
    return found[0][0] if found else None
