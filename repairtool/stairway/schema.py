"""Stairway schema generations: the engine's Liquibase changesets, applied as SQL.

`create_schema(conn, "0.0.60")` builds, in an empty database, the tables a real engine of that
version would have built, and records each changeset in a Liquibase-style `databasechangelog`
(id / author / filename in the engine's changelog order) so the result looks like a real database
(§5.5): column-level primary keys get Postgres's own names (`flight_pkey`,
`stairwayinstance_pkey`) as they do under Liquibase, named ones keep their names; the
`liquibase` column says the Liquibase release that engine ships with; `md5sum` is NULL, which
Liquibase fills in itself (a checksum of ours would not match its own and the engine's migration
would refuse to start).
The DDL follows `stairway/src/main/resources/stairway/db/changesets/*.yaml` step by step (columns
are added and dropped in the same order, so physical column order matches a real database).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import total_ordering
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Connection

from repairtool.errors import UsageError

CHANGELOG_DIR = "stairway/db/changesets/"


@total_ordering
@dataclass(frozen=True)
class EngineVersion:
    """A Stairway release number such as 0.0.60 or 1.1.14."""

    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text_: str) -> EngineVersion:
        m = re.fullmatch(r"\s*v?(\d+)\.(\d+)\.(\d+)(?:-SNAPSHOT)?\s*", text_)
        if not m:
            raise UsageError(
                f"not an engine version: {text_!r}; expected MAJOR.MINOR.PATCH such as 0.0.60"
            )
        return cls(int(m[1]), int(m[2]), int(m[3]))

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, EngineVersion):
            return NotImplemented
        return (self.major, self.minor, self.patch) < (other.major, other.minor, other.patch)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


#: the newest engine release these facts were read from
NEWEST_KNOWN = EngineVersion.parse("1.1.14")
OLDEST_KNOWN = EngineVersion.parse("0.0.10")


@dataclass(frozen=True)
class Changeset:
    """One Liquibase changeset of the engine, with the first release that shipped it."""

    file: str
    id: str
    author: str
    since: EngineVersion
    description: str
    sql: tuple[str, ...]

    @property
    def filename(self) -> str:
        return CHANGELOG_DIR + self.file


def _v(s: str) -> EngineVersion:
    return EngineVersion.parse(s)


CHANGESETS: tuple[Changeset, ...] = (
    Changeset(
        "20190118_base.yaml",
        "stairwaybase",
        "dd",
        _v("0.0.10"),
        "createTable tableName=flight; createTable tableName=flightlog; addPrimaryKey constraintName=pk_flightlog, tableName=flightlog",
        (
            "CREATE TABLE flight (flightid varchar(36) NOT NULL, submit_time timestamp NOT NULL,"
            " class_name text NOT NULL, input_parameters text, completed_time timestamp,"
            " output_parameters text, status text, exception text, PRIMARY KEY (flightid))",
            "CREATE TABLE flightlog (flightid varchar(36) NOT NULL, log_time timestamp NOT NULL,"
            " working_parameters text NOT NULL, step_index int NOT NULL, doing boolean NOT NULL,"
            " succeeded boolean, exception text, status text)",
            "ALTER TABLE flightlog ADD CONSTRAINT pk_flightlog PRIMARY KEY (flightid, log_time)",
        ),
    ),
    Changeset(
        "20190801_subjectid.yaml",
        "add_subject",
        "ah",
        _v("0.0.10"),
        "addColumn tableName=flight",
        (
            "ALTER TABLE flight ADD COLUMN owner_id text NOT NULL",
            "ALTER TABLE flight ADD COLUMN owner_email text NOT NULL",
        ),
    ),
    Changeset(
        "20191110_fix_exceptions.yaml",
        "remove_exception",
        "dd",
        _v("0.0.10"),
        "dropColumn columnName=exception, tableName=flight; addColumn tableName=flight; dropColumn columnName=exception, tableName=flightlog; addColumn tableName=flightlog",
        (
            "ALTER TABLE flight DROP COLUMN exception",
            "ALTER TABLE flight ADD COLUMN serialized_exception text",
            "ALTER TABLE flightlog DROP COLUMN exception",
            "ALTER TABLE flightlog ADD COLUMN serialized_exception text",
        ),
    ),
    Changeset(
        "20200211_library.yaml",
        "stairwaybase",
        "dd",
        _v("0.0.10"),
        "dropColumn tableName=flight; createTable tableName=flightinput; addPrimaryKey constraintName=pk_flightinput, tableName=flightinput",
        (
            "ALTER TABLE flight DROP COLUMN owner_id",
            "ALTER TABLE flight DROP COLUMN owner_email",
            "ALTER TABLE flight DROP COLUMN input_parameters",
            "CREATE TABLE flightinput (flightid varchar(36) NOT NULL, key text NOT NULL,"
            " value text NOT NULL)",
            "ALTER TABLE flightinput ADD CONSTRAINT pk_flightinput PRIMARY KEY (flightid, key)",
        ),
    ),
    Changeset(
        "20200310_scale.yaml",
        "stairwaybase",
        "dd",
        _v("0.0.10"),
        "addColumn tableName=flight; addColumn tableName=flightlog; createTable tableName=stairwayinstance",
        (
            "ALTER TABLE flight ADD COLUMN stairway_id text",
            "ALTER TABLE flightlog ADD COLUMN rerun boolean",
            "CREATE TABLE stairwayinstance (stairway_name text NOT NULL,"
            " stairway_id text NOT NULL, PRIMARY KEY (stairway_name), UNIQUE (stairway_id))",
        ),
    ),
    Changeset(
        "20200421_doing_control.yaml",
        "stairway_doing_control",
        "dd",
        _v("0.0.10"),
        "dropColumn columnName=doing, tableName=flightlog; addColumn tableName=flightlog",
        (
            "ALTER TABLE flightlog DROP COLUMN doing",
            "ALTER TABLE flightlog ADD COLUMN direction text",
        ),
    ),
    Changeset(
        "20201207_debug_info.yaml",
        "flight_debug_info",
        "tn",
        _v("0.0.27"),
        "addColumn tableName=flight",
        ("ALTER TABLE flight ADD COLUMN debug_info text",),
    ),
    Changeset(
        "20210416_flightworking.yaml",
        "flightworking",
        "JCz",
        _v("0.0.50"),
        "dropNotNullConstraint columnName=working_parameters, tableName=flightlog; addColumn tableName=flightlog; createTable tableName=flightworking; addPrimaryKey constraintName=pk_flightworking, tableName=flightworking; addForeignKeyConstraint baseTableName=flightworking, constraintName=fk_flightworking_flightlog, referencedTableName=flightlog",
        (
            "ALTER TABLE flightlog ALTER COLUMN working_parameters DROP NOT NULL",
            "ALTER TABLE flightlog ADD COLUMN id uuid UNIQUE",
            "CREATE TABLE flightworking (flightlog_id uuid NOT NULL, key text NOT NULL,"
            " value text NOT NULL)",
            "ALTER TABLE flightworking ADD CONSTRAINT pk_flightworking"
            " PRIMARY KEY (flightlog_id, key)",
            "ALTER TABLE flightworking ADD CONSTRAINT fk_flightworking_flightlog"
            " FOREIGN KEY (flightlog_id) REFERENCES flightlog (id)"
            " ON UPDATE NO ACTION ON DELETE CASCADE",
        ),
    ),
    Changeset(
        "20220127_created_at_index.yaml",
        "flightworking",
        "nm",
        _v("0.0.68"),
        "createIndex indexName=idx_flight_submit_time, tableName=flight",
        ("CREATE INDEX idx_flight_submit_time ON flight (submit_time)",),
    ),
    Changeset(
        "20220411_progress.yaml",
        "flightpersisted",
        "dd",
        _v("0.0.70"),
        "createTable tableName=flightpersisted; addPrimaryKey constraintName=pk_flightpersisted, tableName=flightpersisted; addForeignKeyConstraint baseTableName=flightpersisted, constraintName=fk_flightpersisted_flight, referencedTableName=flight",
        (
            "CREATE TABLE flightpersisted (flightid varchar(36) NOT NULL, key text NOT NULL,"
            " value text NOT NULL)",
            "ALTER TABLE flightpersisted ADD CONSTRAINT pk_flightpersisted"
            " PRIMARY KEY (flightid, key)",
            "ALTER TABLE flightpersisted ADD CONSTRAINT fk_flightpersisted_flight"
            " FOREIGN KEY (flightid) REFERENCES flight (flightid)"
            " ON UPDATE NO ACTION ON DELETE CASCADE",
        ),
    ),
    Changeset(
        "20221028_input_index.yaml",
        "inputindex",
        "nm",
        _v("0.0.78"),
        "createIndex indexName=flightinput_key_idx, tableName=flightinput",
        ("CREATE INDEX flightinput_key_idx ON flightinput (key)",),
    ),
)

LIQUIBASE_TABLES_SQL = (
    "CREATE TABLE databasechangeloglock (id int NOT NULL, locked boolean NOT NULL,"
    " lockgranted timestamp, lockedby varchar(255),"
    " CONSTRAINT databasechangeloglock_pkey PRIMARY KEY (id))",
    "INSERT INTO databasechangeloglock (id, locked) VALUES (1, false)",
    "CREATE TABLE databasechangelog (id varchar(255) NOT NULL, author varchar(255) NOT NULL,"
    " filename varchar(255) NOT NULL, dateexecuted timestamp NOT NULL,"
    " orderexecuted int NOT NULL, exectype varchar(10) NOT NULL, md5sum varchar(35),"
    " description varchar(255), comments varchar(255), tag varchar(255),"
    " liquibase varchar(20), contexts varchar(255), labels varchar(255),"
    " deployment_id varchar(10))",
)


def changesets_for(version: EngineVersion | str) -> tuple[Changeset, ...]:
    """The changesets an engine of `version` applies, in changelog order."""
    v = EngineVersion.parse(version) if isinstance(version, str) else version
    if v < OLDEST_KNOWN:
        raise UsageError(f"engine version {v} is older than the oldest supported ({OLDEST_KNOWN})")
    return tuple(c for c in CHANGESETS if c.since <= v)


#: (first engine release, the Liquibase release it ships with), newest first (§5.5)
LIQUIBASE_RELEASES: tuple[tuple[EngineVersion, str], ...] = (
    (EngineVersion(1, 1, 14), "4.29.2"),
    (EngineVersion(1, 1, 12), "4.29.1"),
    (EngineVersion(1, 1, 6), "4.28.0"),
    (EngineVersion(1, 1, 0), "4.27.0"),
    (EngineVersion(0, 0, 71), "4.8.0"),
    (EngineVersion(0, 0, 51), "4.2.1"),
)


def liquibase_version_for(version: EngineVersion) -> str:
    """The Liquibase release an engine of `version` ships with (`databasechangelog.liquibase`):
    3.8.6 up to 0.0.50, 4.2.1 in 0.0.51–0.0.70, … 4.29.2 in 1.1.14."""
    for since, release in LIQUIBASE_RELEASES:
        if version >= since:
            return release
    return "3.8.6"


def create_schema(
    conn: Connection, version: EngineVersion | str, *, with_changelog: bool = True
) -> tuple[Changeset, ...]:
    """Create the engine's tables at `version` in the connection's current schema.

    The caller owns the transaction (use `engine.begin()`). Refuses a database that already has a
    `flight` table.
    """
    from sqlalchemy import text  # lazy: only schema creation (tests, sandbox, bench) writes DDL

    v = EngineVersion.parse(version) if isinstance(version, str) else version
    applied = changesets_for(v)
    exists = conn.execute(text("SELECT to_regclass('flight') IS NOT NULL")).scalar_one()
    if exists:
        raise UsageError(
            "the database already has a flight table; create the schema in an empty one"
        )
    if with_changelog:
        for stmt in LIQUIBASE_TABLES_SQL:
            conn.execute(text(stmt))
    deployment_id = dt.datetime.now(dt.UTC).strftime("%y%m%d%H%M")[-10:]
    for order, cs in enumerate(applied, start=1):
        for stmt in cs.sql:
            conn.execute(text(stmt))
        if with_changelog:
            conn.execute(
                text(
                    "INSERT INTO databasechangelog (id, author, filename, dateexecuted,"
                    " orderexecuted, exectype, md5sum, description, comments, tag, liquibase,"
                    " contexts, labels, deployment_id) VALUES (:id, :author, :filename,"
                    " CURRENT_TIMESTAMP, :order, 'EXECUTED', NULL, :description, '', NULL,"
                    " :liquibase, NULL, NULL, :deployment_id)"
                ),
                {
                    "id": cs.id,
                    "author": cs.author,
                    "filename": cs.filename,
                    "order": order,
                    "description": cs.description[:255],
                    "liquibase": liquibase_version_for(v),
                    "deployment_id": deployment_id,
                },
            )
    return applied


#: the engine's tables, newest generation; `flight` first
ENGINE_TABLES = (
    "flight",
    "flightlog",
    "flightinput",
    "flightworking",
    "flightpersisted",
    "stairwayinstance",
)
