"""Where an experiment runs: :class:`LocalStage` (a sandbox of its own) or :class:`GkeStage`
(an env's namespace).

Both stages give the runner the same things: a :class:`~opskit.platform.Platform` (the code
``inv kill-pod`` and ``inv logs`` use), the Stairway database as a
:class:`~opskit.dbproxy.DbTarget`, the service URL, the environment the experiment's commands
run with, and the ``deploy`` command. Only ``deploy`` and the database differ:

- local: ``python -m sandbox up --state-dir <state>/experiments/<name>/sandbox --replicas N …``
  with the experiment's replicas, engine, reader and DelayHook; commands run with
  ``STAIRWAY_OPS_STATE_DIR=<state>/experiments/<name>`` so that ``--env local`` resolves to that
  sandbox. The sandbox is destroyed at the end unless kept.
- gke: ``inv deploy --env NAME`` (skaffold); the database through the Cloud SQL proxy, held open
  for the whole run so that ``repairtool --env NAME`` and ``inv kill-pod`` reuse it.
"""

from __future__ import annotations

import abc
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from opskit import paths
from opskit.dbproxy import DbTarget
from opskit.envs import Env
from opskit.errors import Unavailable, UsageError
from opskit.events import Reporter
from opskit.experiment.commands import CommandLog, CommandResult, join
from opskit.experiment.definition import ExperimentDefinition
from opskit.journal import DbTarget as JournalDbTarget
from opskit.journal import EnvInfo
from opskit.local import LocalPlatform
from opskit.platform import GkePlatform, Platform
from opskit.render import render
from repairtool.localpg import LocalPostgresError, find_binaries
from repairtool.stairway.schema import EngineVersion
from sandbox.config import SandboxConfig
from sandbox.lifecycle import destroy, down, status

#: the work-queue ack deadline of an experiment's sandbox (the emulator's minimum): a message the
#: engine did not ack comes back after this long (the 2021 ``did not resume flight`` line)
ACK_DEADLINE_SECONDS = 10


def _rel(path: Path) -> str:
    """``path`` relative to the project root when inside it (commands run from there)."""
    try:
        return str(path.resolve().relative_to(paths.PROJECT_ROOT))
    except ValueError:
        return str(path)


def _venv_bin() -> Path:
    return Path(sys.executable).parent


def _pg_bin() -> str:
    """Where psql is (the project's Postgres binaries), or "" when none is found."""
    with contextlib.suppress(LocalPostgresError):
        return str(find_binaries().bin_dir)
    return ""


class Stage(abc.ABC):
    """What both stages share: the platform, the commands' environment, names."""

    env: Env
    platform: Platform
    #: the work queue's ack deadline (a message no pod acked comes back after it)
    ack_deadline_seconds: float = 100.0

    def __init__(self, env: Env, defn: ExperimentDefinition, run_dir: Path, rep: Reporter):
        self.env = env
        self.defn = defn
        self.run_dir = run_dir
        self.rep = rep

    # the environment of every command the experiment runs
    def command_env(self) -> dict[str, str]:
        env = dict(os.environ)
        parts = [str(_venv_bin()), env.get("PATH", ""), _pg_bin()]
        env["PATH"] = os.pathsep.join(p for p in parts if p)
        env["STAIRWAY_OPS_ARTIFACTS_DIR"] = str(self.artifacts_dir)
        env.pop("PGPASSWORD", None)  # psql gets it per command, from the env's secret source
        return env

    def env_overrides(self) -> dict[str, str]:
        """The variables the commands run with that a reader of the runbook must know about."""
        return {"STAIRWAY_OPS_ARTIFACTS_DIR": _rel(self.artifacts_dir)}

    @property
    def artifacts_dir(self) -> Path:
        return self.run_dir / "artifacts"

    @abc.abstractmethod
    def deploy(self, cmds: CommandLog) -> CommandResult:
        """Implemented by LocalStage and GkeStage."""

    def database(self, c: Any) -> contextlib.AbstractContextManager[DbTarget]:
        return self.platform.db(c, self.rep)

    @abc.abstractmethod
    def service_url(self) -> str:
        """Implemented by LocalStage and GkeStage."""

    @abc.abstractmethod
    def env_info(self, target: DbTarget) -> EnvInfo:
        """Implemented by LocalStage and GkeStage."""

    @abc.abstractmethod
    def server_spec(self) -> dict[str, Any]:
        """Implemented by LocalStage and GkeStage."""

    @abc.abstractmethod
    def suite(self) -> dict[str, Any]:
        """Implemented by LocalStage and GkeStage."""

    def code_changes(self) -> list[str]:
        return []

    def notes(self) -> list[str]:
        return []

    def secrets(self, target: DbTarget) -> list[str]:
        value = target.password.resolve()
        return [value] if value else []

    def close(self) -> None:  # noqa: B027 - optional hook: stages that start nothing keep it
        """Tear down what the stage started (nothing by default)."""


