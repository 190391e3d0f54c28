"""Shared CLI plumbing: database arguments, the output formats, the help layout. Imports stay
light: the database layer (SQLAlchemy, psycopg) is imported only when a command runs, so that
``repairtool --help`` and shell completion stay fast."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repairtool.cli import validate
from repairtool.durations import format_duration
from repairtool.errors import RefusedError, UsageError
from repairtool.exitcodes import help_text

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from repairtool.stairway.pgread import ReadDb
    from repairtool.target import Target

EXIT_CODES_HELP = help_text()
OUTPUTS = ("table", "wide", "json", "markdown")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written, and every option's default shown (unless it has none)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        quiet: tuple[object, ...] = (None, False, [], argparse.SUPPRESS)
        if "default" in text or default in quiet or not action.option_strings:
            return text
        shown = format_duration(default) if isinstance(default, dt.timedelta) else default
        return f"{text} (default: {shown})"


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


def add_output_args(p: argparse.ArgumentParser, wide: str = "more columns") -> None:
    """``-o table|wide|json|markdown`` and ``--json`` (= ``-o json``), as kubectl and temporal."""
    g = p.add_argument_group("output")
    g.add_argument(
        "-o",
        "--output",
        choices=OUTPUTS,
        default="table",
        help=f"table; wide ({wide}); json (one versioned document); markdown (ready to paste"
        " into an incident channel)",
    )
    g.add_argument(
        "--json", dest="output", action="store_const", const="json", help="same as -o json"
    )


def add_yes_arg(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument("-y", "--yes", action="store_true", help="do not ask y/N (scripts, CI)")


def duration(text: str) -> Any:
    """argparse type for the one duration grammar (`90s`, `10m`, `1h30m`, `3d`)."""
    return validate.duration(text)


def state_dir_of(args: argparse.Namespace) -> Path:
    # lazy: localpg pulls in the Postgres tooling; only commands that run need it
    from repairtool.localpg import default_state_dir

    return Path(args.state_dir).absolute() if args.state_dir else default_state_dir()


def _choose(args: argparse.Namespace) -> None:
    """Without `--env`, `--db` or `--env-file`: the environment `$STAIRWAY_OPS_ENV` or Invoke's
    configuration chose, if any (it becomes `args.env`). Once per command."""
    if getattr(args, "_chosen", None) is not None:
        return
    args._chosen = "--env" if getattr(args, "env", None) else ""
    if args._chosen or getattr(args, "db", None) or getattr(args, "env_file", None):
        return
    # lazy: the chooser lives in the ops layer, reached through an entry point
    from repairtool.target import default_env

    chosen = default_env()
    args._env_files = chosen.env_files
    # precedence: $STAIRWAY_OPS_ENV, then $STAIRWAY_DB_URL, then Invoke's configuration
    by_variable = chosen.source.startswith("$")
    if chosen.name and (by_variable or not os.environ.get("STAIRWAY_DB_URL", "").strip()):
        args.env, args._chosen = chosen.name, chosen.source


def target_of(args: argparse.Namespace) -> Target | None:
    """The `--env` target (resolved once per command)."""
    _choose(args)
    if not getattr(args, "env", None):
        return None
    cached: Target | None = getattr(args, "_target", None)
    if cached is None:
        # lazy: resolving an env loads the ops layer through an entry point
        from repairtool.target import resolve

        if args.db:
            raise UsageError("give either --db or --env, not both")
        cached = resolve(args.env)
        args._target = cached
    return cached


def open_engine(args: argparse.Namespace) -> Engine:
    """The Stairway database the command acts on; names it on the first line of stderr. A
    command that changes something (`--fix`) refuses when the database was not chosen (only the
    state directory's `local.env` fallback) and more than one environment file exists."""
    # lazy: SQLAlchemy and psycopg take ~0.3 s to import; --help must not wait for them
    from repairtool.stairway.db import make_engine, resolve_settings
    from repairtool.stairway.dburl import render_hidden

    target = target_of(args)
    if target is not None:
        _announce_once(f"environment: {target.name} ({args._chosen or '--env'})", args)
        return make_engine(target.db)
    fallback = state_dir_of(args) / "local.env"
    settings = resolve_settings(args.db, args.env_file, default_env_file=fallback)
    implicit = settings.source == str(fallback)
    _refuse_fix_on_fallback(args, implicit, fallback)
    how = "fallback: `repairtool local up`'s database" if implicit else settings.source
    _announce_once(f"database: {render_hidden(settings.url)} ({how})", args)
    return make_engine(settings)


def open_reader(args: argparse.Namespace) -> ReadDb:
    """The database for reading, on psycopg directly: read commands never import SQLAlchemy
    (the engine for changes comes from `open_engine`, only when one is applied). Names it on
    the first line of stderr and refuses a `--fix` on the fallback, as `open_engine` does."""
    # lazy: psycopg (~0.1 s) only when a command reads the database; --help must not wait
    from repairtool.stairway.dburl import render_hidden, resolve_url
    from repairtool.stairway.pgread import ReadDb

    target = target_of(args)
    if target is not None:
        _announce_once(f"environment: {target.name} ({args._chosen or '--env'})", args)
        return ReadDb(target.db.url)
    fallback = state_dir_of(args) / "local.env"
    url, source = resolve_url(args.db, args.env_file, default_env_file=fallback)
    implicit = source == str(fallback)
    _refuse_fix_on_fallback(args, implicit, fallback)
    how = "fallback: `repairtool local up`'s database" if implicit else source
    _announce_once(f"database: {render_hidden(url)} ({how})", args)
    return ReadDb(url)


def _refuse_fix_on_fallback(args: argparse.Namespace, implicit: bool, fallback: Path) -> None:
    if implicit and getattr(args, "fix", False) and getattr(args, "_env_files", 0) > 1:
        raise RefusedError(
            f"no environment chosen (envs/ has {args._env_files} files) and --fix changes"
            f" something: refusing to use the fallback database of {fallback}; pass --env NAME"
            " or --db URL, or set STAIRWAY_OPS_ENV=NAME"
        )


def _announce_once(line: str, args: argparse.Namespace) -> None:
    """`_announce`, unless the command named its database already (a `--fix` reads with
    `open_reader`, then changes through `open_engine`)."""
    if getattr(args, "_where", None) is None:
        _announce(line, args)


def _announce(line: str, args: argparse.Namespace | None = None) -> None:
    """The environment a command acts on: the first line on stderr (kept for the document), or
    an event of the command's own log when it writes JSON lines (`repairtool watch`)."""
    to = getattr(args, "_announce_to", None)
    if to is not None:
        to(line)
    else:
        print(line, file=sys.stderr, flush=True)
    if args is not None:
        args._where = line.split(": ", 1)[1]


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


def md_cell(value: Any) -> str:
    """One Markdown table cell: one line, ``|`` escaped, empty shown as ``-``."""
    text = "-" if value is None or value == "" else str(value)
    return " ".join(text.replace("\\", "\\\\").replace("|", "\\|").split())


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(md_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


class View:
    """What a read command shows, in every output format of ``-o``.

    ``columns``/``rows`` are the table; ``wide_columns``/``wide_rows`` the wide one (default:
    the same); ``before``/``after`` the lines around it in the table formats; ``title`` heads
    the Markdown; ``doc`` is the versioned JSON document.
    """

    # a plain class: dataclasses would import inspect and ast on every `repairtool --help`
    def __init__(
        self,
        doc: dict[str, Any],
        columns: Sequence[str] = (),
        rows: Sequence[Sequence[Any]] = (),
        wide_columns: Sequence[str] | None = None,
        wide_rows: Sequence[Sequence[Any]] | None = None,
        title: str = "",
        before: list[str] | None = None,
        after: list[str] | None = None,
        empty: str = "",
    ) -> None:
        self.doc = doc
        self.columns = columns
        self.rows = rows
        self.wide_columns = wide_columns
        self.wide_rows = wide_rows
        self.title = title
        self.before = list(before or ())
        self.after = list(after or ())
        self.empty = empty

    def render(self, output: str) -> str:
        if output == "json":
            return json.dumps(self.doc, indent=2, default=str, ensure_ascii=False)
        wide = output in ("wide", "markdown") and self.wide_rows is not None
        columns = self.wide_columns if wide and self.wide_columns else self.columns
        rows = self.wide_rows if wide and self.wide_rows is not None else self.rows
        if output == "markdown":
            parts = [f"**{self.title}**"] if self.title else []
            parts += [f"* {line.strip()}" for line in self.before if line.strip()]
            parts.append(md_table(columns, rows) if rows else self.empty or "(nothing)")
            parts += [f"* {line.strip()}" for line in self.after if line.strip()]
            return "\n\n".join(p for p in parts if p)
        lines = list(self.before)
        if rows:
            lines.append(table(columns, rows))
        elif self.empty:
            lines.append(self.empty)
        return "\n".join([*lines, *self.after])


def show(args: argparse.Namespace, view: View) -> None:
    """Print ``view`` in the format of ``-o``."""
    sys.stdout.write(view.render(getattr(args, "output", "table")).rstrip("\n") + "\n")
