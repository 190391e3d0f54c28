"""The engine's database: schema generations, version detection, reads and the recovery API."""

from repairtool.stairway.audit import Actor, ensure_audit_table, list_audit
from repairtool.stairway.db import DbSettings, RetryPolicy, make_engine, resolve_settings
from repairtool.stairway.model import (
    AuditRecord,
    Direction,
    Flight,
    FlightDetail,
    FlightLogEntry,
    FlightState,
    FlightStatus,
    Instance,
    MutationResult,
    Outcome,
)
from repairtool.stairway.queries import (
    FlightFilter,
    Order,
    count_flights,
    get_flight,
    list_flights,
    list_instances,
)
from repairtool.stairway.queue import WorkQueue, ready_message
from repairtool.stairway.recovery import (
    InstanceRecovery,
    disown,
    enqueue_ready,
    force_fatal,
    force_ready,
    recover_instance,
    rewrite_input,
)
from repairtool.stairway.schema import EngineVersion, create_schema
from repairtool.stairway.version import Generation, detect_generation

__all__ = [
    "Actor",
    "AuditRecord",
    "DbSettings",
    "Direction",
    "EngineVersion",
    "Flight",
    "FlightDetail",
    "FlightFilter",
    "FlightLogEntry",
    "FlightState",
    "FlightStatus",
    "Generation",
    "Instance",
    "InstanceRecovery",
    "MutationResult",
    "Order",
    "Outcome",
    "RetryPolicy",
    "WorkQueue",
    "count_flights",
    "create_schema",
    "detect_generation",
    "disown",
    "enqueue_ready",
    "ensure_audit_table",
    "force_fatal",
    "force_ready",
    "get_flight",
    "list_audit",
    "list_flights",
    "list_instances",
    "make_engine",
    "ready_message",
    "recover_instance",
    "resolve_settings",
    "rewrite_input",
]
