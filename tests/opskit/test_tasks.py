"""The Invoke tasks: the menu, help texts, and bad input → one line + a distinct exit code."""

from __future__ import annotations

import inspect
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from invoke import MockContext
from invoke.exceptions import Exit

from opskit import paths, tasks
from opskit.errors import ExitCode

FIX = Path(__file__).parent / "fixtures"


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
    assert "gcloud, kubectl, gke-gcloud-auth-plugin, skaffold, helm, cloud-sql-proxy" in e.message
    out = capsys.readouterr().out
    assert out.count("missing (") == 6 and "https://helm.sh" in out
    assert not env.state_path.exists()


def test_missing_checkout_is_tool_missing(
    isolated_dirs: Path, monkeypatch: pytest.MonkeyPatch, make_gke_env: Any
) -> None:
    env = make_gke_env()
    monkeypatch.setenv("STAIRWAY_OPS_ENVS_DIR", str(env.path.parent))
    bin_dir = isolated_dirs / "bin"
    bin_dir.mkdir()
    for t in ("gcloud", "kubectl", "gke-gcloud-auth-plugin", "skaffold", "helm", "cloud-sql-proxy"):
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
    assert data["required_tools"] == [
        "gcloud", "kubectl", "gke-gcloud-auth-plugin", "skaffold", "helm", "cloud-sql-proxy"
    ]  # fmt: skip


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
        # the environment the task acts on (once it loaded), then the one error line
        assert lines[-1].startswith("error: "), (argv, p.stderr)
        assert lines[:-1] in ([], [f"environment: {argv[2]} (--env)"]), (argv, p.stderr)
    listing = subprocess.run(
        [inv, "--list"], cwd=paths.PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )
    for name in ("setup", "kill-pod", "logs", "run-test", "sandbox.up", "sandbox.down"):
        assert name in listing.stdout


# -- conventions --------------------------------------------------------------------------------


def _all_tasks() -> dict[str, Any]:
    return {name: tasks.ns[name] for name in tasks.ns.task_names}


def test_the_collection_is_an_importable_module_and_the_root_file_only_re_exports_it() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("root_tasks", paths.PROJECT_ROOT / "tasks.py")
    assert spec is not None and spec.loader is not None
    root = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(root)
    assert root.ns is tasks.ns


def test_no_short_flag_shadows_invokes_own_flags() -> None:
    """Only the chosen short flags exist (-n namespace, -y yes): never -e (echo), -h (help)."""
    from opskit.taskkit import CORE_SHORT_FLAGS, SHORT_FLAGS

    for name, t in _all_tasks().items():
        for arg in t.get_arguments():
            shorts = [n for n in arg.names if len(n) == 1]
            assert shorts in ([], [SHORT_FLAGS.get(arg.names[0])]), (name, arg.names)
            assert not set(shorts) & CORE_SHORT_FLAGS, (name, arg.names)
    flags = {n for a in tasks.ns["kill-pod"].get_arguments() for n in a.names}
    assert {"n", "y"} <= flags and "e" not in flags


def test_every_task_help_shows_defaults_and_ends_with_the_exit_code_table() -> None:
    from repairtool.exitcodes import help_text

    for name, t in _all_tasks().items():
        assert inspect.getdoc(t).endswith(help_text().rstrip()), name  # type: ignore[union-attr]
        for arg in t.get_arguments():
            if arg.default not in (None, False, []) and not arg.positional:
                assert "default" in (arg.help or ""), (name, arg.name)


def test_optional_values_use_invokes_optional_not_sentinels() -> None:
    args = {a.names[0]: a for a in tasks.ns["kill-pod"].get_arguments()}
    assert args["when-step"].optional
    sentinels = [
        (name, a.name, a.default)
        for name, t in _all_tasks().items()
        for a in t.get_arguments()
        if a.default in (-1, 0, "") and a.kind is not bool
    ]
    assert sentinels == []


def _dry() -> MockContext:
    from invoke import Config

    return MockContext(config=Config(overrides={"run": {"dry": True}}))


