"""Fire N requests at once (threads released by a barrier) and count how each one ended."""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from urllib.parse import urlsplit


def burst(url: str, path: str, n: int, *, timeout: float = 30.0) -> Counter[str]:
    """GET ``url + path`` from ``n`` threads at the same moment; count statuses and errors.

    Keys are HTTP status codes (``"200"``) or exception class names (``"ConnectionResetError"``).
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    barrier = threading.Barrier(n)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def one() -> None:
        barrier.wait()
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            outcome = str(response.status)
        except Exception as error:  # counted, not raised: the test asserts on the counts
            outcome = type(error).__name__
        finally:
            conn.close()
        with lock:
            outcomes[outcome] += 1

    threads = [threading.Thread(target=one, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout * 2)
    return outcomes
