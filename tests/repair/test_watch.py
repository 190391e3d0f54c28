"""`repairtool watch`: the loop object against a real Postgres and the sandbox's loopback
Kubernetes API (pod list by label selector), its metrics, log lines and the limits of
auto-resume; and the CLI as a process (metrics over HTTP, SIGTERM)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, text

from repairtool.detect import Kind, Options
from repairtool.errors import UsageError
from repairtool.liveness import from_kube, from_names
from repairtool.stairway.db import parse_url
from repairtool.watch import AutoResume, Watcher, WatchOptions, WatchSource

SELECTOR = "app.kubernetes.io/component=workspacemanager"
DEAD = "workspacemanager-deployment-5ffc97854c-9vbt4"


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    """The sandbox's loopback Kubernetes API with 2 service pods and one pod of another app."""
    from sandbox.cluster import Cluster, ClusterSpec, FakeRuntime
    from sandbox.kubeapi import KubeApiServer, write_kubeconfig

    cluster = Cluster(
        ClusterSpec("terra-sandbox", "workspacemanager-deployment", "workspacemanager", 2),
        FakeRuntime(),
        tick=0.05,
    )
    cluster.start()
    server = KubeApiServer(cluster).start()
    # a pod of another app whose name would pass a name-substring filter, not the selector
    cluster.store.create(
        "pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "workspacemanager-deployment-sidekick-x1",
                "namespace": "terra-sandbox",
                "labels": {"app.kubernetes.io/component": "sidekick"},
            },
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Running"},
        },
    )
    try:
        end = time.monotonic() + 10
        while len(cluster.pod_names()) < 2 and time.monotonic() < end:
            time.sleep(0.05)
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url, "terra-sandbox")
        yield kubeconfig, sorted(cluster.pod_names())
    finally:
        server.stop()
        cluster.stop()


def _flight(engine: Engine, fid: str, owner: str, status: str = "RUNNING") -> None:
    with engine.begin() as c:
        c.execute(text("INSERT INTO stairwayinstance VALUES (:n, :n) ON CONFLICT DO NOTHING"),
                  {"n": owner})  # fmt: skip
        c.execute(
            text(
                "INSERT INTO flight (flightid, submit_time, class_name, status, stairway_id,"
                " debug_info) VALUES (:f, LOCALTIMESTAMP, 'x.Flight', :s, :o, '{}')"
            ),
            {"f": fid, "o": owner, "s": status},
        )


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    value = registry.get_sample_value(name, labels)
    return value


def _watcher(
    engine: Engine,
    kubeconfig: Path,
    *,
    auto: AutoResume | None = None,
    clock: Clock | None = None,
    lines: list[dict[str, Any]] | None = None,
) -> tuple[Watcher, CollectorRegistry]:
    registry = CollectorRegistry()
    source = WatchSource(
        env="sandbox",
        db=engine,
        liveness=lambda: from_kube(
            "terra-sandbox", "", kubeconfig=str(kubeconfig), label_selector=SELECTOR
        ),
        options=Options(),
    )
    sink = lines.append if lines is not None else (lambda r: None)
    w = Watcher(
        [source],
        registry,
        WatchOptions(interval=1, auto_resume=auto, actor="test-watch"),
        log=sink,
        clock=clock or Clock(),
    )
    return w, registry


def test_label_selector_picks_the_service_pods_not_a_name_substring(kube: Any) -> None:
    kubeconfig, pods = kube
    by_label = from_kube("terra-sandbox", "", kubeconfig=str(kubeconfig), label_selector=SELECTOR)
    assert sorted(by_label.live or ()) == pods
    by_name = from_kube("terra-sandbox", "workspacemanager-deployment", kubeconfig=str(kubeconfig))
    assert "workspacemanager-deployment-sidekick-x1" in (by_name.live or ())
    assert "-l app.kubernetes.io/component=workspacemanager" in by_label.note


