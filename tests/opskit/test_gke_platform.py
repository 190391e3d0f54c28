"""The GKE implementation against loopback servers that speak the real protocols.

Kubernetes: the official client against the sandbox's API server (pods list/get/delete/watch,
deployments). Cloud Logging: google-cloud-logging ``list_entries`` against an ``entries:list``
server over the 2021 log lines. Shell commands (skaffold, gradlew, cloud-sql-proxy) through
Invoke's ``MockContext``.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from invoke import MockContext, Result

from opskit.cloudlogs import LogScope, base_filter, build_filter
from opskit.dbproxy import cloud_sql_proxy, proxy_command
from opskit.envs import Env
from opskit.errors import CommandFailed, NotFound, Refused, ToolMissing
from opskit.events import Collector, Reporter
from opskit.kube import humanize_seconds, split_pod_arg
from opskit.platform import GkePlatform

FIX = Path(__file__).parent / "fixtures"
T2021 = dt.datetime(2021, 4, 5, 14, 0, tzinfo=dt.UTC)


def test_standard_filter_is_the_2021_query_plus_an_explicit_time_bound() -> None:
    scope = LogScope(
        "terra-kernel-k8s",
        "terra-integration",
        "us-central1-a",
        "terra-jcarlton",
        "workspacemanager",
    )
    assert base_filter(scope) == [
        'resource.labels.project_id="terra-kernel-k8s"',
        'resource.labels.cluster_name="terra-integration"',
        'resource.labels.namespace_name="terra-jcarlton"',
        'resource.labels.location="us-central1-a"',
        'resource.labels.container_name="workspacemanager"',
        '-httpRequest.requestUrl="/status"',
        '-httpRequest.requestUrl="/version"',
    ]
    f = build_filter(scope, since=T2021, pod="p-1")
    assert f.splitlines()[-2:] == [
        'resource.labels.pod_name="p-1"',
        'timestamp>="2021-04-05T14:00:00.000000Z"',
    ]


def test_pods_list_delete_and_watch_through_the_official_client(
    gke_env: Env, fake_gke: Any
) -> None:
    p = GkePlatform(gke_env)
    pods = p.list_pods()
    assert [x.name for x in pods] == sorted(fake_gke.pods())
    assert all(x.ready and x.namespace == "terra-jcarlton" for x in pods)
    victim = pods[0].name
    _, rv = p.kube().list_pods_rv()
    p.delete_pod(victim)
    seen = []
    for e in p.watch_pods(5, rv):
        seen.append((e.type, e.pod.name))
        if e.type == "MODIFIED" and e.pod.name != victim and e.pod.ready:
            break
    assert ("DELETED", victim) in seen
    added = {name for typ, name in seen if typ == "ADDED"}
    assert added and victim not in added


def test_missing_pod_and_other_namespace_are_refused(gke_env: Env) -> None:
    p = GkePlatform(gke_env)
    with pytest.raises(NotFound, match="not found in namespace terra-jcarlton"):
        p.kube().get_pod("workspacemanager-deployment-nope")
    with pytest.raises(Refused, match="terra-other"):
        split_pod_arg("terra-other/workspacemanager-deployment-x", gke_env.namespace)
    with pytest.raises(Refused, match="not a pod of this service"):
        p.delete_pod("some-other-pod")


def test_rollout_runs_skaffold_in_local_dev_then_watches_the_api(
    gke_env: Env, fake_gke: Any
) -> None:
    local_dev = gke_env.service.checkout_path / "local-dev"
    local_dev.mkdir(parents=True)
    # what `skaffold run` would do to the cluster: helm applies a new pod template
    fake_gke.cluster.patch_deployment(
        lambda d: (
            d["spec"]["template"]["metadata"]
            .setdefault("annotations", {})
            .update({"checksum/config": "2"})
        )
    )
    c = MockContext(run={"skaffold run --status-check=false": Result(exited=0)})
    cwds: list[str] = []
    c.run.side_effect = lambda *a, **k: cwds.append(c.cwd) or Result(exited=0)
    got = Collector()
    result = GkePlatform(gke_env).rollout(c, Reporter([got]), 30)
    c.run.assert_called_once_with(
        "skaffold run --status-check=false", warn=True, pty=False, dry=False
    )
    assert cwds == [str(local_dev)]
    assert result.replicas == 2 and result.warnings == ()
    assert re.fullmatch(r"Deployments stabilized in [\d.]+ seconds", result.message)
    assert got.kinds()[:2] == ["deploy.start", "rollout.waiting"]
    assert any("waiting for rollout to finish" in e.message for e in got.of("rollout.progress"))
    assert got.of("rollout.ready")[0].message.endswith(
        "terra-jcarlton:deployment/workspacemanager-deployment is ready."
    )


def test_restart_is_a_rollout_restart_through_the_api_and_replaces_every_pod(
    gke_env: Env, fake_gke: Any
) -> None:
    """`inv restart`: `kubectl rollout restart` (the restartedAt stamp on the pod template),
    watched through the Kubernetes API until every pod is a new one; no skaffold, no shell."""
    p = GkePlatform(gke_env)
    before = {x.name for x in p.list_pods()}
    dry = p.restart(Reporter(), 30, dry=True)
    assert dry.message == (
        "dry run: restart deployment/workspacemanager-deployment (2 pods) and watch it;"
        " nothing was changed"
    )
    assert {x.name for x in p.list_pods()} == before
    got = Collector()
    result = p.restart(Reporter([got]), 60)
    assert result.replicas == 2
    assert re.fullmatch(r"Deployments stabilized in [\d.]+ seconds", result.message)
    after = {x.name for x in p.list_pods() if x.ready}
    assert len(after) == 2 and not after & before
    assert got.kinds()[0] == "restart.start"
    dep = fake_gke.cluster.store.get("deployments", gke_env.namespace, gke_env.service.deployment)
    assert "kubectl.kubernetes.io/restartedAt" in dep["spec"]["template"]["metadata"]["annotations"]


def test_rollout_warns_when_the_chart_left_out_the_kubernetes_env_vars(
    gke_env: Env, fake_gke: Any
) -> None:
    (gke_env.service.checkout_path / "local-dev").mkdir(parents=True)

    def drop_env(d: dict[str, Any]) -> None:
        d["spec"]["template"]["spec"]["containers"][0]["env"] = []

    fake_gke.cluster.patch_deployment(drop_env)
    c = MockContext(run={"skaffold run --status-check=false": Result(exited=0)})
    result = GkePlatform(gke_env).rollout(c, Reporter(), 30)
    (warning,) = result.warnings
    assert "TERRA_COMMON_KUBERNETES_IN_KUBERNETES" in warning and "buffer.enabled" in warning


def test_failed_skaffold_is_command_failed(gke_env: Env) -> None:
    (gke_env.service.checkout_path / "local-dev").mkdir(parents=True)
    c = MockContext(run={"skaffold run --status-check=false": Result(exited=1)})
    with pytest.raises(CommandFailed, match="skaffold run failed"):
        GkePlatform(gke_env).rollout(c, Reporter(), 5)


def test_build_without_checkout_is_a_missing_prerequisite(gke_env: Env) -> None:
    with pytest.raises(ToolMissing, match="local-dev does not exist"):
        GkePlatform(gke_env).build(MockContext(), Reporter())


def test_humanize_like_skaffold() -> None:
    assert humanize_seconds(84.928) == "1 minute 24.928 seconds"
    assert humanize_seconds(3.5) == "3.5 seconds"
    assert humanize_seconds(125.0) == "2 minutes 5 seconds"


@pytest.fixture
def logs_2021(fake_gke: Any) -> Any:
    for f in (FIX / "logs-2021").glob("*.jsonl"):
        shutil.copy(f, fake_gke.logs_dir / f.name)
    return fake_gke


def test_cloud_logging_query_applies_the_standard_filter(gke_env: Env, logs_2021: Any) -> None:
    p = GkePlatform(gke_env)
    lines = p.query_logs(since=T2021)
    messages = [x.message for x in lines]
    assert len(lines) == 16  # 18 jcarlton entries minus the /status and /version requests
    assert not any(m.startswith("GET /") for m in messages)
    assert not any("proxy log" in m for m in messages)  # other container
    assert {x.pod for x in lines} == {
        "workspacemanager-deployment-68f9b944d5-9kgzp",
        "workspacemanager-deployment-68f9b944d5-5gwdm",
    }
    assert [x.timestamp for x in lines] == sorted(x.timestamp for x in lines)
    # the client would add `timestamp >= now-24h` to a filter without one: 2021 lines prove ours
    assert lines[0].timestamp.year == 2021


def test_cloud_logging_window_and_pod(gke_env: Env, logs_2021: Any) -> None:
    p = GkePlatform(gke_env)
    assert p.query_logs(since=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)) == []
    pod = "workspacemanager-deployment-68f9b944d5-5gwdm"
    lines = p.query_logs(since=T2021, pod=pod)
    assert len(lines) == 8 and {x.pod for x in lines} == {pod}
    until = dt.datetime(2021, 4, 5, 14, 14, 21, tzinfo=dt.UTC)
    assert len(p.query_logs(since=T2021, until=until)) == 2


def test_proxy_command_and_psql_line(gke_env: Env) -> None:
    assert proxy_command(gke_env) == (
        "cloud-sql-proxy --port 5435 terra-kernel-k8s:us-central1:"
        "workspace-db-jcarlton-5a65b1a9838a91cb"
    )
    from opskit.dbproxy import target_for

    assert target_for(gke_env).psql_line() == (
        'psql "host=127.0.0.1 port=5435 sslmode=disable dbname=workspace-stairway'
        ' user=workspace-stairway"'
    )


def test_proxy_that_exits_at_once_is_command_failed(make_gke_env: Any) -> None:
    env = make_gke_env(**{"stairway.db.port": _free_port()})
    cmd = proxy_command(env)
    c = MockContext(run={cmd: Result(exited=1)})
    with (
        pytest.raises(CommandFailed, match=r"cloud-sql-proxy exited \(code 1\)"),
        cloud_sql_proxy(c, env, timeout=2),
    ):
        pass
    call = c.run.call_args
    assert call.args == (cmd,)
    assert call.kwargs["asynchronous"] is True


def test_run_test_runs_gradlew_in_the_clienttests_and_parses_the_summary(
    gke_env: Env, tmp_path: Path
) -> None:
    assert gke_env.testrunner is not None
    clienttests = gke_env.service.checkout_path / "workspace-manager-clienttests"
    suites = clienttests / "src/main/resources/suites"
    suites.mkdir(parents=True)
    (suites / "kill-pod-jcarlton.json").write_text(
        (FIX / "2021/kill-pod-jcarlton.json").read_text()
    )
    out = Path(gke_env.testrunner.output_dir) / "WorkspaceLifecycle_5b3f7d2e"
    out.mkdir(parents=True)
    cmd = (
        f'./gradlew runTest --args="suites/kill-pod-jcarlton.json {gke_env.testrunner.output_dir}"'
    )
    cwds: list[str] = []

    def gradle(*args: Any, **kwargs: Any) -> Result:
        assert args == (cmd,)
        cwds.append(c.cwd)
        time.sleep(0.01)
        shutil.copy(
            FIX / "testrunner/SUMMARY_testRun-zero-timings.json", out / "SUMMARY_testRun.json"
        )
        return Result(exited=1, command=cmd)

    c = MockContext(run={cmd: Result(exited=1)})
    c.run.side_effect = gradle
    summary = GkePlatform(gke_env).run_test(c, "kill-pod", Reporter(), tmp_path / "run")
    assert summary.is_failure
    assert cwds == [str(clienttests)]
    assert (tmp_path / "run" / "SUMMARY_testRun.json").is_file()


def test_run_test_without_setup_says_so(gke_env: Env) -> None:
    (gke_env.service.checkout_path / "workspace-manager-clienttests").mkdir(parents=True)
    with pytest.raises(ToolMissing, match="run `inv setup --env jcarlton` first"):
        GkePlatform(gke_env).run_test(MockContext(), "kill-pod", Reporter(), Path("/nonexistent"))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
