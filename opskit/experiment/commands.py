"""Commands an experiment runs, as real processes, recorded for the journal.

A runbook may quote a command only if the run that produced its journal executed it
(:mod:`opskit.runbooks`). So the experiment runs what an operator would type — ``inv run-test``,
``inv kill-pod``, ``repairtool orphans --env local --json``, ``psql "…" -c …`` — through
``bash -c TEXT`` (the recorded text is exactly what ran), from the project root, and records
each one as a :class:`opskit.journal.CommandRecord`: purpose id, text, start time, exit code,
duration and the tail of its output. Output is masked with :func:`opskit.journal.redact` before
it is shown, logged (``<run>/commands/NN-<id>.log``) or recorded; secrets reach a command only
through its environment (``PGPASSWORD``), never its text.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from opskit.events import Level, Reporter
from opskit.journal import CommandRecord, redact
from repairtool.clock import rfc3339, utcnow

#: how many output lines a record keeps (the full output is in the command's log file)
TAIL_LINES = 25
#: one output line is cut at this many characters in the tail
TAIL_WIDTH = 400


def join(argv: Sequence[str]) -> str:
    """A command line a shell turns back into exactly ``argv``."""
    return shlex.join(argv)


@dataclass(frozen=True)
class CommandResult:
    """A finished command: its record, its (masked) stdout — read back only when it is a
    machine-readable document — and where its whole output was logged."""

    record: CommandRecord
    stdout: str
    output: str
    timed_out: bool = False
    log: Path | None = None

    @property
    def rc(self) -> int | None:
        return self.record.rc

    @property
    def ok(self) -> bool:
        return self.record.rc == 0


class _Capture:
    """Reads a process's stdout and stderr line by line (threads), masks and forwards them."""

    def __init__(
        self, log: CommandLog, command_id: str, proc: subprocess.Popen[str], quiet: bool
    ) -> None:
        self._log = log
        self._id = command_id
        self._quiet = quiet
        self.ended: float | None = None
        self.lines: list[str] = []
        self.stdout: list[str] = []
        self._lock = threading.Lock()
        assert proc.stdout is not None and proc.stderr is not None
        self._threads = [
            threading.Thread(target=self._read, args=(proc.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(proc.stderr, False), daemon=True),
        ]
        self._threads.append(threading.Thread(target=self._wait, args=(proc,), daemon=True))
        for t in self._threads:
            t.start()

    def _wait(self, proc: subprocess.Popen[str]) -> None:
        proc.wait()
        self.ended = time.monotonic()

    def _read(self, stream: IO[str], is_stdout: bool) -> None:
        with contextlib.suppress(ValueError, OSError):
            for raw in stream:
                line = self._log.mask(raw.rstrip("\n"))
                with self._lock:
                    self.lines.append(line)
                    if is_stdout:
                        self.stdout.append(line)
                self._log.reporter.emit(
                    "command.output",
                    f"  | {line}",
                    id=self._id,
                    stream="stdout" if is_stdout else "stderr",
                    quiet=self._quiet,
                )

    def join(self, timeout: float) -> None:
        """Wait for both streams to end (a grandchild holding the pipe must not block us)."""
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))


class RunningCommand:
    """A command started in the background (e.g. ``inv run-test`` while the pod is killed)."""

    def __init__(
        self,
        log: CommandLog,
        command_id: str,
        command: str,
        proc: subprocess.Popen[str],
        started: dt.datetime,
        number: int,
        quiet: bool = False,
    ) -> None:
        self._log = log
        self.number = number
        self.id = command_id
        self.command = command
        self.proc = proc
        self.started = started
        self._t0 = time.monotonic()
        self._capture = _Capture(log, command_id, proc, quiet)
        self._result: CommandResult | None = None

    def running(self) -> bool:
        return self.proc.poll() is None

    def output_so_far(self) -> list[str]:
        with self._capture._lock:
            return list(self._capture.lines)

    def wait(self, timeout: float) -> CommandResult:
        """Wait up to ``timeout`` s; a command still running then is stopped (rc ``None``)."""
        if self._result is not None:
            return self._result
        timed_out = False
        try:
            self.proc.wait(timeout=max(0.0, timeout))
        except subprocess.TimeoutExpired:
            timed_out = True
            self.stop()
        self._capture.join(2.0)
        rc = None if timed_out else self.proc.returncode
        self._result = self._log._finish(self, rc, timed_out)
        return self._result

    def stop(self) -> None:
        """SIGTERM the command's process group, SIGKILL after 5 s."""
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    @property
    def elapsed(self) -> float:
        """Seconds from start to exit (or to now, while it runs)."""
        end = self._capture.ended
        return (end if end is not None else time.monotonic()) - self._t0


