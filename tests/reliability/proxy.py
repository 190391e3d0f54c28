"""A loopback TCP proxy of our own between the tool and Postgres that drops connections on cue.

Faults are armed one at a time and fire once, on whichever proxied connection reaches the point:
- `DropAfterBytes(direction, n)`: close both sides after `n` more bytes flowed that way;
- `DropBeforeCommit()`: the client's COMMIT never reaches the server (the server rolls back);
- `DropCommitAck()`: the server commits, but its `CommandComplete "COMMIT"` never reaches the
  client (the commit acknowledgement is lost).

The proxy reads the frontend/backend wire protocol only as bytes: a simple-query COMMIT is
`'Q' len "COMMIT\\0"` (psycopg 3 sends transaction control that way), its reply
`'C' len "COMMIT\\0"`. TLS must be off (`sslmode=disable`) for the proxy to see them.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from dataclasses import dataclass

COMMIT_QUERY = b"Q\x00\x00\x00\x0bCOMMIT\x00"
COMMIT_DONE = b"C\x00\x00\x00\x0bCOMMIT\x00"


@dataclass
class DropAfterBytes:
    direction: str  # "up" (client → server) or "down" (server → client)
    n: int


@dataclass
class DropBeforeCommit:
    nth: int = 1  # fire at the nth COMMIT after arming


@dataclass
class DropCommitAck:
    nth: int = 1


Fault = DropAfterBytes | DropBeforeCommit | DropCommitAck


class FaultProxy:
    """`with FaultProxy(port) as proxy:` listens on `proxy.port` and forwards to `upstream_port`."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._fault: Fault | None = None
        self._remaining = 0
        self.fired: list[str] = []
        #: bytes forwarded each way and COMMITs seen, since the proxy started
        self.bytes = {"up": 0, "down": 0}
        self.commits = 0
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._socks: set[socket.socket] = set()

    # -- control ----------------------------------------------------------------------------
    def arm(self, fault: Fault) -> None:
        with self._lock:
            self._fault = fault
            self._remaining = fault.n if isinstance(fault, DropAfterBytes) else fault.nth

    def disarm(self) -> Fault | None:
        with self._lock:
            left, self._fault = self._fault, None
            return left

    @property
    def armed(self) -> bool:
        with self._lock:
            return self._fault is not None

    def __enter__(self) -> FaultProxy:
        t = threading.Thread(target=self._accept, daemon=True, name="fault-proxy")
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            with contextlib.suppress(OSError):
                s.close()

    # -- forwarding -------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._socks.update((client, server))
            t = threading.Thread(
                target=self._pump, args=(client, server), daemon=True, name="fault-proxy-conn"
            )
            t.start()

    def _decide(self, direction: str, data: bytes) -> tuple[bytes, bool]:
        """What to forward of `data` and whether to cut the connection after it."""
        with self._lock:
            self.bytes[direction] += len(data)
            if direction == "up":
                self.commits += data.count(COMMIT_QUERY)
            fault = self._fault
            if fault is None:
                return data, False
            if isinstance(fault, DropAfterBytes) and fault.direction == direction:
                if len(data) < self._remaining:
                    self._remaining -= len(data)
                    return data, False
                head = data[: self._remaining]
                self._fault = None
                self.fired.append(f"drop after bytes ({direction})")
                return head, True
            if isinstance(fault, DropBeforeCommit) and direction == "up":
                at = data.find(COMMIT_QUERY)
                if at >= 0:
                    self._remaining -= 1
                    if self._remaining <= 0:
                        self._fault = None
                        self.fired.append("drop before COMMIT")
                        return data[:at], True
            if isinstance(fault, DropCommitAck) and direction == "down":
                at = data.find(COMMIT_DONE)
                if at >= 0:
                    self._remaining -= 1
                    if self._remaining <= 0:
                        self._fault = None
                        self.fired.append("drop COMMIT acknowledgement")
                        return data[:at], True
            return data, False

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        peers = {client: (server, "up"), server: (client, "down")}
        try:
            while not self._closed.is_set():
                ready, _, _ = select.select(list(peers), [], [], 0.5)
                for src in ready:
                    dst, direction = peers[src]
                    data = src.recv(65536)
                    if not data:
                        return
                    out, cut = self._decide(direction, data)
                    if out:
                        dst.sendall(out)
                    if cut:
                        return
        except OSError:
            return
        finally:
            for s in (client, server):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()
                with self._lock:
                    self._socks.discard(s)
