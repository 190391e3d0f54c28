"""Fixtures for sandbox tests: a sandbox per test in a temporary state dir, always torn down, and
a check that nothing it started is left running."""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sandbox.config import SandboxConfig
from sandbox.lifecycle import SandboxHandle, destroy, down, up
from sandbox.procs import group_alive


def _leftovers(state_dir: Path) -> list[str]:
    """Processes of this sandbox still alive (supervisor/pod group, emulator, Postgres)."""
    out = []
    path = state_dir / "sandbox.json"
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    for key in ("supervisor_pid", "emulator_pid"):
        pid = data.get(key)
        if pid and group_alive(int(pid)):
            out.append(f"{key}={pid}")
    pods = state_dir / "pods"
    if pods.exists():
        for cfg in pods.glob("*.json"):
            name = cfg.stem
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    continue
                if "sandbox.worker" in cmd and name in cmd:
                    out.append(f"worker {name} pid={proc.name}")
    pid_file = next(iter(state_dir.glob("pg/**/postmaster.pid")), None)
    if pid_file is None:
        loc = state_dir / "pg" / "location"
        if loc.exists():
            pid_file = Path(loc.read_text().strip()) / "data" / "postmaster.pid"
    if pid_file is not None and pid_file.exists():
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, 0)
            out.append(f"postgres pid={pid}")
        except (OSError, ValueError, IndexError):
            pass
    return out


def _start(state_dir: Path, **overrides: Any) -> SandboxHandle:
    overrides.setdefault("ack_deadline_seconds", 10)
    overrides.setdefault("job_timeout_seconds", 60.0)
    return up(SandboxConfig(state_dir=state_dir, **overrides))


def _stop(state_dirs: list[Path]) -> None:
    """down() each sandbox, fail if any of its processes survives, then delete its state."""
    problems = []
    for state_dir in state_dirs:
        down(state_dir)
        left = _leftovers(state_dir)
        if left:
            problems.append(f"{state_dir}: {left}")
        destroy(state_dir)  # the Postgres data may live in a private /tmp directory
    assert not problems, f"processes left running after down(): {problems}"


@pytest.fixture
def start_sandbox(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., SandboxHandle]]:
    """`start_sandbox(**config) -> SandboxHandle`; every sandbox is stopped after the test and
    the test fails if any of its processes survives `down()`."""
    started: list[Path] = []

    def start(**overrides: Any) -> SandboxHandle:
        state_dir = tmp_path_factory.mktemp("sandbox")
        started.append(state_dir)
        return _start(state_dir, **overrides)

    yield start
    _stop(started)


@pytest.fixture(scope="module")
def shared_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    """One 2-replica sandbox for a whole module (tests that only read or add flights)."""
    state_dir = tmp_path_factory.mktemp("sandbox-shared")
    try:
        yield _start(state_dir, replicas=2)
    finally:
        _stop([state_dir])


@dataclass
class CreateCall:
    """A `POST /api/workspaces/v1` running in a background thread (it blocks for the flight)."""

    flight_id: str
    workspace_id: str
    pod: str
    result: list[Any] = field(default_factory=list)
    thread: threading.Thread | None = None

    def join(self, timeout: float = 30.0) -> Any:
        assert self.thread is not None
        self.thread.join(timeout)
        return self.result[0] if self.result else None


def _create_workspace_async(
    h: SandboxHandle,
    pod: str,
    *,
    stage: str = "MC_WORKSPACE",
    token: str = "ya29.sandbox-secret-token-DO-NOT-LOG",
) -> CreateCall:
    call = CreateCall(str(uuid.uuid4()), str(uuid.uuid4()), pod)

    def run() -> None:
        try:
            call.result.append(
                h.request(
                    "POST",
                    "/api/workspaces/v1",
                    {"id": call.workspace_id, "jobId": call.flight_id, "stage": stage},
                    pod=pod,
                    token=token,
                    timeout=90,
                )
            )
        except Exception as error:  # the pod may die under the request
            call.result.append(error)

    call.thread = threading.Thread(target=run, daemon=True)
    call.thread.start()
    return call


@pytest.fixture
def create_workspace_async() -> Callable[..., CreateCall]:
    """`create_workspace_async(handle, pod, stage=…, token=…) -> CreateCall`."""
    return _create_workspace_async
