"""One pod: a Workspace-Manager-like service process with its own Stairway instance.

Run by the supervisor as `python -m sandbox.worker <pod-config.json>`. Start-up follows TCL's
`StairwayComponent.initialize` (2021): build Stairway named after the pod, `initialize` (recorded
instances), start the pod listener, list the live pods, obsolete = recorded − live + own name,
`recoverAndStart(obsolete)`. Until that finishes `/status` answers 503; if it throws, the process
exits 1 ("Error starting Stairway") and the kubelet restarts the container. The process has no
shutdown hook (neither had WSM in 2021): SIGTERM/SIGKILL end it where it stands.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.cloudlog import CloudLogHandler, EntryWriter, PodLogContext, Redactor


@dataclass(frozen=True)
class WorkerConfig:
    pod_name: str
    template_hash: str
    namespace: str
    project_id: str
    cluster_name: str
    location: str
    container_name: str
    deployment_name: str
    stairway_cluster_name: str
    logs_dir: str
    stairway_db_url: str
    wsm_db_url: str
    engine_version: str
    reader_version: str
    kube_url: str
    pod_labels: dict[str, str] = field(default_factory=dict)
    restart_count: int = 0
    queue: dict[str, str] | None = None  # project, topic, subscription, emulator_host
    delay: dict[str, Any] | None = None  # flight_class, step_index, seconds
    log_state_transitions: bool = True
    pod_listener: bool = True
    job_timeout_seconds: float = 1800.0
    job_polling_interval_seconds: float = 1.0
    app_version: str = "sandbox"
    max_parallel_flights: int = 50
    node_name: str = "gke-sandbox-default-pool-7a1c2e3f-x9k2"
    #: where the supervisor writes the run-time switches (``sandbox.cluster.Switches``)
    switches_file: str = ""

    @classmethod
    def load(cls, path: Path) -> WorkerConfig:
        return cls(**json.loads(path.read_text()))


def _setup_logging(cfg: WorkerConfig) -> tuple[EntryWriter, Redactor]:
    ctx = PodLogContext(
        project_id=cfg.project_id,
        cluster_name=cfg.cluster_name,
        location=cfg.location,
        namespace=cfg.namespace,
        pod_name=cfg.pod_name,
        container_name=cfg.container_name,
        pod_labels=cfg.pod_labels,
        node_name=cfg.node_name,
        service_version=cfg.app_version,
    )
    redactor = Redactor()
    for url in (cfg.stairway_db_url, cfg.wsm_db_url):
        from sqlalchemy.engine import make_url

        password = make_url(url).password
        if password:
            redactor.add(str(password))
    writer = EntryWriter(Path(cfg.logs_dir) / f"{cfg.pod_name}.jsonl", ctx, redactor)
    root = logging.getLogger()
    root.handlers[:] = [CloudLogHandler(writer, service=cfg.container_name)]
    root.setLevel(logging.INFO)
    for noisy in ("urllib3", "google", "kubernetes", "grpc", "sqlalchemy", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        logging.getLogger("sandbox.worker").error(
            "Uncaught exception in thread %s: %s",
            args.thread.name if args.thread else "?",
            "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)),
        )

    threading.excepthook = thread_hook
    return writer, redactor


class SwitchReader:
    """One switch of the supervisor's ``switches.json``, re-read when the file changes."""

    def __init__(self, path: str, name: str) -> None:
        self.path = Path(path) if path else None
        self.name = name
        self._stamp: float | None = None
        self._value = False

    def __call__(self) -> bool:
        if self.path is None:
            return False
        try:
            stamp = self.path.stat().st_mtime
            if stamp != self._stamp:
                self._value = bool(json.loads(self.path.read_text()).get(self.name))
                self._stamp = stamp
        except (OSError, ValueError):
            pass  # mid-replace or gone: keep the last value
        return self._value


def _java_list(items: list[str] | set[str]) -> str:
    return "[" + ", ".join(sorted(items) if isinstance(items, set) else items) + "]"


