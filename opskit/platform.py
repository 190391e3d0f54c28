"""One interface, two implementations: where the service runs.

:class:`Platform` is what every task uses. :class:`GkePlatform` drives a GKE namespace with the
official ``kubernetes`` client (kubeconfig context from the env), Cloud Logging through
``google-cloud-logging``, the Cloud SQL proxy, ``skaffold`` and TestRunner's ``gradlew`` (shell
commands go through an Invoke ``Context``, so tests check them with ``MockContext``).
:class:`LocalPlatform` (``opskit.local``) drives the sandbox through the *same* Kubernetes and
Cloud Logging code, pointed at the sandbox's loopback API servers.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import datetime as dt
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from opskit import testrunner
from opskit.cloudlogs import CloudLogs, LogScope, build_filter
from opskit.dbproxy import DbTarget, cloud_sql_proxy
from opskit.engine_events import LogLine
from opskit.envs import Env
from opskit.errors import CommandFailed, OperationFailed, ToolMissing
from opskit.events import Reporter
from opskit.kube import DeploymentStatus, Kube, Pod, PodEvent, humanize_seconds
from opskit.secrets import db_password

#: pod env vars without which a Terra service runs with in-kubernetes=false (no recovery)
KUBE_ENV_VARS = (
    "TERRA_COMMON_KUBERNETES_POD_NAME",
    "TERRA_COMMON_KUBERNETES_POD_NAME_FILTER",
    "TERRA_COMMON_KUBERNETES_IN_KUBERNETES",
)


@dataclass(frozen=True)
class RolloutResult:
    """A finished deploy: seconds until the deployment was stable, and warnings found."""

    seconds: float
    replicas: int
    warnings: tuple[str, ...] = ()
    #: ``inv --dry``: what would roll (nothing did)
    dry_run: str = ""

    @property
    def message(self) -> str:
        if self.dry_run:
            return f"dry run: {self.dry_run}; nothing was changed"
        return f"Deployments stabilized in {humanize_seconds(self.seconds)}"


class Platform(Protocol):
    """What the ops tasks need from where the service runs."""

    env: Env

    def kube(self) -> Kube: ...

    def list_pods(self) -> list[Pod]: ...

    def delete_pod(self, name: str) -> None: ...

    def watch_pods(
        self, timeout_seconds: float, resource_version: str | None = None
    ) -> Iterator[PodEvent]: ...

    def deployment_status(self) -> DeploymentStatus: ...

    def build(self, c: Any, reporter: Reporter) -> None: ...

    def rollout(
        self, c: Any, reporter: Reporter, timeout_seconds: float, *, dry: bool = False
    ) -> RolloutResult: ...

    def restart(
        self, reporter: Reporter, timeout_seconds: float, *, dry: bool = False
    ) -> RolloutResult: ...

    def log_scope(self) -> LogScope: ...

    def query_logs(
        self,
        *,
        since: dt.datetime,
        until: dt.datetime | None = None,
        pod: str | None = None,
        contains: Sequence[str] = (),
        limit: int | None = None,
    ) -> list[LogLine]: ...

    def db(self, c: Any, reporter: Reporter) -> contextlib.AbstractContextManager[DbTarget]: ...

    def db_proxy(
        self, c: Any, reporter: Reporter, log_path: Path | None = None
    ) -> contextlib.AbstractContextManager[DbTarget]: ...

    def run_test(
        self, c: Any, suite: str, reporter: Reporter, run_dir: Path
    ) -> testrunner.TestRunSummary: ...


class KubePlatform(abc.ABC):
    """The parts both implementations share: the official kube client and Cloud Logging."""

    env: Env

    def __init__(self, env: Env) -> None:
        self.env = env
        self._kube: Kube | None = None

    # subclasses say where the API servers are
    @abc.abstractmethod
    def _kubeconfig(self) -> tuple[Path | None, str | None]:
        """Where the API servers are (GKE or the sandbox)."""

    @abc.abstractmethod
    def _logs(self) -> CloudLogs:
        """Where the API servers are (GKE or the sandbox)."""

    @abc.abstractmethod
    def log_scope(self) -> LogScope:
        """Where the API servers are (GKE or the sandbox)."""

    def kube(self) -> Kube:
        if self._kube is None:
            kubeconfig, context = self._kubeconfig()
            self._kube = Kube(
                self.env.namespace,
                kubeconfig=kubeconfig,
                context=context,
                pod_filter=self.env.service.pod_filter,
                label_selector=self.env.service.label_selector,
            )
        return self._kube

    def list_pods(self) -> list[Pod]:
        return self.kube().list_pods()

    def delete_pod(self, name: str) -> None:
        self.kube().delete_pod(name)

    def watch_pods(
        self, timeout_seconds: float, resource_version: str | None = None
    ) -> Iterator[PodEvent]:
        return self.kube().watch_pods(timeout_seconds, resource_version)

    def deployment_status(self) -> DeploymentStatus:
        return self.kube().deployment_status(self.env.service.deployment)

    def restart(
        self, reporter: Reporter, timeout_seconds: float, *, dry: bool = False
    ) -> RolloutResult:
        """``kubectl rollout restart deployment/NAME`` through the Kubernetes API, watched until
        stable: the same image, new pods one by one. Every new pod runs the engine's start-up
        recovery (``recoverAndStart`` → ``recoverReady``), which resumes (no work queue) or
        queues every READY flight — the engine's own way to pick up READY flights."""
        kube = self.kube()
        name = self.env.service.deployment
        if dry:
            replicas = kube.deployment_status(name).replicas
            return RolloutResult(
                0.0, replicas, dry_run=f"restart deployment/{name} ({replicas} pods) and watch it"
            )
        before = kube.deployment_status(name)
        reporter.emit(
            "restart.start",
            f"rollout restart of deployment/{name} in {self.env.namespace}",
            deployment=name,
        )
        t0 = time.monotonic()
        kube.restart_deployment(name)
        # wait until the controller saw the new template before judging stability
        deadline = time.monotonic() + 10
        while kube.deployment_status(name).generation <= before.generation:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        seconds = kube.wait_rollout(name, timeout_seconds, reporter, started=t0)
        return RolloutResult(seconds=seconds, replicas=kube.deployment_status(name).replicas)

    def query_logs(
        self,
        *,
        since: dt.datetime,
        until: dt.datetime | None = None,
        pod: str | None = None,
        contains: Sequence[str] = (),
        limit: int | None = None,
    ) -> list[LogLine]:
        filter_ = build_filter(
            self.log_scope(), since=since, until=until, pod=pod, contains=contains
        )
        return list(self._logs().entries(filter_, limit=limit))


