"""The engine's DAOs: the exact SQL of `FlightDao` / `StairwayInstanceDao` (stairway-engine.md
§1.4, §3.3, §3.5), each call one transaction (SERIALIZABLE for writes, READ COMMITTED read-only
for reads) wrapped in `DbRetry` (20 tries, 250–1000 ms random sleep; SQLSTATE 40001, 40P01, 08*,
53* — the rule is `repairtool.stairway.db.is_retryable`)."""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, exc, text

from repairtool.stairway.db import is_retryable, sqlstate_of
from sandbox.engine.exceptions import (
    DatabaseOperationException,
    DuplicateFlightIdException,
    FlightNotFoundException,
    serialize_exception,
)
from sandbox.engine.flight import FlightContext, FlightStatus
from sandbox.engine.versions import EngineFeatures

T = TypeVar("T")


class DbRetry:
    """`DbRetry.retry(name, fn)`: re-run `fn` on retryable SQL errors, else fail with
    `DatabaseOperationException("Database operation failed: <name>")`."""

    def __init__(
        self,
        logger: logging.Logger,
        attempts: int = 20,
        min_sleep: float = 0.25,
        max_sleep: float = 1.0,
    ) -> None:
        self.log = logger
        self.attempts = attempts
        self.min_sleep = min_sleep
        self.max_sleep = max_sleep

    def run(self, name: str, fn: Callable[[], T]) -> T:
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except exc.DBAPIError as error:
                retry, state = is_retryable(error)
                if not retry:
                    raise DatabaseOperationException(
                        f"Database operation failed: {name}", cause=_sql_cause(error)
                    ) from error
                if state in ("40001", "40P01"):
                    self.log.info("Caught SQL serialization error (%s) - retrying", state)
                else:
                    self.log.info("Caught SQL connection or resource error (%s) - retrying", state)
                if attempt == self.attempts:
                    raise DatabaseOperationException(
                        f"Retries exhausted. Request failed:{name}", cause=_sql_cause(error)
                    ) from error
                time.sleep(random.uniform(self.min_sleep, self.max_sleep))
        raise AssertionError("unreachable")


def _sql_cause(error: exc.DBAPIError) -> BaseException:
    from sandbox.engine.exceptions import JavaException

    orig = getattr(error, "orig", None) or error
    first = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return JavaException("org.postgresql.util.PSQLException", first)


@dataclass(frozen=True)
class LogRow:
    """The latest `flightlog` row of a flight, with its working-map rows."""

    id: str | None
    working_parameters: str | None
    step_index: int
    rerun: bool
    direction: str
    succeeded: bool | None
    serialized_exception: str | None
    status: str | None
    working_rows: dict[str, str]


@dataclass(frozen=True)
class ResumeRows:
    class_name: str
    debug_info: str | None
    status: str
    input_rows: dict[str, str]
    latest: LogRow | None


@dataclass(frozen=True)
class FlightStateRow:
    flight_id: str
    stairway_id: str | None
    submit_time: Any
    completed_time: Any
    output_parameters: str | None
    status: FlightStatus
    serialized_exception: str | None
    class_name: str
    input_rows: dict[str, str]
    latest: LogRow | None


