"""Cloud Logging entries written by the sandbox, read back with google-cloud-logging."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.cloud import logging as gcl

from sandbox.cloudlog import (
    REDACTED,
    CloudLogHandler,
    EntriesServer,
    EntryWriter,
    PodLogContext,
    Redactor,
    compile_filter,
    logging_client,
    read_entries,
)

PROJECT = "terra-sandbox"
HASH = "5ffc97854c"
PODS = (f"workspacemanager-deployment-{HASH}-9vbt4", f"workspacemanager-deployment-{HASH}-bj2qd")


def _ctx(pod: str) -> PodLogContext:
    return PodLogContext(
        project_id=PROJECT,
        cluster_name="terra-integration",
        location="us-central1-a",
        namespace="terra-jcarlton",
        pod_name=pod,
        container_name="workspacemanager",
        pod_labels={"app.kubernetes.io/component": "workspacemanager", "pod-template-hash": HASH},
    )


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    d = tmp_path / "logs"
    base = time.time() - 60
    secret = "ya29.super-secret-token-value"
    for n, pod in enumerate(PODS):
        w = EntryWriter(d / f"{pod}.jsonl", _ctx(pod), Redactor([secret]))
        w.write("INFO", {"message": f"Creating Stairway: name: [{pod}]"}, created=base + n)
        w.write(
            "INFO",
            {"message": "GET /status 200"},
            created=base + 10 + n,
            http_request={"requestMethod": "GET", "requestUrl": "/status", "status": 200},
        )
        w.write(
            "WARNING",
            {"message": "Unexpected exception dispatching messages - continuing"},
            created=base + 20 + n,
        )
        w.write(
            "INFO",
            {"message": f"token is {secret} / Authorization: Bearer abcdefghijkl"},
            created=base + 30 + n,
        )
        w.close()
    return d


@pytest.fixture
def server(logs: Path) -> Iterator[EntriesServer]:
    srv = EntriesServer(logs).start()
    yield srv
    srv.stop()


def test_entry_shape_and_redaction(logs: Path) -> None:
    entries = read_entries(logs)
    assert len(entries) == 8
    e = entries[0]
    assert e["resource"] == {
        "type": "k8s_container",
        "labels": {
            "project_id": PROJECT,
            "cluster_name": "terra-integration",
            "location": "us-central1-a",
            "namespace_name": "terra-jcarlton",
            "pod_name": PODS[0],
            "container_name": "workspacemanager",
        },
    }
    assert e["labels"]["k8s-pod/pod-template-hash"] == HASH
    assert e["labels"]["k8s-pod/app_kubernetes_io/component"] == "workspacemanager"
    assert e["logName"] == f"projects/{PROJECT}/logs/stdout"
    assert e["timestamp"].endswith("Z") and "T" in e["timestamp"]
    raw = "".join(p.read_text() for p in logs.glob("*.jsonl"))
    assert "super-secret" not in raw and "abcdefghijkl" not in raw and REDACTED in raw


def test_filter_subset() -> None:
    entry = {
        "severity": "WARNING",
        "timestamp": "2026-11-28T10:00:00.000001Z",
        "resource": {"labels": {"pod_name": PODS[0]}},
        "labels": {"k8s-pod/pod-template-hash": HASH},
        "jsonPayload": {"message": "Disowned 1 flights for stairway: x"},
        "httpRequest": {"requestUrl": "/api/workspaces/v1", "status": 500},
    }
    yes = [
        f'resource.labels.pod_name="{PODS[0]}"',
        f'labels."k8s-pod/pod-template-hash"="{HASH}"',
        'jsonPayload.message:"disowned 1"',
        "severity>=WARNING AND severity<ERROR",
        'severity>=INFO\n-httpRequest.requestUrl="/status"',
        'timestamp>="2026-11-28T09:59:59Z" timestamp<="2026-11-28T10:00:01Z"',
        "severity=ERROR OR severity=WARNING",
        "httpRequest.status>=500",
        'NOT jsonPayload.message:"taking ownership"',
        '"flights for stairway"',
        "httpRequest:*",
        "(severity=ERROR OR jsonPayload.message:Disowned) AND resource.labels.pod_name:bj2qd"
        " OR resource.labels.pod_name:9vbt4",
    ]
    no = [
        "severity>=ERROR",
        'jsonPayload.message:"Found ready"',
        'httpRequest.requestUrl="/status"',
        'timestamp>"2026-11-28T10:00:01Z"',
        "-severity=WARNING",
        "trace:*",
    ]
    for f in yes:
        assert compile_filter(f)(entry), f
    for f in no:
        assert not compile_filter(f)(entry), f


def test_google_cloud_logging_client(server: EntriesServer) -> None:
    client = logging_client(PROJECT, server.url)
    assert isinstance(client, gcl.Client)
    flt = (
        f'resource.type="k8s_container" resource.labels.project_id="{PROJECT}"\n'
        '-httpRequest.requestUrl="/status"\n'
        'jsonPayload.message:"Stairway"'
    )
    got = list(client.list_entries(resource_names=[f"projects/{PROJECT}"], filter_=flt))
    assert [e.resource.labels["pod_name"] for e in got] == list(PODS)
    assert all(e.payload["message"].startswith("Creating Stairway") for e in got)

    # paging and order
    since = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    desc = list(
        client.list_entries(
            resource_names=[f"projects/{PROJECT}"],
            filter_=f'timestamp>="{since}"',
            order_by=gcl.DESCENDING,
            page_size=3,
        )
    )
    assert len(desc) == 8
    stamps = [e.timestamp for e in desc]
    assert stamps == sorted(stamps, reverse=True)
    warn = list(client.list_entries(filter_="severity>=WARNING"))
    assert {e.severity for e in warn} == {"WARNING"} and len(warn) == 2
    probes = list(client.list_entries(filter_='httpRequest.requestUrl="/status"'))
    assert len(probes) == 2 and probes[0].http_request["requestUrl"] == "/status"


def test_handler_writes_java_style_records(tmp_path: Path) -> None:
    w = EntryWriter(tmp_path / "p.jsonl", _ctx(PODS[0]))
    log = logging.getLogger("bio.terra.stairway.Stairway.test")
    log.propagate = False
    handler = CloudLogHandler(w, service="workspacemanager")
    log.addHandler(handler)
    try:
        log.warning(
            "Unexpected exception dispatching messages - continuing",
            extra={"java_trace": "a.B: boom\n\tat x.y(Z.java:1)", "mdc": {"flightId": "f"}},
        )
    finally:
        log.removeHandler(handler)
        w.close()
    (entry,) = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert entry["severity"] == "WARNING"
    assert entry["jsonPayload"]["message"].splitlines()[1] == "a.B: boom"
    assert entry["jsonPayload"]["logger"] == "bio.terra.stairway.Stairway.test"
    assert entry["jsonPayload"]["flightId"] == "f"