def test_dry_is_refused_by_tasks_that_change_a_cluster_and_cannot_show_it(
    isolated_dirs: Path,
) -> None:
    for fn, kwargs in [
        (tasks.experiment, {"name": "multi-instance-pod-kill"}),
        (tasks.run_test, {}),
        (tasks.sandbox_up, {}),
        (tasks.sandbox_down, {}),
        (tasks.setup, {}),
        (tasks.db_proxy, {}),
    ]:
        with pytest.raises(Exit) as info:
            fn(_dry(), **kwargs)
        assert info.value.code == ExitCode.REFUSED, fn.name
        assert "has no dry run; nothing was done" in str(info.value.message)
    assert not (isolated_dirs / "artifacts").exists()


def test_dry_kill_pod_says_what_it_would_kill_and_kills_nothing(
    isolated_dirs: Path,
    monkeypatch: pytest.MonkeyPatch,
    gke_env: Any,
    fake_gke: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("STAIRWAY_OPS_ENVS_DIR", str(gke_env.path.parent))
    before = sorted(fake_gke.pods())
    tasks.kill_pod(_dry(), env="jcarlton", pod=before[0])
    out = capsys.readouterr().out
    assert out.startswith(f"dry run: would delete pod {before[0]} in namespace terra-jcarlton")
    assert "nothing was changed" in out
    assert sorted(fake_gke.pods()) == before


def test_dry_deploy_echoes_skaffold_and_watches_nothing(
    isolated_dirs: Path,
    monkeypatch: pytest.MonkeyPatch,
    gke_env: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from invoke import Config, Result

    monkeypatch.setenv("STAIRWAY_OPS_ENVS_DIR", str(gke_env.path.parent))
    (gke_env.service.checkout_path / "local-dev").mkdir(parents=True)
    c = MockContext(
        config=Config(overrides={"run": {"dry": True}}),
        run={"skaffold run --status-check=false": Result(exited=0)},
    )
    tasks.deploy(c, env="jcarlton", timeout="1s")  # no watch: a 1 s timeout would fail it
    c.run.assert_called_once_with(
        "skaffold run --status-check=false", warn=True, pty=False, dry=True
    )
    assert capsys.readouterr().out.strip().endswith("nothing was changed")


def test_kill_pod_on_gke_asks_first_and_refuses_without_a_terminal(
    isolated_dirs: Path, monkeypatch: pytest.MonkeyPatch, gke_env: Any, fake_gke: Any
) -> None:
    import io

    monkeypatch.setenv("STAIRWAY_OPS_ENVS_DIR", str(gke_env.path.parent))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal
    before = sorted(fake_gke.pods())
    out = isolated_dirs / "kill.json"
    e = _exit(tasks.kill_pod, env="jcarlton", pod=before[0], json_out=str(out))
    assert e.code == ExitCode.REFUSED and "--yes" in e.message
    assert sorted(fake_gke.pods()) == before
    # the machine-readable result of a failed task is its error document
    import json

    doc = json.loads(out.read_text())
    assert doc == {
        "schema": "stairway-ops.error/1",
        "code": 3,
        "name": "REFUSED",
        "message": e.message.removeprefix("error: "),
    }


def test_logs_since_takes_the_one_duration_grammar() -> None:
    import datetime as dt

    from opskit.cloudlogs import parse_since

    now = dt.datetime(2021, 4, 8, 14, 0, tzinfo=dt.UTC)
    assert parse_since("3d", now=now) == dt.datetime(2021, 4, 5, 14, 0, tzinfo=dt.UTC)
    assert parse_since("1h30m", now=now) == dt.datetime(2021, 4, 8, 12, 30, tzinfo=dt.UTC)
    assert parse_since("2021-04-05T14:00:00Z") == dt.datetime(2021, 4, 5, 14, tzinfo=dt.UTC)
    with pytest.raises(Exception, match="--since 'yesterday'"):
        parse_since("yesterday")
