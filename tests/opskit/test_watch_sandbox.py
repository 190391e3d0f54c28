"""`repairtool watch` on the sandbox (slow; one sandbox, short intervals): started by
`inv sandbox.up --watch --auto-resume`; with the pod watch dropped and no replacement pod, killing
a flight's owner makes `stairway_ops_findings{kind="dead_owner"}` 1 within two scan intervals
(scraped over HTTP); auto-resume then resumes the flight through the audited compare-and-set
path, a surviving pod finishes it, the metric returns to 0, and the audit trail shows the
repair. `inv sandbox.down` stops the watcher cleanly."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from invoke import MockContext

from opskit import local, paths, sandboxwatch, tasks
from opskit.envs import Env, load_env_file

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

INTERVAL = 2.0  # seconds between scans
MIN_AGE = "6s"  # long enough to scrape the finding before it is resumed
DEAD_OWNER = 'stairway_ops_findings{env="local",kind="dead_owner"}'


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    from sandbox.pubsub_emulator import find_launcher

    if find_launcher() is None:
        pytest.skip("auto-resume sends READY messages: the Pub/Sub emulator is not installed")
    root = tmp_path_factory.mktemp("watch-e2e")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STAIRWAY_OPS_STATE_DIR", str(root / "state"))
        mp.setenv("STAIRWAY_OPS_ARTIFACTS_DIR", str(root / "artifacts"))
        mp.setenv("STAIRWAY_OPS_ENVS_DIR", str(root / "envs"))
        data = yaml.safe_load((paths.PROJECT_ROOT / "envs" / "local.yaml").read_text())
        data["delay_hook"]["duration"] = "4s"
        data["sandbox"].update(reader_version="0.0.61", ack_deadline_seconds=10,
                               job_timeout_seconds=60)  # fmt: skip
        (root / "envs").mkdir()
        (root / "envs" / "local.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        env = load_env_file(root / "envs" / "local.yaml")
        try:
            tasks.sandbox_up(
                MockContext(), watch=True, watch_interval=f"{INTERVAL:g}s", auto_resume=True,
                min_age=MIN_AGE,
            )  # fmt: skip
            yield env
        finally:
            local.down(env)
            local.destroy(env)


def _scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=5) as r:
        body = r.read().decode()
    out: dict[str, float] = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def _wait_metric(url: str, name: str, want: float, timeout: float) -> float:
    """Seconds until the scraped metric equals `want` (polls /metrics over HTTP)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if _scrape(url).get(name) == want:
            return time.monotonic() - t0
        time.sleep(0.1)
    raise AssertionError(f"{name} != {want} after {timeout:g}s: {_scrape(url).get(name)}")


def _create_async(h: object, pod: str, flight_id: str) -> threading.Thread:
    def run() -> None:
        with contextlib.suppress(Exception):  # the pod dies under the request
            h.request(  # type: ignore[attr-defined]
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


def test_watch_sees_the_dead_owner_within_two_intervals_and_auto_resume_repairs_it(
    watched: Env,
) -> None:
    running = sandboxwatch.status()
    assert running is not None and "--auto-resume" in running.args
    url = running.metrics_url
    _wait_metric(url, DEAD_OWNER, 0.0, 30)  # the first scan ran: nothing stuck yet

    h = local.LocalPlatform(watched).handle()
    owner, survivor = h.wait_ready()
    h.set_switches(pod_watch_dropped=True, replace_deleted_pods=False)
    h.wait_for_log(
        "KubePodListener caught exception: java.lang.RuntimeException: IO Exception "
        "during hasNext method.",
        pod=survivor,
        timeout=15,
    )
    fid = str(uuid.uuid4())
    call = _create_async(h, owner, fid)
    h.wait_for_log(f"Delaying flight ID {fid}", pod=owner, timeout=30)
    h.core_v1().delete_namespaced_pod(owner, h.namespace)
    # the next scan (at most one jittered interval away) sees it; two intervals is the bound
    took = _wait_metric(url, DEAD_OWNER, 1.0, 60)
    assert took <= 2 * INTERVAL * 1.1 + 1.0, f"dead_owner seen after {took:.1f}s"
    print(f"dead_owner on /metrics {took:.1f}s after the kill (interval {INTERVAL:g}s)")

    row = h.wait_flight(fid, {"SUCCESS", "ERROR", "FATAL"}, timeout=60)
    call.join(5)
    assert row["status"] == "SUCCESS"
    assert h.messages(survivor, f"Stairway {survivor} taking ownership of flight {fid}")
    _wait_metric(url, DEAD_OWNER, 0.0, 30)
    metrics = _scrape(url)
    applied = (
        'stairway_ops_repairs_total{action="resume",env="local",kind="dead_owner",'
        'outcome="applied"}'
    )
    assert metrics[applied] == 1.0

    audit = subprocess.run(
        [sys.executable, "-m", "repairtool", "flights", "audit", "--env", "local", "--json"],
        capture_output=True, text=True, timeout=60, env=dict(os.environ),
    )  # fmt: skip
    assert audit.returncode == 0, audit.stderr
    rows = [r for r in json.loads(audit.stdout)["audit"] if r["flight_id"] == fid]
    assert rows and {r["reason"] for r in rows} == {"watch auto-resume"}
    assert {r["action"] for r in rows} >= {"disown"}
    assert all(r["actor"].startswith("repairtool-watch@") for r in rows)

    log = [json.loads(line) for line in Path(running.log).read_text().splitlines()]
    events = [(r["event"], r.get("flight_id")) for r in log]
    assert ("finding.new", fid) in events and ("repair.applied", fid) in events
    assert ("finding.cleared", fid) in events
    assert events.index(("finding.new", fid)) < events.index(("repair.applied", fid))


def test_sandbox_down_stops_the_watcher_cleanly(watched: Env) -> None:
    running = sandboxwatch.status()
    assert running is not None
    tasks.sandbox_down(MockContext())
    assert sandboxwatch.status() is None
    last = json.loads(Path(running.log).read_text().splitlines()[-1])
    assert last["event"] == "watch.stopped"
