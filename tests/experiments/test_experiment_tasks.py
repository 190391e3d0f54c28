"""`inv experiment` and `inv runbook`: thin tasks (parse, call, render, exit code); the GKE
stage builds the same commands from the env file (it cannot be run here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from opskit import paths
from opskit.envs import load_env
from opskit.errors import ExitCode
from opskit.events import Reporter
from opskit.experiment.commands import CommandResult
from opskit.experiment.db import psql_command
from opskit.experiment.definition import list_definitions, load_definition
from opskit.experiment.record import journal_experiment
from opskit.experiment.stage import GkeStage, LocalStage, stage_for
from opskit.journal import CommandRecord

FIXTURES = paths.PROJECT_ROOT / "tests" / "runbooks" / "fixtures"
EXPECTED = paths.PROJECT_ROOT / "tests" / "runbooks" / "expected"


def inv(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "inv"
    return subprocess.run(
        [str(exe) if exe.exists() else "inv", *args],
        cwd=paths.PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env or dict(os.environ),
    )


def test_unknown_experiment_is_one_line_and_exit_9_not_found(isolated: Path) -> None:
    p = inv("experiment", "nope")
    assert p.returncode == ExitCode.NOT_FOUND
    known = ", ".join(list_definitions())
    assert known.startswith("db-connection-drop, dead-owner-no-queue, dead-owner-resume, ")
    assert p.stderr.strip().splitlines() == [f"error: unknown experiment 'nope' (known: {known})"]
    p = inv("experiment", "multi-instance-pod-kill", "--delay", "soon")
    assert p.returncode == ExitCode.USAGE and "--delay: not a duration: 'soon'" in p.stderr


def test_runbook_renders_from_journals_only_and_check_matches(tmp_path: Path) -> None:
    out = tmp_path / "runbooks"
    p = inv("runbook", "--journal", str(FIXTURES), "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert (out / "README.md").is_file() and (out / "orphaned-running-flights.md").is_file()
    for f in out.iterdir():
        assert f.read_bytes() == (EXPECTED / f.name).read_bytes(), f.name
    ok = inv("runbook", "--journal", str(FIXTURES), "--out", str(out), "--check")
    assert ok.returncode == 0 and "match" in ok.stdout
    (out / "README.md").write_text("edited by hand\n")
    stale = inv("runbook", "--journal", str(FIXTURES), "--out", str(out), "--check")
    assert stale.returncode == 1 and f"stale: {out / 'README.md'}" in stale.stdout


def test_runbook_without_journals_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    p = inv("runbook", "--journal", str(tmp_path / "empty"), "--out", str(tmp_path / "o"))
    assert p.returncode == ExitCode.USAGE
    assert p.stderr.strip().startswith("error: no journals in")


def test_local_stage_runs_the_sandbox_command_with_the_experiments_settings(
    isolated: Path,
) -> None:
    d = load_definition("decode-failure-on-resume").with_delay(3)
    stage = stage_for(load_env("local"), d, isolated / "run", Reporter())
    assert isinstance(stage, LocalStage)
    assert stage.deploy_command() == (
        f"python -m sandbox up --state-dir {isolated}/state/experiments/decode-failure-on-resume"
        "/sandbox --replicas 2 --engine-version 0.0.60 --reader-version 0.0.60 --ack-deadline 10"
        " --delay-seconds 3 --delay-step 1 --delay-class"
        " bio.terra.workspace.service.workspace.flight.WorkspaceCreateFlight"
    )
    env = stage.command_env()
    assert env["STAIRWAY_OPS_STATE_DIR"] == f"{isolated}/state/experiments/decode-failure-on-resume"
    assert env["STAIRWAY_OPS_ARTIFACTS_DIR"] == f"{isolated}/run/artifacts"
    assert "PGPASSWORD" not in env
    assert any("0.0.60 reader" in c for c in stage.code_changes())


class FakeCommands:
    """Records what a stage would run instead of running it (GKE cannot run here)."""

    def __init__(self) -> None:
        self.ran: list[tuple[str, str]] = []

    def run(self, command_id: str, command: str, **_: Any) -> CommandResult:
        self.ran.append((command_id, command))
        record = CommandRecord(command_id, command, "2026-11-29T00:00:00Z", 0, 0.1, ())
        return CommandResult(record, "", "")


def test_gke_stage_deploys_with_inv_and_renders_the_testrunner_files(tmp_path: Path) -> None:
    env = load_env("jcarlton")
    stage = stage_for(env, load_definition("multi-instance-pod-kill"), tmp_path, Reporter())
    assert isinstance(stage, GkeStage)
    fake = FakeCommands()
    stage.deploy(fake)  # type: ignore[arg-type]
    assert fake.ran == [("deploy", "inv deploy --env jcarlton")]
    assert stage.service_url() == "https://workspace.jcarlton.integ.envs.broadinstitute.org/"
    assert stage.server_spec()["name"] == "workspace-jcarlton"
    assert stage.suite()["testConfigurationFiles"] == ["integration/WorkspaceLifecycle.json"]
    assert "STAIRWAY_OPS_STATE_DIR" not in stage.env_overrides()


def test_psql_commands_carry_no_password_and_refuse_shell_metacharacters() -> None:
    from opskit.dbproxy import DbTarget

    target = DbTarget("127.0.0.1", 5435, "workspace-stairway", "workspace-stairway")
    assert psql_command(target, "SELECT 1") == (
        'psql "host=127.0.0.1 port=5435 sslmode=disable dbname=workspace-stairway'
        ' user=workspace-stairway" -c "SELECT 1"'
    )
    with pytest.raises(ValueError):
        psql_command(target, "SELECT '$HOME'")


def test_the_journal_records_the_definition_as_it_ran() -> None:
    e = journal_experiment(load_definition("decode-failure-on-resume").with_delay(4))
    assert (e.delay_hook.duration_s, e.kill.when_step, e.kill.target) == (4.0, 1, "owner")
    assert (e.expect.owner, e.expect.findings) == ("live", ("stalled",))
    assert (e.repair.action, e.expect.final_status) == ("reencode", "RUNNING")
    drop = journal_experiment(load_definition("db-connection-drop"))
    assert drop.expect.owner is None and drop.repair.action is None