def main(argv: list[str]) -> int:
    cfg = WorkerConfig.load(Path(argv[1]))
    writer, redactor = _setup_logging(cfg)
    threading.current_thread().name = "main"

    from sqlalchemy import create_engine

    from sandbox.engine.dao import FlightDao
    from sandbox.engine.exceptions import JavaException
    from sandbox.engine.hooks import DelayHook, HookWrapper, StairwayHook, StateTransitionLogHook
    from sandbox.engine.queue import WorkQueue
    from sandbox.engine.stairway import FlightFactory, Stairway
    from sandbox.engine.versions import EngineFeatures
    from sandbox.flights.workspace import FLIGHTS, FlightBeanBag, WorkspaceDao
    from sandbox.podlistener import KubeService
    from sandbox.service import (
        JobService,
        ServiceApp,
        ServiceServer,
        ServiceSettings,
        WorkspaceService,
    )

    component = logging.getLogger("bio.terra.common.stairway.StairwayComponent")
    kube_log = logging.getLogger("bio.terra.common.kubernetes.KubeService")
    kube_log.info(
        "Kubernetes configuration: inKube: true; namespace: %s; podName: %s",
        cfg.namespace,
        cfg.pod_name,
    )

    features = EngineFeatures.of(cfg.engine_version, cfg.reader_version)
    connect = {"application_name": cfg.pod_name, "connect_timeout": 5}
    stairway_engine = create_engine(
        cfg.stairway_db_url, pool_size=8, max_overflow=16, pool_pre_ping=True, connect_args=connect
    )
    wsm_engine = create_engine(
        cfg.wsm_db_url, pool_size=4, max_overflow=8, pool_pre_ping=True, connect_args=connect
    )
    hooks: list[StairwayHook] = []
    if cfg.log_state_transitions:
        hooks.append(StateTransitionLogHook())
    if cfg.delay:
        hooks.append(
            DelayHook(
                str(cfg.delay["flight_class"]),
                int(cfg.delay["step_index"]),
                float(cfg.delay["seconds"]),
            )
        )
    work_queue = None
    if cfg.queue:
        os.environ["PUBSUB_EMULATOR_HOST"] = cfg.queue["emulator_host"]
        work_queue = WorkQueue(
            cfg.queue["project"],
            cfg.queue["topic"],
            cfg.queue["subscription"],
            features.logger_name("WorkQueueManager"),
        )
        work_queue.held = SwitchReader(cfg.switches_file, "hold_queue_messages")
    bean_bag = FlightBeanBag(WorkspaceDao(wsm_engine))
    component.info(
        "Creating Stairway: name: [%s]  cluster name: [%s]", cfg.pod_name, cfg.stairway_cluster_name
    )
    stairway = Stairway(
        name=cfg.pod_name,
        cluster_name=cfg.stairway_cluster_name,
        dao=FlightDao(stairway_engine, features),
        features=features,
        factory=FlightFactory(features, FLIGHTS),
        hooks=HookWrapper(hooks, features.logger_name("HookWrapper")),
        app_context=bean_bag,
        work_queue=work_queue,
        max_parallel_flights=cfg.max_parallel_flights,
    )
    settings = ServiceSettings(
        cfg.job_timeout_seconds,
        cfg.job_polling_interval_seconds,
        cfg.app_version,
        cfg.engine_version,
        cfg.reader_version,
    )
    jobs = JobService(stairway, settings)
    app = ServiceApp(jobs, WorkspaceService(jobs, bean_bag.workspace_dao), settings, redactor.add)
    server = ServiceServer(app).start()
    sys.stdout.write(
        json.dumps({"event": "listening", "port": server.port, "pid": os.getpid()}) + "\n"
    )
    sys.stdout.flush()

    component.info("Initializing Stairway...")
    kube = KubeService(cfg.kube_url, cfg.namespace, cfg.pod_name, cfg.deployment_name)
    try:
        recorded = stairway.initialize()
        if cfg.pod_listener:
            kube.start_pod_listener(stairway.recover_stairway)
        existing = kube.get_pod_set()
        obsolete = [r for r in recorded if r not in existing]
        obsolete.append(cfg.pod_name)
        component.info(
            "existingStairways: %s. obsoleteStairways: %s",
            _java_list(existing),
            _java_list(obsolete),
        )
        stairway.recover_and_start(obsolete)
    except Exception as error:
        app.failed = "Error starting Stairway"
        trace = error.trace() if isinstance(error, JavaException) else None
        logging.getLogger("org.springframework.boot.SpringApplication").error(
            "Application run failed",
            extra={
                "java_trace": JavaException(
                    "java.lang.RuntimeException", "Error starting Stairway", cause=error
                ).trace()
            }
            if trace
            else {},
            exc_info=None if trace else error,
        )
        writer.close()
        os._exit(1)
    app.ready.set()
    logging.getLogger("bio.terra.workspace.app.StartupInitializer").info(
        "Started Workspace Manager (pod %s, Stairway %s, reader %s)",
        cfg.pod_name,
        cfg.engine_version,
        cfg.reader_version,
    )
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
