"""`repairtool local …`: the project-managed local Postgres with a Stairway database on it."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from repairtool.cli.common import state_dir_of
from repairtool.errors import UsageError

if TYPE_CHECKING:
    from repairtool.localpg import LocalPostgres

DB_NAME = "stairway"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("local", help="start/stop the local Postgres with a Stairway database")
    acts = p.add_subparsers(dest="local_action", required=True, metavar="ACTION")
    for name, helptext, func in (
        ("up", "start Postgres (first time: initdb) and create the Stairway database", cmd_up),
        ("down", "stop Postgres (data is kept; `destroy` deletes it)", cmd_down),
        ("status", "is it running, where, which URL", cmd_status),
        ("destroy", "stop Postgres and delete its data", cmd_destroy),
    ):
        q = acts.add_parser(name, help=helptext)
        q.add_argument("--state-dir", type=Path, metavar="DIR")
        q.add_argument("--pg-bin", type=Path, metavar="DIR", help="Postgres binaries to use")
        if name == "up":
            q.add_argument(
                "--engine-version",
                default="0.0.60",
                help="create the schema as this engine version would (default 0.0.60, the 2021 "
                "generation; also 0.0.43, 1.1.14, …)",
            )
            q.add_argument(
                "--seed",
                choices=["none", "2021"],
                default="none",
                help="2021: add the flights the 2021 experiments left RUNNING",
            )
        q.set_defaults(func=_checked(func))


def _checked(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A state directory that is a file, or one the file system refuses, is bad input: one line
    naming the path, not an internal error."""

    def run(args: argparse.Namespace) -> int:
        state = state_dir_of(args)
        if state.exists() and not state.is_dir():
            raise UsageError(f"--state-dir {state}: not a directory")
        try:
            return func(args)
        except (NotADirectoryError, IsADirectoryError, PermissionError) as error:
            where = error.filename or state
            raise UsageError(f"{where}: {error.strerror or type(error).__name__}") from None

    return run


def _local(args: argparse.Namespace) -> LocalPostgres:
    from repairtool.localpg import LocalPostgres  # lazy: the Postgres tooling, only when run

    return LocalPostgres(state_dir_of(args), pg_bin=args.pg_bin)


def write_env_file(state_dir: Path, url: str) -> Path:
    """`<state>/local.env`: STAIRWAY_DB_URL for `repairtool` (mode 600: it holds the password)."""
    path = state_dir / "local.env"
    path.write_text(f"# written by `repairtool local up`\nSTAIRWAY_DB_URL={url}\n")
    os.chmod(path, 0o600)
    return path


def cmd_up(args: argparse.Namespace) -> int:
    # lazy: psycopg and SQLAlchemy (~0.3 s) only when the command runs; --help must not wait
    import psycopg
    from sqlalchemy import create_engine

    from repairtool.localpg import create_database
    from repairtool.seed import seed_2021
    from repairtool.stairway.schema import EngineVersion, create_schema

    version = EngineVersion.parse(args.engine_version)
    local = _local(args)
    server = local.start()
    with psycopg.connect(
        host=str(server.socket_dir), port=server.port, user="postgres", dbname="postgres"
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone()
    url = server.url(DB_NAME)
    if not exists:
        create_database(server, DB_NAME)
        engine = create_engine(url)
        with engine.begin() as c:
            create_schema(c, version)
        print(f"created database {DB_NAME} with the Stairway {version} schema")
    if args.seed == "2021":
        engine = create_engine(url)
        added = seed_2021(engine)
        print(f"seeded {added} flights from the 2021 experiments" if added else "already seeded")
    env = write_env_file(local.state_dir, url.render_as_string(hide_password=False))
    print(f"Postgres running on 127.0.0.1:{server.port} (data {server.data_dir})")
    print(f"  {server.safe_url(DB_NAME)}   (password in {env}; repairtool reads it from there)")
    print(f"  {server.psql_command(DB_NAME)}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    print("stopped" if _local(args).stop() else "not running")
    return 0


def cmd_destroy(args: argparse.Namespace) -> int:
    local = _local(args)
    local.destroy()
    (local.state_dir / "local.env").unlink(missing_ok=True)
    print(f"deleted {local.home}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    st = _local(args).status()
    if st.running:
        print(f"running: pid {st.pid}, 127.0.0.1:{st.port}, data {st.data_dir}")
        return 0
    print("initialised, not running" if st.initialized else "not initialised")
    return 1
