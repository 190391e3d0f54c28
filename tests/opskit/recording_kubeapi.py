"""A loopback Kubernetes API that records what clients send and answers server-side apply.

`PATCH …?fieldManager=…` with `Content-Type: application/apply-patch+yaml` stores the object
(201 when it is new, 200 when it replaces one) and answers it back with a uid and a
resourceVersion, as the API server does; `GET` of a stored object returns it; anything else is
404 with a `Status`. Every request is kept in `requests` (method, path, query, content type,
parsed body) for the test to read.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlparse

from sandbox.httpserve import LoopbackServer, QuietHandler


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str
    body: Any


class RecordingKubeApi(LoopbackServer):
    thread_name = "recording-kube-api"

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.objects: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._rv = itertools.count(1)
        super().__init__(type("Handler", (_Handler,), {"api": self}))


class _Handler(QuietHandler):
    api: RecordingKubeApi

    def _record(self, method: str) -> tuple[str, Request]:
        u = urlparse(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.loads(raw) if raw else None
        req = Request(method, u.path, parse_qs(u.query), self.headers.get("Content-Type", ""), body)
        with self.api._lock:
            self.api.requests.append(req)
        return u.path, req

    def _status(self, code: int, reason: str, message: str) -> None:
        self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                          "reason": reason, "message": message, "code": code})  # fmt: skip

    def do_PATCH(self) -> None:
        path, req = self._record("PATCH")
        if req.content_type != "application/apply-patch+yaml" or "fieldManager" not in req.query:
            return self._status(415, "UnsupportedMediaType", "only server-side apply here")
        obj = dict(req.body)
        with self.api._lock:
            created = path not in self.api.objects
            meta = dict(obj.get("metadata") or {})
            old = self.api.objects.get(path, {}).get("metadata", {})
            meta["uid"] = old.get("uid") or str(uuid.uuid4())
            meta["resourceVersion"] = str(next(self.api._rv))
            obj["metadata"] = meta
            self.api.objects[path] = obj
        self._send(201 if created else 200, obj)

    def do_GET(self) -> None:
        path, _ = self._record("GET")
        with self.api._lock:
            obj = self.api.objects.get(path)
        if obj is None:
            return self._status(404, "NotFound", f"{path} not found")
        self._send(200, obj)
