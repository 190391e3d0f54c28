"""Shared CLI plumbing: database arguments, output helpers, confirmation. Imports stay light."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repairtool.errors import RefusedError
from repairtool.exitcodes import help_text

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from repairtool.target import Target

EXIT_CODES_HELP = help_text()


def add_db_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("database")
    g.add_argument(
        "--env",
        metavar="NAME",
        help="an environment from envs/NAME.yaml (local = the running sandbox): its database,"
        " pods and work queue",
    )
    g.add_argument(
        "--db",
        metavar="URL",
        help="Stairway database URL (postgresql://USER@HOST:PORT/DB); password via PGPASSWORD "
        "or ~/.pgpass. Default: $STAIRWAY_DB_URL, else the env file",
    )
    g.add_argument(
        "--env-file",
        type=Path,
        metavar="FILE",
        help="dotenv file with STAIRWAY_DB_URL=… (default: $STAIRWAY_OPS_ENV_FILE, else "
        "<state dir>/local.env written by `repairtool local up`)",
    )
    g.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="state directory (default: $STAIRWAY_OPS_STATE_DIR, else ./.stairway-ops)",
    )


def duration(text: str) -> Any:
    """argparse type for `90s`, `10m`, `2h`, `3d` (a bad value is a one-line usage error)."""
    from repairtool.durations import parse_duration
    from repairtool.errors import UsageError

    try:
        return parse_duration(text)
    except UsageError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def state_dir_of(args: argparse.Namespace) -> Path:
    from repairtool.localpg import default_state_dir

    return Path(args.state_dir).absolute() if args.state_dir else default_state_dir()


def target_of(args: argparse.Namespace) -> Target | None:
    """The `--env` target (resolved once per command)."""
    if not getattr(args, "env", None):
        return None
    cached: Target | None = getattr(args, "_target", None)
    if cached is None:
        from repairtool.target import resolve

        if args.db:
            from repairtool.errors import UsageError

            raise UsageError("give either --db or --env, not both")
        cached = resolve(args.env)
        args._target = cached
    return cached


def open_engine(args: argparse.Namespace) -> Engine:
    from repairtool.stairway.db import make_engine, resolve_settings

    target = target_of(args)
    if target is not None:
        return make_engine(target.db)
    settings = resolve_settings(
        args.db, args.env_file, default_env_file=state_dir_of(args) / "local.env"
    )
    return make_engine(settings)


def print_json(doc: Any) -> None:
    # one write: json.dump would issue a write per token (100k+ for a large document)
    sys.stdout.write(json.dumps(doc, indent=2, default=str, ensure_ascii=False) + "\n")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table."""
    cells = [[("" if c is None else str(c)) for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in cells:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    line = "  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()
    out = [line]
    for r in cells:
        out.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())
    return "\n".join(out)


def confirm(question: str, *, yes: bool) -> None:
    """Ask y/N on a terminal. `--yes` skips the question; no terminal and no --yes refuses."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise RefusedError(
            "refusing to change flights without a terminal to confirm on; re-run with --yes"
        )
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise RefusedError("not confirmed; nothing was changed")


def require_reason(reason: str | None) -> str:
    if not reason or not reason.strip():
        raise RefusedError("changing flights requires --reason TEXT (it goes into the audit trail)")
    return reason.strip()
