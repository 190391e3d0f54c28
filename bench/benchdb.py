"""The benchmark databases: generated in Postgres itself (`generate_series`), kept for re-runs.

One generator for every size: N flights written as the 1.1.14 engine lays them out, of which
`running` are RUNNING (every other one owned by a dead pod, the rest by a live pod whose log rows
are hours old) and `waiting` more are non-terminal and unowned (READY, every tenth QUEUED: a
queue outage); each flight has `logs` flightlog rows and `inputs` flightinput rows
(WorkspaceCreateFlight's `workspaceId`, `workspaceStage`, `auth_user_info`, then `description`,
…). Which flight is what is a fixed permutation of the flight number, so a database is the same
whenever it is generated; times are relative to the moment of generation (`anchor`):

* a flight's submit time is 2–720 hours and 30 minutes before the anchor (a QUEUED one 80–720
  hours: older than the work queue's retention), its log rows follow one second apart, so every
  age detection reports ("5h", "12d") stays the same for half an hour after generation;
* the flight row and its inputs are written in one transaction, as the engine's submit does.

Used by `bench/bench_orphans.py`, `bench/bench_scale.py` and the golden-document test
(`tests/repair/test_golden_documents.py`), which generates small ones.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from repairtool.localpg import PgServer, create_database, drop_database

LIVE = (
    "workspacemanager-deployment-68f9b944d5-live0",
    "workspacemanager-deployment-68f9b944d5-live1",
)
DEAD = "workspacemanager-deployment-5ffc97854c-dead0"
CLASS = "bio.terra.workspace.service.workspace.flight.WorkspaceCreateFlight"
_PERMUTE = 1_000_003  # prime: g ↦ g·P mod N is a permutation of the flights (N not a multiple)

# (key, value expression over the flight number g and the flight id f); the first three are the
# issue's "3 inputs each"
INPUTS = (
    ("workspaceId", "'\"' || substr(md5(f), 1, 8) || '-' || substr(md5(f), 9, 4) || '-4'"
     " || substr(md5(f), 14, 3) || '-8' || substr(md5(f), 18, 3) || '-'"
     " || substr(md5(f), 21, 12) || '\"'"),
    ("workspaceStage", "'\"MC_WORKSPACE\"'"),
    ("auth_user_info", "'[\"bio.terra.workspace.service.iam.AuthenticatedUserRequest\","
     "{\"email\":\"user' || (g % 97) || '@test.firecloud.org\",\"subjectId\":\"' || (g % 97)"
     " || '\",\"token\":\"ya29.' || md5('t' || (g % 97)) || '\",\"reqId\":\"' || md5(f)::uuid"
     " || '\"}]'"),
    ("description", "'\"Create workspace ' || f || '\"'"),
    ("request", "'null'"),
    ("subjectId", "'\"' || (g % 97) || '\"'"),
    ("mdcKey", "'\"null\"'"),
    ("spendProfileId", "'\"wm-default-spend-profile\"'"),
    ("displayNameId", "'\"\"'"),
    ("descriptionId", "'\"\"'"),
)  # fmt: skip


@dataclass(frozen=True)
class Spec:
    """What to generate. The default is the issue's database: 1,000,000 flights, 5,000 RUNNING
    (2,500 owned by a dead pod), 3 log rows and 3 inputs each."""

    flights: int = 1_000_000
    running: int = 5_000
    waiting: int = 200
    logs: int = 3
    inputs: int = 3
    #: k > 0: one flight in k stores workspaceId and workspaceStage with type ids (what a
    #: ≥0.0.61 reader rejects, re-encodable), and another one in k an unknown enum constant
    #: (no reader reads it): decode failures for both readers
    mixed_every: int = 0

    def __post_init__(self) -> None:
        if self.flights % _PERMUTE == 0 or self.running + self.waiting > self.flights:
            raise ValueError(f"cannot generate {self}")
        if self.logs < 1 or not 1 <= self.inputs <= len(INPUTS):
            raise ValueError(f"1 ≤ logs and 1 ≤ inputs ≤ {len(INPUTS)}")

    @property
    def name(self) -> str:
        """The database's name: every parameter in it, so a kept one is never the wrong one."""
        mixed = f"_m{self.mixed_every}" if self.mixed_every else ""
        return (
            f"bench_f{self.flights}_r{self.running}_w{self.waiting}_l{self.logs}_i{self.inputs}"
            + mixed
        )

    @property
    def non_terminal(self) -> int:
        return self.running + self.waiting

    @property
    def dead_owner(self) -> int:
        """RUNNING flights owned by the dead pod (every even rank)."""
        return (self.running + 1) // 2


