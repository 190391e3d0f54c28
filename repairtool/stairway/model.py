"""Typed values of the engine's database: statuses, flights, log rows, instances, audit records.

Status and direction strings are the engine's own (`FlightStatus.java`, `Direction.java`).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any


class FlightStatus(enum.StrEnum):
    """`bio.terra.stairway.FlightStatus`, stored verbatim in `flight.status`."""

    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    FATAL = "FATAL"
    WAITING = "WAITING"
    READY = "READY"
    QUEUED = "QUEUED"
    READY_TO_RESTART = "READY_TO_RESTART"

    @property
    def is_terminal(self) -> bool:
        return self in (FlightStatus.SUCCESS, FlightStatus.ERROR, FlightStatus.FATAL)


#: statuses `resume()` accepts (only with stairway_id IS NULL)
RESUMABLE = frozenset(
    {FlightStatus.WAITING, FlightStatus.READY, FlightStatus.QUEUED, FlightStatus.READY_TO_RESTART}
)


class Direction(enum.StrEnum):
    """`bio.terra.stairway.Direction`, stored in `flightlog.direction`."""

    START = "START"
    DO = "DO"
    UNDO = "UNDO"
    SWITCH = "SWITCH"


@dataclass(frozen=True)
class Flight:
    """One row of `flight` (the columns every generation since 0.0.27 has)."""

    flight_id: str
    class_name: str
    status: FlightStatus | str
    submit_time: dt.datetime
    completed_time: dt.datetime | None
    owner: str | None  # flight.stairway_id
    serialized_exception: str | None = None
    debug_info: str | None = None
    version: str | None = None  # the row's xmin when read (see FlightState.version)

    @property
    def state(self) -> FlightState:
        """The state to compare-and-set against: what was read, version included."""
        return FlightState(self.status, self.owner, self.version)


@dataclass(frozen=True)
class FlightLogEntry:
    """One row of `flightlog` and, from 0.0.50, its `flightworking` snapshot."""

    log_time: dt.datetime
    step_index: int
    direction: Direction | str | None
    succeeded: bool | None
    rerun: bool | None
    status: str | None
    serialized_exception: str | None
    log_id: str | None = None  # flightlog.id, NULL before 0.0.50
    working_parameters: str | None = None  # legacy whole-map JSON (written up to 0.0.60)
    working: dict[str, str] = field(default_factory=dict)  # flightworking key -> stored text


@dataclass(frozen=True)
class FlightDetail:
    """A flight in full: row, inputs, flight log (oldest first) and persisted map."""

    flight: Flight
    inputs: dict[str, str]
    log: tuple[FlightLogEntry, ...]
    persisted: dict[str, str] | None  # None when the generation has no flightpersisted table
    output_parameters: str | None = None

    @property
    def latest_log(self) -> FlightLogEntry | None:
        return self.log[-1] if self.log else None


@dataclass(frozen=True)
class Instance:
    """One row of `stairwayinstance`: an instance registered and not yet recovered."""

    stairway_name: str
    stairway_id: str


class Outcome(enum.StrEnum):
    """What a recovery mutation did."""

    CHANGED = "changed"
    SKIPPED = "skipped"  # the row moved on since the caller saw it (compare-and-set failed)
    NOT_FOUND = "not_found"


@dataclass(frozen=True)
class FlightState:
    """What a compare-and-set is made against: (status, owner) and, when known, the row version.

    `version` is the flight row's `xmin` (as text) when it was read: Postgres gives every UPDATE
    of a row a new `xmin`, so a flight taken over again by the *same* owner (a restarted
    container keeps its pod name) no longer matches. `None` compares status and owner only."""

    status: FlightStatus | str
    owner: str | None
    version: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"status": str(self.status), "stairway_id": self.owner, "version": self.version}


@dataclass(frozen=True)
class MutationResult:
    """The result of one recovery mutation on one flight (or instance)."""

    action: str
    flight_id: str | None
    outcome: Outcome
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    detail: str = ""
    audit_id: int | None = None
    op_id: str = ""


@dataclass(frozen=True)
class AuditRecord:
    """One row of `stairway_ops.audit`."""

    audit_id: int
    op_id: str
    at: dt.datetime
    actor: str
    reason: str
    action: str
    flight_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    tool_version: str
    evidence: dict[str, Any] | None = None  # why a live-owned flight could be touched
