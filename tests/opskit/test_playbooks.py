"""Playbooks through ansible-runner (slow): setup idempotence, kill-pod/deploy via the kube API
with kubernetes.core, db-proxy with a stand-in cloud-sql-proxy; and the Python proxy path
with a real Invoke Context."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from invoke import Context, MockContext
from invoke.exceptions import Exit

from opskit import tasks
from opskit.ansible import PlaybookEvent, run_playbook
from opskit.dbproxy import cloud_sql_proxy, port_open
from opskit.envsetup import setup, setup_vars
from opskit.events import Collector, Reporter
from opskit.render import render_all

pytestmark = pytest.mark.slow
FIX = Path(__file__).parent / "fixtures"


@pytest.fixture
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """gcloud/skaffold/helm/cloud-sql-proxy stand-ins first on PATH (kubectl is the real one)."""
    bin_dir = tmp_path / "fake-bin"
    shutil.copytree(FIX / "fake-tools", bin_dir)
    for p in bin_dir.iterdir():
        p.chmod(0o755)
    log = tmp_path / "tools.log"
    monkeypatch.setenv("FAKE_TOOL_LOG", str(log))
    path = os.pathsep.join([str(bin_dir), os.path.dirname(sys.executable), os.environ["PATH"]])
    monkeypatch.setenv("PATH", path)
    if not shutil.which("kubectl"):
        pytest.skip("kubectl not installed")
    return log


def _git_repo(path: Path) -> str:
    subprocess.run(["git", "init", "-q", "-b", "master", str(path)], check=True)
    (path / "README").write_text("chart\n")
    subprocess.run(["git", "-C", str(path), "add", "."], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(path),
            "-c",
            "user.email=t@t",
            "-c",
            "user.name=t",
            "commit",
            "-qm",
            "init",
        ],
        check=True,
    )
    return f"file://{path}"


@pytest.fixture
def gke_setup_env(
    tmp_path: Path, make_gke_env: Any, fake_tools: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    checkout = tmp_path / "checkout"
    (checkout / "local-dev").mkdir(parents=True)
    (checkout / "workspace-manager-clienttests/src/main/resources/servers").mkdir(parents=True)
    (checkout / "workspace-manager-clienttests/src/main/resources/suites").mkdir(parents=True)
    monkeypatch.setenv("FAKE_KUBE_SERVER", "http://127.0.0.1:9")
    return make_gke_env(
        **{
            "gke.kubeconfig": str(tmp_path / "kube" / "config"),
            "helm.terra_helm": _git_repo(tmp_path / "terra-helm"),
            "helm.terra_helmfile": _git_repo(tmp_path / "terra-helmfile"),
        }
    )


def test_setup_gke_renders_installs_fetches_credentials_and_rerun_changes_nothing(
    gke_setup_env: Any, fake_tools: Path, tmp_path: Path
) -> None:
    env = gke_setup_env
    got = Collector()
    t0 = time.monotonic()
    first = setup(env, tmp_path / "run1", reporter=Reporter([got]))
    first_s = time.monotonic() - t0
    assert first.credentials_fetched
    assert set(first.rendered) == {
        "skaffold.yaml",
        "values.yaml",
        "servers/workspace-jcarlton.json",
        "suites/kill-pod-jcarlton.json",
    }
    assert len(first.installed) == 4
    checkout = env.service.checkout_path
    assert (checkout / "local-dev/terra-helm/README").is_file()
    assert (
        checkout / "workspace-manager-clienttests/src/main/resources/suites/kill-pod-jcarlton.json"
    ).read_text() == (FIX / "2021/kill-pod-jcarlton.json").read_text()
    kc = yaml.safe_load(Path(env.gke.kubeconfig).read_text())
    assert env.gke.context in [c["name"] for c in kc["contexts"]]
    # the files Ansible rendered are byte for byte the ones opskit.render renders
    expected = tmp_path / "expected"
    for p in render_all(env, expected):
        rel = p.relative_to(expected)
        assert (env.state_path / rel).read_bytes() == p.read_bytes(), rel
    assert (tmp_path / "run1" / "ansible" / "artifacts").is_dir()
    assert got.of("playbook.changed")

    second = setup(env, tmp_path / "run2")
    assert second.changed == () and second.rendered == () and second.installed == ()
    assert not second.credentials_fetched
    assert fake_tools.read_text().count("get-credentials") == 1
    print(f"setup gke: first run {first_s:.1f}s")


def test_setup_playbook_stops_on_a_missing_tool_by_itself(
    tmp_path: Path, gke_setup_env: Any
) -> None:
    extravars = setup_vars(gke_setup_env)
    extravars["required_tools"] = ["gcloud", "no-such-tool-xyz"]
    events: list[PlaybookEvent] = []
    r = run_playbook("setup.yml", extravars, tmp_path / "run", on_event=events.append)
    assert not r.ok and r.status == "failed"
    assert "missing tools: no-such-tool-xyz" in r.first_failure()
    assert not gke_setup_env.state_path.exists()
    assert any(e.event == "playbook_on_task_start" for e in events)


@pytest.fixture
def kube_vars(gke_env: Any) -> dict[str, Any]:
    return setup_vars(gke_env)


def test_inv_kill_pod_via_ansible_deletes_and_waits_for_the_replacement(
    gke_env: Any,
    fake_gke: Any,
    isolated_dirs: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The real code path of playbooks/kill-pod.yml: `inv kill-pod --via ansible`."""
    monkeypatch.setenv("STAIRWAY_OPS_ENVS_DIR", str(gke_env.path.parent))
    victim = sorted(fake_gke.pods())[0]
    tasks.kill_pod(MockContext(), env="jcarlton", pod=victim, via="ansible", yes=True, json=True)
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "stairway-ops.kill-pod-ansible/1" and doc["deleted"] == victim
    assert doc["replacement"] in fake_gke.pods() and victim not in fake_gke.pods()


