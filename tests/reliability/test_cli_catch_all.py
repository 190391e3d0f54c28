"""No traceback can reach a user: every subcommand of `repairtool`, run with an unexpected
exception injected at call 1, 2, 3, …, the middle and the end of what it does (parsing,
connecting, detecting, planning, applying, rendering), ends with one line on stderr and a code of
the one table — `INTERNAL` (70) for the injected exception itself, never 1 ("findings left")."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from repairtool.exitcodes import ExitCode
from repairtool.localpg import PgServer, create_database, drop_database
from repairtool.stairway.schema import create_schema
from tests.reliability.clirun import CliRun, clean_env, problems, run_cli
from tests.reliability.harness import insert_flight, register, with_app
from tests.reliability.inject import Injection, every_subcommand, injected, leaves

DEAD = "workspacemanager-deployment-68f9b944d5-5gwdm"
LIVE = "workspacemanager-deployment-68f9b944d5-9kgzp"
FLIGHT = "7028cce9-5017-48dc-9c17-ce8b23517459"
ROOT = Path(__file__).resolve().parents[2]
POINTS = 5  # injection points per command line besides the first three calls and the last


class World:
    def __init__(self, admin: Engine, url: str, state_dir: Path) -> None:
        self.admin = admin
        self.url = url
        self.state_dir = state_dir
        self.env = clean_env(state_dir=str(state_dir))
        self.lines = every_subcommand(url, flight=FLIGHT, live=LIVE, dead=DEAD, state_dir=state_dir)

    def reset(self) -> None:
        """The dead pod's RUNNING flight again, so every `--fix` has something to apply."""
        with self.admin.begin() as c:
            register(c, DEAD, LIVE)
            c.execute(
                text(
                    "UPDATE flight SET status = 'RUNNING', stairway_id = :o, completed_time = NULL"
                    " WHERE flightid = :f"
                ),
                {"o": DEAD, "f": FLIGHT},
            )


@pytest.fixture(scope="module")
def world(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    name = f"inject_{random.randrange(10**6)}"
    url = create_database(pg_server, name)
    admin = with_app(url, "soak-admin")
    with admin.begin() as c:
        create_schema(c, "0.0.60")
        register(c, DEAD, LIVE)
        insert_flight(
            c,
            FLIGHT,
            status="RUNNING",
            owner=DEAD,
            inputs={"workspaceStage": '"MC_WORKSPACE"', "description": '"d"'},
        )
    yield World(admin, url.render_as_string(hide_password=False), tmp_path_factory.mktemp("st"))
    admin.dispose()
    drop_database(pg_server, name)


def test_every_subcommand_has_a_command_line_here(world: World) -> None:
    assert set(world.lines) == set(leaves())


def _check(run: CliRun, fired: str) -> None:
    """One line, a code of the table; 70 only after an injection (the injected exception, or
    one a library raised while unwinding from it — SQLAlchemy asserting its own state), and the
    injected exception itself always 70."""
    p = problems(run, internal_ok=True)
    assert not (p.traceback or p.exit_code or p.one_line), (fired, p)
    if run.code == ExitCode.INTERNAL:
        assert fired, f"an internal error with nothing injected: {run.describe()}"
    if "InjectedFault" in run.stderr:
        assert run.code == ExitCode.INTERNAL, (fired, run.describe())


@pytest.mark.parametrize("leaf", leaves())
def test_an_unexpected_exception_anywhere_is_one_line_and_exit_70(world: World, leaf: str) -> None:
    rng = random.Random(leaf)
    for argv in world.lines[leaf]:
        world.reset()
        count = Injection(None)
        clean = run_cli(argv, env=world.env, around=lambda count=count: injected(count))
        p = problems(clean)
        assert not (p.traceback or p.exit_code or p.one_line), (p, clean.stderr)
        n = count.calls
        assert n > 0
        points = {1, 2, 3, n} | {rng.randint(1, n) for _ in range(POINTS)}
        fired = 0
        for at in sorted(points):
            world.reset()
            inj = Injection(at)
            run = run_cli(argv, env=world.env, around=lambda inj=inj: injected(inj))
            fired += bool(inj.fired)
            _check(run, inj.fired)
        assert fired >= len(points) - 2, "the injections did not fire where they were counted"


@pytest.mark.parametrize("leaf", ["orphans", "recover disown", "catalog draft"])
def test_the_same_in_a_real_process(world: World, leaf: str) -> None:
    """The interpreter's own exit path (stdout flushed at exit, sys.exit) runs too."""
    argv = world.lines[leaf][-1]
    world.reset()
    count = Injection(None)
    run_cli(argv, env=world.env, around=lambda: injected(count))
    for at in (max(1, count.calls // 2), count.calls + 200):  # ~the middle; past imports too
        world.reset()
        proc = run_process_inject(at, argv, world.env, ROOT)
        _check(proc, f"call {at} in a real process")


def run_process_inject(at: int, argv: list[str], env: dict[str, str], root: Path) -> CliRun:
    done = subprocess.run(
        [sys.executable, "-m", "tests.reliability.inject", str(at), *argv],
        capture_output=True,
        env={**env, "PYTHONPATH": str(root)},
        cwd=root,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    stderr = done.stderr.decode("utf-8", "replace")
    return CliRun(
        list(argv),
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        stderr,
        escaped=stderr if "Traceback (most recent call last)" in stderr else "",
    )
