"""The engine's database: schema generations, version detection, reads and the recovery API.

The names below load their module on first use (PEP 562): the read path of detection
(`repairtool.stairway.pgread`, psycopg only) must not pay for SQLAlchemy, the work queue's Google
client or the recovery API when it imports one of this package's light modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from repairtool.stairway.audit import ensure_audit_table
    from repairtool.stairway.auditread import Actor, list_audit
    from repairtool.stairway.db import (
        DbSettings,
        RetryPolicy,
        make_engine,
        resolve_settings,
    )
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
    from repairtool.stairway.queue import (
        WorkQueue,
        ready_message,
    )
    from repairtool.stairway.recovery import (
        InstanceRecovery,
        disown,
        enqueue_ready,
        force_fatal,
        force_ready,
        recover_instance,
        rewrite_input,
    )
    from repairtool.stairway.schema import (
        EngineVersion,
        create_schema,
    )
    from repairtool.stairway.version import (
        Generation,
        detect_generation,
    )

#: public name → the module of this package that defines it
_WHERE = {
    "Actor": "auditread",
    "AuditRecord": "model",
    "DbSettings": "db",
    "Direction": "model",
    "EngineVersion": "schema",
    "Flight": "model",
    "FlightDetail": "model",
    "FlightFilter": "queries",
    "FlightLogEntry": "model",
    "FlightState": "model",
    "FlightStatus": "model",
    "Generation": "version",
    "Instance": "model",
    "InstanceRecovery": "recovery",
    "MutationResult": "model",
    "Order": "queries",
    "Outcome": "model",
    "RetryPolicy": "db",
    "WorkQueue": "queue",
    "count_flights": "queries",
    "create_schema": "schema",
    "detect_generation": "version",
    "disown": "recovery",
    "enqueue_ready": "recovery",
    "ensure_audit_table": "audit",
    "force_fatal": "recovery",
    "force_ready": "recovery",
    "get_flight": "queries",
    "list_audit": "auditread",
    "list_flights": "queries",
    "list_instances": "queries",
    "make_engine": "db",
    "ready_message": "queue",
    "recover_instance": "recovery",
    "resolve_settings": "db",
    "rewrite_input": "recovery",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'repairtool.stairway' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"repairtool.stairway.{where}"), name)
    globals()[name] = value
    return value


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