def test_a_dead_owner_appears_in_the_metrics_and_the_log_then_clears(
    stairway_db: Engine, kube: Any
) -> None:
    kubeconfig, pods = kube
    _flight(stairway_db, "f-live", pods[0])
    _flight(stairway_db, "f-dead", DEAD)
    _flight(stairway_db, "f-done", pods[1], status="SUCCESS")
    clock = Clock()
    lines: list[dict[str, Any]] = []
    w, reg = _watcher(stairway_db, kubeconfig, clock=clock, lines=lines)

    first = w.scan_once()
    (env,) = first.envs
    assert env.ok and env.counts["dead_owner"] == 1 and env.counts["stale_instance"] == 1
    assert _sample(reg, "stairway_ops_findings", env="sandbox", kind="dead_owner") == 1
    assert _sample(reg, "stairway_ops_findings", env="sandbox", kind="stalled") == 0
    assert _sample(reg, "stairway_ops_flights", env="sandbox", status="RUNNING") == 2
    assert _sample(reg, "stairway_ops_flights", env="sandbox", status="SUCCESS") == 1
    assert _sample(reg, "stairway_ops_flights", env="sandbox", status="FATAL") == 0
    assert _sample(reg, "stairway_ops_scan_seconds_count", env="sandbox") == 1
    assert _sample(reg, "stairway_ops_last_successful_scan_timestamp_seconds", env="sandbox") == (
        clock.now
    )
    new = [r for r in lines if r["event"] == "finding.new"]
    assert {(r["kind"], r["flight_id"] or r["instance"]) for r in new} == {
        ("dead_owner", "f-dead"),
        ("stale_instance", DEAD),
    }
    assert all(r["severity"] == "WARNING" and r["env"] == "sandbox" for r in new)
    json.dumps(lines)  # every line is one JSON object

    clock.now += 90
    lines.clear()
    second = w.scan_once()
    assert second.envs[0].new == () and not lines  # nothing new: no log line
    age = _sample(reg, "stairway_ops_oldest_finding_age_seconds", env="sandbox", kind="dead_owner")
    assert age == 90

    with stairway_db.begin() as c:
        c.execute(text("UPDATE flight SET status='SUCCESS' WHERE flightid='f-dead'"))
    clock.now += 10
    third = w.scan_once()
    assert third.envs[0].cleared == (("dead_owner", "f-dead"),)
    assert _sample(reg, "stairway_ops_findings", env="sandbox", kind="dead_owner") == 0
    assert (
        _sample(reg, "stairway_ops_oldest_finding_age_seconds", env="sandbox", kind="dead_owner")
        == 0
    )
    (cleared,) = [r for r in lines if r["event"] == "finding.cleared"]
    assert cleared["flight_id"] == "f-dead" and cleared["age_seconds"] == 100


def test_a_failing_scan_is_counted_logged_once_and_the_loop_goes_on(stairway_db: Engine) -> None:
    secret = "pw-never-shown-0xC0FFEE"
    bad = parse_url(f"postgresql://u:{secret}@127.0.0.1:9/none", "test")
    from repairtool.stairway.db import make_engine

    registry = CollectorRegistry()
    lines: list[dict[str, Any]] = []
    good = WatchSource("good", stairway_db, lambda: from_names(["p"]))
    broken = WatchSource("broken", make_engine(bad, connect_timeout=1),
                         lambda: from_names(["p"]))  # fmt: skip
    w = Watcher([broken, good], registry, WatchOptions(interval=0.01), log=lines.append)
    assert w.run(threading.Event(), rounds=2) == 2
    assert _sample(registry, "stairway_ops_scan_errors_total", env="broken") == 2
    assert _sample(registry, "stairway_ops_scan_errors_total", env="good") == 0
    assert _sample(registry, "stairway_ops_scan_seconds_count", env="good") == 2
    failed = [r for r in lines if r["event"] == "scan.failed"]
    assert len(failed) == 2 and failed[0]["code"] == "DB_UNREACHABLE"
    assert secret not in json.dumps(lines)
    assert lines[0]["event"] == "watch.started"
    assert [r["event"] for r in lines][-1] == "watch.stopped"


def test_auto_resume_waits_min_age_resumes_through_the_audited_path_and_is_rate_limited(
    stairway_db: Engine, kube: Any
) -> None:
    kubeconfig, _ = kube
    _flight(stairway_db, "f-dead-1", DEAD)
    _flight(stairway_db, "f-dead-2", DEAD)
    clock = Clock()
    lines: list[dict[str, Any]] = []
    auto = AutoResume(max_per_hour=1, min_age=600)
    w, reg = _watcher(stairway_db, kubeconfig, auto=auto, clock=clock, lines=lines)

    assert w.scan_once().envs[0].repairs == ()  # seen for 0 s: too young
    clock.now += 599
    assert w.scan_once().envs[0].repairs == ()
    clock.now += 1
    repairs = w.scan_once().envs[0].repairs
    assert sorted(r.outcome for r in repairs) == ["applied", "rate_limited"]
    (applied,) = [r for r in repairs if r.outcome == "applied"]
    assert applied.action == "resume" and applied.audit_ids
    with stairway_db.connect() as c:
        rows = c.execute(
            text("SELECT flightid, actor, reason, action FROM stairway_ops.audit")
        ).all()
        status = dict(c.execute(text("SELECT flightid, status FROM flight")).all())
    assert [(r.flightid, r.actor, r.reason) for r in rows] == [
        (applied.flight_id, "test-watch", "watch auto-resume")
    ]
    assert status[applied.flight_id] == "READY"
    assert _sample(reg, "stairway_ops_repairs_total", env="sandbox", kind="dead_owner",
                   action="resume", outcome="applied") == 1  # fmt: skip
    # the limit holds for the hour; the deferred flight is reported once, not every round
    clock.now += 60
    assert w.scan_once().envs[0].repairs[0].outcome == "rate_limited"
    assert sum(r["event"] == "repair.rate_limited" for r in lines) == 1
    clock.now += 3600
    (later,) = w.scan_once().envs[0].repairs
    assert later.outcome == "applied" and later.flight_id != applied.flight_id


