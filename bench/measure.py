"""What the benchmarks measure a command with: wall time, peak RSS and exit code of a child
process (`run`), and the time from its start to its first SQL statement (`FirstQuery`, a
loopback TCP relay in front of the server that notes when the first Parse or Query message
passes).

Used by `bench/bench_orphans.py` and `bench/bench_scale.py`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_SSL_REQUEST = 80877103
_GSS_REQUEST = 80877104


def bench_env(password: str) -> dict[str, str]:
    """The environment the measured commands run in: the server's password, and the project's
    modules compiled to bytecode once, as `pip install` leaves an installed package (a
    `PYTHONDONTWRITEBYTECODE` checkout would otherwise compile every module on every start)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    root = Path(__file__).resolve().parent.parent
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(root / "repairtool")],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return {**env, "PGPASSWORD": password}


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_mb: float
    exit_code: int
    started: float  # time.perf_counter() at the fork (CLOCK_MONOTONIC: the same in every process)


# The measured command runs under a small launcher (`python -S`, a few MB): Linux starts a
# child's peak RSS (ru_maxrss) at its parent's RSS at fork time, so a benchmark process holding
# a parsed 100,000-finding document would otherwise be counted in every later measurement. The
# launcher times the command from its fork to its exit and reports on its own pipe.
_LAUNCHER = """
import os, sys, time
fd = int(sys.argv[1])
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.close(fd)
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
code = os.waitstatus_to_exitcode(status)
os.write(fd, f"{seconds} {usage.ru_maxrss} {code} {start}".encode())
"""


def run(argv: list[str], env: dict[str, str], stdout: Path | None = None) -> Run:
    """Run `argv` to the end (stdout to `stdout` or discarded, stderr kept for a failure's
    message): its wall time and peak resident set size (`ru_maxrss` of the process)."""
    out = open(stdout, "wb") if stdout is not None else subprocess.DEVNULL  # noqa: SIM115
    read_end, write_end = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-S", "-c", _LAUNCHER, str(write_end), *argv],
            stdout=out,
            stderr=subprocess.PIPE,
            env=env,
            pass_fds=(write_end,),
        )
        os.close(write_end)
        _, err = proc.communicate()
        report = b""
        while chunk := os.read(read_end, 4096):
            report += chunk
    finally:
        os.close(read_end)
        if stdout is not None:
            out.close()  # type: ignore[union-attr]
    if proc.returncode != 0 or not report:
        raise RuntimeError(f"{argv[:4]} … did not run: {err.decode()[-500:]}")
    seconds, maxrss_kb, code, started = report.decode().split()
    if int(code) not in (0, 1):
        raise RuntimeError(f"{argv[:4]} … failed (exit {code}): {err.decode()[-500:]}")
    return Run(float(seconds), int(maxrss_kb) / 1024, int(code), float(started))


class FirstQuery:
    """A relay on 127.0.0.1 in front of the server: `measure(argv)` runs a command against the
    relay's port and returns the seconds from its start to its first Parse/Query message
    (connecting, SCRAM login and the imports before them included)."""

    def __init__(self, server_port: int) -> None:
        self.server_port = server_port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port: int = self.listener.getsockname()[1]
        self._first: float | None = None
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def measure(self, argv: list[str], env: dict[str, str]) -> tuple[float, Run]:
        with self._lock:
            self._first = None
        result = run(argv, env)
        with self._lock:
            first = self._first
        if first is None:
            raise RuntimeError(f"{argv[:4]} … sent no query through the relay")
        return first - result.started, result

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            upstream = socket.create_connection(("127.0.0.1", self.server_port))
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()
            threading.Thread(target=self._client, args=(client, upstream), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def _client(self, client: socket.socket, upstream: socket.socket) -> None:
        """Client → server: read the startup packet(s), then message by message until the
        first Parse ('P') or Query ('Q'), then relay the rest untouched."""
        buf = b""

        def need(n: int) -> bytes:
            nonlocal buf
            while len(buf) < n:
                data = client.recv(65536)
                if not data:
                    raise EOFError
                buf += data
            out, buf = buf[:n], buf[n:]
            upstream.sendall(out)
            return out

        try:
            while True:  # SSL/GSS requests (answered 'N' by a server without TLS), then startup
                (length,) = struct.unpack("!i", need(4))
                body = need(length - 4)
                if struct.unpack("!i", body[:4])[0] not in (_SSL_REQUEST, _GSS_REQUEST):
                    break
            while True:
                kind = need(1)
                if kind in (b"P", b"Q"):
                    with self._lock:
                        if self._first is None:
                            self._first = time.perf_counter()
                    break
                (length,) = struct.unpack("!i", need(4))
                need(length - 4)
            if buf:
                upstream.sendall(buf)
        except (EOFError, OSError):
            return
        self._pump(client, upstream)