def _flights_sql(spec: Spec, anchor: str) -> str:
    # rank: the flight's place in a fixed permutation; ranks [0, running) are RUNNING (even ones
    # owned by the dead pod), [running, running + waiting) unowned READY/QUEUED, the rest done
    rank = f"(g::bigint * {_PERMUTE} % {spec.flights})"
    r, w = spec.running, spec.running + spec.waiting
    status = (
        f"CASE WHEN {rank} < {r} THEN 'RUNNING' WHEN {rank} < {w} AND {rank} % 10 = 9"
        f" THEN 'QUEUED' WHEN {rank} < {w} THEN 'READY' WHEN g % 17 = 0 THEN 'ERROR'"
        " ELSE 'SUCCESS' END"
    )
    hours = (
        f"CASE WHEN {rank} >= {r} AND {rank} < {w} AND {rank} % 10 = 9"
        " THEN 80 + (g::bigint * 7919) % 640 ELSE 2 + (g::bigint * 7919) % 718 END"
    )
    return f"""
    INSERT INTO flight (flightid, submit_time, class_name, completed_time, status,
                        serialized_exception, stairway_id, debug_info)
    SELECT f, submit, '{CLASS}',
           CASE WHEN {rank} < {w} THEN NULL ELSE submit + interval '{spec.logs} s' END,
           {status}, '',
           CASE WHEN {rank} < {r} THEN
                (CASE WHEN {rank} % 2 = 0 THEN '{DEAD}' ELSE '{LIVE[0]}' END) END,
           '{{}}'
    FROM (SELECT g, lpad(to_hex(g), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(g), 12, '0') AS f,
                 TIMESTAMP '{anchor}' - ({hours}) * interval '1 hour' - interval '30 min'
                   - (g % 1000) * interval '1 ms' AS submit
          FROM generate_series(1, {spec.flights}) g) s
    """


def _logs_sql(spec: Spec) -> str:
    return f"""
    INSERT INTO flightlog (flightid, log_time, step_index, succeeded, status,
                           serialized_exception, rerun, direction, id)
    SELECT flightid, submit_time + s * interval '1 s', s, true, 'RUNNING', '', false, 'DO',
           md5(flightid || s)::uuid
    FROM flight, generate_series(0, {spec.logs - 1}) s
    """


_WRAPPED = {
    "workspaceId": "'[\"java.util.UUID\",' || {plain} || ']'",
    "workspaceStage": '\'["bio.terra.workspace.service.workspace.model.WorkspaceStage",'
    '"MC_WORKSPACE"]\'',
}
_UNKNOWN = {"workspaceStage": "'\"MC_WORKSPACE_V2\"'"}


def _inputs_sql(spec: Spec) -> str:
    def value(key: str, expr: str) -> str:
        if not spec.mixed_every or key not in _WRAPPED:
            return expr
        k = spec.mixed_every
        wrapped = _WRAPPED[key].replace("{plain}", expr)
        unknown = _UNKNOWN.get(key, expr)
        return f"CASE g % {k} WHEN 1 THEN {wrapped} WHEN 2 THEN {unknown} ELSE {expr} END"

    union = " UNION ALL ".join(
        f"SELECT f, '{key}', {value(key, expr)} FROM (SELECT flightid AS f,"
        " ('x' || substr(flightid, 29, 8))::bit(32)::int AS g FROM flight) x"
        for key, expr in INPUTS[: spec.inputs]
    )
    return f"INSERT INTO flightinput (flightid, key, value) {union}"


