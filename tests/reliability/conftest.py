"""Fixtures of the reliability suite: a Stairway database (1.1.14 schema) with the change history
installed, the engine as a concurrent writer, and the tool's engine as the CLI makes it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from tests.conftest import MakeDb
from tests.reliability.harness import EngineWriter, install_history, tool_engine


@pytest.fixture
def db(make_db: MakeDb) -> Engine:
    engine = make_db("1.1.14")
    install_history(engine)
    return engine


@pytest.fixture
def writer(db: Engine) -> Iterator[EngineWriter]:
    w = EngineWriter(db.url)
    yield w
    w.close()


@pytest.fixture
def tool(db: Engine) -> Iterator[Engine]:
    engine = tool_engine(db.url)
    yield engine
    engine.dispose()