class CommandLog:
    """Runs commands and keeps their records, in the order they started."""

    def __init__(
        self,
        *,
        cwd: Path,
        env: Mapping[str, str],
        reporter: Reporter,
        log_dir: Path,
        secrets: Iterable[str] = (),
    ) -> None:
        self.cwd = cwd
        self.env = dict(env)
        self.reporter = reporter
        self.log_dir = log_dir
        self._secrets: list[str] = [s for s in secrets if s]
        self._records: list[tuple[int, CommandRecord]] = []
        self._count = 0
        self._lock = threading.Lock()
        self._running: list[RunningCommand] = []

    # -- secrets ------------------------------------------------------------------------------
    def add_secret(self, value: str | None) -> None:
        if value and value not in self._secrets:
            self._secrets.append(value)

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(self._secrets)

    def mask(self, text: str) -> str:
        return redact(text, self._secrets)

    # -- running ------------------------------------------------------------------------------
    def start(
        self,
        command_id: str,
        command: str,
        *,
        extra_env: Mapping[str, str] | None = None,
        quiet: bool = False,
    ) -> RunningCommand:
        """Start ``bash -c COMMAND`` in its own process group; output is read as it comes
        (``command.output`` events; ``quiet`` marks them for views that hide bulky output)."""
        if self.mask(command) != command:
            raise ValueError(f"command {command_id!r} would carry a secret in its text")
        env = dict(self.env)
        env.update(extra_env or {})
        shell = shutil.which("bash") or "/bin/sh"
        started = utcnow()
        self.reporter.emit("command.start", f"$ {command}", id=command_id, command=command)
        proc = subprocess.Popen(
            [shell, "-c", command],
            cwd=str(self.cwd),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        with self._lock:
            self._count += 1
            running = RunningCommand(self, command_id, command, proc, started, self._count, quiet)
            self._running.append(running)
        return running

    def run(
        self,
        command_id: str,
        command: str,
        *,
        timeout: float = 120.0,
        extra_env: Mapping[str, str] | None = None,
        quiet: bool = False,
    ) -> CommandResult:
        """Run a command to its end (stopped after ``timeout`` s) and record it."""
        return self.start(command_id, command, extra_env=extra_env, quiet=quiet).wait(timeout)

    def _finish(self, running: RunningCommand, rc: int | None, timed_out: bool) -> CommandResult:
        lines = running.output_so_far()
        with running._capture._lock:
            stdout = "\n".join(running._capture.stdout)
        duration = round(running.elapsed, 3)
        tail = tuple(
            line if len(line) <= TAIL_WIDTH else line[: TAIL_WIDTH - 1] + "…"
            for line in lines[-TAIL_LINES:]
        )
        if timed_out:
            tail = (*tail, f"(stopped after {duration:.0f} s)")
        record = CommandRecord(
            id=running.id,
            command=running.command,
            at=rfc3339(running.started),
            rc=rc,
            duration_s=duration,
            output_tail=tail,
        )
        n = running.number
        with self._lock:
            self._records.append((n, record))
            with contextlib.suppress(ValueError):
                self._running.remove(running)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{n:02d}-{running.id}.log"
        log.write_text(
            f"$ {running.command}\n" + "\n".join(lines) + f"\n# rc={rc} {duration:.1f}s\n"
        )
        level: Level = "info" if rc == 0 else "warn"
        self.reporter.emit(
            "command.done",
            f"  -> {running.id}: exit {rc if rc is not None else 'stopped'} in {duration:.1f}s",
            level=level,
            id=running.id,
            rc=rc,
            duration_s=duration,
        )
        return CommandResult(record, self.mask(stdout), "\n".join(lines), timed_out, log)

    def stop_all(self) -> None:
        """Stop (and record) every command still running."""
        with self._lock:
            running = list(self._running)
        for r in running:
            r.wait(0.0)

    @property
    def records(self) -> tuple[CommandRecord, ...]:
        """Every finished command, ordered by start time."""
        with self._lock:
            records = [r for _, r in self._records]
        return tuple(sorted(records, key=lambda r: r.at))
