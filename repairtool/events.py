"""Progress events of long operations. Producers call a sink; a console view and a journal writer
are just sinks (`fan_out` sends one event to several)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    kind: str  # e.g. "plan", "change.start", "change.done", "change.skipped", "done"
    message: str
    data: dict[str, Any] = field(default_factory=dict)
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


Sink = Callable[[Event], None]


def discard(_: Event) -> None:
    """A sink that ignores events."""


def fan_out(*sinks: Sink) -> Sink:
    def send(event: Event) -> None:
        for sink in sinks:
            sink(event)

    return send


def scan_progress(done: int, total: int | None) -> Event:
    """`scan.progress`: `done` flights of about `total` (the planner's estimate, so never shown
    below `done`)."""
    data = {"done": done, "total": max(total, done) if total is not None else None}
    return Event("scan.progress", f"{done} flights", {**data, "estimated": True})