class FlightDao:
    """`FlightDao` + `StairwayInstanceDao` for one engine generation."""

    def __init__(self, engine: Engine, features: EngineFeatures) -> None:
        self.engine = engine
        self.f = features
        self.log = logging.getLogger(features.logger_name("FlightDao"))
        self.retry = DbRetry(logging.getLogger(features.logger_name("DbRetry")))

    # -- transactions ------------------------------------------------------------------------
    def _write(self, name: str, body: Callable[[Connection], T]) -> T:
        def once() -> T:
            with self.engine.connect() as raw:
                conn = raw.execution_options(isolation_level="SERIALIZABLE")
                with conn.begin():
                    return body(conn)

        return self.retry.run(name, once)

    def _read(self, name: str, body: Callable[[Connection], T]) -> T:
        def once() -> T:
            with self.engine.connect() as raw:
                conn = raw.execution_options(
                    isolation_level="READ COMMITTED", postgresql_readonly=True
                )
                with conn.begin():
                    return body(conn)

        return self.retry.run(name, once)

    # -- stairwayinstance --------------------------------------------------------------------
    def instance_find_or_create(self, name: str) -> str:
        def body(conn: Connection) -> str:
            found = conn.execute(
                text(
                    "SELECT stairway_id FROM stairwayinstance WHERE stairway_name = :stairwayName"
                ),
                {"stairwayName": name},
            ).scalar()
            if found is not None:
                return str(found)
            conn.execute(
                text(
                    "INSERT INTO stairwayinstance (stairway_name, stairway_id)"
                    " VALUES (:stairwayName, :stairwayId)"
                ),
                {"stairwayName": name, "stairwayId": name},
            )
            return name

        return self._write("stairwayInstance.findOrCreate", body)

    def instance_lookup_id(self, name: str) -> str | None:
        def body(conn: Connection) -> str | None:
            found = conn.execute(
                text(
                    "SELECT stairway_id FROM stairwayinstance WHERE stairway_name = :stairwayName"
                ),
                {"stairwayName": name},
            ).scalar()
            return None if found is None else str(found)

        return self._read("stairwayInstance.lookupId", body)

    def instance_list(self) -> list[str]:
        def body(conn: Connection) -> list[str]:
            return [
                str(r[0]) for r in conn.execute(text("SELECT stairway_name FROM stairwayinstance"))
            ]

        return self._read("stairwayInstance.getList", body)

    # -- flights -----------------------------------------------------------------------------
    def submit(
        self,
        flight_id: str,
        class_name: str,
        status: FlightStatus,
        stairway_id: str | None,
        input_rows: dict[str, str],
        debug_info: str,
    ) -> None:
        def body(conn: Connection) -> None:
            conn.execute(
                text(
                    "INSERT INTO flight (flightId, submit_time, class_name, status, stairway_id,"
                    " debug_info) VALUES (:flightId, CURRENT_TIMESTAMP, :className, :status,"
                    " :stairwayId, :debugInfo)"
                ),
                {
                    "flightId": flight_id,
                    "className": class_name,
                    "status": status.value,
                    "stairwayId": stairway_id,
                    "debugInfo": debug_info,
                },
            )
            for key, value in input_rows.items():
                conn.execute(
                    text(
                        "INSERT INTO flightinput (flightId, key, value)"
                        " VALUES (:flightId, :key, :value)"
                    ),
                    {"flightId": flight_id, "key": key, "value": value},
                )

        try:
            self._write("flight.submit", body)
        except DatabaseOperationException as error:
            cause = error.__cause__
            if isinstance(cause, exc.DBAPIError) and sqlstate_of(cause) == "23505":
                raise DuplicateFlightIdException(f"Duplicate flightID {flight_id}") from None
            raise

    def step(self, ctx: FlightContext) -> None:
        """Log the step just finished: one flightlog row (+ its flightworking snapshot)."""
        f = self.f
        log_id = str(uuid.uuid4()) if f.has_flightlog_id else None
        params: dict[str, Any] = {
            "id": log_id,
            "flightId": ctx.flight_id,
            "workingMap": ctx.working_map.legacy_json() if f.writes_legacy_json else None,
            "stepIndex": ctx.step_index,
            "rerun": ctx.rerun,
            "direction": ctx.direction.value,
            "succeeded": ctx.result.success,
            "serializedException": serialize_exception(ctx.result.exception),
            "status": FlightStatus.RUNNING.value,
        }
        if not f.has_flightlog_id:
            sql = (
                "INSERT INTO flightlog (flightid, log_time, working_parameters, step_index,"
                " rerun, direction, succeeded, serialized_exception, status) VALUES"
                " (:flightId, CURRENT_TIMESTAMP, :workingMap, :stepIndex, :rerun, :direction,"
                " :succeeded, :serializedException, :status)"
            )
        elif f.writes_legacy_json:
            sql = (
                "INSERT INTO flightlog (id, flightid, log_time, working_parameters, step_index,"
                " rerun, direction, succeeded, serialized_exception, status) VALUES"
                " (:id, :flightId, CURRENT_TIMESTAMP, :workingMap, :stepIndex, :rerun,"
                " :direction, :succeeded, :serializedException, :status)"
            )
        else:
            sql = (
                "INSERT INTO flightlog (id, flightid, log_time, step_index, rerun, direction,"
                " succeeded, serialized_exception, status) VALUES (:id, :flightId,"
                " CURRENT_TIMESTAMP, :stepIndex, :rerun, :direction, :succeeded,"
                " :serializedException, :status)"
            )
        rows = ctx.working_map.row_json() if f.has_flightlog_id else {}

        def body(conn: Connection) -> None:
            conn.execute(text(sql), params)
            for key, value in rows.items():
                conn.execute(
                    text(
                        "INSERT INTO flightworking (flightlog_id, key, value)"
                        " VALUES (:flightLogId, :key, :value)"
                    ),
                    {"flightLogId": log_id, "key": key, "value": value},
                )

        self._write("flight.step", body)

    def persisted_put(self, flight_id: str, key: str, value: str) -> None:
        """≥0.0.70 `flightpersisted` upsert (progress meters are flushed before each step)."""

        def body(conn: Connection) -> None:
            conn.execute(
                text(
                    "INSERT INTO flightpersisted(flightId, key, value) VALUES (:flightId, :key,"
                    " :value) ON CONFLICT ON CONSTRAINT pk_flightpersisted DO UPDATE SET"
                    " value = :value"
                ),
                {"flightId": flight_id, "key": key, "value": value},
            )

        self._write("flight.persistedState", body)

    def complete(
        self, ctx: FlightContext, status: FlightStatus, exception: BaseException | None
    ) -> bool:
        params: dict[str, Any] = {
            "flightId": ctx.flight_id,
            "status": status.value,
            "serializedException": serialize_exception(exception),
        }
        if self.f.writes_legacy_json:
            params["outputParameters"] = ctx.working_map.legacy_json()
            sql = (
                "UPDATE flight SET completed_time = CURRENT_TIMESTAMP, output_parameters ="
                " :outputParameters, status = :status, serialized_exception ="
                " :serializedException, stairway_id = NULL WHERE flightid = :flightId AND"
                " status = 'RUNNING'"
            )
        else:
            sql = (
                "UPDATE flight SET completed_time = CURRENT_TIMESTAMP, status = :status,"
                " serialized_exception = :serializedException, stairway_id = NULL WHERE"
                " flightid = :flightId AND status = 'RUNNING'"
            )

        def body(conn: Connection) -> bool:
            return bool(conn.execute(text(sql), params).rowcount)

        return self._write("flight.complete", body)

    def disown(self, flight_id: str, status: FlightStatus) -> bool:
        def body(conn: Connection) -> bool:
            return bool(
                conn.execute(
                    text(
                        "UPDATE flight SET status = :status, stairway_id = NULL WHERE flightid ="
                        " :flightId AND status = 'RUNNING'"
                    ),
                    {"status": status.value, "flightId": flight_id},
                ).rowcount
            )

        return self._write("flight.disown", body)

    def queued(self, flight_id: str) -> bool:
        def body(conn: Connection) -> bool:
            return bool(
                conn.execute(
                    text(
                        "UPDATE flight SET status = :status WHERE stairway_id IS NULL"
                        " AND flightid = :flightId AND status = 'READY'"
                    ),
                    {"status": FlightStatus.QUEUED.value, "flightId": flight_id},
                ).rowcount
            )

        return self._write("flight.queued", body)

    def disown_recovery(self, stairway_id: str) -> list[str]:
        """RUNNING flights of a dead instance → READY, unowned; its stairwayinstance row goes."""

        def body(conn: Connection) -> list[str]:
            rows = conn.execute(
                text(
                    "SELECT flightid, class_name, debug_info, status FROM flight WHERE"
                    " stairway_id = :stairwayId AND status = 'RUNNING'"
                ),
                {"stairwayId": stairway_id},
            ).all()
            if rows:
                conn.execute(
                    text(
                        "UPDATE flight SET status = 'READY', stairway_id = NULL WHERE"
                        " stairway_id = :stairwayId AND status = 'RUNNING'"
                    ),
                    {"stairwayId": stairway_id},
                )
            conn.execute(
                text("DELETE FROM stairwayinstance WHERE stairway_id = :stairwayId"),
                {"stairwayId": stairway_id},
            )
            return [str(r[0]) for r in rows]

        flights = self._write("flight.disownRecovery", body)
        if flights:
            self.log.info("Disowned %s flights for stairway: %s", len(flights), stairway_id)
        return flights

    def ready_flights(self) -> list[str]:
        def body(conn: Connection) -> list[str]:
            return [
                str(r[0])
                for r in conn.execute(
                    text(
                        "SELECT flightid FROM flight WHERE stairway_id IS NULL"
                        " AND (status = 'READY' OR status = 'READY_TO_RESTART')"
                    )
                )
            ]

        return self._read("flight.recoverReady", body)

    def _latest_log(self, conn: Connection, flight_id: str) -> LogRow | None:
        cols = (
            "working_parameters, step_index, rerun, direction, succeeded, serialized_exception,"
            " status"
        )
        if self.f.has_flightlog_id:
            cols = "id, " + cols
        row = (
            conn.execute(
                text(
                    f"SELECT {cols} FROM flightlog WHERE flightid = :flightId AND log_time ="
                    " (SELECT MAX(log_time) FROM flightlog WHERE flightid = :flightId2)"
                ),
                {"flightId": flight_id, "flightId2": flight_id},
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        log_id = str(row["id"]) if self.f.has_flightlog_id and row["id"] is not None else None
        working: dict[str, str] = {}
        if log_id is not None:
            working = {
                str(k): str(v)
                for k, v in conn.execute(
                    text("SELECT key, value FROM flightworking WHERE flightlog_id = :flightLogId"),
                    {"flightLogId": log_id},
                )
            }
        return LogRow(
            log_id,
            row["working_parameters"],
            int(row["step_index"]),
            bool(row["rerun"]),
            str(row["direction"]),
            row["succeeded"],
            row["serialized_exception"],
            row["status"],
            working,
        )

    def _inputs(self, conn: Connection, flight_id: str) -> dict[str, str]:
        return {
            str(k): str(v)
            for k, v in conn.execute(
                text("SELECT key, value FROM flightinput WHERE flightid = :flightId"),
                {"flightId": flight_id},
            )
        }

    def resume(
        self, stairway_id: str, flight_id: str, on_claim: Callable[[ResumeRows], Any]
    ) -> tuple[ResumeRows, Any] | None:
        """Take ownership of a WAITING/READY/QUEUED/READY_TO_RESTART unowned flight. `on_claim`
        rebuilds the context from the rows inside the transaction (the engine does the same);
        the ownership is committed before the caller constructs the flight object."""

        def body(conn: Connection) -> tuple[ResumeRows, Any] | None:
            row = conn.execute(
                text(
                    "SELECT class_name, debug_info, status FROM flight WHERE (status = 'WAITING'"
                    " OR status = 'READY' OR status = 'QUEUED' OR status = 'READY_TO_RESTART')"
                    " AND stairway_id IS NULL AND flightid = :flightId"
                ),
                {"flightId": flight_id},
            ).first()
            if row is None:
                return None
            rows = ResumeRows(
                str(row[0]),
                row[1],
                str(row[2]),
                self._inputs(conn, flight_id),
                self._latest_log(conn, flight_id),
            )
            built = on_claim(rows)
            self.log.info("Stairway %s taking ownership of flight %s", stairway_id, flight_id)
            conn.execute(
                text(
                    "UPDATE flight SET status = :status, stairway_id = :stairwayId WHERE"
                    " flightid = :flightId"
                ),
                {
                    "status": FlightStatus.RUNNING.value,
                    "stairwayId": stairway_id,
                    "flightId": flight_id,
                },
            )
            return rows, built

        return self._write("flight.resume", body)

    def flight_state(self, flight_id: str) -> FlightStateRow:
        def body(conn: Connection) -> FlightStateRow:
            row = (
                conn.execute(
                    text(
                        "SELECT flightid, stairway_id, submit_time, completed_time,"
                        " output_parameters, status, serialized_exception, class_name FROM flight"
                        " WHERE flightid = :flightId"
                    ),
                    {"flightId": flight_id},
                )
                .mappings()
                .first()
            )
            if row is None:
                raise FlightNotFoundException(f"Flight not found: {flight_id}")
            return FlightStateRow(
                str(row["flightid"]),
                row["stairway_id"],
                row["submit_time"],
                row["completed_time"],
                row["output_parameters"],
                FlightStatus(row["status"]),
                row["serialized_exception"],
                str(row["class_name"]),
                self._inputs(conn, flight_id),
                self._latest_log(conn, flight_id),
            )

        return self._read("flight.getFlightState", body)
