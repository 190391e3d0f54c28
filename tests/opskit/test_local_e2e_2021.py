"""The 2021 attempt 1 on the sandbox (slow): with the <= 0.0.60 FlightMap reader, the pod that
takes over the killed pod's flight cannot rebuild it; `inv kill-pod` reports the flight stuck
(RUNNING, owned by a live pod) with the MakeFlightException cause, and exits 1."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from invoke import MockContext
from invoke.exceptions import Exit

from opskit import local, paths, tasks
from opskit.envs import Env, load_env_file
from opskit.errors import ExitCode

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture
def env_2021(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setenv("STAIRWAY_OPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("STAIRWAY_OPS_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    monkeypatch.setenv("STAIRWAY_OPS_ENVS_DIR", str(tmp_path / "envs"))
    data = yaml.safe_load((paths.PROJECT_ROOT / "envs" / "local.yaml").read_text())
    # step 1 sleeps long enough that the kill lands inside it on a loaded machine too (with 3 s,
    # a run under three pytest workers saw the step finish before the pod died)
    data["delay_hook"]["duration"] = "8s"
    data["sandbox"].update(reader_version="0.0.60", ack_deadline_seconds=10, job_timeout_seconds=60)
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "local.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    env = load_env_file(tmp_path / "envs" / "local.yaml")
    local.up(env, fresh=True)
    try:
        yield env
    finally:
        local.down(env)
        assert not local.status(env).running
        local.destroy(env)  # its Postgres data may live in a private /tmp directory


def test_kill_pod_reports_the_2021_orphan(
    env_2021: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    h = local.LocalPlatform(env_2021).handle()
    owner = h.wait_ready()[0]
    fid = str(uuid.uuid4())

    def create() -> None:
        with contextlib.suppress(Exception):  # the pod dies under the request
            h.request(
                "POST",
                "/api/workspaces/v1",
                {"id": str(uuid.uuid4()), "jobId": fid, "stage": "MC_WORKSPACE"},
                pod=owner,
                token="e2e-token",
                timeout=60,
            )

    threading.Thread(target=create, daemon=True).start()
    with pytest.raises(Exit) as info:
        tasks.kill_pod(
            MockContext(), flight=fid, when_step=1, timeout="60s", settle="30s", json=True
        )
    assert info.value.code == ExitCode.FINDINGS
    result = json.loads(capsys.readouterr().out)
    assert result["outcome"] == "stuck"
    assert result["final"]["status"] == "RUNNING" and result["final"]["stairway_id"] != owner
    assert "could not rebuild" in result["verdict"]
    assert "Found value 'MC_WORKSPACE' is not an instance of type" in result["verdict"]
    kinds = [e["kind"] for e in result["engine_events"]]
    assert (
        "taking_ownership" in kinds
        and "dispatch_error" in kinds
        and "launching" not in kinds[kinds.index("taking_ownership") :]
    )

    # `repairtool orphans --env local` resolves the running sandbox (database, pods, work queue)
    # and finds the flight as stalled, with the make-flight failure pattern
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "repairtool",
            "orphans",
            "--env",
            "local",
            "--json",
            "--stalled-after",
            "1s",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["liveness"]["source"].startswith("kube:") and doc["reader"] == "legacy"
    [stalled] = [f for f in doc["findings"] if f["flight_id"] == fid]
    assert stalled["kind"] == "stalled" and "make-flight" in stalled["evidence"]["pattern"]
