"""The Invoke tasks: the menu, help texts, and bad input → one line + a distinct exit code."""

from __future__ import annotations

import inspect
import shutil
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from invoke import MockContext
from invoke.exceptions import Exit

from opskit import paths
from opskit.errors import ExitCode
from tests.conftest import load_tasks

FIX = Path(__file__).parent / "fixtures"


def _tasks() -> ModuleType:
    return load_tasks("stairway_ops_tasks")


tasks = _tasks()


def _exit(fn: Any, *args: Any, **kwargs: Any) -> Exit:
    with pytest.raises(Exit) as info:
        fn(MockContext(), *args, **kwargs)
    assert info.value.message is None or "\n" not in info.value.message
    return info.value


def test_every_task_has_a_docstring_and_help_for_every_option() -> None:
    names = set(tasks.ns.task_names)
    assert {
        "envs",
        "setup",
        "build",
        "deploy",
        "db-proxy",
        "connect-db",
        "kill-pod",
        "logs",
        "run-test",
    } <= names
    for name in names:
        t = tasks.ns[name]
        assert t.__doc__ and t.__doc__.strip(), name
        params = [p for p in inspect.signature(t.body).parameters if p != "c"]
        assert set(params) <= set(t.help), (name, set(params) - set(t.help))


def test_unknown_env_is_not_found(isolated_dirs: Path) -> None:
    e = _exit(tasks.setup, env="nope")
    assert e.code == ExitCode.NOT_FOUND
    assert e.message.startswith("error: unknown environment 'nope'")


