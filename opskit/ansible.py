"""Run ``playbooks/*.yml`` through ``ansible_runner.run`` (never by shelling out).

Each run gets its own private data dir under the run's artifacts dir (``<run>/ansible/``, with
ansible-runner's ``artifacts/<ident>/`` inside), a dict inventory of one local host whose
interpreter is this Python (``sys.executable``: interpreter discovery picks broken pyenv shims),
and ``PATH`` with ``dirname(sys.executable)`` first (so ``ansible-playbook`` from this venv is
found even when the venv is not activated). Events stream to a callback as :class:`PlaybookEvent`;
the result is a typed :class:`PlaybookResult` (status, rc, changed tasks, ``set_stats`` data).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

from opskit import paths
from opskit.errors import ToolMissing
from opskit.events import Reporter

#: the collections a playbook needs (kubernetes.core: only the PyPI `ansible` bundle ships it)
COLLECTIONS: dict[str, tuple[str, ...]] = {
    "deploy.yml": ("kubernetes.core",),
    "kill-pod.yml": ("kubernetes.core",),
    "db-proxy.yml": ("kubernetes.core",),
}
EXTRA = "stairway-ops[ansible]"


def require_collections(playbook: str) -> None:
    """:class:`ToolMissing` (one line, naming the extra) when a collection is not installed."""
    for collection in COLLECTIONS.get(playbook, ()):
        namespace, name = collection.split(".")
        try:
            spec = importlib.util.find_spec(f"ansible_collections.{namespace}.{name}")
        except ModuleNotFoundError:
            spec = None
        if spec is None:
            raise ToolMissing(
                f"playbooks/{playbook} needs the Ansible collection {collection}: pip install"
                f" '{EXTRA}' (the PyPI ansible bundle ships it; Galaxy is not needed)"
            )


@dataclass(frozen=True)
class PlaybookEvent:
    """One task outcome (or play/playbook marker) from ansible-runner's event stream."""

    event: str  # runner_on_ok, runner_on_failed, playbook_on_task_start, ...
    task: str
    action: str
    changed: bool
    failed: bool
    skipped: bool
    item: str | None = None
    msg: str = ""
    loop_summary: bool = False  # the whole-task event of a loop (its items came before)


@dataclass(frozen=True)
class PlaybookResult:
    """The outcome of one playbook run."""

    playbook: str
    status: str  # successful | failed | timeout | canceled
    rc: int
    changed: tuple[str, ...]  # names of tasks that changed something (item-qualified)
    failed: tuple[str, ...]  # "task: message" for each failed task
    stats: dict[str, Any] = field(default_factory=dict)  # set_stats data
    private_data_dir: Path = Path()
    failed_tasks: tuple[str, ...] = ()  # names of the failed tasks (no item, no message)

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0

    def first_failure(self) -> str:
        return self.failed[0] if self.failed else f"{self.playbook} {self.status} (rc {self.rc})"


def inventory() -> dict[str, Any]:
    """One local host whose Python is this interpreter."""
    return {
        "all": {
            "hosts": {
                "localhost": {
                    "ansible_connection": "local",
                    "ansible_python_interpreter": sys.executable,
                }
            }
        }
    }


def run_env(private_data_dir: Path) -> dict[str, str]:
    """Environment variables for the ansible-playbook process."""
    bin_dir = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    return {
        "PATH": bin_dir + (os.pathsep + path if path else ""),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_LOCAL_TEMP": str(private_data_dir / "tmp"),
        "ANSIBLE_REMOTE_TEMP": str(private_data_dir / "tmp"),
        "ANSIBLE_HOME": str(private_data_dir / "ansible-home"),
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_PIPELINING": "True",
    }


def _item_label(data: Mapping[str, Any]) -> str | None:
    res = data.get("res") or {}
    if not isinstance(res, Mapping):
        return None
    label = res.get("_ansible_item_label")
    item = label if label is not None else res.get("item")
    if item is None:
        return None
    if isinstance(item, Mapping):
        for key in ("dest", "name", "path", "template"):
            if key in item:
                return str(item[key])
    return str(item)


