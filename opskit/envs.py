"""Environments: ``envs/<name>.yaml`` loaded into frozen dataclasses.

An environment is data, not code. Loading validates the file: an unknown key, a missing
required key, a value of the wrong type or a kind-specific section that is missing or misplaced
is an :class:`~opskit.errors.EnvError` whose one-line message names the file and the key
(``envs/jcarlton.yaml: unknown key 'gke.projet'``).

Two kinds exist: ``local`` (the sandbox on this machine; needs a ``sandbox`` section) and
``gke`` (a namespace on a GKE cluster with a Cloud SQL database; needs ``gke``,
``stairway.db.cloud_sql``, ``service.checkout`` and ``testrunner``).

Secrets are never held in an env file: :class:`SecretRef` names where the secret is found (an
environment variable, a file, a Kubernetes Secret in the env's namespace, a Google Secret Manager
secret), and its ``repr`` shows only that (:mod:`opskit.secrets` reads the cluster sources).

``service.profile`` names the service (``workspace-manager``, ``data-repo``, ``resource-buffer``
or ``custom``): its defaults (``opskit/profiles/<profile>.yaml``: deployment, label selector,
database name and user, where the password is kept, the work-queue naming, the type catalog)
fill in whatever the env file leaves out (:mod:`opskit.profiles`).
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic.dataclasses import dataclass

from opskit import paths
from opskit.errors import EnvError, UnknownEnv
from opskit.profile import apply_profile
from repairtool.datafile import STRICT, Bool, Duration, Int, load_yaml, shown_path, validate
from repairtool.durations import format_duration

Kind = Literal["local", "gke"]
DEFAULT_ENV = "local"


@dataclass(frozen=True, config=STRICT)
class SecretRef:
    """Where a secret comes from, in this order: an environment variable, a file, a Kubernetes
    Secret in the env's namespace (``k8s_secret``, key ``k8s_key``), Google Secret Manager
    (``secret_manager``: ``projects/P/secrets/S/versions/V``, or ``S`` for the env's project and
    the latest version). Never the value. None of them found: libpq's ``~/.pgpass``."""

    env: str = ""
    file: str = ""
    k8s_secret: str = ""
    k8s_key: str = "password"
    secret_manager: str = ""

    @property
    def in_cluster_store(self) -> bool:
        """Whether the value may come from the cluster's secret stores (needs API access)."""
        return bool(self.k8s_secret or self.secret_manager)

    def resolve(self) -> str | None:
        """The value from the environment variable or the file (the local sources), or None.
        Never log the result; :func:`opskit.secrets.resolve_secret` also reads the cluster's."""
        return self.resolve_env() or self.resolve_file()

    def resolve_env(self) -> str | None:
        return os.environ.get(self.env) or None if self.env else None

    def resolve_file(self) -> str | None:
        if self.file:
            p = Path(self.file).expanduser()
            if p.is_file():
                return p.read_text().strip() or None
        return None

    def describe(self) -> str:
        where = []
        if self.env:
            where.append(f"${self.env}")
        if self.file:
            where.append(self.file)
        if self.k8s_secret:
            where.append(f"Kubernetes Secret {self.k8s_secret} (key {self.k8s_key})")
        if self.secret_manager:
            where.append(f"Secret Manager {self.secret_manager}")
        return " or ".join(where) if where else "~/.pgpass"


@dataclass(frozen=True, config=STRICT)
class GkeCluster:
    """The GKE cluster the service runs on (zonal clusters: ``location`` is the zone)."""

    project: str
    cluster: str
    zone: str
    region: str
    kube_context: str = ""
    kubeconfig: str = "~/.kube/config"
    logging_endpoint: str = ""
    #: Secret Manager API endpoint (default: Google's; tests: a loopback server)
    secret_manager_endpoint: str = ""

    @property
    def context(self) -> str:
        return self.kube_context or f"gke_{self.project}_{self.zone}_{self.cluster}"

    @property
    def location(self) -> str:
        return self.zone or self.region


@dataclass(frozen=True, config=STRICT)
class Service:
    """The Stairway-based service: where its pods run and where it answers.

    ``profile`` names the kind of service (its defaults come from ``opskit/profiles/``);
    ``label_selector`` selects its pods (each pod is one Stairway instance); ``catalog`` is its
    FlightMap type catalog: a built-in name (``workspace-manager``) or a YAML file.
    """

    namespace: str
    deployment: str
    container: str
    url: str = ""
    replicas: Int = 1
    pod_name_filter: str = ""
    checkout: str = ""
    image: str = ""
    profile: str = "workspace-manager"
    label_selector: str = ""
    catalog: str = ""

    @property
    def pod_filter(self) -> str:
        return self.pod_name_filter or self.deployment

    @property
    def checkout_path(self) -> Path:
        return Path(self.checkout).expanduser()


