"""``inv deploy|kill-pod|db-proxy --via ansible``: the same operations through the playbooks.

Each function runs one playbook through ansible-runner (:mod:`opskit.ansible`) with the env's
extravars and reads its ``set_stats`` result into a typed value (never its human output). The
playbooks talk to the cluster with the kubernetes.core collection (``pip install
'stairway-ops[ansible]'``; without it: one ``TOOL_MISSING`` line naming the extra).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opskit import ansible
from opskit.envs import Env
from opskit.envsetup import setup_vars
from opskit.errors import CommandFailed, NotFound, Refused
from opskit.events import Reporter


@dataclass(frozen=True)
class DeployResult:
    deployment: str
    replicas: int
    generation: int
    playbook: ansible.PlaybookResult

    @property
    def message(self) -> str:
        return (
            f"deployment/{self.deployment} rolled out: {self.replicas} replicas available"
            f" (generation {self.generation}; playbooks/deploy.yml)"
        )


@dataclass(frozen=True)
class KillResult:
    deleted: str
    replacement: str
    namespace: str
    playbook: ansible.PlaybookResult

    @property
    def message(self) -> str:
        return (
            f"deleted pod {self.deleted} in {self.namespace}; replacement {self.replacement}"
            " is Ready (playbooks/kill-pod.yml)"
        )


@dataclass(frozen=True)
class ProxyResult:
    psql: str
    port: int
    started: bool
    stopped: bool
    playbook: ansible.PlaybookResult


#: the playbooks' own guard tasks (by task name) → the error (and exit code) they stand for
FAILED_TASKS: dict[str, type[Refused] | type[NotFound]] = {
    "Refuse namespaces not in the env file": Refused,
    "Refuse a pod that is not the service's": Refused,
    "Stop when the pod does not exist": NotFound,
    "Stop when the Secret or its key is missing": NotFound,
}


def _run(
    name: str, env: Env, run_dir: Path, reporter: Reporter, **extra: Any
) -> ansible.PlaybookResult:
    extravars = setup_vars(env)
    extravars.update(extra)
    reporter.emit("playbook.start", f"playbooks/{name} (artifacts in {run_dir})")
    result = ansible.run_playbook(
        name, extravars, run_dir, on_event=ansible.reporter_callback(reporter)
    )
    if not result.ok:
        failure = result.first_failure()
        error = FAILED_TASKS.get(result.failed_tasks[0] if result.failed_tasks else "")
        if error is not None:
            raise error(f"{name}: {failure}")
        raise CommandFailed(f"{name} failed: {failure}")
    return result


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "yes", "1")


def deploy(env: Env, run_dir: Path, reporter: Reporter, timeout_seconds: float) -> DeployResult:
    r = _run("deploy.yml", env, run_dir, reporter, wait_seconds=int(timeout_seconds))
    return DeployResult(
        str(r.stats["deployment"]), int(r.stats["replicas"]), int(r.stats["generation"]), r
    )


def kill_pod(
    env: Env, pod: str, run_dir: Path, reporter: Reporter, wait_seconds: float = 180
) -> KillResult:
    r = _run("kill-pod.yml", env, run_dir, reporter, pod=pod, wait_seconds=int(wait_seconds))
    return KillResult(
        str(r.stats["deleted"]), str(r.stats["replacement"]), str(r.stats["namespace"]), r
    )


def db_proxy(env: Env, run_dir: Path, reporter: Reporter, *, state: str) -> ProxyResult:
    r = _run("db-proxy.yml", env, run_dir, reporter, state=state)
    return ProxyResult(
        str(r.stats.get("psql", "")),
        int(r.stats.get("port", 0)),
        _truthy(r.stats.get("started")),
        _truthy(r.stats.get("stopped")),
        r,
    )
