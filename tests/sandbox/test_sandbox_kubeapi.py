"""The sandbox Kubernetes API, driven by the official client and by kubectl (no workers)."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from sandbox.cluster import Cluster, ClusterSpec, FakeRuntime, parse_label_selector, template_hash
from sandbox.kubeapi import KubeApiServer, write_kubeconfig
from sandbox.podlistener import core_api

NS = "terra-sandbox"
DEPLOY = "workspacemanager-deployment"
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster(ClusterSpec(NS, DEPLOY, "workspacemanager", 2), FakeRuntime(), tick=0.05)
    c.start()
    _wait(lambda: len(c.pod_names()) == 2 and all(p["ready"] for p in c.pods_summary()))
    yield c
    c.stop()


@pytest.fixture
def server(cluster: Cluster) -> Iterator[KubeApiServer]:
    srv = KubeApiServer(cluster).start()
    yield srv
    srv.stop()


@pytest.fixture
def core(server: KubeApiServer) -> client.CoreV1Api:
    cfg = client.Configuration()
    cfg.host = server.url
    return client.CoreV1Api(client.ApiClient(cfg))


@pytest.fixture
def apps(server: KubeApiServer) -> client.AppsV1Api:
    cfg = client.Configuration()
    cfg.host = server.url
    return client.AppsV1Api(client.ApiClient(cfg))


def _wait(cond: Any, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_template_hash_and_pod_names(cluster: Cluster) -> None:
    h = cluster.current_hash()
    assert len(h) == 10 and set(h) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert h == template_hash(cluster.store.get("deployments", NS, DEPLOY)["spec"]["template"])
    for name in cluster.pod_names():
        prefix, _, suffix = name.rpartition("-")
        assert prefix == f"{DEPLOY}-{h}" and len(suffix) == 5


def test_label_selector() -> None:
    m = parse_label_selector("app in (a,b),tier!=db,!legacy,deployment=x")
    assert m({"app": "a", "tier": "web", "deployment": "x"})
    assert not m({"app": "c", "deployment": "x"})
    assert not m({"app": "a", "deployment": "x", "legacy": "1"})


def test_client_list_get_delete_events(core: client.CoreV1Api, cluster: Cluster) -> None:
    pods = core.list_namespaced_pod(NS, label_selector=f"deployment={DEPLOY}")
    names = sorted(p.metadata.name for p in pods.items)
    assert names == sorted(cluster.pod_names())
    assert all(p.status.phase == "Running" for p in pods.items)
    assert core.list_namespaced_pod(NS, label_selector="deployment=other").items == []
    one = core.read_namespaced_pod(names[0], NS)
    assert one.metadata.labels["pod-template-hash"] == cluster.current_hash()

    core.delete_namespaced_pod(names[0], NS, grace_period_seconds=0)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod(names[0], NS)
    assert err.value.status == 404
    _wait(lambda: len(cluster.pod_names()) == 2 and names[0] not in cluster.pod_names())

    reasons = [(e.reason, e.involved_object.name) for e in core.list_namespaced_event(NS).items]
    assert ("Killing", names[0]) in reasons
    assert any(r == "SuccessfulCreate" for r, _ in reasons)


def test_watch_replays_and_streams_replacement(core: client.CoreV1Api, cluster: Cluster) -> None:
    victim = cluster.pod_names()[0]
    seen: list[tuple[str, str]] = []
    w = watch.Watch()

    def run() -> None:
        for ev in w.stream(
            core.list_namespaced_pod, NS, label_selector=f"deployment={DEPLOY}", timeout_seconds=5
        ):
            seen.append((ev["type"], ev["object"].metadata.name))
            if ev["type"] == "DELETED":
                w.stop()

    t = threading.Thread(target=run)
    t.start()
    _wait(lambda: len(seen) >= 2)
    assert {n for _, n in seen[:2]} == set(cluster.pod_names())
    assert all(ty == "ADDED" for ty, _ in seen[:2])
    core.delete_namespaced_pod(victim, NS)
    t.join(timeout=10)
    types_for_victim = [ty for ty, n in seen if n == victim]
    assert types_for_victim[0] == "ADDED" and types_for_victim[-1] == "DELETED"
    assert "MODIFIED" in types_for_victim
    new = [n for ty, n in seen if ty == "ADDED" and n not in (victim,)][2 - 1 :]
    assert new, seen  # the replacement was announced before the old pod's DELETED
    first_new = seen.index(("ADDED", new[-1]))
    assert first_new < seen.index(("DELETED", victim))


def test_dropped_watch_breaks_the_pods_stream_only(
    core: client.CoreV1Api, server: KubeApiServer, cluster: Cluster
) -> None:
    """The switch cuts the pods' own listeners (their service-account token); an operator's
    watch through the kubeconfig goes on, as on a real cluster."""
    pod_client = core_api(server.url)
    errors: list[BaseException] = []
    events: dict[str, list[str]] = {"pod": [], "operator": []}

    def run(api: client.CoreV1Api, who: str, timeout: int | None) -> None:
        try:
            for ev in watch.Watch().stream(api.list_namespaced_pod, NS, timeout_seconds=timeout):
                events[who].append(ev["type"])
        except Exception as error:  # the client's view of a cut stream
            errors.append(error)

    listener = threading.Thread(target=run, args=(pod_client, "pod", None))
    operator = threading.Thread(target=run, args=(core, "operator", 3))
    listener.start()
    operator.start()
    _wait(lambda: len(events["pod"]) >= 2 and len(events["operator"]) >= 2)
    cluster.set_switches(pod_watch_dropped=True)
    listener.join(timeout=10)
    assert not listener.is_alive()
    assert len(errors) == 1, "a dropped watch must surface as an error, not a clean end"
    operator.join(timeout=10)
    assert not operator.is_alive() and len(errors) == 1  # ended by its own timeout, cleanly


def test_replacement_switch(core: client.CoreV1Api, cluster: Cluster) -> None:
    cluster.set_switches(replace_deleted_pods=False)
    victim = cluster.pod_names()[0]
    core.delete_namespaced_pod(victim, NS)
    time.sleep(0.3)
    assert len(cluster.pod_names()) == 1
    cluster.set_switches(replace_deleted_pods=True)
    _wait(lambda: len(cluster.pod_names()) == 2)


def test_deployment_patch_rolls_out(apps: client.AppsV1Api, cluster: Cluster) -> None:
    old_hash = cluster.current_hash()
    dep = apps.read_namespaced_deployment(DEPLOY, NS)
    assert dep.spec.replicas == 2
    apps.patch_namespaced_deployment(
        DEPLOY,
        NS,
        {"spec": {"template": {"metadata": {"annotations": {"restartedAt": "now"}}}}},
        _content_type="application/merge-patch+json",
    )
    new_hash = cluster.current_hash()
    assert new_hash != old_hash
    _wait(
        lambda: (
            sorted(p["template_hash"] for p in cluster.pods_summary() if p["ready"])
            == [new_hash, new_hash]
        )
    )
    apps.patch_namespaced_deployment_scale(DEPLOY, NS, {"spec": {"replicas": 3}})
    _wait(lambda: len(cluster.pod_names()) == 3)
    assert apps.read_namespaced_deployment(DEPLOY, NS).status.updated_replicas in (2, 3)


# -- kubectl ------------------------------------------------------------------------------------


@pytest.fixture
def kubeconfig(server: KubeApiServer, tmp_path: Path) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", server.url, NS)


def _kubectl(kubeconfig: Path, *args: str) -> str:
    proc = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


needs_kubectl = pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl not installed")


@needs_kubectl
def test_kubectl_get_delete_events_watch(kubeconfig: Path, cluster: Cluster) -> None:
    out = _kubectl(kubeconfig, "get", "pods")
    assert out.splitlines()[0].split()[:3] == ["NAME", "READY", "STATUS"]
    for name in cluster.pod_names():
        assert name in out
    victim = cluster.pod_names()[0]
    watcher = subprocess.Popen(
        [KUBECTL, "--kubeconfig", str(kubeconfig), "get", "pods", "--watch"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)
        assert f'pod "{victim}" deleted' in _kubectl(kubeconfig, "delete", "pod", victim)
        time.sleep(1.0)
    finally:
        watcher.terminate()
        watched, _ = watcher.communicate(timeout=10)
    assert "Terminating" in watched
    events = _kubectl(kubeconfig, "get", "events")
    assert "Killing" in events and f"pod/{victim}" in events
    names = _kubectl(kubeconfig, "get", "pods", "-o", "jsonpath={.items[*].metadata.name}").split()
    assert victim not in names and len(names) == 2


@needs_kubectl
def test_kubectl_rollout_restart_and_status(kubeconfig: Path, cluster: Cluster) -> None:
    old = cluster.current_hash()
    _kubectl(kubeconfig, "rollout", "restart", f"deployment/{DEPLOY}")
    out = _kubectl(kubeconfig, "rollout", "status", f"deployment/{DEPLOY}", "--timeout=30s")
    assert "successfully rolled out" in out
    assert cluster.current_hash() != old
    assert all(p["template_hash"] == cluster.current_hash() for p in cluster.pods_summary())