@dataclass(frozen=True, config=STRICT)
class CloudSql:
    """The Cloud SQL instance behind the Stairway database."""

    instance: str
    region: str
    project: str = ""


@dataclass(frozen=True, config=STRICT)
class StairwayDb:
    """How to reach the Stairway database from this machine (through the proxy for GKE)."""

    name: str
    user: str
    host: str = "127.0.0.1"
    port: Int = 5432
    password: SecretRef = field(default_factory=SecretRef)
    cloud_sql: CloudSql | None = None


@dataclass(frozen=True, config=STRICT)
class Stairway:
    """Engine settings: work-queue cluster name, database, engine version in use.

    ``work_queue``: whether the service runs Stairway's Pub/Sub work queue (topic
    ``<cluster_name>-workqueue``); without one a resumed flight waits for the next pod start.
    """

    cluster_name: str
    version: str = "0.0.43"
    db: StairwayDb | None = None
    work_queue: Bool = True


@dataclass(frozen=True, config=STRICT)
class Watch:
    """``repairtool watch`` in the cluster (``inv deploy-watch``): the Deployment's settings and
    the alert threshold. Auto-resume stays off unless ``auto_resume`` is true."""

    image: str = "ghcr.io/stairway-ops/stairway-ops:0.1.0"
    interval: Duration = timedelta(seconds=60)
    metrics_port: Int = 9464
    auto_resume: Bool = False
    max_per_hour: Int = 6
    min_age: Duration = timedelta(minutes=10)
    #: the PrometheusRule fires when a finding is older than this
    alert_after: Duration = timedelta(minutes=15)
    service_account: str = "stairway-ops-watch"
    #: Workload Identity: the Google service account the watcher acts as (Pub/Sub, Cloud SQL)
    gcp_service_account: str = ""
    proxy_image: str = "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.14.0"
    #: extra labels on the PrometheusRule (e.g. the `release` a Prometheus Operator selects)
    rule_labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, config=STRICT)
class DelayHook:
    """The DelayHook used by pod-kill rehearsals (step index is 0-based, as in the engine)."""

    flight_class: str
    step: Int
    duration: Duration


@dataclass(frozen=True, config=STRICT)
class HelmRepos:
    """terra-helm and terra-helmfile clones for ``local-dev`` (setup_local_env.sh arguments)."""

    terra_helm: str = "https://github.com/broadinstitute/terra-helm.git"
    terra_helm_branch: str = "master"
    terra_helmfile: str = "https://github.com/broadinstitute/terra-helmfile.git"
    terra_helmfile_branch: str = "master"
    chart: str = "workspacemanager"


@dataclass(frozen=True, config=STRICT)
class TestRunner:
    """TestRunner (terra-test-runner) server specification and suite for this env."""

    __test__ = False  # not a pytest class

    server: str
    suite: str
    description: str
    sam_uri: str
    datarepo_uri: str
    service_account_file: str
    suite_name: str
    suite_description: str
    test_configurations: tuple[str, ...]
    clienttests_dir: str = "workspace-manager-clienttests"
    output_dir: str = "/tmp/TR"


@dataclass(frozen=True, config=STRICT)
class Sandbox:
    """The local sandbox (kind ``local``). The engine version is ``stairway.version``.

    ``reader_version`` selects the FlightMap reader (empty: same as the engine; ``0.0.60`` and
    lower reproduce the 2021 enum bug on resume). ``queue``: ``auto`` uses the Pub/Sub emulator
    when installed. ``project``/``cluster``/``location`` are the names its log entries carry.
    """

    replicas: Int = 2
    reader_version: str = ""
    queue: Literal["auto", "emulator", "none"] = "auto"
    pod_listener: Bool = True
    ack_deadline_seconds: Int = 100
    job_timeout_seconds: Int = 1800
    project: str = "terra-sandbox"
    cluster: str = "terra-sandbox-cluster"
    location: str = "us-central1-a"