def test_env_file_with_a_wrong_key_is_a_usage_error(
    isolated_dirs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STAIRWAY_OPS_ENVS_DIR", str(FIX / "envs"))
    e = _exit(tasks.kill_pod, env="unknown-key", pod="x")
    assert e.code == ExitCode.USAGE
    assert "unknown-key.yaml: unknown key 'gke.projet'" in e.message
    e = _exit(tasks.envs)
    assert e.code == ExitCode.USAGE
    assert "INVALID" in capsys.readouterr().out


def test_missing_tool_is_tool_missing_and_nothing_is_written(
    isolated_dirs: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_gke_env: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = make_gke_env()
    monkeypatch.setenv("STAIRWAY_OPS_ENVS_DIR", str(env.path.parent))
    empty = isolated_dirs / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    e = _exit(tasks.setup, env="jcarlton")
    assert e.code == ExitCode.TOOL_MISSING
    assert "gcloud, kubectl, skaffold, helm, cloud-sql-proxy" in e.message
    out = capsys.readouterr().out
    assert out.count("missing (") == 5 and "https://helm.sh" in out
    assert not env.state_path.exists()


def test_missing_checkout_is_tool_missing(
    isolated_dirs: Path, monkeypatch: pytest.MonkeyPatch, make_gke_env: Any
) -> None:
    env = make_gke_env()
    monkeypatch.setenv("STAIRWAY_OPS_ENVS_DIR", str(env.path.parent))
    bin_dir = isolated_dirs / "bin"
    bin_dir.mkdir()
    for t in ("gcloud", "kubectl", "skaffold", "helm", "cloud-sql-proxy"):
        (bin_dir / t).write_text("#!/bin/sh\n")
        (bin_dir / t).chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    e = _exit(tasks.setup, env="jcarlton")
    assert e.code == ExitCode.TOOL_MISSING and "checkout" in e.message
    assert not env.state_path.exists()


def test_usage_errors_are_exit_2(isolated_dirs: Path) -> None:
    assert _exit(tasks.kill_pod, env="jcarlton").code == ExitCode.USAGE
    assert _exit(tasks.envs, vars=True).code == ExitCode.USAGE
    assert _exit(tasks.logs, env="jcarlton", since="yesterday").code == ExitCode.USAGE


def test_pod_in_another_namespace_is_refused(isolated_dirs: Path) -> None:
    e = _exit(tasks.kill_pod, env="jcarlton", pod="terra-other/workspacemanager-deployment-x")
    assert e.code == ExitCode.REFUSED
    e = _exit(tasks.kill_pod, env="jcarlton", pod="x", namespace="default")
    assert e.code == ExitCode.REFUSED and "'default'" in e.message


def test_flight_that_does_not_exist_is_not_found(
    isolated_dirs: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_gke_env: Any,
    fake_gke: Any,
    flight_db: Any,
) -> None:
    url = flight_db.url
    env = make_gke_env(
        **{
            "gke.kubeconfig": str(fake_gke.kubeconfig),
            "gke.logging_endpoint": fake_gke.logs_server.url,
            # the database port is open (the test Postgres): the proxy is not started, it is reused
            "stairway.db.host": url.host,
            "stairway.db.port": url.port,
            "stairway.db.name": url.database,
            "stairway.db.user": url.username,
            "stairway.db.password": {"env": "OPSKIT_TEST_DB_PASSWORD"},
        }
    )
    monkeypatch.setenv("OPSKIT_TEST_DB_PASSWORD", url.password)
    monkeypatch.setenv("STAIRWAY_OPS_ENVS_DIR", str(env.path.parent))
    before = sorted(fake_gke.pods())
    e = _exit(tasks.kill_pod, env="jcarlton", flight=str(uuid.uuid4()))
    assert e.code == ExitCode.NOT_FOUND and "no flight" in e.message
    assert url.password not in e.message
    assert sorted(fake_gke.pods()) == before


def test_logs_for_a_flight_nobody_logged_is_not_found(
    isolated_dirs: Path,
    monkeypatch: pytest.MonkeyPatch,
    gke_env: Any,
    fake_gke: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("STAIRWAY_OPS_ENVS_DIR", str(gke_env.path.parent))
    for f in (FIX / "logs-2021").glob("*.jsonl"):
        shutil.copy(f, fake_gke.logs_dir / f.name)
    e = _exit(tasks.logs, env="jcarlton", flight="7348bc13-2255-4a50-85b5-fcb5534674cb")
    assert e.code == ExitCode.NOT_FOUND and "widen --since" in e.message  # 2021 is > 1h ago
    tasks.logs(
        MockContext(),
        env="jcarlton",
        flight="7348bc13-2255-4a50-85b5-fcb5534674cb",
        since="2021-04-05T14:00:00Z",
    )
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[2] for line in out] == [
        "disowned",
        "ready_found",
        "queued",
        "received",
        "taking_ownership",
        "dispatch_error",
        "received",
        "not_resumed",
    ]


def test_envs_lists_and_prints_playbook_vars(capsys: pytest.CaptureFixture[str]) -> None:
    tasks.envs(MockContext())
    out = capsys.readouterr().out
    assert "jcarlton" in out and "local" in out and "(default)" in out
    tasks.envs(MockContext(), name="jcarlton", vars=True)
    import json

    data = json.loads(capsys.readouterr().out)
    assert (
        data["ops_env"]["gke"]["kube_context"]
        == "gke_terra-kernel-k8s_us-central1-a_terra-integration"
    )
    assert {f["dest"] for f in data["render_files"]} >= {"skaffold.yaml", "values.yaml"}
    assert data["required_tools"] == ["gcloud", "kubectl", "skaffold", "helm", "cloud-sql-proxy"]


@pytest.mark.slow
def test_the_inv_command_prints_one_line_on_stderr_and_exits_with_the_code(
    isolated_dirs: Path,
) -> None:
    import os
    import subprocess
    import sys

    inv = str(Path(sys.executable).parent / "inv")
    cases = [
        (["setup", "--env", "nope"], ExitCode.NOT_FOUND),
        (["kill-pod", "--env", "jcarlton"], ExitCode.USAGE),
        (["kill-pod", "--env", "jcarlton", "--pod", "kube-system/coredns"], ExitCode.REFUSED),
    ]
    for argv, code in cases:
        p = subprocess.run(
            [inv, *argv],
            cwd=paths.PROJECT_ROOT,
            capture_output=True,
            text=True,
            env=dict(os.environ),
            timeout=60,
        )
        assert p.returncode == code, (argv, p.returncode, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, p.stderr)
    listing = subprocess.run(
        [inv, "--list"], cwd=paths.PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )
    for name in ("setup", "kill-pod", "logs", "run-test", "sandbox.up", "sandbox.down"):
        assert name in listing.stdout
