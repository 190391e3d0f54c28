"""What every Invoke task shares: error → exit-code mapping, reporters, run directories.

Tasks stay thin: parse options, call opskit, print, pick the exit code. An :class:`OpsError`
(or a ``repairtool`` error) becomes ``invoke.Exit("error: <one line>", code)``: one line on
stderr and a distinct exit code (see :mod:`opskit.errors`).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from opskit import paths
from opskit.envs import Env, load_env
from opskit.errors import ExitCode, UsageError
from opskit.events import ConsoleView, Event, JournalWriter, Reporter
from repairtool.clock import parse_rfc3339, utcnow
from repairtool.durations import InvalidDuration, parse_duration
from repairtool.exitcodes import exit_code_of, one_line

F = TypeVar("F", bound=Callable[..., Any])


def exit_for(exc: BaseException) -> tuple[str, int]:
    """The one-line message and exit code for an error (:mod:`repairtool.exitcodes`)."""
    return one_line(exc), int(exit_code_of(exc))


def guard(fn: F) -> F:
    """Turn ops errors into ``invoke.Exit`` with a one-line message and the error's code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from invoke.exceptions import Exit

        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            raise Exit("interrupted", int(ExitCode.INTERRUPTED)) from None
        except Exit:
            raise
        except Exception as exc:  # every error is one line and a code; a bug is INTERNAL
            message, code = exit_for(exc)
            raise Exit(f"error: {message}", code) from None

    return wrapper  # type: ignore[return-value]


def env_of(name: str | None) -> Env:
    return load_env(name)


def console_reporter(
    run_dir: Path | None = None,
    *,
    quiet: bool = False,
    show: Callable[[Event], bool] | None = None,
) -> Reporter:
    """Console view (unless quiet; ``show`` filters it) plus the run's ``events.jsonl``."""
    handlers: list[Any] = []
    if not quiet:
        handlers.append(ConsoleView(sys.stdout, show=show))
    if run_dir is not None:
        handlers.append(JournalWriter(run_dir / "events.jsonl"))
    return Reporter(handlers)


def run_dir(prefix: str, env: Env) -> Path:
    return paths.new_run_dir(f"{prefix}-{env.name}")


_TS = re.compile(r"^\d{4}-\d{2}-\d{2}")


def parse_since(value: str, now: dt.datetime | None = None) -> dt.datetime:
    """``--since``: a duration back from now (``1h``, ``3d``, ``2h30m``) or an RFC 3339 time."""
    now = now or utcnow()
    text = value.strip()
    if _TS.match(text):
        try:
            return parse_rfc3339(text)
        except ValueError:
            raise UsageError(f"--since {value!r}: not an RFC 3339 time") from None
    try:
        return now - parse_duration(text)
    except InvalidDuration as exc:
        raise UsageError(f"--since {value!r}: {exc}") from None


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
