"""Every read command reads on psycopg directly and never imports SQLAlchemy, which only
changes need (their transactional API): `flights list|count|show|instances|audit|generation`,
`orphans` (dry run), `decode` (dry run) and `watch --once`, each run as a process against a
seeded Postgres (with `--env` on a GKE env: tests/opskit/test_gke_reach.py). And the changes
still go through SQLAlchemy: `orphans --fix` imports it and applies its plan, and auto-resume on
a watcher whose source reads on psycopg makes its engine for the change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
from tests.repair.test_watch import DEAD, SELECTOR, Clock, _flight, kube  # noqa: F401

#: runs the CLI in this process, then says whether SQLAlchemy was imported and the exit code
PROBE = """
import sys
from repairtool.cli import main
code = main(sys.argv[1:])
print("SQLALCHEMY" if "sqlalchemy" in sys.modules else "NO SQLALCHEMY")
print("EXIT", code)
"""

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


def run_probe(*args: str) -> tuple[bool, int, str, subprocess.CompletedProcess[str]]:
    """(SQLAlchemy imported?, exit code, the command's own stdout, the process)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STAIRWAY_", "PG"))}
    env["STAIRWAY_OPS_STATE_DIR"] = "/nonexistent-state-dir"
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    *body, verdict, code = proc.stdout.rstrip("\n").split("\n")
    assert verdict in ("SQLALCHEMY", "NO SQLALCHEMY") and code.startswith("EXIT "), proc
    return verdict == "SQLALCHEMY", int(code.split()[1]), "\n".join(body), proc


@pytest.mark.parametrize("command", sorted(READ_COMMANDS))
def test_a_read_command_never_imports_sqlalchemy(db_url: str, command: str) -> None:
    args, expected_exit = READ_COMMANDS[command]
    imported, code, out, proc = run_probe(*args, "--db", db_url)
    assert code == expected_exit, proc.stderr
    assert out.strip(), proc.stderr  # it printed what it read
    assert not imported, f"{command} imported SQLAlchemy"


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
        imported, code, out, proc = run_probe(*fix, "--db", conninfo)
        assert code in (0, 1), proc.stderr
        assert imported  # the plan is applied through SQLAlchemy's transactional API
        applied = json.loads(out)["applied"]
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
