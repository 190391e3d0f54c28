"""The default environment: `--env`, `$STAIRWAY_OPS_ENV`, Invoke's `stairway_ops.env`, the only
env file — and with none of them and several env files, a command that changes something refuses
(exit REFUSED) while a read-only command or a rehearsal uses `local`. Both CLIs name the
environment they act on in the first line of stderr."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from invoke import Config, MockContext
from invoke.exceptions import Exit
from sqlalchemy import Engine

from opskit import paths, tasks
from opskit.envchoice import ENV_VAR, NoEnvChosen, choose_env, configured_env
from opskit.errors import ExitCode

ENVS = paths.PROJECT_ROOT / "envs"


@pytest.fixture
def no_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv("STAIRWAY_OPS_ENVS_DIR", raising=False)


def test_the_first_choice_wins(no_choice: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert choose_env("jcarlton", use="changes").line() == "environment: jcarlton (--env)"
    monkeypatch.setenv(ENV_VAR, "jcarlton")
    assert choose_env(None, use="changes").line() == f"environment: jcarlton (${ENV_VAR})"
    assert choose_env("local", use="changes").name == "local"  # the flag beats the variable
    monkeypatch.delenv(ENV_VAR)
    chosen = choose_env(None, use="changes", configured="jcarlton")
    assert (chosen.name, chosen.source) == ("jcarlton", "Invoke config stairway_ops.env")


def test_several_env_files_and_no_choice_refuse_a_change_only(no_choice: None) -> None:
    assert len(list(ENVS.glob("*.yaml"))) > 1
    with pytest.raises(NoEnvChosen) as info:
        choose_env(None, use="changes")
    assert info.value.exit_code == ExitCode.REFUSED
    assert "--env NAME" in str(info.value) and ENV_VAR in str(info.value)
    read = choose_env(None, use="reads")
    assert (read.name, read.chosen) == ("local", False)
    assert read.line() == "environment: local (default for a read-only command)"
    rehearsal = choose_env(None, use="rehearsal")
    assert rehearsal.source == "default for a rehearsal (on the local sandbox)"


def test_the_only_env_file_is_a_choice(tmp_path: Path, no_choice: None) -> None:
    shutil.copy(ENVS / "local.yaml", tmp_path / "local.yaml")
    chosen = choose_env(None, use="changes", directory=tmp_path)
    assert (chosen.name, chosen.source, chosen.chosen) == ("local", "the only file in envs/", True)


def test_invoke_config_file_selects_the_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "invoke.yaml").write_text("stairway_ops:\n  env: jcarlton\n")
    monkeypatch.setattr(paths, "PROJECT_ROOT", tmp_path)
    assert configured_env() == "jcarlton"  # the project's invoke.yaml, loaded by Invoke itself
    config = Config(overrides={"stairway_ops": {"env": "local"}})
    assert configured_env(config) == "local"  # a task's c.config
    assert configured_env(Config()) is None


def test_a_task_that_changes_something_refuses_without_a_choice(
    no_choice: None, isolated_dirs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(Exit) as info:
        tasks.run_test(MockContext())
    assert info.value.code == ExitCode.REFUSED
    assert "no environment chosen" in str(info.value.message)
    with pytest.raises(Exit) as info:
        tasks.restart(MockContext())
    assert info.value.code == ExitCode.REFUSED
    # Invoke's configuration is a choice: the task gets past the rule (and fails later on, as
    # the sandbox is not running here), naming the environment first
    c = MockContext(Config(overrides={"stairway_ops": {"env": "local"}}))
    with pytest.raises(Exit) as info:
        tasks.run_test(c)
    assert info.value.code == ExitCode.PLATFORM_UNREACHABLE
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "environment: local (Invoke config stairway_ops.env)"


def test_a_read_only_task_uses_local_and_says_so(
    no_choice: None, isolated_dirs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(Exit) as info:
        tasks.logs(MockContext())
    assert info.value.code == ExitCode.PLATFORM_UNREACHABLE  # no sandbox here
    assert capsys.readouterr().err.splitlines()[0] == (
        "environment: local (default for a read-only command)"
    )


def _repairtool(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("STAIRWAY_", "PG"))}
    return subprocess.run(
        [sys.executable, "-m", "repairtool", *args],
        capture_output=True,
        text=True,
        env={**base, **env},
        timeout=120,
        cwd=paths.PROJECT_ROOT,
    )


def test_repairtool_names_its_database_and_refuses_a_fix_on_the_fallback(
    stairway_db: Engine, tmp_path: Path
) -> None:
    url = stairway_db.url.render_as_string(hide_password=False)
    shown = stairway_db.url.set(drivername="postgresql").render_as_string(hide_password=True)
    listed = _repairtool("flights", "list", "--db", url)
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr.splitlines()[0] == f"database: {shown} (--db)"
    # `repairtool local up` leaves <state>/local.env: reading it is fine, a fix is refused
    state = tmp_path / "state"
    state.mkdir()
    (state / "local.env").write_text(f"STAIRWAY_DB_URL={url}\n")
    read = _repairtool("orphans", "--live-instances", "x", STAIRWAY_OPS_STATE_DIR=str(state))
    assert read.returncode == 0, read.stderr
    assert read.stderr.splitlines()[0].endswith("(fallback: `repairtool local up`'s database)")
    fix = ["orphans", "--live-instances", "x", "--fix", "--reason", "r", "--yes"]
    refused = _repairtool(*fix, STAIRWAY_OPS_STATE_DIR=str(state))
    assert refused.returncode == ExitCode.REFUSED, refused.stderr
    assert "no environment chosen" in refused.stderr.splitlines()[-1]
    # $STAIRWAY_DB_URL is a choice
    chosen = _repairtool(*fix, STAIRWAY_OPS_STATE_DIR=str(state), STAIRWAY_DB_URL=url)
    assert chosen.returncode == 0, chosen.stderr
    assert chosen.stderr.splitlines()[0] == f"database: {shown} ($STAIRWAY_DB_URL)"


def test_repairtool_takes_the_environment_from_the_variable(tmp_path: Path) -> None:
    unknown = _repairtool("flights", "list", **{ENV_VAR: "nope"})
    assert unknown.returncode == ExitCode.NOT_FOUND
    assert "unknown environment 'nope'" in unknown.stderr
    # local = the sandbox, which is not running in this state dir
    down = _repairtool(
        "flights", "list", **{ENV_VAR: "local", "STAIRWAY_OPS_STATE_DIR": str(tmp_path)}
    )
    assert down.returncode == ExitCode.PLATFORM_UNREACHABLE
    assert "sandbox is not running" in down.stderr
