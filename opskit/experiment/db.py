"""The experiment's own access to the Stairway database, and the SQL it quotes as evidence.

:class:`ExperimentDb` reads (read-only, except for the row lock the ``drop-db-connections``
fault holds); the ``SQL_*`` texts are what ``attempts[].sql_evidence[]`` records and runbooks
quote; :func:`psql_command` is the psql line a person types for one of them.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import re
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text

from opskit.dbproxy import DbTarget
from opskit.errors import OperationFailed
from repairtool.clock import rfc3339

#: the runner's own connections to the Stairway database (``pg_stat_activity.application_name``)
APPLICATION_NAME = "stairway-ops experiment"
#: the work-queue ack deadline of an experiment's sandbox (the emulator's minimum): a message the
#: engine did not ack comes back after this long (the 2021 ``did not resume flight`` line)
ACK_DEADLINE_SECONDS = 10

# -- SQL evidence (attempts[].sql_evidence[]; names from opskit.journal.SQL_NAMES) ---------------
SQL_NON_TERMINAL = (
    "SELECT flightid, status, stairway_id, class_name, submit_time\n"
    "FROM flight\n"
    "WHERE status NOT IN ('SUCCESS', 'ERROR', 'FATAL')\n"
    "ORDER BY submit_time"
)
SQL_INSTANCES = "SELECT stairway_name, stairway_id FROM stairwayinstance ORDER BY stairway_name"
SQL_FLIGHT_LOG = (
    "SELECT log_time, step_index, direction, succeeded, rerun\n"
    "FROM flightlog\n"
    "WHERE flightid = '{flight_id}'\n"
    "ORDER BY log_time"
)
SQL_UNOWNED = (
    "SELECT flightid, status, class_name, submit_time\n"
    "FROM flight\n"
    "WHERE status IN ('READY', 'QUEUED') AND stairway_id IS NULL\n"
    "ORDER BY submit_time"
)
#: cut every client connection of the Stairway database but psql's own: the service's first,
#: each waited for (up to 5 s), then the tools' (``stairway-ops …``, ``repairtool``)
SQL_TERMINATE = (
    "SELECT pid, application_name, state, wait_event_type,"
    " pg_terminate_backend(pid, 5000) AS terminated"
    " FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    " AND backend_type = 'client backend'"
    " ORDER BY application_name LIKE 'stairway-ops%' OR application_name = 'repairtool', pid"
)

#: the service's own database (WSM's ``wsm``) refuses new connections and its sessions end: a
#: dependency outage for the steps that write it (sessions of the Stairway database go on)
SQL_SERVICE_DB_DOWN = (
    "ALTER DATABASE wsm WITH ALLOW_CONNECTIONS false;"
    " SELECT pid, application_name, pg_terminate_backend(pid) AS terminated"
    " FROM pg_stat_activity WHERE datname = 'wsm' AND backend_type = 'client backend'"
)
SQL_SERVICE_DB_UP = "ALTER DATABASE wsm WITH ALLOW_CONNECTIONS true"

Scalar = str | int | float | bool | None


def scalar(value: Any) -> Scalar:
    """A database value as a JSON scalar (times in RFC 3339 UTC, like every other time)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime):
        return rfc3339(value)
    return str(value)


def psql_command(target: DbTarget, sql: str, *, as_csv: bool = False) -> str:
    """``psql "host=… user=…" -c "SQL"`` (no password in it: psql gets ``PGPASSWORD``).

    ``as_csv``: ``--csv`` output, psql's machine-readable form, for a command whose result the
    experiment reads back (:func:`csv_rows`).
    """
    if any(ch in sql for ch in '"$`\\'):
        raise ValueError('SQL for a psql -c argument must not contain " $ ` or \\')
    return f'{target.psql_line()}{" --csv" if as_csv else ""} -c "{sql}"'