def test_auto_resume_never_acts_on_weak_liveness_or_other_kinds(
    stairway_db: Engine, kube: Any
) -> None:
    _flight(stairway_db, "f-dead", DEAD)
    registry = CollectorRegistry()
    clock = Clock()
    source = WatchSource("x", stairway_db, lambda: from_names(["someone-else"]))
    w = Watcher([source], registry, WatchOptions(auto_resume=AutoResume(min_age=0)),
                log=lambda r: None, clock=clock)  # fmt: skip
    result = w.scan_once()
    assert result.envs[0].counts["dead_owner"] == 1 and result.envs[0].repairs == ()
    with stairway_db.connect() as c:
        assert c.execute(text("SELECT status FROM flight")).scalar_one() == "RUNNING"
    with pytest.raises(UsageError, match="only dead_owner"):
        AutoResume(kinds=frozenset({Kind.STALLED}))
    with pytest.raises(UsageError, match="--max-per-hour"):
        AutoResume(max_per_hour=0)


def test_the_cli_serves_metrics_over_http_and_stops_on_sigterm(
    stairway_db: Engine, kube: Any
) -> None:
    kubeconfig, _ = kube
    _flight(stairway_db, "f-dead", DEAD)
    url = stairway_db.url.render_as_string(hide_password=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STAIRWAY_", "PG"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "repairtool", "watch", "--db", url, "--kube", "--kubeconfig",
         str(kubeconfig), "-n", "terra-sandbox", "-l", SELECTOR, "--interval", "1s",
         "--metrics-addr", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = [json.loads(proc.stdout.readline()) for _ in range(3)]
        assert lines[0]["event"] == "watch.source" and "database: " in lines[0]["message"]
        (listening,) = [r for r in lines if r["event"] == "metrics.listening"]
        deadline = time.monotonic() + 20
        body = ""
        while time.monotonic() < deadline:
            with urllib.request.urlopen(listening["metrics_url"], timeout=5) as r:
                body = r.read().decode()
            if 'stairway_ops_findings{env="terra-sandbox",kind="dead_owner"} 1.0' in body:
                break
            time.sleep(0.2)
        assert 'stairway_ops_findings{env="terra-sandbox",kind="dead_owner"} 1.0' in body
        assert "stairway_ops_scan_seconds_bucket" in body
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    events = [json.loads(line)["event"] for line in out.splitlines()]
    assert events[-1] == "watch.stopped"
    assert stairway_db.url.password not in out + err  # type: ignore[operator]


def test_cli_refuses_auto_resume_without_kubernetes_liveness(stairway_db: Engine) -> None:
    url = stairway_db.url.render_as_string(hide_password=False)
    base = [sys.executable, "-m", "repairtool", "watch", "--db", url, "--once"]
    for extra, message in (
        (["--auto-resume", "stalled"], "only dead_owner"),
        (["--auto-resume", "dead_owner", "--live-instances", "a"], "Kubernetes API"),
        (["--auto-resume", "dead_owner"], "Kubernetes API"),
        (["--metrics-addr", "nowhere"], "HOST:PORT"),
    ):
        proc = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, (extra, proc.stderr)
        # at most the log event naming the database, then one error line
        *where, error = proc.stderr.strip().splitlines()
        assert message in error and len(where) <= 1
        assert all(json.loads(w)["event"] == "watch.source" for w in where)


def test_once_prints_one_scan_and_exits_with_the_findings_code(stairway_db: Engine) -> None:
    _flight(stairway_db, "f-dead", DEAD)
    url = stairway_db.url.render_as_string(hide_password=False)
    proc = subprocess.run(
        [sys.executable, "-m", "repairtool", "watch", "--db", url, "--live-instances", "alive",
         "-n", "terra-x", "--once"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema"] == "repairtool.watch-scan/1"
    (env,) = doc["envs"]
    assert env["env"] == "terra-x" and env["findings"]["dead_owner"] == 1
    assert env["new"] == [["dead_owner", "f-dead"], ["stale_instance", f"instance {DEAD}"]]
    logged = [json.loads(line)["event"] for line in proc.stderr.splitlines()]
    assert logged == ["watch.source", "finding.new", "finding.new"]


def test_in_cluster_only_without_a_kubeconfig_like_kubectl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from repairtool.liveness import in_cluster

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert not in_cluster(None) and not in_cluster(tmp_path / "missing")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert in_cluster(None) and in_cluster(tmp_path / "missing")
    kc = tmp_path / "kubeconfig"
    kc.write_text("apiVersion: v1\n")
    assert not in_cluster(kc)
    monkeypatch.setenv("KUBECONFIG", str(kc))
    assert not in_cluster(None)
