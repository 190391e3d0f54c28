"""Scan stored FlightMaps (inputs and the latest working map) against a type catalog.

The default scope is the flights the engine may still rebuild (non-terminal); `all_flights` scans
every flight's inputs. The read path is psycopg's (`repairtool.stairway.pgread`, no SQLAlchemy):
one statement, streamed from the server in chunks while the server still runs it (each flight's
inputs and, for a non-terminal flight, the working map its reader rebuilds, as arrays on its
row, in flight-id order), each flight decoded as its row arrives. :class:`DecodeStream` yields
the findings one at a time, so a scan of every flight keeps memory flat whatever the size of the
database; :func:`scan` collects them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg

from repairtool.detect import Action, Finding, Kind, decode_proposal
from repairtool.events import Event, Sink, discard, scan_progress
from repairtool.flightmap import Catalog, ReaderVersion
from repairtool.flightmap import Finding as MapFinding
from repairtool.flightmap.decode import map_findings
from repairtool.flightmap.working import Origin, decode_working_map
from repairtool.stairway.pgread import Source, estimate_rows, reading
from repairtool.stairway.version import column_exists, require_stairway, table_exists

loads = orjson.loads  # Postgres writes the JSON; its texts come back as they are stored

NON_TERMINAL = ("RUNNING", "READY", "READY_TO_RESTART", "QUEUED", "WAITING")

#: rows per chunk of the streamed statement (and flights between two progress events)
CHUNK = 1000


@dataclass(frozen=True)
class DecodeScan:
    findings: tuple[Finding, ...]
    flights: int
    values: int
    reader: ReaderVersion


@dataclass(frozen=True)
class _Shape:
    """The columns the working map comes from, which depend on the engine's generation."""

    working_parameters: bool  # flightlog.working_parameters (≤0.0.60 writes the map there)
    log_id: bool  # flightlog.id, which flightworking rows hang off (≥0.0.61)
    flightworking: bool


def _shape(conn: psycopg.Connection[Any]) -> _Shape:
    require_stairway(conn)
    return _Shape(
        working_parameters=column_exists(conn, "flightlog", "working_parameters"),
        log_id=column_exists(conn, "flightlog", "id"),
        flightworking=table_exists(conn, "flightworking"),
    )


def scan_sql(
    shape: _Shape, flight_ids: tuple[str, ...], all_flights: bool, working: bool
) -> tuple[str, dict[str, Any]]:
    """The flights in scope in flight-id order: id, class, status, owner, input keys and values
    (key order), and — for a non-terminal flight with `working` — whether it has logged a step,
    its newest flightlog row's ``working_parameters`` and that row's flightworking keys and
    values (as JSON objects). The inputs come through pk_flightinput (one index probe a flight,
    or one pass merged with flight_pkey when every flight is scanned): a sort-free plan whose
    first rows arrive at once."""
    params: dict[str, Any] = {"nonterminal": list(NON_TERMINAL)}
    if flight_ids:
        where = "WHERE f.flightid = ANY(%(ids)s)"
        params["ids"] = list(flight_ids)
    elif all_flights:
        where = ""
    else:
        where = "WHERE f.status = ANY(%(nonterminal)s)"
    # a map as one JSON object (key order kept; orjson reads it back faster than psycopg
    # builds two arrays)
    inputs = "json_object_agg(key, value ORDER BY key)::text"
    if where:
        # a few flights: each one's inputs through pk_flightinput
        select = [
            "f.flightid, f.class_name, f.status, f.stairway_id,"
            f" (SELECT {inputs} FROM flightinput WHERE flightid = f.flightid)"
        ]
        joins = []
    else:
        # every flight: one pass over pk_flightinput, grouped, merged with flight_pkey's order
        select = ["f.flightid, f.class_name, f.status, f.stairway_id, i.inputs"]
        joins = [
            f"LEFT JOIN (SELECT flightid, {inputs} AS inputs FROM flightinput GROUP BY flightid)"
            " i ON i.flightid = f.flightid"
        ]
    if working:
        parameters = "working_parameters" if shape.working_parameters else "NULL::text"
        log_id = "id" if shape.log_id else "NULL::uuid"
        # the newest row as the engine's resume reads it (ORDER BY log_time DESC: a row
        # without a log time first), only for a flight the engine may rebuild
        joins.append(
            "LEFT JOIN LATERAL (SELECT true AS logged,"
            f" {parameters} AS working_parameters, {log_id} AS log_id"
            " FROM flightlog WHERE flightid = f.flightid AND f.status = ANY(%(nonterminal)s)"
            " ORDER BY log_time DESC LIMIT 1) l ON true"
        )
        select.append("l.logged, l.working_parameters")
        if shape.log_id and shape.flightworking:
            select.append(
                "(SELECT json_object_agg(key, value ORDER BY key)::text FROM flightworking"
                " WHERE flightlog_id = l.log_id)"
            )
        else:
            select.append("NULL::text")
    sql = f"SELECT {', '.join(select)} FROM flight f {' '.join(joins)} {where} ORDER BY f.flightid"
    return sql, params


