"""Load flights described as data (JSON) into a Stairway database, as the engine would store them.

Used by `repairtool local up --seed 2021`, by the tests (fixtures under `tests/fixtures/`) and by
the benchmark generator. Rows are written for the database's own generation: `flightlog.id` and
`flightworking` from 0.0.50, legacy whole-map JSON in `working_parameters` up to 0.0.60.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text

from repairtool.stairway.db import run_in_transaction
from repairtool.stairway.schema import EngineVersion
from repairtool.stairway.version import detect_generation

LAST_LEGACY_WRITER = EngineVersion(0, 0, 60)

SEED_2021 = "flights-2021.json"


def load_document(name_or_path: str | Path) -> dict[str, Any]:
    path = Path(name_or_path)
    if path.exists():
        return dict(json.loads(path.read_text()))
    return dict(
        json.loads(resources.files("repairtool.data").joinpath(str(name_or_path)).read_text())
    )


def _legacy_map(working: dict[str, str]) -> str:
    """The ≤0.0.60 whole-map JSON of a working map (values re-wrapped as Object-typed)."""
    inner = ",".join(f"{json.dumps(k)}:{v}" for k, v in working.items())
    return f'["java.util.HashMap",{{{inner}}}]'


def load_flights(engine: Engine, doc: dict[str, Any], *, legacy_json: bool | None = None) -> int:
    """Insert the document's instances and flights (skipping ids already present).

    `legacy_json` (default: by generation) also fills `flightlog.working_parameters`.
    Returns the number of flights inserted.
    """

    def body(conn: Connection) -> int:
        gen = detect_generation(conn)
        with_ids = gen.has_flightworking
        # a ≤0.0.60 writer fills the legacy column too (and before 0.0.50 it is NOT NULL)
        legacy = legacy_json if legacy_json is not None else gen.schema.low <= LAST_LEGACY_WRITER
        for inst in doc.get("instances", []):
            conn.execute(
                text(
                    "INSERT INTO stairwayinstance (stairway_name, stairway_id) VALUES (:n, :i)"
                    " ON CONFLICT DO NOTHING"
                ),
                {"n": inst["stairway_name"], "i": inst["stairway_id"]},
            )
        added = 0
        for f in doc.get("flights", []):
            if conn.execute(
                text("SELECT 1 FROM flight WHERE flightid = :id"), {"id": f["flight_id"]}
            ).first():
                continue
            added += 1
            insert_flight(conn, f, with_debug_info=gen.has_debug_info)
            for key, value in f.get("inputs", {}).items():
                conn.execute(
                    text("INSERT INTO flightinput (flightid, key, value) VALUES (:f, :k, :v)"),
                    {"f": f["flight_id"], "k": key, "v": value},
                )
            for entry in f.get("log", []):
                insert_log(conn, f["flight_id"], entry, with_ids=with_ids, legacy=legacy)
        return added

    return run_in_transaction(engine, body, what="seed")


def insert_flight(conn: Connection, f: dict[str, Any], *, with_debug_info: bool = True) -> None:
    cols = "flightid, submit_time, class_name, completed_time, status, serialized_exception,"
    cols += " stairway_id" + (", debug_info" if with_debug_info else "")
    vals = ":id, :submitted, :cls, :completed, :status, :exc, :owner" + (
        ", :debug" if with_debug_info else ""
    )
    conn.execute(
        text(f"INSERT INTO flight ({cols}) VALUES ({vals})"),
        {
            "id": f["flight_id"],
            "submitted": _time(f["submitted"]),
            "cls": f["class_name"],
            "completed": _time(f.get("completed")),
            "status": f["status"],
            "exc": f.get("serialized_exception", ""),
            "owner": f.get("owner"),
            "debug": f.get("debug_info", "{}"),
        },
    )


def insert_log(
    conn: Connection, flight_id: str, entry: dict[str, Any], *, with_ids: bool, legacy: bool
) -> None:
    working: dict[str, str] = entry.get("working", {})
    log_id = str(uuid.uuid4()) if with_ids else None
    cols = "flightid, log_time, working_parameters, step_index, rerun, direction, succeeded,"
    cols += " serialized_exception, status" + (", id" if with_ids else "")
    vals = ":f, :at, :wp, :step, :rerun, :dir, :ok, :exc, 'RUNNING'" + (
        ", :lid" if with_ids else ""
    )
    conn.execute(
        text(f"INSERT INTO flightlog ({cols}) VALUES ({vals})"),
        {
            "f": flight_id,
            "at": _time(entry["at"]),
            "wp": _legacy_map(working) if legacy or not with_ids else None,
            "step": entry["step"],
            "rerun": entry.get("rerun", False),
            "dir": entry.get("direction", "DO"),
            "ok": entry.get("succeeded", True),
            "exc": entry.get("serialized_exception", ""),
            "lid": log_id,
        },
    )
    if with_ids:
        for key, value in working.items():
            conn.execute(
                text("INSERT INTO flightworking (flightlog_id, key, value) VALUES (:l, :k, :v)"),
                {"l": log_id, "k": key, "v": value},
            )


def _time(value: str | None) -> dt.datetime | None:
    """ISO time, or `AGO:<duration>` relative to now (UTC, naive like the engine's columns)."""
    if not value:
        return None
    if value.startswith("AGO:"):
        from repairtool.durations import parse_duration

        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        return now - parse_duration(value[4:])
    return dt.datetime.fromisoformat(value)


def seed_2021(engine: Engine) -> int:
    """The flights and instances the 2021 experiments left behind."""
    return load_flights(engine, load_document(SEED_2021))
