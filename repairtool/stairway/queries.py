"""The read API: flights, one flight in full, registered instances. Every read is read-only.

Selects mirror the engine's Control API (`listFlightsSimple`, `getFlight`, `inputQuery`,
`logQuery`, `listStairways`) with the filters stairctl lacks (class, owner, time window).

Reads run on the psycopg read path (`repairtool.stairway.pgread`): no SQLAlchemy import, so
`repairtool flights …` starts as fast as detection. The public functions take a `Source` — a
`ReadDb` or a SQLAlchemy `Engine` (the library API, the repair path, tests) — and the `…_in`
functions either kind of connection (`repairtool.stairway.sql`: psycopg placeholders).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from repairtool.errors import NotFoundError, UnknownFlight, UsageError
from repairtool.stairway.errors import shown
from repairtool.stairway.model import (
    Direction,
    Flight,
    FlightDetail,
    FlightLogEntry,
    FlightStatus,
    Instance,
)
from repairtool.stairway.pgread import Source, run_read
from repairtool.stairway.probe import READ_COLUMNS, columns, require_columns
from repairtool.stairway.sql import rows
from repairtool.stairway.version import require_stairway

#: the `flight` columns every read selects, in this order
FLIGHT_NAMES = READ_COLUMNS["flight"]
FLIGHT_COLUMNS = ", ".join(FLIGHT_NAMES)


class Order(enum.StrEnum):
    SUBMITTED_DESC = "submitted-desc"  # the engine's paging order
    SUBMITTED_ASC = "submitted-asc"

    @property
    def sql(self) -> str:
        return (
            "submit_time DESC, flightid"
            if self is Order.SUBMITTED_DESC
            else "submit_time, flightid"
        )


#: pass as `owner` to select flights with no owner (stairway_id IS NULL)
UNOWNED = "\x00unowned"
#: pass as `owner` to select flights with any owner (stairctl's `list owned`)
OWNED = "\x00owned"


@dataclass(frozen=True)
class FlightFilter:
    """Which flights to count or list. Empty filter = all flights."""

    statuses: tuple[FlightStatus, ...] = ()
    class_name: str | None = None
    owner: str | None = None  # a stairway_id, UNOWNED or OWNED
    submitted_before: dt.datetime | None = None
    submitted_after: dt.datetime | None = None
    flight_ids: tuple[str, ...] = ()

    def where(self) -> tuple[str, dict[str, Any]]:
        clauses: list[str] = []
        params: dict[str, Any] = {}
        if self.statuses:
            clauses.append("status = ANY(%(statuses)s)")
            params["statuses"] = [s.value for s in self.statuses]
        if self.class_name:
            if "%" in self.class_name or "*" in self.class_name:
                clauses.append("class_name LIKE %(class_name)s")
                params["class_name"] = self.class_name.replace("*", "%")
            else:
                clauses.append("class_name = %(class_name)s")
                params["class_name"] = self.class_name
        if self.owner == UNOWNED:
            clauses.append("stairway_id IS NULL")
        elif self.owner == OWNED:
            clauses.append("stairway_id IS NOT NULL")
        elif self.owner is not None:
            clauses.append("stairway_id = %(owner)s")
            params["owner"] = self.owner
        if self.submitted_before is not None:
            clauses.append("submit_time < %(before)s")
            params["before"] = _naive_utc(self.submitted_before)
        if self.submitted_after is not None:
            clauses.append("submit_time >= %(after)s")
            params["after"] = _naive_utc(self.submitted_after)
        if self.flight_ids:
            clauses.append("flightid = ANY(%(ids)s)")
            params["ids"] = list(self.flight_ids)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _naive_utc(t: dt.datetime) -> dt.datetime:
    """The engine writes `timestamp without time zone` in the session time zone (UTC)."""
    if t.tzinfo is None:
        return t
    return t.astimezone(dt.UTC).replace(tzinfo=None)


def status_of(raw: str | None) -> FlightStatus | str:
    try:
        return FlightStatus(raw) if raw is not None else ""
    except ValueError:
        return raw or ""


def flight_from_row(m: Mapping[str, Any]) -> Flight:
    """A `Flight` from a row as a mapping of column name → value (`FLIGHT_NAMES`, and
    `debug_info` and `version` when selected)."""
    return Flight(
        flight_id=m["flightid"],
        class_name=m["class_name"],
        status=status_of(m["status"]),
        submit_time=m["submit_time"],
        completed_time=m["completed_time"],
        owner=m["stairway_id"],
        serialized_exception=m["serialized_exception"],
        debug_info=m.get("debug_info"),
        version=m.get("version"),
    )


def _columns(conn: Any, tables: Sequence[str]) -> dict[str, set[str]]:
    """The columns of the given tables in the current schema (one catalog query)."""
    return columns(conn, tables)


def count_flights_in(conn: Any, flt: FlightFilter = FlightFilter()) -> int:
    where, params = flt.where()
    return int(rows(conn, f"SELECT COUNT(*) FROM flight{where}", params)[0][0])


def list_flights_in(
    conn: Any,
    flt: FlightFilter = FlightFilter(),
    *,
    limit: int | None = 20,
    offset: int = 0,
    order: Order = Order.SUBMITTED_DESC,
) -> list[Flight]:
    if offset < 0 or (limit is not None and limit < 0):
        raise UsageError("--offset and --limit must not be negative")
    where, params = flt.where()
    sql = f"SELECT {FLIGHT_COLUMNS} FROM flight{where} ORDER BY {order.sql} OFFSET %(offset)s"
    params["offset"] = offset
    if limit is not None:
        sql += " LIMIT %(limit)s"
        params["limit"] = limit
    return [
        flight_from_row(dict(zip(FLIGHT_NAMES, r, strict=True))) for r in rows(conn, sql, params)
    ]


def get_flight_in(conn: Any, flight_id: str) -> FlightDetail:
    columns = _columns(conn, ("flight", "flightlog", "flightworking", "flightpersisted"))
    has_debug = "debug_info" in columns.get("flight", set())
    has_output = "output_parameters" in columns.get("flight", set())
    cols = (
        FLIGHT_COLUMNS
        + (", output_parameters" if has_output else ", NULL AS output_parameters")
        + (", debug_info" if has_debug else "")
        + ", xmin::text AS version"
    )
    names = (*FLIGHT_NAMES, "output_parameters", *(("debug_info",) if has_debug else ()), "version")
    by_id = {"id": flight_id}
    found = rows(conn, f"SELECT {cols} FROM flight WHERE flightid = %(id)s", by_id)
    if not found:
        raise UnknownFlight(f"Unknown flight id {shown(flight_id)}")
    row = dict(zip(names, found[0], strict=True))
    flight = flight_from_row(row)
    inputs: dict[str, str] = dict(
        rows(conn, "SELECT key, value FROM flightinput WHERE flightid = %(id)s ORDER BY key", by_id)
    )
    log_columns = columns.get("flightlog", set())
    has_log_id = "id" in log_columns
    log_cols = ", ".join(
        c if c in log_columns else f"NULL AS {c}"
        for c in (
            "direction",
            "succeeded",
            "rerun",
            "status",
            "serialized_exception",
            "working_parameters",
        )
    )
    log_rows = rows(
        conn,
        f"SELECT log_time, step_index, {log_cols}"
        + (", id" if has_log_id else ", NULL::uuid AS id")
        + " FROM flightlog WHERE flightid = %(id)s ORDER BY log_time",
        by_id,
    )
    working: dict[str, dict[str, str]] = {}
    if has_log_id and "flightworking" in columns:
        for log_id, key, value in rows(
            conn,
            "SELECT w.flightlog_id, w.key, w.value FROM flightworking w"
            " JOIN flightlog l ON l.id = w.flightlog_id WHERE l.flightid = %(id)s"
            " ORDER BY w.key",
            by_id,
        ):
            working.setdefault(str(log_id), {})[key] = value
    log = tuple(
        FlightLogEntry(
            log_time=log_time,
            step_index=step_index,
            direction=_direction(direction),
            succeeded=succeeded,
            rerun=rerun,
            status=status,
            serialized_exception=serialized_exception,
            log_id=str(log_id) if log_id is not None else None,
            working_parameters=working_parameters,
            working=working.get(str(log_id), {}) if log_id is not None else {},
        )
        for (
            log_time,
            step_index,
            direction,
            succeeded,
            rerun,
            status,
            serialized_exception,
            working_parameters,
            log_id,
        ) in log_rows
    )
    persisted: dict[str, str] | None = None
    if "flightpersisted" in columns:
        persisted = dict(
            rows(
                conn,
                "SELECT key, value FROM flightpersisted WHERE flightid = %(id)s ORDER BY key",
                by_id,
            )
        )
    return FlightDetail(
        flight=flight,
        inputs=inputs,
        log=log,
        persisted=persisted,
        output_parameters=row["output_parameters"],
    )


def _direction(raw: str | None) -> Direction | str | None:
    if raw is None:
        return None
    try:
        return Direction(raw)
    except ValueError:
        return raw


def list_instances_in(conn: Any) -> list[Instance]:
    return [
        Instance(stairway_name=n, stairway_id=i)
        for n, i in rows(
            conn, "SELECT stairway_name, stairway_id FROM stairwayinstance ORDER BY stairway_name"
        )
    ]


# -- source-level conveniences: one read-only transaction each, retried like DbRetry ---------


def count_flights(source: Source, flt: FlightFilter = FlightFilter()) -> int:
    def body(conn: Any) -> int:
        require_stairway(conn)
        require_columns(conn, ("flight",))
        return count_flights_in(conn, flt)

    return run_read(source, body, what="flight.count")


def list_flights(
    source: Source,
    flt: FlightFilter = FlightFilter(),
    *,
    limit: int | None = 20,
    offset: int = 0,
    order: Order = Order.SUBMITTED_DESC,
) -> list[Flight]:
    if offset < 0 or (limit is not None and limit < 0):
        raise UsageError("--offset and --limit must not be negative")

    def body(conn: Any) -> list[Flight]:
        require_stairway(conn)
        require_columns(conn, ("flight",))
        return list_flights_in(conn, flt, limit=limit, offset=offset, order=order)

    return run_read(source, body, what="flight.list")


def get_flight(source: Source, flight_id: str) -> FlightDetail:
    def body(conn: Any) -> FlightDetail:
        require_stairway(conn)
        require_columns(conn, ("flight", "flightlog", "flightinput"))
        return get_flight_in(conn, flight_id)

    return run_read(source, body, what="flight.get")


def get_instance(source: Source, stairway_name: str) -> tuple[Instance, str]:
    """One `stairwayinstance` row and its row version (`xmin`: a pod that registers again under
    the name makes a new one). Raises `NotFoundError` (one line) when there is none."""

    def body(conn: Any) -> tuple[Instance, str] | None:
        require_stairway(conn)
        require_columns(conn, ("stairwayinstance",))
        found = rows(
            conn,
            "SELECT stairway_name, stairway_id, xmin::text AS version FROM stairwayinstance"
            " WHERE stairway_name = %(n)s",
            {"n": stairway_name},
        )
        return None if not found else (Instance(found[0][0], found[0][1]), str(found[0][2]))

    found = run_read(source, body, what="stairwayinstance.get")
    if found is None:
        raise NotFoundError(f"no stairwayinstance row named {shown(stairway_name)}")
    return found


def require_flights(source: Source, flight_ids: Sequence[str]) -> None:
    """Raise `UnknownFlight` (one line, exit NOT_FOUND) naming the first of `flight_ids` that is
    not in the `flight` table — so a typo in `--flight` is not mistaken for "nothing to do"."""
    if not flight_ids:
        return

    def body(conn: Any) -> list[str]:
        require_stairway(conn)
        found = {
            fid
            for (fid,) in rows(
                conn,
                "SELECT flightid FROM flight WHERE flightid = ANY(CAST(%(ids)s AS text[]))",
                {"ids": list(flight_ids)},
            )
        }
        return [f for f in flight_ids if f not in found]

    missing = run_read(source, body, what="flight.get")
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise UnknownFlight(f"Unknown flight id {shown(missing[0])}{more}")


def list_instances(source: Source) -> list[Instance]:
    def body(conn: Any) -> list[Instance]:
        require_stairway(conn)
        require_columns(conn, ("stairwayinstance",))
        return list_instances_in(conn)

    return run_read(source, body, what="stairwayinstance.list")


def statuses_from(names: Sequence[str]) -> tuple[FlightStatus, ...]:
    out: list[FlightStatus] = []
    for n in names:
        try:
            out.append(FlightStatus(n.strip().upper()))
        except ValueError:
            allowed = ", ".join(s.value for s in FlightStatus)
            raise UsageError(f"unknown flight status {n!r}; one of {allowed}") from None
    return tuple(out)