def csv_rows(text: str) -> list[dict[str, str]]:
    """The rows of ``psql --csv`` output (header line first)."""
    return list(csv.DictReader(io.StringIO(text)))


_UUID = re.compile(r"^[0-9a-fA-F-]{36}$")


def checked_flight_id(flight_id: str) -> str:
    """A flight id safe to put into :data:`SQL_FLIGHT_LOG` (a UUID)."""
    if not _UUID.match(flight_id):
        raise OperationFailed(f"unexpected flight id {flight_id!r}")
    return flight_id


class ExperimentDb:
    """The runner's connections to the Stairway database (read-only, except for the row lock
    of the ``drop-db-connections`` method). Connections cut under it are replaced (pre-ping)."""

    def __init__(self, target: DbTarget) -> None:
        self.target = target
        self.engine: Engine = create_engine(
            target.sqlalchemy_url(),
            pool_size=2,
            max_overflow=2,
            pool_pre_ping=True,
            connect_args={"application_name": APPLICATION_NAME, "connect_timeout": 5},
        )

    def close(self) -> None:
        self.engine.dispose()

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(text(sql), dict(params or {})).mappings()]

    def evidence(self, sql: str) -> tuple[tuple[str, ...], tuple[tuple[Scalar, ...], ...]]:
        """Run one evidence query: its columns and rows as JSON scalars."""
        with self.engine.connect() as conn:
            result = conn.execute(text(sql))
            columns = tuple(result.keys())
            rows = tuple(tuple(scalar(v) for v in row) for row in result.all())
        return columns, rows

    def now(self) -> dt.datetime:
        """The database's ``LOCALTIMESTAMP`` (what ``submit_time`` is compared with)."""
        with self.engine.connect() as conn:
            value = conn.execute(text("SELECT LOCALTIMESTAMP")).scalar()
        assert isinstance(value, dt.datetime)
        return value

    def new_flight(self, flight_class: str, since: dt.datetime) -> dict[str, Any] | None:
        found = self.rows(
            "SELECT flightid, stairway_id, status, submit_time FROM flight"
            " WHERE class_name = :cls AND submit_time >= :since ORDER BY submit_time LIMIT 1",
            {"cls": flight_class, "since": since},
        )
        return found[0] if found else None

    def flight(self, flight_id: str) -> dict[str, Any] | None:
        found = self.rows(
            "SELECT flightid, status, stairway_id, class_name, submit_time, completed_time"
            " FROM flight WHERE flightid = :f",
            {"f": flight_id},
        )
        return found[0] if found else None

    def steps(self, flight_id: str) -> list[tuple[int, str]]:
        return [
            (int(r["step_index"]), str(r["direction"] or "DO"))
            for r in self.rows(
                "SELECT step_index, direction FROM flightlog WHERE flightid = :f ORDER BY log_time",
                {"f": flight_id},
            )
        ]

    @contextlib.contextmanager
    def row_lock(self, flight_id: str) -> Iterator[tuple[Connection, int]]:
        """Hold ``SELECT … FOR UPDATE`` on the flight's row; yields (connection, backend pid).
        The connection is invalidated afterwards (it is expected to be cut under us)."""
        conn = self.engine.connect()
        try:
            conn.begin()
            pid = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
            conn.execute(
                text("SELECT flightid FROM flight WHERE flightid = :f FOR UPDATE"),
                {"f": flight_id},
            )
            yield conn, pid
        finally:
            with contextlib.suppress(Exception):
                conn.invalidate()
            with contextlib.suppress(Exception):
                conn.close()

    def blocked_by(self, pid: int) -> list[dict[str, Any]]:
        """Backends waiting for a lock ``pid`` holds (the engine's UPDATE of the flight)."""
        return self.rows(
            "SELECT pid, application_name, wait_event_type FROM pg_stat_activity"
            " WHERE :pid = ANY(pg_blocking_pids(pid))",
            {"pid": pid},
        )
