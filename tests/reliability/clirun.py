"""Running `repairtool` as a user does, and checking what a user sees.

`run_cli(argv)` runs the CLI in this process (`repairtool.cli.main`) with stdout and stderr as a
real process has them — UTF-8, stdout strict, stderr with backslash escapes — a fresh copy of the
environment, no terminal on stdin, and the engines it made disposed afterwards: fast enough for
hypothesis to run it thousands of times. `run_process(argv)` runs `python -m repairtool` for
real (arguments may be bytes: what a shell passes when they are not UTF-8).

`problems(result)` is what a user must never see: a traceback, an exit code outside the one
table (or 70, an unclassified exception: a bug), an error reported as anything but one line.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from repairtool.cli.messages import mask_secrets
from repairtool.exitcodes import ExitCode

CODES = frozenset(c.value for c in ExitCode)
ERROR_PREFIX = "repairtool: error: "
#: variables of the caller's environment a CLI run must not inherit (they choose a database)
PRIVATE = ("STAIRWAY_", "PG", "PUBSUB_", "KUBECONFIG")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")


@dataclass
class CliRun:
    """What one run showed: exit code, stdout, stderr (and an escaped exception, if any)."""

    argv: list[str]
    code: int
    stdout: str
    stderr: str
    escaped: str = ""  # the traceback of an exception that got out of main(): a bug
    engines: int = 0

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith(ERROR_PREFIX)]

    def describe(self) -> str:
        shown = mask_secrets(" ".join(a if len(a) < 80 else a[:77] + "…" for a in self.argv))
        tail = (self.escaped or self.stderr).strip().splitlines()[-3:]
        return f"`repairtool {shown}` → {self.code}: {' | '.join(tail)}"[:600]


def clean_env(extra: Mapping[str, str] | None = None, *, state_dir: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(PRIVATE)}
    base["STAIRWAY_OPS_STATE_DIR"] = state_dir
    return {**base, **(extra or {})}


@contextmanager
def _environ(env: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def _engines_disposed(made: list[Any]) -> Iterator[None]:
    """Dispose the engines a run made (the CLI leaves that to the end of its process)."""
    from repairtool.stairway import db

    real = db.make_engine

    def recording(*args: Any, **kwargs: Any) -> Any:
        engine = real(*args, **kwargs)
        made.append(engine)
        return engine

    db.make_engine = recording  # type: ignore[assignment]
    try:
        yield
    finally:
        db.make_engine = real  # type: ignore[assignment]
        for engine in made:
            engine.dispose()


class _NoTty(io.StringIO):
    def isatty(self) -> bool:
        return False


def run_cli(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    around: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> CliRun:
    """`repairtool ARGV` in this process (see the module docstring); `around()` is entered just
    around the call of `main` (e.g. the fault injector)."""
    from repairtool.cli import main

    out_bytes, err_bytes = io.BytesIO(), io.BytesIO()
    out = io.TextIOWrapper(out_bytes, encoding="utf-8", errors="strict", write_through=True)
    err = io.TextIOWrapper(err_bytes, encoding="utf-8", errors="backslashreplace")
    err.reconfigure(write_through=True)
    saved = sys.stdout, sys.stderr, sys.stdin
    sys.stdout, sys.stderr, sys.stdin = out, err, _NoTty()
    escaped = ""
    made: list[Any] = []
    try:
        with _environ(env), _engines_disposed(made):
            try:
                with around():
                    code = main(list(argv))
            except SystemExit as stop:  # argparse: --help, --version, usage errors
                code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
                if isinstance(stop.code, str):
                    err.write(stop.code + "\n")
            except BaseException:
                escaped = traceback.format_exc()
                code = 1  # what the interpreter exits with after printing a traceback
    finally:
        sys.stdout, sys.stderr, sys.stdin = saved
    return CliRun(
        list(argv),
        int(code),
        out_bytes.getvalue().decode("utf-8", "replace"),
        err_bytes.getvalue().decode("utf-8", "replace") + escaped,
        escaped,
        len(made),
    )


def run_process(
    argv: Sequence[str | bytes], *, env: Mapping[str, str], timeout: float = 120
) -> CliRun:
    """`python -m repairtool ARGV` as a real process."""
    proc = subprocess.run(
        [sys.executable, "-m", "repairtool", *argv],
        capture_output=True,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )
    shown = [a.decode("utf-8", "surrogateescape") if isinstance(a, bytes) else a for a in argv]
    stderr = proc.stderr.decode("utf-8", "replace")
    return CliRun(
        shown,
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        stderr,
        escaped=stderr if "Traceback (most recent call last)" in stderr else "",
    )


@dataclass
class Problems:
    """What a user must never see in one run (empty lists: none)."""

    traceback: list[str] = field(default_factory=list)
    exit_code: list[str] = field(default_factory=list)
    one_line: list[str] = field(default_factory=list)


def problems(run: CliRun, *, internal_ok: bool = False) -> Problems:
    """Check one run: no traceback; an exit code of the table (70 only when `internal_ok`: an
    exception was injected on purpose); a failure is one `repairtool: error:` line — the last
    line of stderr, with no control characters — and a success prints none."""
    p = Problems()
    if run.escaped or "Traceback (most recent call last)" in run.stderr + run.stdout:
        p.traceback.append(run.describe())
    allowed = CODES if internal_ok else CODES - {ExitCode.INTERNAL.value}
    if run.code not in allowed:
        p.exit_code.append(run.describe())
    errors = run.error_lines
    if run.code in (ExitCode.OK, ExitCode.FINDINGS):
        if errors:
            p.one_line.append(f"an error line with exit {run.code}: {run.describe()}")
    elif run.code in CODES and run.code != ExitCode.INTERRUPTED and not run.escaped:
        last = run.stderr.rstrip("\n").split("\n")[-1] if run.stderr.strip() else ""
        if len(errors) != 1 or not last.startswith(ERROR_PREFIX):
            p.one_line.append(f"not one error line: {run.describe()}")
        elif _CONTROL.search(last) or len(last) > 1200:
            p.one_line.append(f"control characters or a huge line: {last[:200]!r}")
    return p
