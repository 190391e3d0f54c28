"""Progress events of long operations, and the handlers that show or record them.

Library code never prints: it calls ``reporter.emit(kind, message, **data)`` and the task decides
which handlers listen — :class:`ConsoleView` for people, :class:`JournalWriter` for the run's
``events.jsonl``, :class:`Collector` for tests. (chaoslib's ``RunEventHandler`` idea, smaller.)

Kinds are dotted nouns + verbs, e.g. ``tool.missing``, ``playbook.task``, ``pod.deleted``,
``rollout.progress``, ``flight.state``, ``proxy.ready``. ``level`` is ``info``, ``warn`` or
``error``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO

from repairtool.clock import rfc3339, utcnow

Level = Literal["info", "warn", "error"]


@dataclass(frozen=True)
class Event:
    """One progress event."""

    kind: str
    message: str
    level: Level = "info"
    at: dt.datetime = field(default_factory=utcnow)
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": rfc3339(self.at),
            "kind": self.kind,
            "level": self.level,
            "message": self.message,
            "data": self.data,
        }


class EventHandler(Protocol):
    def __call__(self, event: Event) -> None: ...


class Reporter:
    """Fans events out to handlers. Thread-safe; a failing handler never breaks the operation."""

    def __init__(self, handlers: Iterable[EventHandler] = ()) -> None:
        self._handlers: list[EventHandler] = list(handlers)
        self._lock = threading.Lock()

    def add(self, handler: EventHandler) -> None:
        self._handlers.append(handler)

    def emit(self, kind: str, message: str, *, level: Level = "info", **data: Any) -> Event:
        event = Event(kind=kind, message=message, level=level, data=data)
        with self._lock:
            for handler in self._handlers:
                with contextlib.suppress(Exception):  # a view must not break the operation
                    handler(event)
        return event


#: a reporter that drops everything (the default for library calls)
def silent() -> Reporter:
    return Reporter()


class ConsoleView:
    """Human view: ``<RFC 3339 UTC time> message`` lines; warnings and errors marked."""

    def __init__(
        self, stream: TextIO | None = None, *, show: Callable[[Event], bool] | None = None
    ):
        self._stream = stream
        self._show = show

    def __call__(self, event: Event) -> None:
        if self._show is not None and not self._show(event):
            return
        stream = self._stream or sys.stdout
        mark = {"info": "", "warn": "WARNING: ", "error": "ERROR: "}[event.level]
        stamp = rfc3339(event.at, "seconds")
        stream.write(f"{stamp} {mark}{event.message}\n")
        stream.flush()


class JournalWriter:
    """Appends every event as one JSON line to a file (the run's ``events.jsonl``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, event: Event) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(event.to_json(), default=str, sort_keys=True) + "\n")


class Collector:
    """Keeps events in memory (tests, and tasks that summarise at the end)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]
