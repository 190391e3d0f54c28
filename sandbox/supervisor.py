"""The deployment supervisor: one process that is the cluster for the sandbox namespace.

Run by `sandbox.up()` as `python -m sandbox.supervisor <state-dir>` in its own process group. It
runs the Deployment/ReplicaSet controller (`sandbox.cluster`) over worker processes
(`ProcessRuntime`: one `python -m sandbox.worker` per pod, readiness-probed on `/status`), and
serves on loopback ports: the Kubernetes API (`sandbox.kubeapi`), Cloud Logging `entries:list`
(`sandbox.cloudlog`), a front port that forwards service requests to a Ready pod (the ingress),
and a small admin API (`/sandbox/v1/state`, `/sandbox/v1/switches`, `/sandbox/v1/shutdown`).
SIGTERM stops everything it started.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.cloudlog import EntriesServer
from sandbox.cluster import (
    Cluster,
    ClusterSpec,
    ContainerState,
    ObjectStore,
    PodLaunch,
    Switches,
)
from sandbox.config import SandboxConfig
from sandbox.httpserve import LoopbackServer, QuietHandler
from sandbox.kubeapi import KubeApiServer, write_kubeconfig
from sandbox.pubsub_emulator import create_subscription, delete_subscription

log = logging.getLogger("sandbox.supervisor")

PROBE_PERIOD_UNREADY = 0.2
PROBE_PERIOD_READY = 2.0
PROBE_FAILURE_THRESHOLD = 3

# deployment env vars the workers read (a patch of these rolls out new behaviour)
ENV_ENGINE = "STAIRWAY_ENGINE_VERSION"
ENV_READER = "STAIRWAY_READER_VERSION"
ENV_DELAY = "WSM_DELAY_HOOK"
ENV_LISTENER = "TERRA_COMMON_KUBERNETES_POD_LISTENER"


def template_env(config: SandboxConfig) -> dict[str, str]:
    d = config.delay
    return {
        ENV_ENGINE: config.engine_version,
        ENV_READER: config.effective_reader_version,
        ENV_DELAY: f"{d.flight_class},{d.step_index},{d.seconds:g}" if d else "none",
        ENV_LISTENER: "true" if config.pod_listener else "false",
    }


def parse_delay(value: str | None) -> dict[str, Any] | None:
    if not value or value.strip().lower() in ("none", "off", "false", ""):
        return None
    cls, step, seconds = (p.strip() for p in value.split(","))
    return {"flight_class": cls, "step_index": int(step), "seconds": float(seconds)}


@dataclass
class _Proc:
    popen: subprocess.Popen[bytes]
    port: int | None = None
    ready: bool = False
    failures: int = 0
    next_probe: float = 0.0
    reader: threading.Thread | None = field(default=None, repr=False)


class ProcessRuntime:
    """Containers as worker processes: start, readiness-probe `/status`, SIGKILL."""

    def __init__(
        self,
        state_dir: Path,
        make_config: Callable[[PodLaunch], dict[str, Any]],
        env: dict[str, str],
    ) -> None:
        self.pods_dir = state_dir / "pods"
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        self.make_config = make_config
        self.env = env
        self._procs: dict[str, _Proc] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._prober = threading.Thread(target=self._probe_loop, name="kubelet-prober", daemon=True)
        self._prober.start()

    def start(self, launch: PodLaunch) -> None:
        cfg = self.make_config(launch)
        path = self.pods_dir / f"{launch.name}.json"
        path.write_text(json.dumps(cfg, indent=2))
        path.chmod(0o600)
        stderr = (self.pods_dir / f"{launch.name}.stderr").open("ab")
        try:
            popen = subprocess.Popen(
                [sys.executable, "-m", "sandbox.worker", str(path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=self.env,
                cwd=str(self.pods_dir),
            )
        finally:
            stderr.close()
        proc = _Proc(popen)
        proc.reader = threading.Thread(
            target=self._read_stdout,
            args=(launch.name, proc),
            name=f"stdout-{launch.name}",
            daemon=True,
        )
        with self._lock:
            old = self._procs.get(launch.name)
            self._procs[launch.name] = proc
        if old is not None and old.popen.poll() is None:
            old.popen.kill()
            old.popen.wait()
        proc.reader.start()

    def _read_stdout(self, name: str, proc: _Proc) -> None:
        assert proc.popen.stdout is not None
        for raw in proc.popen.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            if msg.get("event") == "listening":
                proc.port = int(msg["port"])

    def state(self, name: str) -> ContainerState:
        with self._lock:
            proc = self._procs.get(name)
        if proc is None:
            return ContainerState()
        rc = proc.popen.poll()
        running = rc is None
        return ContainerState(
            running=running,
            ready=running and proc.ready,
            exit_code=rc,
            pid=proc.popen.pid,
            port=proc.port,
        )

    def kill(self, name: str) -> int | None:
        with self._lock:
            proc = self._procs.pop(name, None)
        if proc is None:
            return None
        if proc.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.popen.pid, signal.SIGKILL)
        rc = proc.popen.wait()
        if proc.popen.stdout is not None:
            proc.popen.stdout.close()
        return 137 if rc == -signal.SIGKILL else rc

    def port(self, name: str) -> int | None:
        with self._lock:
            proc = self._procs.get(name)
        return proc.port if proc else None

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            names = list(self._procs)
        for name in names:
            self.kill(name)

    def _probe_loop(self) -> None:
        while not self._stop.wait(0.05):
            now = time.monotonic()
            with self._lock:
                procs = list(self._procs.items())
            for _name, proc in procs:
                if proc.port is None or now < proc.next_probe or proc.popen.poll() is not None:
                    continue
                ok = _probe(proc.port)
                if ok:
                    proc.failures = 0
                    proc.ready = True
                else:
                    proc.failures += 1
                    if not proc.ready or proc.failures >= PROBE_FAILURE_THRESHOLD:
                        proc.ready = False
                proc.next_probe = now + (PROBE_PERIOD_READY if proc.ready else PROBE_PERIOD_UNREADY)


def _probe(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
    try:
        conn.request("GET", "/status", headers={"User-Agent": "kube-probe/1.32"})
        resp = conn.getresponse()
        resp.read()
        return 200 <= resp.status < 400
    except OSError:
        return False
    finally:
        conn.close()


class FrontProxy(LoopbackServer):
    """The ingress: forwards each request to a Ready pod (round robin); 502 when the backend
    fails, 504 after the backend timeout (GKE BackendConfig `timeoutSec`)."""

    thread_name = "front"

    def __init__(self, cluster: Cluster, runtime: ProcessRuntime, timeout: float) -> None:
        self.cluster = cluster
        self.runtime = runtime
        self.timeout = timeout
        self._rr = itertools.count()
        outer = self

        class Handler(QuietHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                ready = [
                    p
                    for p in outer.cluster.pods_summary()
                    if p["ready"] and p["port"] and not p["terminating"]
                ]
                if not ready:
                    return self._reply(
                        503, {"message": "no ready backend", "statusCode": 503}, None
                    )
                pod = ready[next(outer._rr) % len(ready)]
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "connection", "content-length")
                }
                conn = http.client.HTTPConnection("127.0.0.1", pod["port"], timeout=outer.timeout)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self._reply(
                        resp.status,
                        data,
                        pod["name"],
                        resp.getheader("Content-Type", "application/json"),
                    )
                except TimeoutError:
                    self._reply(
                        504, {"message": "upstream request timeout", "statusCode": 504}, pod["name"]
                    )
                except OSError as error:
                    self._reply(
                        502,
                        {
                            "message": "upstream connect error or disconnect/reset "
                            f"before headers: {type(error).__name__}",
                            "statusCode": 502,
                        },
                        pod["name"],
                    )
                finally:
                    conn.close()

            def _reply(
                self, status: int, payload: Any, pod: str | None, ctype: str = "application/json"
            ) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                if pod:
                    self.send_header("X-Sandbox-Pod", pod)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _forward

        super().__init__(Handler)


class AdminServer(LoopbackServer):
    thread_name = "admin"

    def __init__(self, supervisor: Supervisor) -> None:
        sup = supervisor

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                if self.path == "/sandbox/v1/state":
                    return self._send(200, sup.state())
                self._send(404, {"message": "not found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                if self.path == "/sandbox/v1/switches":
                    try:
                        switches = sup.set_switches(body)
                    except ValueError as error:
                        return self._send(400, {"message": str(error)})
                    return self._send(200, switches.as_dict())
                if self.path == "/sandbox/v1/shutdown":
                    self._send(202, {"stopping": True})
                    sup.stop_event.set()
                    return None
                self._send(404, {"message": "not found"})

        super().__init__(Handler)


class Supervisor:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.config = SandboxConfig.from_json(json.loads((state_dir / "config.json").read_text()))
        self.runtime_info: dict[str, Any] = json.loads((state_dir / "runtime.json").read_text())
        self.logs_dir = state_dir / "logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.stop_event = threading.Event()
        cfg = self.config
        env = {k: v for k, v in os.environ.items() if k != "PUBSUB_EMULATOR_HOST"}
        env["PYTHONUNBUFFERED"] = "1"
        if self.runtime_info.get("emulator_host"):
            env["PUBSUB_EMULATOR_HOST"] = str(self.runtime_info["emulator_host"])
        self.kube_url = ""
        self.runtime = ProcessRuntime(state_dir, self._worker_config, env)
        self.cluster = Cluster(
            ClusterSpec(
                cfg.namespace,
                cfg.deployment_name,
                cfg.container_name,
                cfg.replicas,
                env=template_env(cfg),
                crash_backoff_seconds=cfg.crash_backoff_seconds,
                image=f"gcr.io/terra-kernel-k8s/terra-workspace-manager:{cfg.app_version}",
            ),
            self.runtime,
            ObjectStore(),
            Switches(replace_deleted_pods=cfg.replace_deleted_pods),
        )
        self.kube = KubeApiServer(self.cluster, logs_dir=self.logs_dir)
        self.kube_url = self.kube.url
        self.entries = EntriesServer(self.logs_dir)
        self.front = FrontProxy(self.cluster, self.runtime, cfg.ingress_timeout_seconds)
        self.admin = AdminServer(self)

    # -- switches ------------------------------------------------------------------------------
    @property
    def switches_file(self) -> Path:
        """Where the pods read the switches they act on (``hold_queue_messages``)."""
        return self.state_dir / "switches.json"

    def set_switches(self, body: dict[str, Any]) -> Switches:
        """Apply switches (an unknown name is a ValueError); the work queue's subscription is
        deleted or created again here, and the pods see the rest in ``switches.json``."""
        before = self.cluster.switches.as_dict()
        switches = self.cluster.set_switches(**body)
        detached = switches.work_queue_detached
        if detached != before["work_queue_detached"]:
            self._work_queue(detached)
        self._write_switches(switches)
        log.info("switches: %s", switches.as_dict())
        return switches

    def _work_queue(self, detached: bool) -> None:
        host = self.runtime_info.get("emulator_host")
        if not host:
            log.warning("switch work_queue_detached: the sandbox has no work queue")
            return
        cfg = self.config
        if detached:
            delete_subscription(str(host), cfg.project_id, cfg.subscription_id)
            log.info("work queue: subscription %s deleted", cfg.subscription_id)
        else:
            create_subscription(
                str(host), cfg.project_id, cfg.topic_id, cfg.subscription_id,
                cfg.ack_deadline_seconds,
            )  # fmt: skip
            log.info("work queue: subscription %s created again", cfg.subscription_id)

    def _write_switches(self, switches: Switches) -> None:
        tmp = self.switches_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(switches.as_dict()))
        tmp.replace(self.switches_file)

    def _worker_config(self, launch: PodLaunch) -> dict[str, Any]:
        cfg = self.config
        env = launch.env
        queue = None
        if self.runtime_info.get("emulator_host"):
            queue = {
                "project": cfg.project_id,
                "topic": cfg.topic_id,
                "subscription": cfg.subscription_id,
                "emulator_host": str(self.runtime_info["emulator_host"]),
            }
        engine_version = env.get(ENV_ENGINE, cfg.engine_version)
        return {
            "pod_name": launch.name,
            "template_hash": launch.template_hash,
            "restart_count": launch.restart_count,
            "namespace": cfg.namespace,
            "project_id": cfg.project_id,
            "cluster_name": cfg.cluster_name,
            "location": cfg.location,
            "container_name": cfg.container_name,
            "deployment_name": cfg.deployment_name,
            "stairway_cluster_name": cfg.stairway_cluster_name,
            "logs_dir": str(self.logs_dir),
            "stairway_db_url": self.runtime_info["stairway_db_url"],
            "wsm_db_url": self.runtime_info["wsm_db_url"],
            "engine_version": engine_version,
            "reader_version": env.get(ENV_READER, cfg.effective_reader_version),
            "kube_url": self.kube_url,
            "pod_labels": {**self.cluster.pod_labels(), "pod-template-hash": launch.template_hash},
            "queue": queue,
            "delay": parse_delay(env.get(ENV_DELAY)),
            "log_state_transitions": cfg.log_state_transitions,
            "pod_listener": env.get(ENV_LISTENER, "true") == "true",
            "job_timeout_seconds": cfg.job_timeout_seconds,
            "job_polling_interval_seconds": cfg.job_polling_interval_seconds,
            "app_version": cfg.app_version,
            "max_parallel_flights": cfg.max_parallel_flights,
            "node_name": self.cluster.spec.node_name,
            "switches_file": str(self.switches_file),
        }

    def state(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "pods": self.cluster.pods_summary(),
            "switches": self.cluster.switches.as_dict(),
            "template_hash": self.cluster.current_hash(),
        }

    def run(self) -> int:
        self.kube.start()
        self.entries.start()
        self.front.start()
        self.admin.start()
        write_kubeconfig(self.state_dir / "kubeconfig", self.kube.url, self.config.namespace)
        self._write_switches(self.cluster.switches)
        self.cluster.start()
        info = {
            "pid": os.getpid(),
            "pgid": os.getpgrp(),
            "kube_port": self.kube.port,
            "logging_port": self.entries.port,
            "front_port": self.front.port,
            "admin_port": self.admin.port,
            "started": time.time(),
        }
        tmp = self.state_dir / "supervisor.json.tmp"
        tmp.write_text(json.dumps(info, indent=2))
        tmp.replace(self.state_dir / "supervisor.json")
        log.info("supervisor up: %s", info)
        self.stop_event.wait()
        log.info("supervisor stopping")
        self.cluster.stop()
        self.runtime.stop()
        for server in (self.front, self.admin, self.entries, self.kube):
            try:
                server.stop()
            except Exception:  # best effort on the way out
                log.exception("stopping %s", server)
        log.info("supervisor stopped")
        return 0


def main(argv: list[str]) -> int:
    state_dir = Path(argv[1])
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    sup = Supervisor(state_dir)

    def stop(signum: int, frame: Any) -> None:
        sup.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return sup.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