def to_event(raw: Mapping[str, Any]) -> PlaybookEvent | None:
    """ansible-runner's raw event dict → :class:`PlaybookEvent` (None for noise)."""
    kind = str(raw.get("event", ""))
    data = raw.get("event_data") or {}
    if kind not in (
        "runner_on_ok",
        "runner_on_failed",
        "runner_on_skipped",
        "runner_on_unreachable",
        "runner_item_on_ok",
        "runner_item_on_failed",
        "playbook_on_task_start",
    ):
        return None
    res = data.get("res") or {}
    failed = kind in ("runner_on_failed", "runner_item_on_failed", "runner_on_unreachable")
    if kind == "runner_on_failed" and data.get("ignore_errors"):
        failed = False
    msg = ""
    if isinstance(res, Mapping):
        msg = str(res.get("msg") or res.get("stderr") or "")
    return PlaybookEvent(
        event=kind,
        task=str(data.get("task", "")),
        action=str(data.get("task_action", "")),
        changed=bool(res.get("changed")) if isinstance(res, Mapping) else False,
        failed=failed,
        skipped=kind == "runner_on_skipped",
        item=_item_label(data),
        msg=" ".join(msg.split())[:300],
        loop_summary=isinstance(res, Mapping) and "results" in res,
    )


def run_playbook(
    name: str,
    extravars: Mapping[str, Any],
    run_dir: Path,
    *,
    on_event: Callable[[PlaybookEvent], None] | None = None,
    check: bool = False,
    project_dir: Path | None = None,
) -> PlaybookResult:
    """Run ``playbooks/<name>`` with ``extravars``; artifacts go to ``<run_dir>/ansible/``."""
    require_collections(name)
    private = run_dir / "ansible"
    (private / "tmp").mkdir(parents=True, exist_ok=True)
    changed: list[str] = []
    failed: list[str] = []
    failed_tasks: list[str] = []
    stats: dict[str, Any] = {}

    def handler(raw: dict[str, Any]) -> bool:
        if raw.get("event") == "playbook_on_stats":
            stats.update((raw.get("event_data") or {}).get("artifact_data") or {})
        ev = to_event(raw)
        if ev is not None:
            label = ev.task + (f" ({ev.item})" if ev.item else "")
            # a loop task reports each item (runner_item_on_*), then once more as a whole
            if (
                ev.changed
                and not ev.loop_summary
                and ev.event in ("runner_on_ok", "runner_item_on_ok")
            ):
                changed.append(label)
            if ev.failed and not ev.loop_summary:
                failed.append(f"{label}: {ev.msg}" if ev.msg else label)
                failed_tasks.append(ev.task)
            if on_event is not None:
                on_event(ev)
        return True

    r = ansible_runner.run(
        private_data_dir=str(private),
        project_dir=str(project_dir or paths.PLAYBOOKS_DIR),
        playbook=name,
        inventory=inventory(),
        extravars=dict(extravars),
        envvars=run_env(private),
        cmdline="--check --diff" if check else None,
        event_handler=handler,
        quiet=True,
        suppress_env_files=True,
    )
    return PlaybookResult(
        playbook=name,
        status=str(r.status),
        rc=int(r.rc if r.rc is not None else -1),
        changed=tuple(changed),
        failed=tuple(failed),
        stats=stats,
        private_data_dir=private,
        failed_tasks=tuple(failed_tasks),
    )


def reporter_callback(reporter: Reporter) -> Callable[[PlaybookEvent], None]:
    """Forward playbook events to a :class:`Reporter` (changed/failed tasks only)."""

    def forward(ev: PlaybookEvent) -> None:
        label = ev.task + (f" ({ev.item})" if ev.item else "")
        if ev.failed:
            reporter.emit(
                "playbook.failed", f"failed: {label}: {ev.msg}", level="error", task=label
            )
        elif (
            ev.changed and not ev.loop_summary and ev.event in ("runner_on_ok", "runner_item_on_ok")
        ):
            reporter.emit("playbook.changed", f"changed: {label}", task=label)
        elif ev.event == "playbook_on_task_start":
            reporter.emit("playbook.task", f"task: {ev.task}", task=ev.task)

    return forward
