"""`inv deploy-watch`: the rendered manifests are what the Kubernetes API accepts (they
deserialize into the official client's models without losing a field), RBAC is least
privilege, the alert rules are a PrometheusRule whose PromQL parses and names only metrics the
watcher really exports; and the task sends them, by server-side apply, to a loopback Kubernetes
API that records the requests."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
from invoke import Config, MockContext
from invoke.exceptions import Exit
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import Engine, text

from opskit import paths, tasks
from opskit.envs import Env, load_env
from opskit.errors import UsageError
from opskit.watchdeploy import render_manifests
from repairtool.liveness import from_names
from repairtool.watch import Watcher, WatchOptions, WatchSource
from tests.opskit.recording_kubeapi import RecordingKubeApi

CONTEXT = "gke_terra-kernel-k8s_us-central1-a_terra-integration"
MODELS = {
    "ServiceAccount": "V1ServiceAccount",
    "Role": "V1Role",
    "RoleBinding": "V1RoleBinding",
    "ConfigMap": "V1ConfigMap",
    "Deployment": "V1Deployment",
}


def _by_kind(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["kind"]: m for m in manifests}


def _model(api_client: Any, obj: dict[str, Any], model: str) -> Any:
    """The object as the client deserializes an API response into ``model``."""
    return api_client.deserialize(json.dumps(obj), model, "application/json")


@pytest.fixture
def gke(make_gke_env: Any) -> Env:
    env: Env = make_gke_env()
    return env


def test_manifests_deserialize_into_the_official_models_without_losing_a_field(gke: Env) -> None:
    from kubernetes import client

    api = client.ApiClient()
    manifests = _by_kind(render_manifests(gke))
    assert list(manifests) == [
        "ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Deployment", "PrometheusRule",
        "PodMonitor",
    ]  # fmt: skip
    for kind, model in MODELS.items():
        obj = _model(api, manifests[kind], model)
        assert type(obj).__name__ == model
        # every key survives the round trip: nothing the API server would not know
        assert api.sanitize_for_serialization(obj) == manifests[kind], kind
    dep = _model(api, manifests["Deployment"], "V1Deployment")
    (proxy,) = dep.spec.template.spec.init_containers
    (watch,) = dep.spec.template.spec.containers
    assert proxy.restart_policy == "Always"  # a native sidecar
    assert proxy.args[0] == "--port=5435"
    assert proxy.args[-1] == "terra-kernel-k8s:us-central1:workspace-db-jcarlton-5a65b1a9838a91cb"
    assert watch.command == ["repairtool"]
    assert watch.args == ["watch", "--env", "jcarlton", "--interval", "1m",
                          "--metrics-addr", "0.0.0.0:9464"]  # fmt: skip
    assert [(p.name, p.container_port) for p in watch.ports] == [("metrics", 9464)]
    assert dep.spec.strategy.type == "Recreate" and dep.spec.replicas == 1
    assert dep.spec.template.spec.service_account_name == "stairway-ops-watch"
    assert dep.spec.selector.match_labels.items() <= dep.spec.template.metadata.labels.items()


def test_rbac_lists_pods_and_reads_only_the_one_secret(gke: Env, make_gke_env: Any) -> None:
    m = _by_kind(render_manifests(gke))
    assert m["Role"]["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["secrets"],
         "resourceNames": ["workspacemanager-stairway-db-creds"], "verbs": ["get"]},
    ]  # fmt: skip
    assert m["RoleBinding"]["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "stairway-ops-watch"
    }  # fmt: skip
    assert m["RoleBinding"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "stairway-ops-watch", "namespace": "terra-jcarlton"}
    ]
    sm = make_gke_env(**{"stairway.db.password": {"secret_manager": "wsm-db"}})
    assert _by_kind(render_manifests(sm))["Role"]["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}
    ]


def test_auto_resume_is_in_the_deployment_only_when_the_env_asks_for_it(make_gke_env: Any) -> None:
    watch = {"auto_resume": True, "max_per_hour": 3, "min_age": "15m", "interval": "30s",
             "gcp_service_account": "w@p.iam"}  # fmt: skip
    env = make_gke_env(watch=watch)
    m = _by_kind(render_manifests(env))
    args = m["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--auto-resume") :] == [
        "--auto-resume", "dead_owner", "--max-per-hour", "3", "--min-age", "15m"
    ]  # fmt: skip
    assert "--interval" in args and args[args.index("--interval") + 1] == "30s"
    sa = m["ServiceAccount"]["metadata"]["annotations"]
    assert sa == {"iam.gke.io/gcp-service-account": "w@p.iam"}


def test_the_configmap_carries_the_env_file_and_no_secret(gke: Env) -> None:
    m = _by_kind(render_manifests(gke))
    assert m["ConfigMap"]["data"] == {"jcarlton.yaml": gke.path.read_text()}


def _promql_metric_names(node: Any) -> set[str]:
    kind = type(node).__name__
    if kind == "VectorSelector":
        return {node.name} if node.name else set()
    if kind == "MatrixSelector":
        return _promql_metric_names(node.vector_selector)
    if kind == "BinaryExpr":
        return _promql_metric_names(node.lhs) | _promql_metric_names(node.rhs)
    if kind == "Call":
        return set().union(*(_promql_metric_names(a) for a in node.args))
    if kind in ("AggregateExpr", "ParenExpr", "UnaryExpr", "SubqueryExpr"):
        return _promql_metric_names(node.expr)
    return set()


def test_alert_rules_are_a_prometheusrule_over_metrics_the_watcher_exports(
    gke: Env, stairway_db: Engine
) -> None:
    rule = _by_kind(render_manifests(gke))["PrometheusRule"]
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    (group,) = rule["spec"]["groups"]
    alerts = {r["alert"]: r for r in group["rules"]}
    assert set(alerts) == {
        "StairwayFlightStuck", "StairwayOpsScansFailing", "StairwayOpsWatchAbsent"
    }  # fmt: skip
    # what a real watcher exports after one scan with a finding
    with stairway_db.begin() as c:
        c.execute(
            text(
                "INSERT INTO flight (flightid, submit_time, class_name, status, stairway_id,"
                " debug_info) VALUES ('f', LOCALTIMESTAMP, 'x.F', 'RUNNING', 'gone', '{}')"
            )
        )
    registry = CollectorRegistry()
    w = Watcher([WatchSource("jcarlton", stairway_db, lambda: from_names(["alive"]))], registry,
                WatchOptions(), log=lambda r: None)  # fmt: skip
    w.scan_once()
    exposition = generate_latest(registry).decode()
    exported = {line.split("{")[0].split(" ")[0] for line in exposition.splitlines()
                if line and not line.startswith("#")}  # fmt: skip
    used: set[str] = set()
    for name, r in alerts.items():
        assert set(r) == {"alert", "expr", "for", "labels", "annotations"}, name
        assert re.fullmatch(r"\d+[smh]", r["for"]), name
        assert r["labels"]["severity"] in ("warning", "critical")
        assert {"summary", "description"} <= set(r["annotations"])
        names = _promql_metric_names(promql_parser.parse(r["expr"]))
        assert names, name
        assert 'env="jcarlton"' in r["expr"]
        used |= names
    assert used <= exported, used - exported
    assert used == {
        "stairway_ops_oldest_finding_age_seconds",
        "stairway_ops_scan_errors_total",
        "stairway_ops_last_successful_scan_timestamp_seconds",
        "stairway_ops_scan_seconds_count",
    }
    assert alerts["StairwayFlightStuck"]["expr"].endswith("> 900")  # watch.alert_after: 15m
    assert "{{ $labels.kind }}" in alerts["StairwayFlightStuck"]["annotations"]["summary"]


@pytest.fixture
def recording(tmp_path: Path) -> Iterator[RecordingKubeApi]:
    server = RecordingKubeApi().start()
    try:
        yield server
    finally:
        server.stop()


def test_inv_deploy_watch_applies_every_object_to_the_api_server(
    make_gke_env: Any,
    recording: RecordingKubeApi,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from sandbox.kubeapi import write_kubeconfig

    kubeconfig = write_kubeconfig(tmp_path / "kc", recording.url, "terra-jcarlton", CONTEXT)
    env = make_gke_env(**{"gke.kubeconfig": str(kubeconfig)})
    monkeypatch.setenv("STAIRWAY_OPS_ENVS_DIR", str(env.path.parent))
    tasks.deploy_watch(MockContext(), env="jcarlton")
    out = capsys.readouterr().out
    ns = "/namespaces/terra-jcarlton"
    assert [(r.method, r.path) for r in recording.requests] == [
        ("PATCH", f"/api/v1{ns}/serviceaccounts/stairway-ops-watch"),
        ("PATCH", f"/apis/rbac.authorization.k8s.io/v1{ns}/roles/stairway-ops-watch"),
        ("PATCH", f"/apis/rbac.authorization.k8s.io/v1{ns}/rolebindings/stairway-ops-watch"),
        ("PATCH", f"/api/v1{ns}/configmaps/stairway-ops-watch-env"),
        ("PATCH", f"/apis/apps/v1{ns}/deployments/stairway-ops-watch"),
        ("PATCH", f"/apis/monitoring.coreos.com/v1{ns}/prometheusrules/stairway-ops-watch"),
        ("PATCH", f"/apis/monitoring.coreos.com/v1{ns}/podmonitors/stairway-ops-watch"),
    ]
    for r, m in zip(recording.requests, render_manifests(env), strict=True):
        assert r.content_type == "application/apply-patch+yaml"
        assert r.query["fieldManager"] == ["stairway-ops"] and r.query["force"] == ["true"]
        assert r.body == m
    assert out.count(" created (server-side apply, terra-jcarlton)") == 7
    assert "watcher deployed: deployment/stairway-ops-watch in terra-jcarlton" in out
    tasks.deploy_watch(MockContext(), env="jcarlton")  # again: updated in place
    assert capsys.readouterr().out.count(" configured (server-side apply") == 7


def test_dry_run_and_a_local_env_send_nothing(
    make_gke_env: Any,
    recording: RecordingKubeApi,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from sandbox.kubeapi import write_kubeconfig

    kubeconfig = write_kubeconfig(tmp_path / "kc", recording.url, "terra-jcarlton", CONTEXT)
    env = make_gke_env(**{"gke.kubeconfig": str(kubeconfig)})
    monkeypatch.setenv("STAIRWAY_OPS_ENVS_DIR", str(env.path.parent))
    dry = MockContext(config=Config(overrides={"run": {"dry": True}}))
    tasks.deploy_watch(dry, env="jcarlton", out=str(tmp_path / "manifests"))
    out = capsys.readouterr().out
    assert "dry run: would apply deployment/stairway-ops-watch in terra-jcarlton" in out
    assert sorted(p.name for p in (tmp_path / "manifests").iterdir()) == [
        "configmap.yaml", "deployment.yaml", "podmonitor.yaml", "prometheusrule.yaml",
        "role.yaml", "rolebinding.yaml", "serviceaccount.yaml",
    ]  # fmt: skip
    assert recording.requests == []
    shutil.copy(paths.PROJECT_ROOT / "envs" / "local.yaml", env.path.parent / "local.yaml")
    with pytest.raises(UsageError, match="is for GKE envs"):
        render_manifests(load_env("local"))
    with pytest.raises(Exit) as info:
        tasks.deploy_watch(MockContext(), env="local")
    assert info.value.code == 2
