"""The local environment for real (slow): `inv setup`, `inv sandbox.up`, `inv deploy`,
`inv kill-pod --flight`, `inv logs --flight`, `inv run-test` against the sandbox — real worker
processes, real Postgres, the Pub/Sub emulator when installed, the official kubernetes client
and google-cloud-logging on the sandbox's loopback servers."""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from invoke import MockContext
from invoke.exceptions import Exit

from opskit import local, paths, tasks
from opskit.envs import Env, load_env_file
from opskit.errors import ExitCode

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def _local_env(root: Path, reader: str, delay: str = "3s") -> Env:
    data = yaml.safe_load((paths.PROJECT_ROOT / "envs" / "local.yaml").read_text())
    data["delay_hook"]["duration"] = delay
    data["sandbox"]["reader_version"] = reader
    data["sandbox"]["ack_deadline_seconds"] = 10
    data["sandbox"]["job_timeout_seconds"] = 60
    d = root / "envs"
    d.mkdir(parents=True, exist_ok=True)
    (d / "local.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return load_env_file(d / "local.yaml")


@pytest.fixture(scope="module")
def sandbox_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A local env (reader 0.0.61, 3 s delay) in its own state dir, set up and started."""
    root = tmp_path_factory.mktemp("local-e2e")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STAIRWAY_OPS_STATE_DIR", str(root / "state"))
        mp.setenv("STAIRWAY_OPS_ARTIFACTS_DIR", str(root / "artifacts"))
        mp.setenv("STAIRWAY_OPS_ENVS_DIR", str(root / "envs"))
        env = _local_env(root, "0.0.61")
        try:
            yield env
        finally:
            local.down(env)
            assert not local.status(env).running
            local.destroy(env)  # its Postgres data may live in a private /tmp directory


def test_setup_prepares_the_sandbox_and_a_rerun_changes_nothing(
    sandbox_env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks.setup(MockContext(), quiet=True)
    out = capsys.readouterr().out
    assert "created the Stairway 0.0.60 schema" in out
    assert (sandbox_env.state_path / "sandbox.json").is_file()
    tasks.setup(MockContext(), quiet=True)
    assert "setup local: nothing changed" in capsys.readouterr().out


def test_sandbox_up_status_and_deploy(sandbox_env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    t0 = time.monotonic()
    tasks.sandbox_up(MockContext())
    up_s = time.monotonic() - t0
    out = capsys.readouterr().out
    assert "2 pod(s) ready in terra-sandbox" in out
    tasks.sandbox_status(MockContext())
    assert "running" in capsys.readouterr().out
    tasks.deploy(MockContext(), timeout="90s")
    out = capsys.readouterr().out
    assert re.search(r"Deployments stabilized in [\d.]+ seconds|minute", out), out
    assert "waiting for rollout to finish" in out
    print(f"sandbox.up {up_s:.1f}s")


def test_kill_pod_follows_the_flight_to_success_and_logs_show_the_recovery(
    sandbox_env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    h = local.LocalPlatform(sandbox_env).handle()
    owner = h.wait_ready()[0]
    fid = str(uuid.uuid4())
    call = _create_async_on(h, owner, fid)
    tasks.kill_pod(MockContext(), flight=fid, when_step=1, timeout="90s", settle="20s", json=True)
    result = json.loads(capsys.readouterr().out)
    call.join(5)
    assert result["pod"] == owner
    assert result["outcome"] == "finished" and result["final"]["status"] == "SUCCESS"
    kinds = [e["kind"] for e in result["timeline"]]
    for k in (
        "deleted",
        "replacement_added",
        "replacement_ready",
        "taken_over",
        "finished",
        "engine.disowned",
        "engine.taking_ownership",
        "engine.launching",
    ):
        assert k in kinds, (k, kinds)
    tasks.logs(MockContext(), flight=fid, since="10m", json=True)
    events = [e["kind"] for e in json.loads(capsys.readouterr().out)]
    assert events.index("delaying") < events.index("disowned") < events.index("taking_ownership")


def _create_async_on(h: Any, pod: str, flight_id: str) -> threading.Thread:
    def run() -> None:
        with contextlib.suppress(Exception):  # the pod dies under the request
            h.request(
                "POST",
                "/api/workspaces/v1",
                {"id": str(uuid.uuid4()), "jobId": flight_id, "stage": "MC_WORKSPACE"},
                pod=pod,
                token="e2e-token",
                timeout=60,
            )

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_run_test_runs_the_workspace_journey(
    sandbox_env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks.run_test(MockContext(), json=True)
    summary = json.loads(capsys.readouterr().out)
    (script,) = summary["testScriptResultSummaries"]
    assert script["testScriptDescription"] == "WorkspaceLifecycle"
    assert (script["totalRun"], script["numCompleted"], script["isFailure"]) == (1, 1, False)
    assert script["elapsedTimeStatistics"]["min"] >= 3000  # the 3 s DelayHook on create


def test_bad_input_on_local(sandbox_env: Env) -> None:
    with pytest.raises(Exit) as info:
        tasks.kill_pod(MockContext(), flight=str(uuid.uuid4()))
    assert info.value.code == ExitCode.NOT_FOUND
    with pytest.raises(Exit) as info:
        tasks.kill_pod(MockContext(), pod="workspacemanager-deployment-nope-nope1")
    assert info.value.code == ExitCode.NOT_FOUND
    with pytest.raises(Exit) as info:
        tasks.kill_pod(MockContext(), pod="kube-system/coredns")
    assert info.value.code == ExitCode.REFUSED


def test_db_proxy_and_connect_db_on_local(
    sandbox_env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    from invoke import Result

    tasks.db_proxy(MockContext())
    out = capsys.readouterr().out
    m = re.search(
        r'psql "host=127.0.0.1 port=(\d+) sslmode=disable dbname=stairway user=postgres"', out
    )
    assert m, out
    c = MockContext(run={re.compile(r"^psql "): Result(exited=0)})
    tasks.connect_db(c)
    (args, kwargs) = c.run.call_args
    assert args[0] == m.group(0)
    password = kwargs["env"]["PGPASSWORD"]
    assert password and password not in capsys.readouterr().out + args[0]


def test_kill_pod_playbook_on_the_sandbox(sandbox_env: Env, tmp_path: Path) -> None:
    from opskit.ansible import run_playbook
    from opskit.envsetup import setup_vars

    h = local.LocalPlatform(sandbox_env).handle()
    victim = h.wait_ready()[0]
    r = run_playbook(
        "kill-pod.yml",
        {**setup_vars(sandbox_env), "pod": victim, "wait_seconds": 60},
        tmp_path / "run",
    )
    assert r.ok, r.first_failure()
    assert r.stats["deleted"] == victim and r.stats["replacement"] != victim
    assert victim not in h.ready_pods()
