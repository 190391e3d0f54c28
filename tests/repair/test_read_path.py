"""Read commands stay on psycopg: a dry-run `repairtool orphans` (table and JSON, with the reader
inferred from the database) never imports SQLAlchemy, which only `--fix` needs, nor pydantic
(the built-in catalog comes from its snapshot)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from bench.benchdb import LIVE, Spec, generate
from repairtool.localpg import PgServer, create_database, drop_database
from tests.cliprocess import probe


@pytest.fixture(scope="module")
def db_url(pg_server: PgServer) -> Iterator[str]:
    url = create_database(pg_server, "read_path").set(drivername="postgresql")
    conninfo = url.render_as_string(hide_password=False)
    generate(conninfo, Spec(flights=500, running=10, waiting=5))
    yield conninfo
    drop_database(pg_server, "read_path")


@pytest.mark.parametrize("output", ["json", "table"])
def test_orphans_dry_run_never_imports_sqlalchemy_or_pydantic(db_url: str, output: str) -> None:
    args = ["orphans", "--db", db_url, "-o", output, "--live-instances", ",".join(LIVE)]
    run = probe(args)
    assert run.code == 1, run.stderr  # findings: the generator's dead-owner flights
    assert not run.heavy
    if output == "json":
        doc = json.loads(run.out)
        assert sum(f["kind"] == "dead_owner" for f in doc["findings"]) == 5
