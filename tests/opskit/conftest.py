"""Fixtures for the ops layer: loopback servers that speak the real protocols.

GKE code paths run against the sandbox's Kubernetes API server (``sandbox.kubeapi``, backed by
its Deployment/ReplicaSet controller with a process-less runtime) and its Cloud Logging
``entries:list`` server (``sandbox.cloudlog``), through a GKE env file whose kubeconfig and
logging endpoint point at them. Nothing else about the env differs from ``envs/jcarlton.yaml``.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from opskit import paths
from opskit.envs import Env, load_env_file

FIXTURES = Path(__file__).parent / "fixtures"
JCARLTON = paths.PROJECT_ROOT / "envs" / "jcarlton.yaml"
CONTEXT = "gke_terra-kernel-k8s_us-central1-a_terra-integration"
NAMESPACE = "terra-jcarlton"
DEPLOYMENT = "workspacemanager-deployment"


@dataclass
class FakeGke:
    """A loopback kube API for terra-jcarlton plus an entries:list server over ``logs_dir``."""

    cluster: Any
    kube_server: Any
    kubeconfig: Path
    logs_server: Any
    logs_dir: Path

    def pods(self) -> list[str]:
        return list(self.cluster.pod_names())

    def log_writer(self, pod: str) -> Any:
        """A Cloud Logging entry writer for ``pod`` with the jcarlton resource labels."""
        from sandbox.cloudlog import EntryWriter, PodLogContext

        ctx = PodLogContext(
            project_id="terra-kernel-k8s",
            cluster_name="terra-integration",
            location="us-central1-a",
            namespace=NAMESPACE,
            pod_name=pod,
            container_name="workspacemanager",
        )
        return EntryWriter(self.logs_dir / f"{pod}.jsonl", ctx)


def _wait(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


@pytest.fixture
def fake_gke(tmp_path: Path) -> Iterator[FakeGke]:
    from sandbox.cloudlog import EntriesServer
    from sandbox.cluster import Cluster, ClusterSpec, FakeRuntime
    from sandbox.kubeapi import KubeApiServer, write_kubeconfig

    cluster = Cluster(ClusterSpec(NAMESPACE, DEPLOYMENT, "workspacemanager", 2), FakeRuntime())
    cluster.start()
    kube_server = KubeApiServer(cluster).start()
    kubeconfig = write_kubeconfig(tmp_path / "kube" / "config", kube_server.url, NAMESPACE, CONTEXT)
    logs_dir = tmp_path / "logs"
    logs_dir.mkdir()
    logs_server = EntriesServer(logs_dir).start()
    fake = FakeGke(cluster, kube_server, kubeconfig, logs_server, logs_dir)
    # both pods listed *and* Ready (Pending → Running → Ready takes a few controller ticks)
    _wait(lambda: len(fake.pods()) == 2 and all(p["ready"] for p in cluster.pods_summary()))
    try:
        yield fake
    finally:
        kube_server.stop()
        logs_server.stop()
        cluster.stop()


def write_gke_env(tmp_path: Path, **overrides: Any) -> Env:
    """``envs/jcarlton.yaml`` with local paths/endpoints (dotted keys override values)."""
    data = yaml.safe_load(JCARLTON.read_text())
    data["state_dir"] = str(tmp_path / "state")
    data["service"]["checkout"] = str(tmp_path / "checkout")
    data["testrunner"]["output_dir"] = str(tmp_path / "TR")
    data["stairway"]["db"]["password"] = {"env": "OPSKIT_TEST_NO_SUCH_VAR"}
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    d = tmp_path / "envs"
    d.mkdir(exist_ok=True)
    path = d / "jcarlton.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_env_file(path)


@pytest.fixture
def make_gke_env(tmp_path: Path) -> Any:
    """Factory: ``make_gke_env(**{"dotted.key": value})`` writes and loads a jcarlton copy."""
    return lambda **overrides: write_gke_env(tmp_path, **overrides)


@pytest.fixture
def gke_env(tmp_path: Path, fake_gke: FakeGke) -> Env:
    return write_gke_env(
        tmp_path,
        **{
            "gke.kubeconfig": str(fake_gke.kubeconfig),
            "gke.logging_endpoint": fake_gke.logs_server.url,
        },
    )


@pytest.fixture
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the state and artifacts dirs at tmp (tasks write run dirs there)."""
    monkeypatch.setenv("STAIRWAY_OPS_STATE_DIR", str(tmp_path / "state-root"))
    monkeypatch.setenv("STAIRWAY_OPS_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    return tmp_path


class FlightDb:
    """A Stairway 0.0.60 database with helpers to write flights the way the engine does."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    @property
    def url(self) -> Any:
        return self.engine.url

    def insert(
        self,
        flight_id: str,
        *,
        status: str = "RUNNING",
        owner: str | None = None,
        class_name: str = "bio.terra.workspace.service.workspace.flight.WorkspaceCreateFlight",
        steps_done: int = 0,
    ) -> None:
        """A flight row as the engine writes it on submit, plus ``steps_done`` DO log rows."""
        from sqlalchemy import text

        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO flight (flightid, submit_time, class_name, status, stairway_id,"
                    " debug_info) VALUES (:id, :t, :c, :s, :o, '{}')"
                ),
                {"id": flight_id, "t": now, "c": class_name, "s": status, "o": owner},
            )
            conn.execute(
                text("INSERT INTO flightinput (flightid, key, value) VALUES (:id, :k, :v)"),
                {"id": flight_id, "k": "workspaceStage", "v": json.dumps("MC_WORKSPACE")},
            )
        for _ in range(steps_done):
            self.step_done(flight_id)

    def step_done(self, flight_id: str) -> None:
        """Append the next DO row (the engine logs each finished step)."""
        from sqlalchemy import text

        with self.engine.begin() as conn:
            n = conn.execute(
                text("SELECT count(*) FROM flightlog WHERE flightid = :id"), {"id": flight_id}
            ).scalar_one()
            conn.execute(
                text(
                    "INSERT INTO flightlog (id, flightid, log_time, working_parameters,"
                    " step_index, rerun, direction, succeeded, serialized_exception, status)"
                    " VALUES (gen_random_uuid(), :id, clock_timestamp(), '{}', :i, false, 'DO',"
                    " true, '', 'RUNNING')"
                ),
                {"id": flight_id, "i": n},
            )

    def set(self, flight_id: str, **cols: Any) -> None:
        from sqlalchemy import text

        sets = ", ".join(f"{k} = :{k}" for k in cols)
        with self.engine.begin() as conn:
            conn.execute(
                text(f"UPDATE flight SET {sets} WHERE flightid = :id"), {"id": flight_id, **cols}
            )


@pytest.fixture
def flight_db(make_db: Any) -> FlightDb:
    """A fresh Stairway database at the 2021 generation (0.0.60)."""
    return FlightDb(make_db("0.0.60"))
