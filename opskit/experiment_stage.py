"""Where an experiment runs (:class:`LocalStage`: a sandbox of its own; :class:`GkeStage`: an
env's namespace) and the runner's own database access (:class:`ExperimentDb`).

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
import datetime as dt
import json
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text

from opskit import paths
from opskit.dbproxy import DbTarget
from opskit.envs import Env
from opskit.errors import Unavailable, UsageError
from opskit.events import Reporter
from opskit.experiment import ExperimentDefinition
from opskit.experiment_commands import CommandLog, CommandResult, join
from opskit.journal import DbTarget as JournalDbTarget
from opskit.journal import EnvInfo
from opskit.platform import GkePlatform, Platform
from repairtool.clock import rfc3339

#: the runner's own connections to the Stairway database (``pg_stat_activity.application_name``)
APPLICATION_NAME = "stairway-ops experiment"
#: the work-queue ack deadline of an experiment's sandbox (the emulator's minimum): a message the
#: engine did not ack comes back after this long (the 2021 ``did not resume flight`` line)
ACK_DEADLINE_SECONDS = 10

# -- SQL evidence (attempts[].sql_evidence[]; names from opskit.journal.SQL_NAMES) ---------------
SQL_NON_TERMINAL = (
    "SELECT flightid, status, stairway_id, class_name, submit_time\n"
    "FROM flight\n"
    "WHERE status NOT IN ('SUCCESS', 'ERROR', 'FATAL')\n"
    "ORDER BY submit_time"
)
SQL_INSTANCES = "SELECT stairway_name, stairway_id FROM stairwayinstance ORDER BY stairway_name"
SQL_FLIGHT_LOG = (
    "SELECT log_time, step_index, direction, succeeded, rerun\n"
    "FROM flightlog\n"
    "WHERE flightid = '{flight_id}'\n"
    "ORDER BY log_time"
)
SQL_UNOWNED = (
    "SELECT flightid, status, class_name, submit_time\n"
    "FROM flight\n"
    "WHERE status IN ('READY', 'QUEUED') AND stairway_id IS NULL\n"
    "ORDER BY submit_time"
)
#: cut every client connection of the Stairway database but psql's own: the service's first,
#: each waited for (up to 5 s), then the tools' (``stairway-ops …``, ``repairtool``)
SQL_TERMINATE = (
    "SELECT pid, application_name, state, wait_event_type,"
    " pg_terminate_backend(pid, 5000) AS terminated"
    " FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    " AND backend_type = 'client backend'"
    " ORDER BY application_name LIKE 'stairway-ops%' OR application_name = 'repairtool', pid"
)

Scalar = str | int | float | bool | None


def scalar(value: Any) -> Scalar:
    """A database value as a JSON scalar (times in RFC 3339 UTC, like every other time)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime):
        return rfc3339(value)
    return str(value)


def psql_command(target: DbTarget, sql: str) -> str:
    """``psql "host=… user=…" -c "SQL"`` (no password in it: psql gets ``PGPASSWORD``)."""
    if any(ch in sql for ch in '"$`\\'):
        raise ValueError('SQL for a psql -c argument must not contain " $ ` or \\')
    return f'{target.psql_line()} -c "{sql}"'


