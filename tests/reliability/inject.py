"""Unexpected exceptions, injected anywhere: the N-th Python call a command makes raises.

`injected(Injection(at=N))` installs a profile hook (`sys.setprofile`) that counts the calls
into the tool's own code and the libraries it drives (SQLAlchemy, psycopg, argparse, json,
PyYAML) and raises `InjectedFault` — an exception no code expects — inside the N-th one;
`at=None` only counts. `repairtool.cli.main` and `entry` themselves are not counted (an exception
at their call is one in their caller), nor are module bodies and finalizers (a half-imported
module would poison the process for the next run; an exception in `__del__` or a garbage
collector callback is the interpreter's, not a command's).

`every_subcommand(...)` is one command line per leaf of `repairtool`'s parser, against a seeded
database; `leaves()` lists the leaves, so a new subcommand without a line here fails the test.

    python -m tests.reliability.inject N ARGV...    (a real process: `repairtool ARGV` with the
                                                     N-th call raising)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

WATCHED = ("repairtool", "sqlalchemy", "psycopg", "argparse", "json", "yaml", "shtab")
#: module bodies, finalizers and the garbage collector's callbacks (they run wherever the
#: collector happens to start: an exception there is "Exception ignored", not the command's)
SKIPPED_FRAMES = frozenset({"<module>", "__del__", "_remove", "<genexpr>", "_collection_gced"})
#: the entry points themselves: an exception "at the call of main" is one in its caller
ENTRY_POINTS = frozenset({("repairtool.cli", "main"), ("repairtool.cli", "entry")})


class InjectedFault(Exception):
    """The exception nobody expects (raised by the injector)."""


@dataclass
class Injection:
    at: int | None
    calls: int = 0
    fired: str = ""


#: finalizers: a call anywhere below one runs wherever the garbage collector starts
FINALIZERS = frozenset({"__del__", "_remove", "_collection_gced"})


def _in_finalizer(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_name in FINALIZERS:
            return True
        frame = frame.f_back
    return False


@contextmanager
def injected(state: Injection, kind: type[BaseException] = InjectedFault) -> Iterator[Injection]:
    """Count calls into `state.calls`; raise `kind` in call number `state.at` (if any)."""

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event != "call" or frame.f_code.co_name in SKIPPED_FRAMES:
            return
        module = str(frame.f_globals.get("__name__", ""))
        if not module.startswith(WATCHED) or (module, frame.f_code.co_name) in ENTRY_POINTS:
            return
        state.calls += 1
        if state.calls == state.at:
            if _in_finalizer(frame):
                state.at += 1  # a call made by a finalizer is the collector's: fire at the next
                return
            sys.setprofile(None)
            state.fired = f"{module}.{frame.f_code.co_qualname}"
            raise kind(f"injected at call {state.at} ({state.fired})")

    sys.setprofile(profile)
    try:
        yield state
    finally:
        sys.setprofile(None)


def leaves(
    parser: argparse.ArgumentParser | None = None, prefix: tuple[str, ...] = ()
) -> list[str]:
    """Every leaf subcommand of `repairtool` ("orphans", "flights list", …)."""
    if parser is None:
        from repairtool.cli import build_parser

        parser = build_parser()
    out: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += leaves(sub, (*prefix, name))
            return out
    return [" ".join(prefix)]


def every_subcommand(
    url: str, *, flight: str, live: str, dead: str, state_dir: Path
) -> dict[str, list[list[str]]]:
    """Command lines per leaf, each reaching as deep as it can: the database, the plan, the
    apply (`--fix` where the command has one), every output format somewhere."""
    db = ["--db", url]
    seen = ["--expect-status", "RUNNING", "--expect-owner", dead]
    fix = ["--fix", "--reason", "injected", "-y"]
    return {
        "orphans": [
            ["orphans", *db, "--live-instances", live],
            ["orphans", *db, "--live-instances", live, "--action", "fail", *fix, "--json"],
        ],
        "decode": [["decode", *db, "--all", "-o", "wide"], ["decode", *db, *fix, "--json"]],
        "catalog draft": [["catalog", "draft", *db, "--out", str(state_dir / "draft.yaml")]],
        "catalog show": [["catalog", "show"]],
        "flights list": [["flights", "list", *db, "-o", "markdown", "--status", "RUNNING"]],
        "flights count": [["flights", "count", *db, "--submitted-after", "30d"]],
        "flights show": [["flights", "show", flight, *db, "-o", "wide"]],
        "flights instances": [["flights", "instances", *db, "--json"]],
        "flights audit": [["flights", "audit", *db, "-o", "wide"]],
        "flights generation": [["flights", "generation", *db]],
        "recover disown": [
            ["recover", "disown", flight, *db, "--live-instances", live],
            ["recover", "disown", flight, *db, "--live-instances", live, *seen, *fix, "--json"],
        ],
        "recover force-ready": [["recover", "force-ready", flight, *db, "--force", "--json"]],
        "recover force-fatal": [
            ["recover", "force-fatal", flight, *db, "--live-instances", live, *seen, *fix]
        ],
        "recover enqueue": [["recover", "enqueue", flight, *db, "--cluster", "c", "--json"]],
        "recover instance": [["recover", "instance", dead, *db, "--live-instances", live]],
        "local up": [["local", "up", "--state-dir", str(state_dir), "--pg-bin", "/nonexistent"]],
        "local down": [["local", "down", "--state-dir", str(state_dir)]],
        "local status": [["local", "status", "--state-dir", str(state_dir)]],
        "local destroy": [["local", "destroy", "--state-dir", str(state_dir / "gone")]],
        "completion": [["completion", "bash"], ["completion", "zsh"]],
        "watch": [
            ["watch", *db, "--live-instances", live, "--once"],
            ["watch", *db, "--live-instances", live, "--once", "--no-decode"],
        ],
    }


def main(argv: list[str] | None = None) -> int:
    """A real process: the N-th call raises (`python -m tests.reliability.inject N ARGV…`)."""
    args = sys.argv[1:] if argv is None else argv
    from repairtool.cli import entry

    with injected(Injection(int(args[0]))):
        sys.argv = ["repairtool", *args[1:]]
        entry()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
