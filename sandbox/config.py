"""The sandbox's configuration: one frozen dataclass, serialisable to JSON for child processes."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

#: the flight the 2021 experiment delayed (WSM `JobService.initialize()` on the experiment branch)
WORKSPACE_CREATE_FLIGHT = "bio.terra.workspace.service.workspace.flight.WorkspaceCreateFlight"

ENV_STATE_DIR = "STAIRWAY_OPS_STATE_DIR"

QueueMode = Literal["auto", "emulator", "none"]


def default_state_dir() -> Path:
    """`$STAIRWAY_OPS_STATE_DIR/sandbox`, else `.stairway-ops/sandbox/` in the current directory
    (the project root when run from there, as `inv` and pytest are)."""
    base = Path(os.environ.get(ENV_STATE_DIR) or ".stairway-ops")
    return (base / "sandbox").absolute()


@dataclass(frozen=True)
class DelayHookConfig:
    """WSM's `DelayHook(flightClassName, stepIndex, delay)`: sleep in `startStep` of that step."""

    flight_class: str = WORKSPACE_CREATE_FLIGHT
    step_index: int = 1
    seconds: float = 180.0


@dataclass(frozen=True)
class SandboxConfig:
    """Everything `sandbox.up()` needs. Every field has a default that mirrors the 2021 setup."""

    #: where Postgres, logs, pod configs and `sandbox.json` live (default: `default_state_dir()`)
    state_dir: Path | None = None
    #: Deployment `spec.replicas`
    replicas: int = 2
    #: the Stairway release the workers behave as (writer: which columns/tables are written)
    engine_version: str = "0.0.60"
    #: the FlightMap reader semantics; None = same as `engine_version`. "0.0.60" (or lower)
    #: rebuilds inputs with `readValue(json, Object.class)` (the 2021 enum bug), "0.0.61"+ decodes
    #: with the requested type
    reader_version: str | None = None
    #: "auto": the Pub/Sub emulator when installed, else no queue; "emulator": required; "none"
    queue: QueueMode = "auto"
    #: the work-queue subscription's ack deadline (the engine creates it with 100 s; the
    #: emulator's minimum is 10 s)
    ack_deadline_seconds: int = 100
    #: the experiment's DelayHook, or None for no delay
    delay: DelayHookConfig | None = None
    #: WSM's experiment-branch MdcHook logging "Flight ID {} changed status to {}."
    log_state_transitions: bool = True
    #: run TCL's KubePodListener in each worker
    pod_listener: bool = True
    #: the ReplicaSet replaces a deleted pod (switchable at run time, see SandboxHandle)
    replace_deleted_pods: bool = True
    #: how long `POST /api/workspaces/v1` waits for its flight (WSM `workspace.job`)
    job_timeout_seconds: float = 1800.0
    job_polling_interval_seconds: float = 1.0
    #: the GKE ingress backend timeout (the front port answers 502 after it)
    ingress_timeout_seconds: float = 120.0
    max_parallel_flights: int = 50
    # -- names, as they appear in Cloud Logging and the Kubernetes API --------------------------
    project_id: str = "terra-sandbox"
    cluster_name: str = "terra-sandbox-cluster"
    location: str = "us-central1-a"
    namespace: str = "terra-sandbox"
    deployment_name: str = "workspacemanager-deployment"
    container_name: str = "workspacemanager"
    cluster_name_suffix: str = "workspace-stairway"
    app_version: str = "0.0.0-sandbox"
    # -- timings ------------------------------------------------------------------------------
    startup_timeout_seconds: float = 60.0
    #: CrashLoopBackOff base delay for a container that exited by itself
    crash_backoff_seconds: float = 2.0
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.replicas < 0:
            raise ValueError("replicas must be >= 0")
        if not 10 <= self.ack_deadline_seconds <= 600:
            raise ValueError("ack_deadline_seconds must be within 10..600 (Pub/Sub limits)")
        if self.queue not in ("auto", "emulator", "none"):
            raise ValueError(f"queue must be auto, emulator or none, not {self.queue!r}")
        from repairtool.errors import UsageError
        from repairtool.stairway.schema import EngineVersion

        for version in (self.engine_version, self.reader_version):
            try:
                if version is not None:
                    EngineVersion.parse(version)
            except UsageError as error:
                raise ValueError(str(error)) from None

    # -- derived ------------------------------------------------------------------------------
    @property
    def resolved_state_dir(self) -> Path:
        return (self.state_dir or default_state_dir()).absolute()

    @property
    def stairway_cluster_name(self) -> str:
        """TCL: `<namespace>-<cluster-name-suffix>`."""
        return f"{self.namespace}-{self.cluster_name_suffix}"

    @property
    def topic_id(self) -> str:
        return f"{self.stairway_cluster_name}-workqueue"

    @property
    def subscription_id(self) -> str:
        return f"{self.stairway_cluster_name}-workqueue-sub"

    @property
    def effective_reader_version(self) -> str:
        return self.reader_version or self.engine_version

    def with_(self, **changes: Any) -> SandboxConfig:
        return replace(self, **changes)

    # -- JSON ----------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["state_dir"] = str(self.resolved_state_dir)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SandboxConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown sandbox config keys: {sorted(unknown)}")
        values = dict(data)
        if values.get("state_dir") is not None:
            values["state_dir"] = Path(values["state_dir"])
        if values.get("delay") is not None:
            values["delay"] = DelayHookConfig(**values["delay"])
        return cls(**values)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True)