class ExperimentDb:
    """The runner's connections to the Stairway database (read-only, except for the row lock
    of the ``drop-db-connections`` method). Connections cut under it are replaced (pre-ping)."""

    def __init__(self, target: DbTarget) -> None:
        self.target = target
        self.engine: Engine = create_engine(
            target.sqlalchemy_url(),
            pool_size=2,
            max_overflow=2,
            pool_pre_ping=True,
            connect_args={"application_name": APPLICATION_NAME, "connect_timeout": 5},
        )

    def close(self) -> None:
        self.engine.dispose()

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(text(sql), dict(params or {})).mappings()]

    def evidence(self, sql: str) -> tuple[tuple[str, ...], tuple[tuple[Scalar, ...], ...]]:
        """Run one evidence query: its columns and rows as JSON scalars."""
        with self.engine.connect() as conn:
            result = conn.execute(text(sql))
            columns = tuple(result.keys())
            rows = tuple(tuple(scalar(v) for v in row) for row in result.all())
        return columns, rows

    def now(self) -> dt.datetime:
        """The database's ``LOCALTIMESTAMP`` (what ``submit_time`` is compared with)."""
        with self.engine.connect() as conn:
            value = conn.execute(text("SELECT LOCALTIMESTAMP")).scalar()
        assert isinstance(value, dt.datetime)
        return value

    def new_flight(self, flight_class: str, since: dt.datetime) -> dict[str, Any] | None:
        found = self.rows(
            "SELECT flightid, stairway_id, status, submit_time FROM flight"
            " WHERE class_name = :cls AND submit_time >= :since ORDER BY submit_time LIMIT 1",
            {"cls": flight_class, "since": since},
        )
        return found[0] if found else None

    def flight(self, flight_id: str) -> dict[str, Any] | None:
        found = self.rows(
            "SELECT flightid, status, stairway_id, class_name, submit_time, completed_time"
            " FROM flight WHERE flightid = :f",
            {"f": flight_id},
        )
        return found[0] if found else None

    def steps(self, flight_id: str) -> list[tuple[int, str]]:
        return [
            (int(r["step_index"]), str(r["direction"] or "DO"))
            for r in self.rows(
                "SELECT step_index, direction FROM flightlog WHERE flightid = :f ORDER BY log_time",
                {"f": flight_id},
            )
        ]

    @contextlib.contextmanager
    def row_lock(self, flight_id: str) -> Iterator[tuple[Connection, int]]:
        """Hold ``SELECT … FOR UPDATE`` on the flight's row; yields (connection, backend pid).
        The connection is invalidated afterwards (it is expected to be cut under us)."""
        conn = self.engine.connect()
        try:
            conn.begin()
            pid = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
            conn.execute(
                text("SELECT flightid FROM flight WHERE flightid = :f FOR UPDATE"),
                {"f": flight_id},
            )
            yield conn, pid
        finally:
            with contextlib.suppress(Exception):
                conn.invalidate()
            with contextlib.suppress(Exception):
                conn.close()

    def blocked_by(self, pid: int) -> list[dict[str, Any]]:
        """Backends waiting for a lock ``pid`` holds (the engine's UPDATE of the flight)."""
        return self.rows(
            "SELECT pid, application_name, wait_event_type FROM pg_stat_activity"
            " WHERE :pid = ANY(pg_blocking_pids(pid))",
            {"pid": pid},
        )


def _rel(path: Path) -> str:
    """``path`` relative to the project root when inside it (commands run from there)."""
    try:
        return str(path.resolve().relative_to(paths.PROJECT_ROOT))
    except ValueError:
        return str(path)


def _venv_bin() -> Path:
    return Path(sys.executable).parent


def _pg_bin() -> str:
    with contextlib.suppress(Exception):
        from repairtool.localpg import find_binaries

        return str(find_binaries().bin_dir)
    return ""


class Stage(abc.ABC):
    """What both stages share: the platform, the commands' environment, names."""

    env: Env
    platform: Platform

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
        from opskit.local import LocalPlatform

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
            "--delay-seconds",
            f"{d.delay.seconds:g}",
            "--delay-step",
            str(d.delay.step),
            "--delay-class",
            d.delay.flight_class,
        ]
        return join(argv)

    def _check_names(self) -> None:
        from sandbox.config import SandboxConfig

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
        from sandbox.lifecycle import down, status

        self._check_names()
        if status(self.sandbox_dir).running or (self.sandbox_dir / "sandbox.json").exists():
            self.rep.emit(
                "experiment.sandbox",
                f"stopping the sandbox left in {_rel(self.sandbox_dir)} by an earlier run",
            )
            down(self.sandbox_dir)
        result = cmds.run("deploy", self.deploy_command(), timeout=180)
        if result.rc != 0:
            last = result.output.strip().splitlines()[-1:] or ["no output"]
            raise Unavailable(f"the sandbox did not start (exit {result.rc}): {last[0]}")
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
        from repairtool.stairway.schema import EngineVersion

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
        out.append(
            f"Work-queue ack deadline {ACK_DEADLINE_SECONDS} s (the emulator's minimum; the"
            " engine creates 100 s): an unacked READY message is redelivered after it"
        )
        return out

    def close(self) -> None:
        from sandbox.lifecycle import destroy

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
        from opskit.render import render

        return dict(json.loads(render(self.env, "testrunner-server.json.j2")))

    def suite(self) -> dict[str, Any]:
        from opskit.render import render

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
