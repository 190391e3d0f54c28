"""``inv sandbox.up --watch``: the same ``repairtool watch`` next to the local sandbox.

The watcher runs as its own process (its own session, so it outlives ``inv``) with
``--env <local env>``: the sandbox's database, its loopback Kubernetes API for the pod list and
its Pub/Sub emulator for READY messages — the very code path a cluster runs. Its JSON log goes
to ``<sandbox state>/watch.log``; ``watch.json`` records its pid and metrics URL (read from its
``metrics.listening`` log line). ``inv sandbox.down`` stops it (SIGTERM: a clean stop).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from opskit import paths
from opskit.envs import Env
from opskit.errors import OpsTimeout, Unavailable
from repairtool.durations import format_duration
from sandbox.lifecycle import child_env
from sandbox.procs import alive, wait_until

STATE_FILE = "watch.json"
LOG_FILE = "watch.log"
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class SandboxWatch:
    """A running watcher: its pid, where its metrics are, where it logs."""

    pid: int
    metrics_url: str
    log: Path
    args: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "metrics_url": self.metrics_url,
            "log": str(self.log),
            "args": list(self.args),
        }


def watch_command(
    env: Env,
    *,
    interval: timedelta,
    auto_resume: bool = False,
    max_per_hour: int = 6,
    min_age: timedelta = timedelta(minutes=10),
) -> list[str]:
    args = [
        "watch",
        "--env",
        env.name,
        "--interval",
        format_duration(interval),
        "--metrics-addr",
        "127.0.0.1:0",
    ]
    if auto_resume:
        args += [
            "--auto-resume",
            "dead_owner",
            "--max-per-hour",
            str(max_per_hour),
            "--min-age",
            format_duration(min_age),
        ]
    return args


def start(env: Env, args: list[str], *, timeout: float = 60.0) -> SandboxWatch:
    """Start ``repairtool <args>`` for the running sandbox; wait for its metrics endpoint."""
    state = paths.sandbox_state_dir()
    running = status()
    if running is not None:
        raise Unavailable(
            f"a watcher is already running for the sandbox (pid {running.pid}); "
            "`inv sandbox.down` stops it"
        )
    log = state / LOG_FILE
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(b"")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "repairtool", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=child_env(),
        )
    _CHILDREN[proc.pid] = proc
    deadline = time.monotonic() + timeout
    url = ""
    while time.monotonic() < deadline and not url:
        url = _metrics_url(log)
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise Unavailable(f"the watcher exited ({proc.returncode}): {tail[0]}")
        time.sleep(0.1)
    if not url:
        _stop_pid(proc.pid)
        raise OpsTimeout(f"the watcher did not serve metrics within {timeout:g}s; see {log}")
    watch = SandboxWatch(proc.pid, url, log, tuple(args))
    (state / STATE_FILE).write_text(json.dumps(watch.to_json(), indent=2))
    return watch


def _metrics_url(log: Path) -> str:
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and record.get("event") == "metrics.listening":
                return str(record["metrics_url"])
    return ""


def _is_watcher(pid: int) -> bool:
    """The pid still runs a `repairtool watch` (not a process that reused the number)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"repairtool" in cmd and b"watch" in cmd


def status() -> SandboxWatch | None:
    """The sandbox's running watcher, or None."""
    path = paths.sandbox_state_dir() / STATE_FILE
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    pid = int(data["pid"])
    if not alive(pid) or not _is_watcher(pid):
        return None
    return SandboxWatch(pid, str(data["metrics_url"]), Path(data["log"]), tuple(data["args"]))


def _stop_pid(pid: int, grace: float = 15.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    proc = _CHILDREN.pop(pid, None)
    if proc is not None:
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return
    if not wait_until(lambda: not alive(pid), grace):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def stop() -> bool:
    """Stop the sandbox's watcher (SIGTERM; it finishes its scan). Returns whether one ran."""
    running = status()
    (paths.sandbox_state_dir() / STATE_FILE).unlink(missing_ok=True)
    if running is None:
        return False
    _stop_pid(running.pid)
    return True
