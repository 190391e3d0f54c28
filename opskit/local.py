"""The ``local`` environment: the sandbox, through the same code paths as GKE.

- pods and the deployment: the official ``kubernetes`` client on the sandbox's kubeconfig
  (its loopback API server) — the very :class:`~opskit.kube.Kube` the GKE platform uses;
- logs: ``google-cloud-logging`` on the sandbox's ``entries:list`` endpoint (same
  :class:`~opskit.cloudlogs.CloudLogs`, same filter);
- the database: the sandbox's Postgres on loopback (no proxy), password from its state file;
- deploy: a rollout restart of the sandbox deployment (new template hash, pods replaced one
  by one), watched like a GKE rollout;
- run-test: the WorkspaceLifecycle journey against the sandbox API, summarised with TestRunner's
  fields.

``python -m opskit.local prepare --env-file envs/local.yaml`` prepares Postgres and the schema
(``inv setup`` runs it from ``playbooks/setup.yml``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from opskit import paths, sandboxwatch
from opskit.cloudlogs import CloudLogs, LogScope
from opskit.dbproxy import DbTarget
from opskit.envs import Env, SecretRef, load_env_file
from opskit.errors import OpsError, Unavailable, UsageError
from opskit.events import Reporter
from opskit.journey import run_journeys
from opskit.platform import KubePlatform, RolloutResult
from opskit.render import render
from opskit.testrunner import TestRunSummary
from opskit.tools import python_command
from repairtool.localpg import LocalPostgres
from sandbox import lifecycle
from sandbox.config import SandboxConfig
from sandbox.lifecycle import SandboxError, SandboxHandle, SandboxStatus

STAIRWAY_DB = "stairway"


def require_local(env: Env) -> Env:
    """``env`` when it is a local environment (the sandbox is for those only)."""
    if env.kind != "local":
        raise UsageError(f"env {env.name!r} is {env.kind}: the sandbox is for local environments")
    return env


def sandbox_config(env: Env) -> SandboxConfig:
    """The sandbox's settings for ``env`` (rendered from templates/sandbox.json.j2)."""
    return SandboxConfig.from_json(json.loads(render(env, "sandbox.json.j2")))


def prepare_command(env: Env) -> str:
    """What ``setup.yml`` runs for a local env."""
    return python_command("-m", "opskit.local", "prepare", "--env-file", str(env.path))


def prepare(env: Env) -> list[str]:
    """Initialise the sandbox's Postgres, its databases and the engine schema; idempotent.

    Returns what changed (empty on a re-run). A server that was not running is stopped again.
    """
    try:
        return lifecycle.prepare(sandbox_config(env))
    except SandboxError as exc:
        raise Unavailable(str(exc).splitlines()[0]) from None


class LocalPlatform(KubePlatform):
    """The sandbox as a platform."""

    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self.state_dir = paths.sandbox_state_dir()
        self._h: SandboxHandle | None = None

    # -- the running sandbox --------------------------------------------------------------

    def handle(self) -> SandboxHandle:
        """The running sandbox's handle; :class:`Unavailable` when it is not running."""
        if self._h is None:
            st = lifecycle.status(self.state_dir)
            if not st.running:
                raise Unavailable(
                    f"the sandbox is not running in {self.state_dir}: `inv sandbox.up` first"
                )
            try:
                self._h = SandboxHandle.load(self.state_dir)
            except SandboxError as exc:
                raise Unavailable(str(exc).splitlines()[0]) from None
        return self._h

    def _kubeconfig(self) -> tuple[Path | None, str | None]:
        return Path(self.handle().kubeconfig), None

    def _logs(self) -> CloudLogs:
        h = self.handle()
        return CloudLogs(h.config.project_id, h.logging_url)

    def log_scope(self) -> LogScope:
        cfg = self.handle().config
        return LogScope(
            project=cfg.project_id,
            cluster=cfg.cluster_name,
            location=cfg.location,
            namespace=cfg.namespace,
            container=cfg.container_name,
        )

    # -- build & deploy -------------------------------------------------------------------

    def build(self, c: Any, reporter: Reporter) -> None:
        reporter.emit("build.skip", "local: nothing to build (the sandbox runs this checkout)")

    def rollout(
        self, c: Any, reporter: Reporter, timeout_seconds: float, *, dry: bool = False
    ) -> RolloutResult:
        """Deploy = restart the sandbox deployment (it runs this checkout) and watch it roll."""
        return self.restart(reporter, timeout_seconds, dry=dry)

    # -- database -------------------------------------------------------------------------

    def _target(self) -> DbTarget:
        h = self.handle()
        pw_file = LocalPostgres(self.state_dir).home / "password"
        return DbTarget(
            host="127.0.0.1",
            port=int(h.postgres_port),
            name=STAIRWAY_DB,
            user="postgres",
            password=SecretRef(file=str(pw_file)),
        )

    @contextlib.contextmanager
    def _db(self, reporter: Reporter) -> Iterator[DbTarget]:
        target = self._target()
        reporter.emit("db.local", f"sandbox database on {target.host}:{target.port}")
        yield target

    def db(self, c: Any, reporter: Reporter) -> contextlib.AbstractContextManager[DbTarget]:
        return self._db(reporter)

    def db_proxy(
        self, c: Any, reporter: Reporter, log_path: Path | None = None
    ) -> contextlib.AbstractContextManager[DbTarget]:
        return self._db(reporter)

    # -- the user journey -----------------------------------------------------------------

    def run_test(self, c: Any, suite: str, reporter: Reporter, run_dir: Path) -> TestRunSummary:
        if suite not in ("kill-pod", f"kill-pod-{self.env.name}", "WorkspaceLifecycle"):
            raise UsageError(f"local run-test knows the kill-pod suite only, not {suite!r}")
        h = self.handle()
        reporter.emit("test.start", f"WorkspaceLifecycle against {h.service_url}")
        return run_journeys(h.service_url, run_dir, reporter)


# -- sandbox lifecycle (inv sandbox.up|down|status) ---------------------------------------------


def up(env: Env, *, fresh: bool = False) -> SandboxHandle:
    try:
        return lifecycle.up(sandbox_config(env), fresh=fresh)
    except SandboxError as exc:
        raise Unavailable(f"sandbox did not start: {str(exc).splitlines()[0]}") from None


def down(env: Env) -> bool:
    watched = sandboxwatch.stop()  # a watcher of this sandbox (`inv sandbox.up --watch`)
    return bool(lifecycle.down(paths.sandbox_state_dir())) or watched


def destroy(env: Env) -> None:
    """Stop the sandbox and delete its files (Postgres data included, wherever it lives)."""
    lifecycle.destroy(paths.sandbox_state_dir())


def status(env: Env) -> SandboxStatus:
    return lifecycle.status(paths.sandbox_state_dir())


def main(argv: list[str] | None = None) -> int:
    """``python -m opskit.local prepare --env-file PATH``: prints ``changed: …`` lines."""
    parser = argparse.ArgumentParser(prog="python -m opskit.local")
    parser.add_argument("command", choices=["prepare"])
    parser.add_argument("--env-file", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        env = load_env_file(args.env_file)
        if env.kind != "local":
            raise UsageError(f"{args.env_file}: not a local environment")
        changes = prepare(env)
    except OpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    for line in changes:
        print(f"changed: {line}")
    if not changes:
        print("ok: nothing to change")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