# index and constraint set of the 1.1.14 schema, dropped while the rows go in and built again
# after (with the engine's names): bulk index builds are several times faster than row by row
_DROP = (
    "ALTER TABLE flightworking DROP CONSTRAINT fk_flightworking_flightlog",
    "ALTER TABLE flightpersisted DROP CONSTRAINT fk_flightpersisted_flight",
    "ALTER TABLE flight DROP CONSTRAINT flight_pkey",
    "DROP INDEX idx_flight_submit_time",
    "ALTER TABLE flightlog DROP CONSTRAINT pk_flightlog",
    "ALTER TABLE flightlog DROP CONSTRAINT flightlog_id_key",
    "ALTER TABLE flightinput DROP CONSTRAINT pk_flightinput",
    "DROP INDEX flightinput_key_idx",
)
_BUILD = (
    "ALTER TABLE flight ADD CONSTRAINT flight_pkey PRIMARY KEY (flightid)",
    "CREATE INDEX idx_flight_submit_time ON flight (submit_time)",
    "ALTER TABLE flightlog ADD CONSTRAINT pk_flightlog PRIMARY KEY (flightid, log_time)",
    "ALTER TABLE flightlog ADD CONSTRAINT flightlog_id_key UNIQUE (id)",
    "ALTER TABLE flightinput ADD CONSTRAINT pk_flightinput PRIMARY KEY (flightid, key)",
    "CREATE INDEX flightinput_key_idx ON flightinput (key)",
    "ALTER TABLE flightworking ADD CONSTRAINT fk_flightworking_flightlog"
    " FOREIGN KEY (flightlog_id) REFERENCES flightlog (id) ON UPDATE NO ACTION ON DELETE CASCADE",
    "ALTER TABLE flightpersisted ADD CONSTRAINT fk_flightpersisted_flight"
    " FOREIGN KEY (flightid) REFERENCES flight (flightid) ON UPDATE NO ACTION ON DELETE CASCADE",
)


def generate(conninfo: str, spec: Spec, *, progress: bool = False) -> float:
    """Fill an empty database at `conninfo` (the 1.1.14 schema is created here) with `spec`'s
    flights. Returns the seconds it took."""
    from sqlalchemy import create_engine  # the schema helper speaks SQLAlchemy

    from repairtool.stairway.schema import create_schema

    start = time.perf_counter()
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(conninfo))
    with engine.begin() as conn:
        create_schema(conn, "1.1.14")
    engine.dispose()
    with psycopg.connect(conninfo) as conn:  # one transaction: flights and their inputs
        conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
        for sql in _DROP:
            conn.execute(sql)
        now = conn.execute("SELECT date_trunc('second', LOCALTIMESTAMP)::text").fetchone()
        assert now is not None
        steps = (
            ("flight", _flights_sql(spec, now[0])),
            ("flightlog", _logs_sql(spec)),
            ("flightinput", _inputs_sql(spec)),
        )
        for table, sql in steps:
            t = time.perf_counter()
            conn.execute(sql)
            if progress:
                print(f"  {table}: {time.perf_counter() - t:.1f}s", flush=True)
        t = time.perf_counter()
        for sql in _BUILD:
            conn.execute(sql)
        conn.execute(
            "INSERT INTO stairwayinstance (stairway_name, stairway_id) VALUES (%s, %s), (%s, %s)",
            (LIVE[0], LIVE[0], DEAD, DEAD),
        )
        # the mark of a complete database (same transaction), with the anchor of its times
        mark = json.dumps({"generator": "bench/benchdb.py", **asdict(spec), "anchor": now[0]})
        conn.execute(f"COMMENT ON TABLE flight IS '{mark}'")
        if progress:
            print(f"  indexes: {time.perf_counter() - t:.1f}s", flush=True)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")  # as autovacuum would leave it; no background work later
    return time.perf_counter() - start


def ensure(server: PgServer, spec: Spec, *, progress: bool = True) -> tuple[str, float | None]:
    """The conninfo of `spec`'s database on `server`, generated unless a complete one is kept
    there (an incomplete one is dropped first). Returns it and the seconds generating took
    (None: kept)."""
    conninfo = (
        server.url(spec.name).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        create_database(server, spec.name)
    except psycopg.errors.DuplicateDatabase:
        if generated(conninfo) is not None:
            return conninfo, None
        drop_database(server, spec.name)
        create_database(server, spec.name)
    if progress:
        print(f"generating {spec.name} …", flush=True)
    return conninfo, generate(conninfo, spec, progress=progress)


def generated(conninfo: str) -> dict[str, Any] | None:
    """What the generator recorded in a complete database (its spec and `anchor`), else None."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT obj_description(to_regclass('flight'), 'pg_class')").fetchone()
    if row is None or not row[0]:
        return None
    mark: dict[str, Any] = json.loads(row[0])
    return mark


def anchor(conninfo: str) -> dt.datetime:
    """The moment a generated database's times are relative to."""
    mark = generated(conninfo)
    assert mark is not None, "not a generated database"
    return dt.datetime.fromisoformat(mark["anchor"])


def counts(conninfo: str) -> tuple[int, int, int, int]:
    """(flights, non-terminal flights, flightlog rows, flightinput rows)."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM flight),"
            " (SELECT count(*) FROM flight WHERE completed_time IS NULL),"
            " (SELECT count(*) FROM flightlog), (SELECT count(*) FROM flightinput)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])
