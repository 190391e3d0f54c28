"""The Google Cloud Pub/Sub emulator: find it, start it on a loopback port, create the engine's
work-queue topic and subscription (REST, no gRPC client needed), stop it for sure.

The launcher script `exec`s java, so started with `start_new_session=True` java is the leader of
its own process group; `stop()` signals that group (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.procs import free_port, group_alive, http_ok, kill_group

LAUNCHER = Path("platform/pubsub-emulator/bin/cloud-pubsub-emulator")
KNOWN_SDK_ROOTS = (
    "/usr/lib/google-cloud-sdk",
    "/usr/share/google-cloud-sdk",
    "/opt/google-cloud-sdk",
    "/snap/google-cloud-cli/current",
    "~/google-cloud-sdk",
)
ENV_LAUNCHER = "STAIRWAY_OPS_PUBSUB_EMULATOR"
#: the engine's subscription message retention (3 days)
RETENTION = "259200s"


class EmulatorError(RuntimeError):
    pass


def find_launcher() -> Path | None:
    """`$STAIRWAY_OPS_PUBSUB_EMULATOR`, `$CLOUDSDK_ROOT_DIR`, the usual SDK roots, then
    `gcloud info --format=value(installation.sdk_root)`. None when not installed or no java."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return None
    explicit = os.environ.get(ENV_LAUNCHER)
    if explicit:
        p = Path(explicit).expanduser()
        return p if p.exists() else None
    roots = [os.environ.get("CLOUDSDK_ROOT_DIR", ""), *KNOWN_SDK_ROOTS]
    for root in roots:
        if root and (Path(root).expanduser() / LAUNCHER).exists():
            return Path(root).expanduser() / LAUNCHER
    gcloud = shutil.which("gcloud")
    if gcloud:
        try:
            out = subprocess.run(
                [gcloud, "info", "--format=value(installation.sdk_root)"],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out and (Path(out) / LAUNCHER).exists():
            return Path(out) / LAUNCHER
    return None


@dataclass
class PubSubEmulator:
    """A running emulator (`host` is `127.0.0.1:PORT`, for `PUBSUB_EMULATOR_HOST`)."""

    pid: int
    port: int
    log_path: Path
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @classmethod
    def start(
        cls, log_path: Path, *, launcher: Path | None = None, port: int = 0, timeout: float = 30.0
    ) -> PubSubEmulator:
        launcher = launcher or find_launcher()
        if launcher is None:
            raise EmulatorError(
                "the Pub/Sub emulator is not installed (google-cloud-cli-pubsub-"
                "emulator) or java is missing"
            )
        port = port or free_port()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [str(launcher), "--host=127.0.0.1", f"--port={port}"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        emu = cls(proc.pid, port, log_path, proc)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise EmulatorError(
                    f"the Pub/Sub emulator exited ({proc.returncode}); see {log_path}"
                )
            if http_ok(emu.url + "/", timeout=0.5):
                return emu
            time.sleep(0.05)
        emu.stop()
        raise EmulatorError(
            f"the Pub/Sub emulator did not answer within {timeout:.0f}s; see {log_path}"
        )

    def alive(self) -> bool:
        return group_alive(self.pid)

    def stop(self) -> None:
        kill_group(self.pid, term_timeout=3.0)
        if self._proc is not None:
            self._proc.wait(timeout=5)

    # -- REST admin ------------------------------------------------------------------------
    def _put(self, path: str, body: dict[str, object] | None = None) -> dict[str, object]:
        data = json.dumps(body or {}).encode()
        req = urllib.request.Request(
            self.url + path, data=data, method="PUT", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                out: dict[str, object] = json.loads(resp.read() or b"{}")
                return out
        except urllib.error.HTTPError as error:
            if error.code == 409:  # already exists
                return {}
            raise EmulatorError(f"PUT {path}: {error.code} {error.read()[:200]!r}") from None

    def create_work_queue(
        self, project: str, topic: str, subscription: str, ack_deadline_seconds: int
    ) -> None:
        """The engine's QueueCreate: topic + pull subscription (ack deadline, 3-day retention)."""
        self._put(f"/v1/projects/{project}/topics/{topic}")
        create_subscription(self.host, project, topic, subscription, ack_deadline_seconds)

    def subscription(self, project: str, subscription: str) -> dict[str, object]:
        with urllib.request.urlopen(
            f"{self.url}/v1/projects/{project}/subscriptions/{subscription}", timeout=10
        ) as resp:
            out: dict[str, object] = json.loads(resp.read())
            return out


# -- the subscription alone (the sandbox's `work_queue_detached` switch) ------------------------


def _admin(host: str, method: str, path: str, body: dict[str, object] | None = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"http://{host}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as error:
        if error.code in (404, 409):  # already gone / already there
            return int(error.code)
        raise EmulatorError(f"{method} {path}: {error.code} {error.read()[:200]!r}") from None


def create_subscription(
    host: str, project: str, topic: str, subscription: str, ack_deadline_seconds: int
) -> bool:
    """The engine's pull subscription on ``topic`` (ack deadline, 3-day retention); False when
    it existed already. It receives only messages published from now on."""
    status = _admin(
        host,
        "PUT",
        f"/v1/projects/{project}/subscriptions/{subscription}",
        {
            "topic": f"projects/{project}/topics/{topic}",
            "ackDeadlineSeconds": ack_deadline_seconds,
            "messageRetentionDuration": RETENTION,
        },
    )
    return status != 409


def delete_subscription(host: str, project: str, subscription: str) -> bool:
    """Delete the subscription: its undelivered messages, and every message published until it
    is created again, are lost (Pub/Sub delivers only to subscriptions that exist)."""
    return _admin(host, "DELETE", f"/v1/projects/{project}/subscriptions/{subscription}") != 404
