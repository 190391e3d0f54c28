"""A loopback Google Secret Manager (REST, v1) for the parts of the API the toolkit calls.

``GET /v1/projects/{project}/secrets/{secret}/versions/{version}:access`` answers
``{"name": "projects/<number>/secrets/S/versions/N", "payload": {"data": <base64>,
"dataCrc32c": "<decimal>"}}`` as the real API does (``latest`` resolves to the newest enabled
version; the returned name carries the number); unknown secrets or versions are ``404`` with
Google's error body (``{"error": {"code", "message", "status": "NOT_FOUND"}}``). Every request
is recorded (method, path, headers), so tests can check what the client sent. ``corrupt`` makes
the next answers carry a CRC32C that does not match their data.
"""

from __future__ import annotations

import base64
import re
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import google_crc32c

from sandbox.httpserve import LoopbackServer, QuietHandler

_ACCESS = re.compile(r"^/v1/projects/([^/]+)/secrets/([^/]+)/versions/([^/:]+):access$")


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class _Secret:
    versions: list[bytes] = field(default_factory=list)


class SecretManagerServer(LoopbackServer):
    """Secrets by ``(project, secret)``; versions numbered from 1."""

    thread_name = "secret-manager"

    def __init__(self, port: int = 0, project_number: str = "123456789012") -> None:
        self.secrets: dict[tuple[str, str], _Secret] = {}
        self.requests: list[Recorded] = []
        self.project_number = project_number
        self.corrupt = False
        self._lock = threading.Lock()
        super().__init__(type("SecretManagerHandler", (_Handler,), {"api": self}), port)

    def add_version(self, project: str, secret: str, data: str | bytes) -> int:
        """Add a version; returns its number."""
        raw = data.encode() if isinstance(data, str) else data
        with self._lock:
            entry = self.secrets.setdefault((project, secret), _Secret())
            entry.versions.append(raw)
            return len(entry.versions)


class _Handler(QuietHandler):
    api: SecretManagerServer

    def _error(self, code: int, status: str, message: str) -> None:
        self._send(code, {"error": {"code": code, "message": message, "status": status}})

    def do_GET(self) -> None:
        api = self.api
        path = urlparse(self.path).path
        with api._lock:
            api.requests.append(Recorded("GET", path, dict(self.headers.items())))
        m = _ACCESS.match(path)
        if m is None:
            return self._error(404, "NOT_FOUND", f"unknown resource {path}")
        project, secret, version = m.groups()
        with api._lock:
            entry = api.secrets.get((project, secret))
            versions = list(entry.versions) if entry else []
        if not versions:
            return self._error(
                404,
                "NOT_FOUND",
                f"Secret [projects/{api.project_number}/secrets/{secret}] not found",
            )
        number = len(versions) if version == "latest" else int(version) if version.isdigit() else 0
        if not 1 <= number <= len(versions):
            return self._error(
                404,
                "NOT_FOUND",
                f"Secret Version [projects/{api.project_number}/secrets/{secret}/versions/"
                f"{version}] not found.",
            )
        data = versions[number - 1]
        crc = google_crc32c.value(data) ^ (1 if api.corrupt else 0)
        body: dict[str, Any] = {
            "name": f"projects/{api.project_number}/secrets/{secret}/versions/{number}",
            "payload": {"data": base64.b64encode(data).decode(), "dataCrc32c": str(crc)},
        }
        self._send(200, body)