def test_kill_pod_playbook_refuses_another_namespace_and_an_unknown_pod(
    kube_vars: dict[str, Any],
    gke_env: Any,
    fake_gke: Any,
    tmp_path: Path,
    isolated_dirs: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = sorted(fake_gke.pods())
    r = run_playbook(
        "kill-pod.yml",
        {**kube_vars, "pod": before[0], "namespace": "terra-other"},
        tmp_path / "run",
    )
    assert not r.ok and "refusing" in r.first_failure()
    assert r.failed_tasks == ("Refuse namespaces not in the env file",)
    # through the task: the playbook's guard task becomes the exit code (NOT_FOUND)
    monkeypatch.setenv("STAIRWAY_OPS_ENVS_DIR", str(gke_env.path.parent))
    with pytest.raises(Exit) as info:
        tasks.kill_pod(MockContext(), env="jcarlton", pod="workspacemanager-deployment-x-y",
                       via="ansible", yes=True)  # fmt: skip
    assert info.value.code == 9 and "not found in namespace terra-jcarlton" in str(info.value)
    assert sorted(fake_gke.pods()) == before


def test_inv_deploy_via_ansible_runs_skaffold_and_waits_for_the_rollout(
    gke_env: Any,
    fake_tools: Path,
    isolated_dirs: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The real code path of playbooks/deploy.yml: `inv deploy --via ansible`."""
    monkeypatch.setenv("STAIRWAY_OPS_ENVS_DIR", str(gke_env.path.parent))
    (gke_env.service.checkout_path / "local-dev").mkdir(parents=True)
    tasks.deploy(MockContext(), env="jcarlton", via="ansible", timeout="30s")
    out = capsys.readouterr().out
    assert "deployment/workspacemanager-deployment rolled out: 2 replicas available" in out
    assert "skaffold run --status-check=false (in " in fake_tools.read_text()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cloud_sql_proxy_with_a_real_context_waits_for_the_port_and_stops_it(
    make_gke_env: Any, fake_tools: Path, tmp_path: Path
) -> None:
    port = _free_port()
    env = make_gke_env(**{"stairway.db.port": port})
    got = Collector()
    with cloud_sql_proxy(
        Context(), env, reporter=Reporter([got]), timeout=15, log_path=tmp_path / "proxy.log"
    ) as target:
        assert port_open("127.0.0.1", port)
        assert target.port == port
    deadline = time.monotonic() + 5
    while port_open("127.0.0.1", port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not port_open("127.0.0.1", port)
    assert [e.kind for e in got.events] == ["proxy.starting", "proxy.ready", "proxy.stopped"]
    assert "ready for new connections" in (tmp_path / "proxy.log").read_text()


def test_db_proxy_playbook_checks_the_secret_starts_is_idempotent_and_stops(
    fake_gke: Any, fake_tools: Path, make_gke_env: Any, tmp_path: Path
) -> None:
    """kubernetes.core reads the password's Secret (no_log): a missing one stops the play before
    the proxy starts, and its value is in no event and no artifact file; a re-run changes
    nothing; state=stopped stops the proxy."""
    port = _free_port()
    env = make_gke_env(**{"gke.kubeconfig": str(fake_gke.kubeconfig), "stairway.db.port": port})
    env.state_path.mkdir(parents=True)
    v = setup_vars(env)
    missing = run_playbook("db-proxy.yml", v, tmp_path / "r0")
    assert not missing.ok
    assert missing.failed_tasks == ("Stop when the Secret or its key is missing",)
    assert not port_open("127.0.0.1", port)
    secret = "pw-in-a-secret-7f3a"
    encoded = base64.b64encode(secret.encode()).decode()
    fake_gke.cluster.store.create(
        "secrets",
        {"apiVersion": "v1", "kind": "Secret",
         "metadata": {"name": "workspacemanager-stairway-db-creds", "namespace": "terra-jcarlton"},
         "data": {"password": encoded}},
    )  # fmt: skip
    r = run_playbook("db-proxy.yml", v, tmp_path / "r1")
    try:
        assert r.ok, r.first_failure()
        assert port_open("127.0.0.1", port)
        assert r.stats["psql"] == (
            f'psql "host=127.0.0.1 port={port} sslmode=disable '
            'dbname=workspace-stairway user=workspace-stairway"'
        )
        assert r.stats["password_secret"] == "workspacemanager-stairway-db-creds"
        assert "workspace-db-jcarlton-5a65b1a9838a91cb" in fake_tools.read_text()
        again = run_playbook("db-proxy.yml", v, tmp_path / "r2")
        assert again.ok and again.changed == ()
    finally:
        stop = run_playbook("db-proxy.yml", {**v, "state": "stopped"}, tmp_path / "r3")
    assert stop.ok, stop.first_failure()
    assert not port_open("127.0.0.1", port)
    for f in (tmp_path / "r1").rglob("*"):
        if f.is_file():
            body = f.read_text(errors="replace")
            assert secret not in body and encoded not in body, f


def test_a_playbook_without_its_collection_is_one_tool_missing_line(
    kube_vars: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opskit import ansible
    from opskit.errors import ToolMissing

    monkeypatch.setitem(ansible.COLLECTIONS, "kill-pod.yml", ("nosuch.collection",))
    with pytest.raises(ToolMissing) as info:
        run_playbook("kill-pod.yml", {**kube_vars, "pod": "x"}, tmp_path / "run")
    assert str(info.value) == (
        "playbooks/kill-pod.yml needs the Ansible collection nosuch.collection: pip install"
        " 'stairway-ops[ansible]' (the PyPI ansible bundle ships it; Galaxy is not needed)"
    )
    assert not (tmp_path / "run").exists()
