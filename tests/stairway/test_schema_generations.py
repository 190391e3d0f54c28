"""A schema created at each engine generation is detected back as that generation."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from repairtool.errors import NotStairwayDatabase
from repairtool.seed import load_flights, seed_2021
from repairtool.stairway.db import reading
from repairtool.stairway.schema import CHANGESETS, EngineVersion, changesets_for
from repairtool.stairway.version import detect_generation

GENERATIONS = {
    # version created: (expected detected range, newest changeset)
    "0.0.26": ("0.0.10–0.0.26", "20200421_doing_control.yaml"),
    "0.0.43": ("0.0.27–0.0.49", "20201207_debug_info.yaml"),
    "0.0.60": ("0.0.50–0.0.67", "20210416_flightworking.yaml"),
    "0.0.68": ("0.0.68–0.0.69", "20220127_created_at_index.yaml"),
    "0.0.70": ("0.0.70–0.0.77", "20220411_progress.yaml"),
    "1.1.14": ("≥0.0.78", "20221028_input_index.yaml"),
}


def columns(engine: Engine, table: str) -> list[str]:
    with reading(engine) as conn:
        return list(
            conn.execute(
                text(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = :t"
                    " AND table_schema = current_schema() ORDER BY ordinal_position"
                ),
                {"t": table},
            ).scalars()
        )


@pytest.mark.parametrize("version", sorted(GENERATIONS, key=EngineVersion.parse))
@pytest.mark.parametrize("changelog", [True, False], ids=["changelog", "probe"])
def test_created_generation_is_detected_back(make_db, version: str, changelog: bool) -> None:
    engine = make_db(version, changelog=changelog)
    with reading(engine) as conn:
        gen = detect_generation(conn)
    expected_range, newest = GENERATIONS[version]
    assert str(gen.schema) == expected_range
    assert version in gen.version
    assert gen.newest_changeset == newest
    assert gen.source == ("databasechangelog" if changelog else "probe")


def test_changelog_rows_follow_the_engine_order(make_db) -> None:
    engine = make_db("1.1.14")
    with reading(engine) as conn:
        rows = conn.execute(
            text(
                "SELECT id, author, filename, orderexecuted, exectype FROM databasechangelog"
                " ORDER BY orderexecuted"
            )
        ).all()
    assert [(r.id, r.author, r.filename) for r in rows] == [
        (c.id, c.author, f"stairway/db/changesets/{c.file}") for c in CHANGESETS
    ]
    assert [r.orderexecuted for r in rows] == list(range(1, len(CHANGESETS) + 1))
    assert {r.exectype for r in rows} == {"EXECUTED"}
    # ids are reused across files exactly as in the engine
    assert [r.id for r in rows].count("stairwaybase") == 3
    assert [r.id for r in rows].count("flightworking") == 2


def test_2021_generation_has_the_engine_columns_in_physical_order(make_db) -> None:
    engine = make_db("0.0.60")
    assert columns(engine, "flight") == [
        "flightid",
        "submit_time",
        "class_name",
        "completed_time",
        "output_parameters",
        "status",
        "serialized_exception",
        "stairway_id",
        "debug_info",
    ]
    assert columns(engine, "flightlog") == [
        "flightid",
        "log_time",
        "working_parameters",
        "step_index",
        "succeeded",
        "status",
        "serialized_exception",
        "rerun",
        "direction",
        "id",
    ]
    assert columns(engine, "flightworking") == ["flightlog_id", "key", "value"]
    with reading(engine) as conn:
        constraints = set(conn.execute(text("SELECT conname FROM pg_constraint")).scalars())
    # Liquibase on Postgres leaves column-level primary keys to Postgres (<table>_pkey); the
    # named ones keep their names (§5.5)
    assert {
        "flight_pkey",
        "stairwayinstance_pkey",
        "pk_flightlog",
        "pk_flightinput",
        "pk_flightworking",
        "fk_flightworking_flightlog",
    } <= constraints
    assert not {"pk_flight", "pk_stairwayinstance"} & constraints


@pytest.mark.parametrize(
    ("version", "liquibase"),
    [
        ("0.0.43", "3.8.6"),
        ("0.0.50", "3.8.6"),
        ("0.0.51", "4.2.1"),
        ("0.0.60", "4.2.1"),
        ("0.0.70", "4.2.1"),
        ("0.0.71", "4.8.0"),
        ("1.0.7", "4.8.0"),
        ("1.1.0", "4.27.0"),
        ("1.1.5", "4.27.0"),
        ("1.1.6", "4.28.0"),
        ("1.1.11", "4.28.0"),
        ("1.1.12", "4.29.1"),
        ("1.1.13", "4.29.1"),
        ("1.1.14", "4.29.2"),
    ],
)
def test_the_changelog_records_each_engines_liquibase_and_no_checksum(
    make_db, version: str, liquibase: str
) -> None:
    # a stored checksum that does not match Liquibase's own makes the engine refuse to start;
    # NULL is what Liquibase fills in itself (§5.5)
    engine = make_db(version)
    with reading(engine) as conn:
        rows = conn.execute(text("SELECT liquibase, md5sum FROM databasechangelog")).all()
    assert rows and {r.liquibase for r in rows} == {liquibase}
    assert {r.md5sum for r in rows} == {None}


def test_pre_flightworking_generation_has_no_log_ids(make_db) -> None:
    engine = make_db("0.0.43")
    assert "id" not in columns(engine, "flightlog")
    assert columns(engine, "flightworking") == []
    assert len(changesets_for("0.0.43")) == 7


def test_rows_narrow_the_range_to_the_writer(make_db) -> None:
    legacy_writer = make_db("0.0.60")
    seed_2021(legacy_writer)  # fills working_parameters, as 0.0.50–0.0.60 did
    with reading(legacy_writer) as conn:
        assert str(detect_generation(conn).version) == "0.0.50–0.0.60"

    typed_writer = make_db("0.0.60")
    from repairtool.seed import SEED_2021, load_document

    load_flights(typed_writer, load_document(SEED_2021), legacy_json=False)
    with reading(typed_writer) as conn:
        gen = detect_generation(conn)
    assert str(gen.version) == "0.0.61–0.0.67"
    assert "no working_parameters" in (gen.writer or "")


def test_a_database_without_stairway_tables_is_refused(make_db) -> None:
    engine = make_db(None)
    with reading(engine) as conn, pytest.raises(NotStairwayDatabase, match="table flight"):
        detect_generation(conn)


def test_unknown_engine_version_is_a_usage_error() -> None:
    from repairtool.errors import UsageError

    with pytest.raises(UsageError, match="not an engine version"):
        EngineVersion.parse("latest")
