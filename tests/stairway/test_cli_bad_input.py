"""`repairtool` as a person runs it: one line on stderr and a distinct exit code per problem."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine

from repairtool.exitcodes import ExitCode
from repairtool.localpg import PgServer
from repairtool.seed import seed_2021

LIVE_2021 = (
    "workspacemanager-deployment-68f9b944d5-9kgzp,workspacemanager-deployment-68f9b944d5-bj2qd"
)
DEAD_2021 = "workspacemanager-deployment-68f9b944d5-5gwdm"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("STAIRWAY_", "PG"))}
    base["STAIRWAY_OPS_STATE_DIR"] = "/nonexistent-state-dir"
    return subprocess.run(
        [sys.executable, "-m", "repairtool", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=60,
    )


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The one error line, after (when the command got that far) the line that names the
    environment or database the command acts on."""
    lines = proc.stderr.strip().splitlines()
    if len(lines) == 2:
        assert lines[0].startswith(("database: ", "environment: ")), proc.stderr
        assert "***" in lines[0] or "password" not in lines[0].lower()
        lines = lines[1:]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("repairtool: error: ")
    return lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_database_exits_4() -> None:
    proc = run("flights", "list", "--db", f"postgresql://u:secretpw@127.0.0.1:{free_port()}/x")
    assert proc.returncode == 4
    line = one_error_line(proc)
    assert "unreachable" in line and "secretpw" not in proc.stderr + proc.stdout


def test_wrong_password_exits_5(pg_server: PgServer) -> None:
    url = f"postgresql://postgres:wrong-password@127.0.0.1:{pg_server.port}/postgres"
    proc = run("flights", "count", "--db", url)
    assert proc.returncode == 5
    line = one_error_line(proc)
    assert "refused the login" in line and "wrong-password" not in proc.stderr


def test_unreachable_kubernetes_api_is_platform_unreachable_not_database(
    stairway_db: Engine, tmp_path: Path
) -> None:
    """A pod list that cannot be fetched is exit 8 (PLATFORM_UNREACHABLE), never 4 (database)."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: k, cluster: {{server: 'http://127.0.0.1:{free_port()}'}}}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\nusers: [{name: u, user: {}}]\n"
    )
    proc = run(
        "orphans", "--db", url_of(stairway_db), "--kube", "--namespace", "ns",
        "--kubeconfig", str(kubeconfig),
    )  # fmt: skip
    assert proc.returncode == ExitCode.PLATFORM_UNREACHABLE == 8
    assert "Kubernetes API unreachable" in one_error_line(proc)


def test_database_without_stairway_tables_exits_6(make_db) -> None:
    proc = run("flights", "list", "--db", url_of(make_db(None)))
    assert proc.returncode == 6
    assert "not a Stairway database" in one_error_line(proc)


def test_unknown_flight_exits_9_not_found(stairway_db: Engine) -> None:
    proc = run("flights", "show", "no-such-flight", "--db", url_of(stairway_db))
    assert proc.returncode == 9
    assert one_error_line(proc) == "repairtool: error: Unknown flight id no-such-flight"


def test_no_database_given_exits_2() -> None:
    proc = run("flights", "list")
    assert proc.returncode == 2
    assert "no database given" in one_error_line(proc)


def test_not_a_url_exits_2() -> None:
    proc = run("flights", "list", "--db", "mysql://x@y/z")
    assert proc.returncode == 2
    assert "only postgresql URLs" in one_error_line(proc)


def test_url_from_environment_and_password_never_printed(stairway_db: Engine) -> None:
    seed_2021(stairway_db)
    url = url_of(stairway_db)
    password = stairway_db.url.password
    assert password
    proc = run("flights", "list", "--status", "RUNNING", env={"STAIRWAY_DB_URL": url})
    assert proc.returncode == 0, proc.stderr
    assert "7348bc13-2255-4a50-85b5-fcb5534674cb" in proc.stdout
    assert str(password) not in proc.stdout + proc.stderr


def test_fix_without_reason_or_terminal_is_refused_with_exit_3(stairway_db: Engine) -> None:
    seed_2021(stairway_db)
    url = url_of(stairway_db)
    flight = "7028cce9-5017-48dc-9c17-ce8b23517459"  # owned by the dead pod 5gwdm
    base = ["recover", "force-fatal", flight, "--db", url, "--live-instances", LIVE_2021]
    seen = ["--expect-status", "RUNNING", "--expect-owner", DEAD_2021]
    no_reason = run(*base, "--fix")
    assert no_reason.returncode == 3 and "--reason" in one_error_line(no_reason)
    no_tty = run(*base, *seen, "--fix", "--reason", "r")
    assert no_tty.returncode == 3 and "terminal" in one_error_line(no_tty)
    unseen = run(*base, "--fix", "--reason", "r", "--yes")  # --yes: nobody saw the state
    assert unseen.returncode == 3 and "--expect-status" in one_error_line(unseen)
    applied = run(*base, *seen, "--fix", "--reason", "r", "--yes")
    assert applied.returncode == 0, applied.stderr
    assert "changed (RUNNING/" in applied.stdout
    audit = run("flights", "audit", "--db", url)
    assert "force_fatal" in audit.stdout and flight in audit.stdout


def test_token_in_flightmap_is_masked_in_show(stairway_db: Engine) -> None:
    seed_2021(stairway_db)
    proc = run(
        "flights",
        "show",
        "7348bc13-2255-4a50-85b5-fcb5534674cb",
        "--json",
        "--db",
        url_of(stairway_db),
    )
    assert proc.returncode == 0
    assert "PLACEHOLDER-NOT-A-REAL-TOKEN" not in proc.stdout
    assert "<<MASKED>>" in proc.stdout


@pytest.mark.parametrize("argv", [["--help"], ["flights", "list", "--help"]])
def test_help_documents_exit_codes(argv: list[str]) -> None:
    proc = run(*argv)
    assert proc.returncode == 0
    assert "exit codes:" in proc.stdout and "4  DB_UNREACHABLE" in proc.stdout
