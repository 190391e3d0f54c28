"""Scan stored FlightMaps (inputs and the latest working map) against a type catalog.

The default scope is the flights the engine may still rebuild (non-terminal); `all_flights` scans
every flight's inputs, streaming rows in primary-key order so memory stays flat.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text

from repairtool.detect import Action, Finding, Kind, decode_proposal
from repairtool.flightmap import Catalog, MapReport, ReaderVersion, decode_map
from repairtool.flightmap.working import Origin, decode_working_map
from repairtool.stairway.db import reading
from repairtool.stairway.version import require_stairway, table_exists

NON_TERMINAL = ("RUNNING", "READY", "READY_TO_RESTART", "QUEUED", "WAITING")


@dataclass(frozen=True)
class DecodeScan:
    findings: tuple[Finding, ...]
    flights: int
    values: int
    reader: ReaderVersion


def _flight_rows(conn: Connection, flight_ids: tuple[str, ...], all_flights: bool) -> Any:
    if flight_ids:
        where, params = "WHERE f.flightid = ANY(:ids)", {"ids": list(flight_ids)}
    elif all_flights:
        where, params = "", {}
    else:
        where, params = "WHERE f.status = ANY(:st)", {"st": list(NON_TERMINAL)}
    # LEFT JOIN: a flight without inputs still has a working map to check
    return conn.execution_options(stream_results=True, yield_per=5000).execute(
        text(
            "SELECT f.flightid, f.class_name, f.status, f.stairway_id, i.key, i.value"
            f" FROM flight f LEFT JOIN flightinput i ON i.flightid = f.flightid {where}"
            " ORDER BY f.flightid, i.key"
        ),
        params,
    )


def _grouped(rows: Any) -> Iterator[tuple[Any, dict[str, str]]]:
    current: Any = None
    values: dict[str, str] = {}
    for row in rows:
        if current is not None and row.flightid != current.flightid:
            yield current, values
            values = {}
        current = row
        if row.key is not None:
            values[row.key] = row.value
    if current is not None:
        yield current, values


def _latest_working(
    conn: Connection, flight_id: str, has_flightworking: bool
) -> tuple[str | None, dict[str, str]] | None:
    """The newest flightlog row's ``working_parameters`` and flightworking rows; None when the
    flight has logged no step (its working map is the empty one it started with)."""
    head = conn.execute(
        text("SELECT * FROM flightlog WHERE flightid = :id ORDER BY log_time DESC LIMIT 1"),
        {"id": flight_id},
    ).first()
    if head is None:
        return None
    m = head._mapping
    rows: dict[str, str] = {}
    if has_flightworking and m.get("id") is not None:
        found = conn.execute(
            text("SELECT key, value FROM flightworking WHERE flightlog_id = :l"), {"l": m["id"]}
        )
        rows = {key: value for key, value in found}  # noqa: C416 - rows, not a mapping
    return m.get("working_parameters"), rows


def _finding(
    row: Any, reports: list[MapReport], origin: Origin | None, reader: ReaderVersion
) -> Finding | None:
    failures = [f.to_json() for r in reports for f in r.findings]
    if not failures:
        return None
    evidence: dict[str, Any] = {"decode_failures": failures}
    if origin is not None:
        evidence["working_map"] = origin
    if row.status not in NON_TERMINAL:
        action = Action.NONE
        evidence["why"] = f"{row.status}: the engine will not rebuild it; reported only"
    else:
        decided, evidence["decode"] = decode_proposal(failures, reader, constructor_failed=False)
        action = Action.NONE if decided is None else decided
    return Finding(
        Kind.UNDECODABLE,
        row.flightid,
        row.class_name,
        row.status,
        row.stairway_id,
        action,
        evidence,
    )


def scan(
    engine: Engine,
    catalog: Catalog,
    reader: ReaderVersion,
    *,
    flight_ids: tuple[str, ...] = (),
    all_flights: bool = False,
    working: bool = True,
) -> DecodeScan:
    """Decode every input (and, for non-terminal flights, the latest working map)."""
    findings: list[Finding] = []
    flights = values = 0
    memo: dict[Any, Any] = {}  # verdicts by class, key and text: the same texts recur
    with reading(engine) as conn, reading(engine) as side:
        require_stairway(conn)
        has_flightworking = table_exists(conn, "flightworking")
        for row, inputs in _grouped(_flight_rows(conn, flight_ids, all_flights)):
            flights += 1
            values += len(inputs)
            reports = [
                decode_map(row.flightid, row.class_name, inputs, catalog, reader, "input", memo)
            ]
            origin: Origin | None = None
            if working and row.status in NON_TERMINAL:
                latest = _latest_working(side, row.flightid, has_flightworking)
                if latest is not None:
                    origin, report = decode_working_map(
                        row.flightid, row.class_name, latest[1], latest[0], catalog, reader
                    )
                    values += len(report.decoded) + len(report.findings)
                    reports.append(report)
            finding = _finding(row, reports, origin, reader)
            if finding is not None:
                findings.append(finding)
    return DecodeScan(tuple(findings), flights, values, reader)
