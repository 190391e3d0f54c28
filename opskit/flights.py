"""Flights as the ops tasks see them, read through ``repairtool.stairway`` (read-only).

Ownership is ``flight.stairway_id`` and in Terra services the stairway id is the pod name, so
the owner of a RUNNING flight is the pod to kill. The step a RUNNING flight is inside is derived
the way the engine's ``nextStepIndex()`` does from its latest ``flightlog`` row (or, from 1.1,
from the ``STAIRWAY_STEP_PROGRESS`` meter in ``flightpersisted``).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from opskit.errors import NotFound
from repairtool.clock import rfc3339_or_none
from repairtool.errors import UnknownFlight
from repairtool.stairway.db import DbSettings, make_engine
from repairtool.stairway.queries import get_flight

TERMINAL = ("SUCCESS", "ERROR", "FATAL")


@dataclass(frozen=True)
class FlightView:
    """One flight's state at one moment."""

    flight_id: str
    class_name: str
    status: str
    owner: str | None
    submitted: dt.datetime
    completed: dt.datetime | None
    log_rows: int
    current_step: int | None  # the step running now (RUNNING flights), else None
    last_direction: str | None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def state(self) -> tuple[str, str | None, int]:
        """What changes when the engine acts on the flight."""
        return (self.status, self.owner, self.log_rows)

    def describe(self) -> str:
        owner = f" owned by {self.owner}" if self.owner else " unowned"
        step = f", in step {self.current_step}" if self.current_step is not None else ""
        return f"{self.status}{owner}{step} ({self.log_rows} flightlog rows)"

    def to_json(self) -> dict[str, Any]:
        return {
            "flight_id": self.flight_id,
            "class_name": self.class_name,
            "status": self.status,
            "stairway_id": self.owner,
            "log_rows": self.log_rows,
            "current_step": self.current_step,
            "last_direction": self.last_direction,
            "completed": rfc3339_or_none(self.completed),
        }


def _progress_meter(persisted: dict[str, str] | None) -> int | None:
    if not persisted or "StairwayProgressMeters" not in persisted:
        return None
    try:
        raw = json.loads(persisted["StairwayProgressMeters"])
        if (
            isinstance(raw, list) and len(raw) == 2
        ):  # Jackson type wrapper ["java.util.HashMap", {...}]
            raw = raw[1]
        meter = raw["STAIRWAY_STEP_PROGRESS"]
        if isinstance(meter, list) and len(meter) == 2:
            meter = meter[1]
        return int(meter["v1"])
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def current_step(status: str, log: Any, persisted: dict[str, str] | None) -> int | None:
    """The engine's ``nextStepIndex()``: the step a RUNNING flight is in (None otherwise)."""
    if status != "RUNNING":
        return None
    meter = _progress_meter(persisted)
    if meter is not None:
        return meter
    if not log:
        return 0
    last = log[-1]
    direction = str(last.direction) if last.direction is not None else "DO"
    if last.rerun:
        return int(last.step_index)
    if direction == "DO":
        return int(last.step_index) + 1
    if direction == "SWITCH":
        return int(last.step_index)
    if direction == "UNDO":
        return int(last.step_index) - 1
    return 0


class FlightReader:
    """Read-only access to one Stairway database."""

    def __init__(self, url: Any) -> None:
        self._engine = make_engine(DbSettings(url, "env"))

    def close(self) -> None:
        self._engine.dispose()

    def get(self, flight_id: str) -> FlightView:
        """The flight now; :class:`NotFound` when there is no such flight."""
        try:
            detail = get_flight(self._engine, flight_id)
        except UnknownFlight:
            raise NotFound(f"no flight {flight_id} in the Stairway database") from None
        f = detail.flight
        status = str(f.status)
        last = detail.log[-1] if detail.log else None
        return FlightView(
            flight_id=f.flight_id,
            class_name=f.class_name,
            status=status,
            owner=f.owner,
            submitted=f.submit_time,
            completed=f.completed_time,
            log_rows=len(detail.log),
            current_step=current_step(status, detail.log, detail.persisted),
            last_direction=str(last.direction) if last and last.direction is not None else None,
        )
