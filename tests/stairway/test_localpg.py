"""The project-managed Postgres: persistent in a state dir, restartable, never loosening /root."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path

import psycopg
import pytest

from repairtool.errors import LocalPostgresError
from repairtool.localpg import LocalPostgres, _port_free, find_binaries


def mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_persistent_server_restarts_on_the_same_port_with_its_data() -> None:
    home_mode = mode(os.path.expanduser("~"))
    state = Path(tempfile.mkdtemp(prefix="stairway-ops-lpg-"))
    os.chmod(state, 0o711)
    local = LocalPostgres(state)
    try:
        server = local.start()
        assert local.status().running
        with psycopg.connect(
            host="127.0.0.1",
            port=server.port,
            user="postgres",
            password=server.password,
            dbname="postgres",
            autocommit=True,
        ) as c:
            c.execute("CREATE TABLE kept (x int)")
        assert local.start().port == server.port  # idempotent while running
        assert local.stop()
        assert not local.status().running
        again = local.start()
        assert again.port == server.port
        with psycopg.connect(
            host=str(again.socket_dir), port=again.port, user="postgres", dbname="postgres"
        ) as c:
            assert c.execute("SELECT count(*) FROM kept").fetchone() == (0,)
        assert "***" in again.safe_url() and again.password not in again.safe_url()
        assert again.password not in repr(again)
    finally:
        local.destroy()
        shutil.rmtree(state, ignore_errors=True)
    assert not local.status().running
    assert mode(os.path.expanduser("~")) == home_mode
    assert not (state / "pg").exists()


def test_a_port_left_in_time_wait_by_a_server_side_close_is_still_free_for_the_restart() -> None:
    # Postgres closes a client's socket first at shutdown, leaving the server port in TIME_WAIT;
    # Postgres (SO_REUSEADDR) can listen there again, so the probe must say the port is free
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()
    assert client.recv(1) == b""
    client.close()
    listener.close()
    assert _port_free(port)
    with socket.socket() as holder:  # a listener there (set up as Postgres does) is not free
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", port))
        holder.listen()
        assert not _port_free(port)


def test_wrong_password_over_tcp_is_refused(pg_server) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            host="127.0.0.1",
            port=pg_server.port,
            user="postgres",
            password="not-it",
            dbname="postgres",
        )


def test_missing_pg_bin_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LocalPostgresError, match="no pg_ctl there"):
        find_binaries(tmp_path)


def test_debian_or_wheel_binaries_are_found() -> None:
    found = find_binaries()
    assert (found.bin_dir / "initdb").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="the copy path is taken only when run as root")
def test_binaries_the_server_user_cannot_reach_are_copied_with_their_libraries() -> None:
    """A venv in a mode-700 directory (as under /root, or a fresh CI venv in /tmp)."""
    found = find_binaries()
    package = found.bin_dir.parent.parent
    private = Path(tempfile.mkdtemp(prefix="stairway-ops-private-"))  # mode 700
    state = Path(tempfile.mkdtemp(prefix="stairway-ops-lpg-"))
    os.chmod(state, 0o711)
    try:
        shutil.copytree(package, private / package.name, symlinks=True)
        libs = package.parent / f"{package.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, private / libs.name, symlinks=True)
        bin_dir = private / package.name / found.bin_dir.parent.name / "bin"
        local = LocalPostgres(state, pg_bin=bin_dir)
        try:
            server = local.start()
            assert "(copied)" in server.binaries.source
            with psycopg.connect(
                host=str(server.socket_dir), port=server.port, user="postgres", dbname="postgres"
            ) as c:
                assert c.execute("SELECT 1").fetchone() == (1,)
        finally:
            local.destroy()
    finally:
        shutil.rmtree(private, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)


def test_a_port_taken_between_check_and_bind_is_retried_on_another_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    from repairtool import localpg

    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    ports = iter([taken])
    real_free_port = localpg._free_port
    # the first "free" port is taken by the time Postgres binds it (another process raced us)
    monkeypatch.setattr(localpg, "_free_port", lambda: next(ports, None) or real_free_port())
    monkeypatch.setattr(localpg, "_port_free", lambda port: True)
    state = Path(tempfile.mkdtemp(prefix="stairway-ops-lpg-"))
    os.chmod(state, 0o711)
    local = LocalPostgres(state)
    try:
        server = local.start()
        assert server.port != taken
        assert local.status().running
    finally:
        squatter.close()
        local.destroy()
        shutil.rmtree(state, ignore_errors=True)


def test_grpc_fork_noise_is_not_taken_for_the_tool_s_message() -> None:
    from repairtool.localpg import _is_tool_line

    noise = (
        "E1201 15:09:57.122660    8948 ev_epoll1_linux.cc:373] (event_engine) Epoll1Poller:"
        "0x55a952fa97a0 encountered epoll_wait error: Bad file descriptor"
    )
    assert not _is_tool_line(noise)
    assert not _is_tool_line("   ")
    assert _is_tool_line("pg_ctl: could not start server")
