"""Detect which engine generation built (and which wrote) a live Stairway database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from repairtool.stairway.probe import CORE_TABLES, check_core_tables
from repairtool.stairway.schema import CHANGESETS, NEWEST_KNOWN, Changeset, EngineVersion
from repairtool.stairway.sql import rows, scalar

# Every function here takes a psycopg connection (the read path) or a SQLAlchemy `Connection`.

V0_0_50 = EngineVersion(0, 0, 50)
V0_0_60 = EngineVersion(0, 0, 60)
V0_0_61 = EngineVersion(0, 0, 61)


@dataclass(frozen=True)
class VersionRange:
    low: EngineVersion
    high: EngineVersion | None  # None: newer than any release we know of is possible

    def __contains__(self, v: object) -> bool:
        if isinstance(v, str):
            v = EngineVersion.parse(v)
        if not isinstance(v, EngineVersion):
            return False
        return self.low <= v and (self.high is None or v <= self.high)

    def intersect(self, other: VersionRange) -> VersionRange | None:
        low = max(self.low, other.low)
        highs = [h for h in (self.high, other.high) if h is not None]
        high = min(highs) if highs else None
        if high is not None and high < low:
            return None
        return VersionRange(low, high)

    def __str__(self) -> str:
        if self.high is None:
            return f"≥{self.low}"
        if self.high == self.low:
            return str(self.low)
        return f"{self.low}–{self.high}"


@dataclass(frozen=True)
class Generation:
    """What we know of a database's engine version, with the evidence."""

    schema: VersionRange  # from the schema (changelog or probing)
    version: VersionRange  # schema narrowed by how the newest rows were written
    source: str  # "databasechangelog" or "probe"
    newest_changeset: str
    writer: str | None  # e.g. "0.0.50–0.0.60 (flightlog.working_parameters and id set)"
    has_flightworking: bool
    has_flightpersisted: bool
    has_debug_info: bool

    def __str__(self) -> str:
        return str(self.version)


def _range_after(cs: Changeset) -> VersionRange:
    later = [c.since for c in CHANGESETS if c.since > cs.since]
    if not later:
        return VersionRange(cs.since, None)
    nxt = min(later)
    return VersionRange(cs.since, EngineVersion(nxt.major, nxt.minor, nxt.patch - 1))


def _known_file(filename: str) -> Changeset | None:
    base = filename.rsplit("/", 1)[-1]
    for cs in CHANGESETS:
        if cs.file == base:
            return cs
    return None


def _probe(conn: Any) -> Changeset:
    def has(sql: str) -> bool:
        return bool(scalar(conn, sql))

    checks: list[tuple[str, str]] = [
        ("20221028_input_index.yaml", "SELECT to_regclass('flightinput_key_idx') IS NOT NULL"),
        ("20220411_progress.yaml", "SELECT to_regclass('flightpersisted') IS NOT NULL"),
        (
            "20220127_created_at_index.yaml",
            "SELECT to_regclass('idx_flight_submit_time') IS NOT NULL",
        ),
        ("20210416_flightworking.yaml", "SELECT to_regclass('flightworking') IS NOT NULL"),
        (
            "20201207_debug_info.yaml",
            "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema ="
            " current_schema() AND table_name = 'flight' AND column_name = 'debug_info')",
        ),
    ]
    for file, sql in checks:
        if has(sql):
            found = _known_file(file)
            assert found is not None
            return found
    found = _known_file("20200421_doing_control.yaml")
    assert found is not None
    return found


def table_exists(conn: Any, name: str) -> bool:
    return bool(scalar(conn, "SELECT to_regclass(%(n)s) IS NOT NULL", {"n": name}))


def column_exists(conn: Any, table: str, column: str) -> bool:
    return bool(
        scalar(
            conn,
            "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema ="
            " current_schema() AND table_name = %(t)s AND column_name = %(c)s)",
            {"t": table, "c": column},
        )
    )


def require_stairway(conn: Any) -> None:
    """Raise NotStairwayDatabase unless the engine's core tables are there."""
    check_core_tables({t: table_exists(conn, t) for t in CORE_TABLES})


def _writer(conn: Any, has_id: bool) -> tuple[str | None, VersionRange | None]:
    """How the newest flightlog rows were written (legacy JSON column / flightlog.id)."""
    id_col = "id" if has_id else "NULL::uuid"
    found = rows(
        conn,
        f"SELECT working_parameters IS NOT NULL AS legacy, {id_col} IS NOT NULL AS has_id"
        " FROM flightlog WHERE flightid IN (SELECT flightid FROM flight"
        " ORDER BY submit_time DESC LIMIT 20) ORDER BY log_time DESC LIMIT 1",
    )
    if not found:
        return None, None
    legacy, with_id = bool(found[0][0]), bool(found[0][1])
    if legacy and with_id:
        return (
            "0.0.50–0.0.60 (newest flightlog row has working_parameters and id)",
            VersionRange(V0_0_50, V0_0_60),
        )
    if legacy:
        return (
            "≤0.0.49 (newest flightlog row has working_parameters and no id)",
            VersionRange(EngineVersion(0, 0, 10), EngineVersion(0, 0, 49)),
        )
    return (
        "≥0.0.61 (newest flightlog row has no working_parameters)",
        VersionRange(V0_0_61, None),
    )


def detect_generation(conn: Any) -> Generation:
    """Detect the engine generation from `databasechangelog`, else by probing the schema, then
    narrow it with how the newest flightlog rows were written."""
    require_stairway(conn)
    newest: Changeset | None = None
    source = "probe"
    if table_exists(conn, "databasechangelog"):
        files = rows(conn, "SELECT filename FROM databasechangelog ORDER BY orderexecuted")
        known = [cs for cs in (_known_file(f) for (f,) in files) if cs is not None]
        if known:
            newest = max(known, key=lambda c: CHANGESETS.index(c))
            source = "databasechangelog"
    if newest is None:
        newest = _probe(conn)
    schema_range = _range_after(newest)
    if schema_range.high is None:
        schema_range = VersionRange(schema_range.low, None)
    has_id = column_exists(conn, "flightlog", "id")
    writer, writer_range = _writer(conn, has_id)
    version = schema_range
    if writer_range is not None:
        narrowed = schema_range.intersect(writer_range)
        if narrowed is not None:
            version = narrowed
    return Generation(
        schema=schema_range,
        version=version,
        source=source,
        newest_changeset=newest.file,
        writer=writer,
        has_flightworking=table_exists(conn, "flightworking"),
        has_flightpersisted=table_exists(conn, "flightpersisted"),
        has_debug_info=column_exists(conn, "flight", "debug_info"),
    )


__all__ = ["NEWEST_KNOWN", "Generation", "VersionRange", "detect_generation", "require_stairway"]