class GkePlatform(KubePlatform):
    """A namespace on GKE, as the 2021 team worked with it."""

    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self.gke = env.require_gke()

    def _kubeconfig(self) -> tuple[Path | None, str | None]:
        return Path(self.gke.kubeconfig).expanduser(), self.gke.context

    def _logs(self) -> CloudLogs:
        return CloudLogs(self.gke.project, self.gke.logging_endpoint)

    def log_scope(self) -> LogScope:
        return LogScope(
            project=self.gke.project,
            cluster=self.gke.cluster,
            location=self.gke.location,
            namespace=self.env.namespace,
            container=self.env.service.container,
        )

    # -- build & deploy -------------------------------------------------------------------

    @property
    def local_dev(self) -> Path:
        return self.env.service.checkout_path / "local-dev"

    def _require_checkout(self, sub: Path, hint: str) -> None:
        if not sub.is_dir():
            raise ToolMissing(f"{sub} does not exist: {hint}")

    def build(self, c: Any, reporter: Reporter) -> None:
        """``skaffold build`` in ``<checkout>/local-dev`` (jib, pushes the image)."""
        self._require_checkout(self.local_dev, f"run `inv setup --env {self.env.name}` first")
        reporter.emit("build.start", f"skaffold build in {self.local_dev}")
        with c.cd(str(self.local_dev)):
            result = c.run("skaffold build", warn=True, pty=False)
        if result is None or result.failed:
            code = getattr(result, "exited", "?")
            raise CommandFailed(f"skaffold build failed (exit {code})")

    def rollout(
        self, c: Any, reporter: Reporter, timeout_seconds: float, *, dry: bool = False
    ) -> RolloutResult:
        """``skaffold run --status-check=false`` in ``local-dev``, then watch the rollout.

        Skaffold's own status check is switched off so that exactly one waiter measures the
        rollout — ours, through the Kubernetes API, printing what skaffold would print.
        ``dry``: Invoke echoes the skaffold command instead of running it; nothing is watched.
        """
        self._require_checkout(self.local_dev, f"run `inv setup --env {self.env.name}` first")
        reporter.emit("deploy.start", f"skaffold run in {self.local_dev}")
        with c.cd(str(self.local_dev)):
            result = c.run("skaffold run --status-check=false", warn=True, pty=False, dry=dry)
        if dry:
            return RolloutResult(
                0.0, 0, dry_run=f"skaffold run in {self.local_dev}, then watch the rollout"
            )
        if result is None or result.failed:
            code = getattr(result, "exited", "?")
            raise CommandFailed(f"skaffold run failed (exit {code})")
        t0 = time.monotonic()
        kube = self.kube()
        seconds = kube.wait_rollout(
            self.env.service.deployment, timeout_seconds, reporter, started=t0
        )
        status = kube.deployment_status(self.env.service.deployment)
        warnings = tuple(self.check_deployment(status))
        for w in warnings:
            reporter.emit("deploy.warning", w, level="warn")
        return RolloutResult(seconds=seconds, replicas=status.replicas, warnings=warnings)

    def check_deployment(self, status: DeploymentStatus) -> list[str]:
        """The chart gotcha: the TERRA_COMMON_KUBERNETES_* vars only come with buffer.enabled."""
        names = status.container_env.get(self.env.service.container)
        if names is None:
            return [f"container {self.env.service.container!r} not in deployment {status.name}"]
        missing = [v for v in KUBE_ENV_VARS if v not in names]
        if not missing:
            return []
        return [
            f"deployment {status.name}: container {self.env.service.container} lacks "
            f"{', '.join(missing)} (chart puts them under buffer.enabled): the service runs with "
            "in-kubernetes=false - no pod listener, no work queue, no recovery of killed pods"
        ]

    # -- database -------------------------------------------------------------------------

    def db_proxy(
        self, c: Any, reporter: Reporter, log_path: Path | None = None
    ) -> contextlib.AbstractContextManager[DbTarget]:
        return cloud_sql_proxy(c, self.env, reporter=reporter, log_path=log_path)

    def db(self, c: Any, reporter: Reporter) -> contextlib.AbstractContextManager[DbTarget]:
        return self._db(c, reporter)

    @contextlib.contextmanager
    def _db(self, c: Any, reporter: Reporter) -> Iterator[DbTarget]:
        """The proxy for the block, and the password from where the service keeps it."""
        log = self.env.state_path / "cloud-sql-proxy.log"
        with cloud_sql_proxy(c, self.env, reporter=reporter, log_path=log) as target:
            ref = self.env.require_db().password
            kube = self.kube() if ref.k8s_secret and not ref.resolve() else None
            password = db_password(self.env, kube)
            if password is not None:
                reporter.emit("db.password", f"password from {password.source}")
                target = dataclasses.replace(target, secret=password.value)
            yield target

    # -- TestRunner -----------------------------------------------------------------------

    def run_test(
        self, c: Any, suite: str, reporter: Reporter, run_dir: Path
    ) -> testrunner.TestRunSummary:
        """``./gradlew runTest --args="suites/<suite>-<env>.json /tmp/TR"`` and its summary."""
        tr = self.env.testrunner
        assert tr is not None  # validated for kind gke
        suite_name = suite_file_name(self.env, suite)
        clienttests = self.env.service.checkout_path / tr.clienttests_dir
        self._require_checkout(clienttests, "check service.checkout in the env file")
        suite_file = clienttests / "src/main/resources/suites" / f"{suite_name}.json"
        if not suite_file.is_file():
            raise ToolMissing(f"{suite_file} missing: run `inv setup --env {self.env.name}` first")
        cmd = testrunner.run_test_command(suite_name, tr.output_dir)
        started = time.time()
        reporter.emit("test.start", f"{cmd} (in {clienttests})", command=cmd)
        with c.cd(str(clienttests)):
            result = c.run(cmd, warn=True, pty=False)
        exited = getattr(result, "exited", None)
        found = testrunner.find_summaries(Path(tr.output_dir), since=started - 1)
        if not found:
            raise CommandFailed(
                f"TestRunner wrote no {testrunner.SUMMARY_FILE} under {tr.output_dir}"
                f" (exit {exited})"
            )
        summary = testrunner.parse_summary(found[-1])
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / testrunner.SUMMARY_FILE).write_text(found[-1].read_text())
        reporter.emit("test.summary", f"summary: {found[-1]}", path=str(found[-1]), exit=exited)
        return summary


def suite_file_name(env: Env, suite: str) -> str:
    """``kill-pod`` → the env's suite (``kill-pod-jcarlton``); any other name is used as is."""
    if env.testrunner is not None and env.testrunner.suite in (suite, f"{suite}-{env.name}"):
        return env.testrunner.suite
    return f"{suite}-{env.name}" if not suite.endswith(f"-{env.name}") else suite


def require_success(summary: testrunner.TestRunSummary) -> None:
    if summary.is_failure:
        raise OperationFailed(
            "TestRunner: " + "; ".join(summary.lines()) if summary.lines() else "TestRunner failed"
        )