@dataclass(frozen=True, config=STRICT)
class Env:
    """One environment, validated. ``path`` is the file it was loaded from."""

    name: str
    kind: Kind
    description: str
    service: Service
    stairway: Stairway
    delay_hook: DelayHook | None = None
    gke: GkeCluster | None = None
    helm: HelmRepos | None = None
    testrunner: TestRunner | None = None
    sandbox: Sandbox | None = None
    watch: Watch | None = None
    state_dir: str = ""
    path: Path = field(default=Path(), compare=False)

    @property
    def state_path(self) -> Path:
        """The env's state directory (rendered files, kubeconfig, proxy logs)."""
        if self.state_dir:
            p = Path(self.state_dir).expanduser()
            return p if p.is_absolute() else paths.PROJECT_ROOT / p
        return paths.state_dir() / "envs" / self.name

    @property
    def namespace(self) -> str:
        return self.service.namespace

    def require_db(self) -> StairwayDb:
        if self.stairway.db is None:
            raise EnvError(f"{self.path}: env {self.name!r} has no stairway.db")
        return self.stairway.db

    def require_gke(self) -> GkeCluster:
        if self.gke is None:
            raise EnvError(f"{self.path}: env {self.name!r} is not a gke environment")
        return self.gke

    def to_dict(self) -> dict[str, Any]:
        """The env as plain data (for templates and Ansible extravars). No secret values."""
        return _to_plain(self)


# --------------------------------------------------------------------------------------------
# loading


_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def list_envs(directory: Path | None = None) -> list[str]:
    """Names of the environments in ``envs/`` (sorted)."""
    d = directory or paths.envs_dir()
    return sorted(p.stem for p in d.glob("*.yaml"))


def env_file(name: str, directory: Path | None = None) -> Path:
    return (directory or paths.envs_dir()) / f"{name}.yaml"


def load_env(name: str | None = None, directory: Path | None = None) -> Env:
    """Load and validate ``envs/<name>.yaml`` (default: ``local``)."""
    name = name or DEFAULT_ENV
    if not _NAME_RE.match(name):
        raise EnvError(f"invalid environment name {name!r}")
    path = env_file(name, directory)
    if not path.is_file():
        known = ", ".join(list_envs(directory)) or "none"
        raise UnknownEnv(f"unknown environment {name!r} (known: {known})")
    return load_env_file(path)


def load_env_file(path: Path) -> Env:
    """Load and validate one env file; errors name the file and the key."""
    shown = shown_path(path, paths.PROJECT_ROOT)
    data = load_yaml(path, shown, EnvError)
    if isinstance(data, dict) and "path" in data:
        raise EnvError(f"{shown}: unknown key 'path'")
    data = apply_profile(data, shown)
    env = dataclasses.replace(validate(Env, data, shown=shown, error=EnvError), path=path)
    if env.name != path.stem:
        raise EnvError(f"{shown}: key 'name' is {env.name!r} but the file is {path.name!r}")
    _check_kind(env, shown)
    return env


def _check_kind(env: Env, shown: str) -> None:
    def need(value: object, key: str) -> None:
        if value is None or value == "":
            raise EnvError(f"{shown}: missing key {key!r} (required for kind {env.kind!r})")

    def forbid(value: object, key: str) -> None:
        if value is not None:
            raise EnvError(f"{shown}: key {key!r} is not allowed for kind {env.kind!r}")

    if env.kind == "gke":
        need(env.gke, "gke")
        need(env.service.url, "service.url")
        need(env.stairway.db, "stairway.db")
        need(env.stairway.db and env.stairway.db.cloud_sql, "stairway.db.cloud_sql")
        need(env.service.checkout, "service.checkout")
        need(env.testrunner, "testrunner")
        forbid(env.sandbox, "sandbox")
    else:
        need(env.sandbox, "sandbox")
        forbid(env.gke, "gke")
        forbid(env.helm, "helm")
        forbid(env.stairway.db, "stairway.db")
        if not env.stairway.cluster_name.startswith(env.namespace + "-"):
            raise EnvError(
                f"{shown}: key 'stairway.cluster_name' must be '<service.namespace>-<suffix>'"
                f" (the sandbox derives it like terra-common-lib)"
            )
    if env.delay_hook is not None and env.delay_hook.step < 0:
        raise EnvError(f"{shown}: key 'delay_hook.step' must be >= 0")


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: _to_plain(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if f.name != "path" and not f.name.startswith("_")
        }
    if isinstance(obj, timedelta):
        return format_duration(obj)
    if isinstance(obj, tuple):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
