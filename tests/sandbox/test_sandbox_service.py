"""End to end on one shared 2-replica sandbox: kubectl, Cloud Logging, the service API, the
command line and a rollout (last: it replaces the pods)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from sandbox.lifecycle import SandboxHandle
from tests.sandbox.burst import burst

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

TOKEN = "ya29.sandbox-secret-token-DO-NOT-LOG"
ROOT = Path(__file__).resolve().parents[2]


def _kubectl(h: SandboxHandle, *args: str) -> str:
    return subprocess.run(
        ["kubectl", *args, "--kubeconfig", str(h.kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


def test_kubectl_get_pods_lists_the_pods(shared_sandbox: SandboxHandle) -> None:
    h = shared_sandbox
    pods = sorted(h.wait_ready())
    out = _kubectl(h, "get", "pods")
    assert out.split()[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    for pod in pods:
        assert pod in out
        line = next(ln for ln in out.splitlines() if ln.startswith(pod))
        assert line.split()[1:4] == ["1/1", "Running", "0"]
        assert pod.startswith("workspacemanager-deployment-") and len(pod.split("-")[-1]) == 5
        assert len(pod.split("-")[-2]) == 10
    deploy = json.loads(
        _kubectl(h, "get", "deployment", "workspacemanager-deployment", "-o", "json")
    )
    assert deploy["status"]["readyReplicas"] == 2
    assert oct(Path(h.kubeconfig).stat().st_mode & 0o777) == "0o600"


def test_every_server_answers_a_burst_of_150_concurrent_requests(
    shared_sandbox: SandboxHandle,
) -> None:
    """The 2026 chaos soak saw resets at the front port under a burst (listen backlog of 5)."""
    h = shared_sandbox
    h.wait_ready()
    targets = {
        "service front (to the pods)": (h.service_url, "/status"),
        "Kubernetes API": (h.kube_url, f"/api/v1/namespaces/{h.namespace}/pods"),
        "Cloud Logging": (h.logging_url, "/"),
        "admin": (h.admin_url, "/sandbox/v1/state"),
    }
    for name, (url, path) in targets.items():
        outcomes = burst(url, path, 150)
        assert outcomes == {"200": 150}, f"{name}: {dict(outcomes)}"


def test_service_api(shared_sandbox: SandboxHandle) -> None:
    h = shared_sandbox
    wid, job = str(uuid.uuid4()), str(uuid.uuid4())
    status, body = h.request(
        "POST",
        "/api/workspaces/v1",
        {"id": wid, "jobId": job, "stage": "MC_WORKSPACE"},
        token=TOKEN,
    )
    assert (status, body) == (200, {"id": wid})
    status, report = h.request("GET", f"/api/job/v1/jobs/{job}", token=TOKEN)
    assert status == 200 and report["status"] == "SUCCEEDED" and report["statusCode"] == 200
    assert report["description"] == f"Create workspace {wid}"
    status, ws = h.request("GET", f"/api/workspaces/v1/{wid}", token=TOKEN)
    assert status == 200 and ws["stage"] == "MC_WORKSPACE" and ws["id"] == wid
    # same job id again: DuplicateFlightIdException → 400
    status, err = h.request(
        "POST", "/api/workspaces/v1", {"id": str(uuid.uuid4()), "jobId": job}, token=TOKEN
    )
    assert status == 400 and "duplicate jobId" in err["message"]
    assert h.request("DELETE", f"/api/workspaces/v1/{wid}", token=TOKEN)[0] == 204
    assert h.request("GET", f"/api/workspaces/v1/{wid}", token=TOKEN)[0] == 404
    assert h.request("GET", f"/api/job/v1/jobs/{uuid.uuid4()}", token=TOKEN)[0] == 404
    assert h.request("GET", f"/api/workspaces/v1/{wid}", token="")[0] == 401
    assert h.request("POST", "/api/workspaces/v1", {"id": wid, "stage": "X"})[0] == 400
    status, version = h.request("GET", "/version")
    assert status == 200 and version["stairwayVersion"] == "0.0.60"
    # RAWLS_WORKSPACE (the default stage) runs the check step instead of creating the resource
    status, body = h.request("POST", "/api/workspaces/v1", {"id": str(uuid.uuid4())}, token=TOKEN)
    assert status == 200
    raw = "".join(p.read_text() for p in h.logs_dir.glob("*.jsonl"))
    assert TOKEN not in raw


def test_cloud_logging_client_reads_the_pod_logs(shared_sandbox: SandboxHandle) -> None:
    h = shared_sandbox
    pods = sorted(h.wait_ready())
    client = h.logging_client()
    flt = (
        f'resource.type="k8s_container" resource.labels.namespace_name="{h.namespace}"\n'
        '-httpRequest.requestUrl="/status"\njsonPayload.message:"existingStairways"'
    )
    entries = list(client.list_entries(resource_names=[f"projects/{h.project_id}"], filter_=flt))
    assert sorted(e.resource.labels["pod_name"] for e in entries) >= pods
    e = entries[0]
    assert e.resource.type == "k8s_container"
    assert set(e.resource.labels) == {
        "project_id",
        "cluster_name",
        "namespace_name",
        "location",
        "container_name",
        "pod_name",
    }
    assert e.labels["k8s-pod/pod-template-hash"] == e.resource.labels["pod_name"].split("-")[-2]
    assert e.log_name == f"projects/{h.project_id}/logs/stdout"
    probes = list(client.list_entries(filter_='httpRequest.requestUrl="/status"', max_results=3))
    assert probes and probes[0].http_request["userAgent"] == "kube-probe/1.32"
    posts = list(
        client.list_entries(
            filter_='httpRequest.requestMethod="POST" httpRequest.status=200', max_results=5
        )
    )
    assert posts and posts[0].http_request["requestUrl"] == "/api/workspaces/v1"


def test_command_line_status(shared_sandbox: SandboxHandle) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sandbox",
            "status",
            "--json",
            "--state-dir",
            str(shared_sandbox.state_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    st = json.loads(out.stdout)
    assert st["running"] and st["postgres"] and st["supervisor"]
    assert len([p for p in st["pods"] if p["ready"]]) == 2


def test_rollout_replaces_pods_one_by_one(shared_sandbox: SandboxHandle) -> None:
    h = shared_sandbox
    old = sorted(h.wait_ready())
    old_hash = old[0].split("-")[-2]
    apps = h.apps_v1()
    dep = apps.read_namespaced_deployment("workspacemanager-deployment", h.namespace)
    env = [e.to_dict() for e in dep.spec.template.spec.containers[0].env]
    env = [e for e in env if e["name"] != "WSM_DELAY_HOOK"] + [
        {
            "name": "WSM_DELAY_HOOK",
            "value": "bio.terra.workspace.service.workspace.flight.WorkspaceCreateFlight,1,0.5",
        }
    ]
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "workspacemanager",
                            "env": [{k: v for k, v in e.items() if v is not None} for e in env],
                        }
                    ]
                }
            }
        }
    }
    apps.patch_namespaced_deployment(
        "workspacemanager-deployment",
        h.namespace,
        patch,
        _content_type="application/merge-patch+json",
    )
    out = subprocess.run(
        [
            "kubectl",
            "rollout",
            "status",
            "deployment/workspacemanager-deployment",
            "--timeout=60s",
            "--kubeconfig",
            str(h.kubeconfig),
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert "successfully rolled out" in out.stdout, out.stdout + out.stderr
    new = sorted(h.wait_ready())
    new_hash = new[0].split("-")[-2]
    assert new_hash != old_hash and not set(new) & set(old)
    assert all(p.split("-")[-2] == new_hash for p in new)
    events = _kubectl(h, "get", "events")
    assert "ScalingReplicaSet" in events and f"workspacemanager-deployment-{new_hash}" in events
    # the new template's DelayHook is live in the new pods
    status, _ = h.request(
        "POST",
        "/api/workspaces/v1",
        {"id": str(uuid.uuid4()), "stage": "MC_WORKSPACE"},
        token=TOKEN,
    )
    assert status == 200
    assert h.messages(contains="by PT0.5S")
    # every old instance was recovered by a live pod (no orphaned stairwayinstance rows)
    assert h.instances() == new