class DecodeStream:
    """The findings of one scan, yielded as they are found (iterate once).

    ``flights`` and ``values`` count what has been read so far: final once the iteration ends.
    ``on_event`` gets the scan's progress (`scan.start` with the planner's estimate of the
    flights, `scan.progress` every `CHUNK` flights, `scan.done`).
    """

    def __init__(
        self,
        source: Source,
        catalog: Catalog,
        reader: ReaderVersion,
        *,
        flight_ids: tuple[str, ...] = (),
        all_flights: bool = False,
        working: bool = True,
        on_event: Sink = discard,
    ) -> None:
        self.source = source
        self.catalog = catalog
        self.reader = reader
        self.flight_ids = flight_ids
        self.all_flights = all_flights
        self.working = working
        self.on_event = on_event
        self.flights = 0
        self.values = 0

    def __iter__(self) -> Iterator[Finding]:
        catalog, reader, working = self.catalog, self.reader, self.working
        progress = self.on_event is not discard
        with reading(self.source) as conn:
            sql, params = scan_sql(_shape(conn), self.flight_ids, self.all_flights, working)
            total = estimate_rows(conn, sql, params) if progress else None
            if progress:
                self.on_event(
                    Event("scan.start", "scanning flights", {"total": total, "estimated": True})
                )
            cursor = conn.cursor(binary=True)
            for row in cursor.stream(sql, params, size=CHUNK):
                fid, cls, status, owner, stored = row[:5]
                inputs = loads(stored) if stored is not None else {}
                self.flights += 1
                self.values += len(inputs)
                found = map_findings(fid, cls, inputs, catalog, reader)
                origin: Origin | None = None
                if working and row[5]:  # a non-terminal flight that has logged a step
                    rows = loads(row[7]) if row[7] is not None else {}
                    origin, report = decode_working_map(fid, cls, rows, row[6], catalog, reader)
                    self.values += len(report.decoded) + len(report.findings)
                    found += report.findings
                finding = _finding(fid, cls, status, owner, found, origin, reader)
                if finding is not None:
                    yield finding
                if progress and not self.flights % CHUNK:
                    self.on_event(scan_progress(self.flights, total))
            if progress:
                done = self.flights
                self.on_event(Event("scan.done", f"{done} flights", {"done": done}))


def _finding(
    flight_id: str,
    class_name: str,
    status: str,
    owner: str | None,
    found: list[MapFinding],
    origin: Origin | None,
    reader: ReaderVersion,
) -> Finding | None:
    if not found:
        return None
    failures = [f.to_json() for f in found]
    evidence: dict[str, Any] = {"decode_failures": failures}
    if origin is not None:
        evidence["working_map"] = origin
    if status not in NON_TERMINAL:
        action = Action.NONE
        evidence["why"] = f"{status}: the engine will not rebuild it; reported only"
    else:
        decided, evidence["decode"] = decode_proposal(failures, reader, constructor_failed=False)
        action = Action.NONE if decided is None else decided
    return Finding(Kind.UNDECODABLE, flight_id, class_name, status, owner, action, evidence)


def scan(
    source: Source,
    catalog: Catalog,
    reader: ReaderVersion,
    *,
    flight_ids: tuple[str, ...] = (),
    all_flights: bool = False,
    working: bool = True,
    on_event: Sink = discard,
) -> DecodeScan:
    """Decode every input (and, for non-terminal flights, the latest working map); `source`: a
    `ReadDb` or a SQLAlchemy `Engine` (its pool's connections). Collects the findings: a scan
    whose findings may be many is better iterated (:class:`DecodeStream`)."""
    stream = DecodeStream(
        source,
        catalog,
        reader,
        flight_ids=flight_ids,
        all_flights=all_flights,
        working=working,
        on_event=on_event,
    )
    findings = tuple(stream)
    return DecodeScan(findings, stream.flights, stream.values, reader)
