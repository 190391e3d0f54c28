"""The read API: flights, one flight in full, registered instances. Every read is read-only.

Selects mirror the engine's Control API (`listFlightsSimple`, `getFlight`, `inputQuery`,
`logQuery`, `listStairways`) with the filters stairctl lacks (class, owner, time window).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Row, text

from repairtool.errors import NotFoundError, UnknownFlight, UsageError
from repairtool.stairway.db import run_read
from repairtool.stairway.errors import shown
from repairtool.stairway.model import (
    Direction,
    Flight,
    FlightDetail,
    FlightLogEntry,
    FlightStatus,
    Instance,
)
from repairtool.stairway.probe import columns, require_columns
from repairtool.stairway.version import require_stairway

FLIGHT_COLUMNS = (
    "flightid, submit_time, class_name, completed_time, status, serialized_exception, stairway_id"
)


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
            clauses.append("status = ANY(:statuses)")
            params["statuses"] = [s.value for s in self.statuses]
        if self.class_name:
            if "%" in self.class_name or "*" in self.class_name:
                clauses.append("class_name LIKE :class_name")
                params["class_name"] = self.class_name.replace("*", "%")
            else:
                clauses.append("class_name = :class_name")
                params["class_name"] = self.class_name
        if self.owner == UNOWNED:
            clauses.append("stairway_id IS NULL")
        elif self.owner == OWNED:
            clauses.append("stairway_id IS NOT NULL")
        elif self.owner is not None:
            clauses.append("stairway_id = :owner")
            params["owner"] = self.owner
        if self.submitted_before is not None:
            clauses.append("submit_time < :before")
            params["before"] = _naive_utc(self.submitted_before)
        if self.submitted_after is not None:
            clauses.append("submit_time >= :after")
            params["after"] = _naive_utc(self.submitted_after)
        if self.flight_ids:
            clauses.append("flightid = ANY(:ids)")
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


def flight_from_row(row: Row[Any]) -> Flight:
    m = row._mapping
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


def _columns(conn: Connection, tables: Sequence[str]) -> dict[str, set[str]]:
    """The columns of the given tables in the current schema (one catalog query)."""
    return columns(conn, tables)


def count_flights_in(conn: Connection, flt: FlightFilter = FlightFilter()) -> int:
    where, params = flt.where()
    return int(conn.execute(text(f"SELECT COUNT(*) FROM flight{where}"), params).scalar_one())


def list_flights_in(
    conn: Connection,
    flt: FlightFilter = FlightFilter(),
    *,
    limit: int | None = 20,
    offset: int = 0,
    order: Order = Order.SUBMITTED_DESC,
) -> list[Flight]:
    if offset < 0 or (limit is not None and limit < 0):
        raise UsageError("--offset and --limit must not be negative")
    where, params = flt.where()
    sql = f"SELECT {FLIGHT_COLUMNS} FROM flight{where} ORDER BY {order.sql} OFFSET :offset"
    params["offset"] = offset
    if limit is not None:
        sql += " LIMIT :limit"
        params["limit"] = limit
    return [flight_from_row(r) for r in conn.execute(text(sql), params)]


def get_flight_in(conn: Connection, flight_id: str) -> FlightDetail:
    columns = _columns(conn, ("flight", "flightlog", "flightworking", "flightpersisted"))
    has_debug = "debug_info" in columns.get("flight", set())
    has_output = "output_parameters" in columns.get("flight", set())
    cols = (
        FLIGHT_COLUMNS
        + (", output_parameters" if has_output else ", NULL AS output_parameters")
        + (", debug_info" if has_debug else "")
        + ", xmin::text AS version"
    )
    row = conn.execute(
        text(f"SELECT {cols} FROM flight WHERE flightid = :id"), {"id": flight_id}
    ).first()
    if row is None:
        raise UnknownFlight(f"Unknown flight id {shown(flight_id)}")
    flight = flight_from_row(row)
    # a comprehension, not dict(): dict() would take the Result's keys() for a mapping's
    inputs: dict[str, str] = {  # noqa: C416
        k: v
        for k, v in conn.execute(
            text("SELECT key, value FROM flightinput WHERE flightid = :id ORDER BY key"),
            {"id": flight_id},
        ).all()
    }
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
    log_rows = conn.execute(
        text(
            f"SELECT log_time, step_index, {log_cols}"
            + (", id" if has_log_id else ", NULL::uuid AS id")
            + " FROM flightlog WHERE flightid = :id ORDER BY log_time"
        ),
        {"id": flight_id},
    ).all()
    working: dict[str, dict[str, str]] = {}
    if has_log_id and "flightworking" in columns:
        for log_id, key, value in conn.execute(
            text(
                "SELECT w.flightlog_id, w.key, w.value FROM flightworking w"
                " JOIN flightlog l ON l.id = w.flightlog_id WHERE l.flightid = :id"
                " ORDER BY w.key"
            ),
            {"id": flight_id},
        ).all():
            working.setdefault(str(log_id), {})[key] = value
    log = tuple(
        FlightLogEntry(
            log_time=r.log_time,
            step_index=r.step_index,
            direction=_direction(r.direction),
            succeeded=r.succeeded,
            rerun=r.rerun,
            status=r.status,
            serialized_exception=r.serialized_exception,
            log_id=str(r.id) if r.id is not None else None,
            working_parameters=r.working_parameters,
            working=working.get(str(r.id), {}) if r.id is not None else {},
        )
        for r in log_rows
    )
    persisted: dict[str, str] | None = None
    if "flightpersisted" in columns:
        persisted = {  # noqa: C416
            k: v
            for k, v in conn.execute(
                text("SELECT key, value FROM flightpersisted WHERE flightid = :id ORDER BY key"),
                {"id": flight_id},
            ).all()
        }
    return FlightDetail(
        flight=flight,
        inputs=inputs,
        log=log,
        persisted=persisted,
        output_parameters=row._mapping["output_parameters"],
    )


def _direction(raw: str | None) -> Direction | str | None:
    if raw is None:
        return None
    try:
        return Direction(raw)
    except ValueError:
        return raw


def list_instances_in(conn: Connection) -> list[Instance]:
    return [
        Instance(stairway_name=n, stairway_id=i)
        for n, i in conn.execute(
            text("SELECT stairway_name, stairway_id FROM stairwayinstance ORDER BY stairway_name")
        ).all()
    ]


# -- engine-level conveniences: one read-only transaction each, retried like DbRetry ---------


def count_flights(engine: Engine, flt: FlightFilter = FlightFilter()) -> int:
    def body(conn: Connection) -> int:
        require_stairway(conn)
        require_columns(conn, ("flight",))
        return count_flights_in(conn, flt)

    return run_read(engine, body, what="flight.count")


def list_flights(
    engine: Engine,
    flt: FlightFilter = FlightFilter(),
    *,
    limit: int | None = 20,
    offset: int = 0,
    order: Order = Order.SUBMITTED_DESC,
) -> list[Flight]:
    if offset < 0 or (limit is not None and limit < 0):
        raise UsageError("--offset and --limit must not be negative")

    def body(conn: Connection) -> list[Flight]:
        require_stairway(conn)
        require_columns(conn, ("flight",))
        return list_flights_in(conn, flt, limit=limit, offset=offset, order=order)

    return run_read(engine, body, what="flight.list")


def get_flight(engine: Engine, flight_id: str) -> FlightDetail:
    def body(conn: Connection) -> FlightDetail:
        require_stairway(conn)
        require_columns(conn, ("flight", "flightlog", "flightinput"))
        return get_flight_in(conn, flight_id)

    return run_read(engine, body, what="flight.get")


def get_instance(engine: Engine, stairway_name: str) -> tuple[Instance, str]:
    """One `stairwayinstance` row and its row version (`xmin`: a pod that registers again under
    the name makes a new one). Raises `NotFoundError` (one line) when there is none."""

    def body(conn: Connection) -> tuple[Instance, str] | None:
        require_stairway(conn)
        require_columns(conn, ("stairwayinstance",))
        row = conn.execute(
            text(
                "SELECT stairway_name, stairway_id, xmin::text AS version FROM stairwayinstance"
                " WHERE stairway_name = :n"
            ),
            {"n": stairway_name},
        ).first()
        return None if row is None else (Instance(row[0], row[1]), str(row[2]))

    found = run_read(engine, body, what="stairwayinstance.get")
    if found is None:
        raise NotFoundError(f"no stairwayinstance row named {shown(stairway_name)}")
    return found


def require_flights(engine: Engine, flight_ids: Sequence[str]) -> None:
    """Raise `UnknownFlight` (one line, exit NOT_FOUND) naming the first of `flight_ids` that is
    not in the `flight` table — so a typo in `--flight` is not mistaken for "nothing to do"."""
    if not flight_ids:
        return

    def body(conn: Connection) -> list[str]:
        require_stairway(conn)
        found = set(
            conn.execute(
                text("SELECT flightid FROM flight WHERE flightid = ANY(CAST(:ids AS text[]))"),
                {"ids": list(flight_ids)},
            ).scalars()
        )
        return [f for f in flight_ids if f not in found]

    missing = run_read(engine, body, what="flight.get")
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise UnknownFlight(f"Unknown flight id {shown(missing[0])}{more}")


def list_instances(engine: Engine) -> list[Instance]:
    def body(conn: Connection) -> list[Instance]:
        require_stairway(conn)
        require_columns(conn, ("stairwayinstance",))
        return list_instances_in(conn)

    return run_read(engine, body, what="stairwayinstance.list")


def statuses_from(names: Sequence[str]) -> tuple[FlightStatus, ...]:
    out: list[FlightStatus] = []
    for n in names:
        try:
            out.append(FlightStatus(n.strip().upper()))
        except ValueError:
            allowed = ", ".join(s.value for s in FlightStatus)
            raise UsageError(f"unknown flight status {n!r}; one of {allowed}") from None
    return tuple(out)
