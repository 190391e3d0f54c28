"""The sandbox's loopback HTTP base accepts bursts of concurrent clients (no resets)."""

from __future__ import annotations

import time

from sandbox.httpserve import LISTEN_BACKLOG, LoopbackServer, QuietHandler
from tests.sandbox.burst import burst


class _SlowOk(QuietHandler):
    """Answers after a short pause, so that a burst queues up behind the accept loop."""

    def do_GET(self) -> None:
        time.sleep(0.05)
        self._send(200, {"ok": True})


def test_the_listen_backlog_is_sized_for_bursts() -> None:
    server = LoopbackServer(_SlowOk)
    try:
        assert server.httpd.request_queue_size == LISTEN_BACKLOG >= 128
    finally:
        server.httpd.server_close()


def test_300_concurrent_clients_are_all_answered() -> None:
    server = LoopbackServer(_SlowOk).start()
    try:
        outcomes = burst(server.url, "/", 300, timeout=20)
    finally:
        server.stop()
    assert outcomes == {"200": 300}