class LocalStage(Stage):
    """A sandbox of the experiment's own in ``<state>/experiments/<name>/sandbox``."""

    ack_deadline_seconds = float(ACK_DEADLINE_SECONDS)

    def __init__(
        self,
        env: Env,
        defn: ExperimentDefinition,
        run_dir: Path,
        rep: Reporter,
        *,
        state_root: Path | None = None,
        keep: bool = False,
    ) -> None:
        super().__init__(env, defn, run_dir, rep)
        self.state_root = (state_root or paths.state_dir() / "experiments" / defn.name).absolute()
        self.sandbox_dir = self.state_root / "sandbox"
        self.keep = keep
        platform = LocalPlatform(env)
        platform.state_dir = self.sandbox_dir  # the experiment's sandbox, not the env's
        self.platform = platform
        self._local = platform

    def command_env(self) -> dict[str, str]:
        env = super().command_env()
        env["STAIRWAY_OPS_STATE_DIR"] = str(self.state_root)
        return env

    def env_overrides(self) -> dict[str, str]:
        return {"STAIRWAY_OPS_STATE_DIR": _rel(self.state_root), **super().env_overrides()}

    def deploy_command(self) -> str:
        d = self.defn
        argv = [
            "python",
            "-m",
            "sandbox",
            "up",
            "--state-dir",
            _rel(self.sandbox_dir),
            "--replicas",
            str(d.replicas),
            "--engine-version",
            d.engine_version,
            "--reader-version",
            d.reader,
            "--ack-deadline",
            str(ACK_DEADLINE_SECONDS),
            *(["--queue", "none"] if d.queue == "none" else []),
            "--delay-seconds",
            f"{d.delay.seconds:g}",
            "--delay-step",
            str(d.delay.step),
            "--delay-class",
            d.delay.flight_class,
        ]
        return join(argv)

    def _check_names(self) -> None:
        cfg = SandboxConfig()
        s = self.env.service
        pairs = (
            ("service.namespace", s.namespace, cfg.namespace),
            ("service.deployment", s.deployment, cfg.deployment_name),
            ("service.container", s.container, cfg.container_name),
            ("stairway.cluster_name", self.env.stairway.cluster_name, cfg.stairway_cluster_name),
        )
        for key, ours, sandbox in pairs:
            if ours != sandbox:
                raise UsageError(
                    f"{self.env.path}: key {key!r} is {ours!r} but an experiment's sandbox uses"
                    f" {sandbox!r} (the `python -m sandbox up` default)"
                )

    def deploy(self, cmds: CommandLog) -> CommandResult:
        self._check_names()
        if status(self.sandbox_dir).running or (self.sandbox_dir / "sandbox.json").exists():
            self.rep.emit(
                "experiment.sandbox",
                f"stopping the sandbox left in {_rel(self.sandbox_dir)} by an earlier run",
            )
            down(self.sandbox_dir)
        result = cmds.run("deploy", self.deploy_command(), timeout=180)
        if result.rc != 0:
            raise Unavailable(f"the sandbox did not start (exit {result.rc}); see {result.log}")
        return result

    def service_url(self) -> str:
        return str(self._local.handle().service_url)

    def _config(self) -> Any:
        return self._local.handle().config

    def env_info(self, target: DbTarget) -> EnvInfo:
        cfg = self._config()
        return EnvInfo(
            name=self.env.name,
            kind="local",
            namespace=cfg.namespace,
            deployment=cfg.deployment_name,
            container=cfg.container_name,
            service_url=self.service_url(),
            stairway_cluster=cfg.stairway_cluster_name,
            db=JournalDbTarget(
                name=target.name, user=target.user, host=target.host, port=target.port
            ),
            project=cfg.project_id,
            cluster=cfg.cluster_name,
            location=cfg.location,
        )

    def server_spec(self) -> dict[str, Any]:
        """What ``inv run-test --env local`` runs against (TestRunner's server spec fields)."""
        return {
            "name": f"workspace-{self.env.name}",
            "description": self.env.description,
            "workspaceManagerUri": self.service_url(),
            "cluster": {},
            "deploymentScript": {},
            "skipDeployment": True,
            "skipKubernetes": True,
        }

    def suite(self) -> dict[str, Any]:
        return {
            "name": "WorkspaceLifecycle",
            "description": (
                "The WorkspaceLifecycle user journey (create MC_WORKSPACE, get, delete) that"
                " `inv run-test --env local` runs against the sandbox API"
            ),
            "serverSpecificationFile": f"workspace-{self.env.name}.json",
            "testConfigurationFiles": ["integration/WorkspaceLifecycle.json"],
        }

    def code_changes(self) -> list[str]:
        d = self.defn
        out = [
            f"Sandbox workers write like Stairway {d.engine_version} and read FlightMaps like"
            f" Stairway {d.reader} (`--engine-version`, `--reader-version`)"
        ]
        if EngineVersion.parse(d.reader) <= EngineVersion.parse("0.0.60"):
            out.append(
                "The <= 0.0.60 reader rebuilds inputs with `readValue(json, Object.class)`: the"
                " April 2021 enum bug (`MC_WORKSPACE` comes back as a String)"
            )
        if d.queue == "none":
            out.append(
                "No work queue (`--queue none`): the engine resumes READY flights inline when it"
                " recovers (a pod start, or a pod listener's DELETED event), and at no other time"
            )
        else:
            out.append(
                f"Work-queue ack deadline {ACK_DEADLINE_SECONDS} s (the emulator's minimum; the"
                " engine creates 100 s): an unacked READY message is redelivered after it"
            )
        return out

    def close(self) -> None:
        if self.keep:
            self.rep.emit(
                "experiment.sandbox",
                f"sandbox kept running: stop it with `python -m sandbox down --state-dir"
                f" {_rel(self.sandbox_dir)} --purge`",
            )
            return
        destroy(self.sandbox_dir)
        self.rep.emit("experiment.sandbox", f"sandbox in {_rel(self.sandbox_dir)} destroyed")


