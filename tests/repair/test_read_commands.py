"""Every read command reads on psycopg directly and never imports SQLAlchemy, which only
changes need (their transactional API): `flights list|count|show|instances|audit|generation`,
`orphans` (dry run), `decode` (dry run) and `watch --once`, each run as a process against a
seeded Postgres (with `--env` on a GKE env: tests/opskit/test_gke_reach.py). And the changes
still go through SQLAlchemy: `orphans --fix` imports it and applies its plan, and auto-resume on
a watcher whose source reads on psycopg makes its engine for the change.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from bench.benchdb import LIVE, Spec, generate
from repairtool.detect import Options
from repairtool.liveness import from_kube
from repairtool.localpg import PgServer, create_database, drop_database
from repairtool.stairway.pgread import ReadDb
from repairtool.watch import AutoResume, Watcher, WatchOptions, WatchSource

# `kube`: the sandbox's loopback Kubernetes API with the service's pods (a fixture)
from tests.cliprocess import Probed, clean_env, probe
from tests.repair.test_watch import DEAD, SELECTOR, Clock, _flight, kube  # noqa: F401

SPEC = Spec(flights=500, running=10, waiting=5)
#: a flight of the generator, with its inputs and three log rows
FLIGHT = "00000046-0000-4000-8000-000000000046"
LIVE_ARG = ("--live-instances", ",".join(LIVE))

READ_COMMANDS: dict[str, tuple[tuple[str, ...], int]] = {
    "flights list": (("flights", "list", "--status", "RUNNING"), 0),
    "flights count": (("flights", "count"), 0),
    "flights show": (("flights", "show", FLIGHT, "--json"), 0),
    "flights instances": (("flights", "instances"), 0),
    "flights audit": (("flights", "audit", "--json"), 0),
    "flights generation": (("flights", "generation"), 0),
    "orphans (dry run)": (("orphans", *LIVE_ARG), 1),  # 1: findings
    "orphans --json (dry run)": (("orphans", "--json", *LIVE_ARG), 1),
    "watch --once": (("watch", "--once", *LIVE_ARG), 1),
    "decode --all (dry run)": (("decode", "--all", "--reader", "0.0.60"), 1),  # 1: findings
    "decode --flight --json (dry run)": (("decode", "--flight", FLIGHT, "--json"), 0),
}


@pytest.fixture(scope="module")
def db_url(pg_server: PgServer) -> Iterator[str]:
    url = create_database(pg_server, "read_commands").set(drivername="postgresql")
    conninfo = url.render_as_string(hide_password=False)
    generate(conninfo, SPEC)
    yield conninfo
    drop_database(pg_server, "read_commands")


def run_probe(*args: str) -> Probed:
    """The command run as a process, with no state directory to fall back on."""
    return probe(args, clean_env(STAIRWAY_OPS_STATE_DIR="/nonexistent-state-dir"))


@pytest.mark.parametrize("command", sorted(READ_COMMANDS))
def test_a_read_command_never_imports_sqlalchemy(db_url: str, command: str) -> None:
    args, expected_exit = READ_COMMANDS[command]
    run = run_probe(*args, "--db", db_url)
    assert run.code == expected_exit, run.stderr
    assert run.out.strip(), run.stderr  # it printed what it read
    assert "sqlalchemy" not in run.heavy, f"{command} imported SQLAlchemy"


def test_orphans_fix_still_changes_flights_through_sqlalchemy(pg_server: PgServer) -> None:
    url = create_database(pg_server, "read_commands_fix").set(drivername="postgresql")
    conninfo = url.render_as_string(hide_password=False)
    try:
        generate(conninfo, SPEC)
        with psycopg.connect(conninfo) as conn:
            dead_owned = {
                fid
                for (fid,) in conn.execute(
                    "SELECT flightid FROM flight WHERE status = 'RUNNING'"
                    " AND NOT stairway_id = ANY(%s)",
                    (list(LIVE),),
                )
            }
        assert dead_owned
        fix = ("orphans", "--fix", "--yes", "--reason", "test", "--json", *LIVE_ARG)
        run = run_probe(*fix, "--db", conninfo)
        assert run.code in (0, 1), run.stderr
        assert "sqlalchemy" in run.heavy  # the plan is applied through its transactional API
        applied = json.loads(run.out)["applied"]
        resumed = {a["flight_id"] for a in applied if a["action"] == "resume"}
        assert resumed == dead_owned
        with psycopg.connect(conninfo) as conn:
            states = set(
                conn.execute(
                    "SELECT status, stairway_id FROM flight WHERE flightid = ANY(%s)",
                    (sorted(dead_owned),),
                )
            )
            audited = {
                fid
                for (fid,) in conn.execute(
                    "SELECT flightid FROM stairway_ops.audit WHERE action = 'disown'"
                )
            }
        assert states == {("READY", None)}
        assert audited == dead_owned
    finally:
        drop_database(pg_server, "read_commands_fix")


def test_auto_resume_on_a_read_path_source_changes_through_an_engine_it_makes(
    stairway_db: Engine, request: pytest.FixtureRequest
) -> None:
    kubeconfig, _ = request.getfixturevalue("kube")
    _flight(stairway_db, "f-dead-1", DEAD)
    source = WatchSource(
        "sandbox",
        ReadDb(stairway_db.url),  # as `repairtool watch` builds its sources
        lambda: from_kube("terra-sandbox", "", kubeconfig=str(kubeconfig), label_selector=SELECTOR),
        Options(),
    )
    clock = Clock()
    w = Watcher(
        [source],
        CollectorRegistry(),
        WatchOptions(auto_resume=AutoResume(min_age=0), actor="test-watch"),
        log=lambda r: None,
        clock=clock,
    )
    try:
        (applied,) = w.scan_once().envs[0].repairs
        assert (applied.flight_id, applied.action, applied.outcome) == (
            "f-dead-1",
            "resume",
            "applied",
        )
        assert applied.audit_ids
    finally:
        w.close()
        source.db.close()  # type: ignore[union-attr]
    url = stairway_db.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT status, stairway_id FROM flight").fetchone()
    assert row == ("READY", None)