class GkeStage(Stage):
    """The env's namespace on GKE; the service must carry the DelayHook already."""

    def __init__(self, env: Env, defn: ExperimentDefinition, run_dir: Path, rep: Reporter):
        super().__init__(env, defn, run_dir, rep)
        if defn.method.switches.any or defn.queue == "none" or defn.method.fault == "wsm-db-outage":
            raise UsageError(
                f"experiment {defn.name!r} needs the sandbox (switches, queue: none or the"
                " service-db outage exist there only): run it with --env local"
            )
        self.platform = GkePlatform(env)

    def deploy(self, cmds: CommandLog) -> CommandResult:
        result = cmds.run("deploy", join(["inv", "deploy", "--env", self.env.name]), timeout=1200)
        if result.rc != 0:
            raise Unavailable(f"inv deploy --env {self.env.name} failed (exit {result.rc})")
        return result

    def service_url(self) -> str:
        return self.env.service.url

    def env_info(self, target: DbTarget) -> EnvInfo:
        gke = self.env.require_gke()
        s = self.env.service
        return EnvInfo(
            name=self.env.name,
            kind="gke",
            namespace=s.namespace,
            deployment=s.deployment,
            container=s.container,
            service_url=s.url,
            stairway_cluster=self.env.stairway.cluster_name,
            db=JournalDbTarget(
                name=target.name, user=target.user, host=target.host, port=target.port
            ),
            project=gke.project,
            cluster=gke.cluster,
            location=gke.location,
        )

    def server_spec(self) -> dict[str, Any]:
        return dict(json.loads(render(self.env, "testrunner-server.json.j2")))

    def suite(self) -> dict[str, Any]:
        return dict(json.loads(render(self.env, "testrunner-suite.json.j2")))

    def code_changes(self) -> list[str]:
        d = self.defn
        return [
            f"The service image carries the DelayHook for `{d.delay.flight_class}` step"
            f" {d.delay.step} ({d.delay.seconds:g} s) and runs Stairway {d.engine_version}"
            f" (reader {d.reader}); `inv deploy` deploys it, it does not add it"
        ]


def stage_for(
    env: Env,
    defn: ExperimentDefinition,
    run_dir: Path,
    rep: Reporter,
    *,
    state_root: Path | None = None,
    keep: bool = False,
) -> Stage:
    if env.kind == "local":
        return LocalStage(env, defn, run_dir, rep, state_root=state_root, keep=keep)
    return GkeStage(env, defn, run_dir, rep)
