"""Classify the engine's log lines into typed events (pure: no I/O).

The patterns are the exact strings Stairway 0.0.4x–1.1.x, terra-common-lib's ``KubePodListener``
and ``StairwayComponent``, and WSM's ``DelayHook``/``MdcHook`` log (``stairway-engine.md`` §3,
``workspace-manager-ops.md`` §2). One table, first match wins; see ``RULES``.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from repairtool.clock import rfc3339


class Kind(enum.StrEnum):
    """What an engine log line means."""

    POD_WATCH = "pod_watch"  # "MODIFIED : <pod>" (every pod watch event)
    API_POD_ADDED = "api_pod_added"  # "Added api pod: <pod>"
    API_POD_DELETED = "api_pod_deleted"  # "Deleted api pod: <pod>"
    INSTANCE_CLEANUP = (
        "instance_cleanup"  # "Attempting clean up of deleted stairway instance: <pod>"
    )
    RECOVER_FAILED = "recover_failed"  # "Stairway recoverStairway failed to recover pod: <pod>"
    POD_LISTENER_ERROR = "pod_listener_error"  # "KubePodListener caught exception: ..."
    OBSOLETE = "obsolete"  # "existingStairways: [..]. obsoleteStairways: [..]"
    RECOVERING = "recovering"  # "Recovering stairway <name>"
    DISOWNED = "disowned"  # "Disowned N flights for stairway: <id>"
    READY_FOUND = "ready_found"  # "Found ready flights: N"
    QUEUED = "queued"  # "Queued message. Id: ..; Msg: {..flightId..}"
    RECEIVED = "received"  # "Received message: {..flightId..}"
    TAKING_OWNERSHIP = "taking_ownership"  # "Stairway X taking ownership of flight F"
    LAUNCHING = "launching"  # "Launching flight class: C stairway: X flightid: F"
    RESUMED = "resumed"  # "Stairway X resumed flight: F"
    NOT_RESUMED = (
        "not_resumed"  # "... did not resume flight: F" / "did not find flight to resume: F"
    )
    DISPATCH_ERROR = "dispatch_error"  # "Unexpected exception dispatching messages - continuing"
    STAIRWAY_ERROR = "stairway_error"  # "Unexpected stairway error[, leaving F on the queue]"
    DELAYING = "delaying"  # "Delaying flight [ID] F [class C] step N by D"
    RESUMING = "resuming"  # "Resuming flight [ID] F"
    STATE_CHANGE = "state_change"  # "Flight ID F changed status to S."
    SUBMIT_TO_QUEUE = "submit_to_queue"  # "... Submitting flight to queue: F"
    INTERRUPTED = "interrupted"  # "Flight interrupted: F"
    DISMAL_FAILURE = "dismal_failure"  # "DISMAL FAILURE: ..." / "experienced DISMAL FAILURE"
    SQL_RETRY = "sql_retry"  # "Caught SQL connection or resource error (08006) - retrying"
    DB_FAILED = "db_failed"  # "Database operation failed: flight.getFlightState"


#: kinds that say something about a pod or instance rather than about one flight
POD_LEVEL = frozenset(
    {
        Kind.POD_WATCH,
        Kind.API_POD_ADDED,
        Kind.API_POD_DELETED,
        Kind.INSTANCE_CLEANUP,
        Kind.RECOVER_FAILED,
        Kind.POD_LISTENER_ERROR,
        Kind.OBSOLETE,
        Kind.RECOVERING,
        Kind.DISOWNED,
        Kind.READY_FOUND,
        Kind.SQL_RETRY,
        Kind.DB_FAILED,
    }
)


@dataclass(frozen=True)
class EngineEvent:
    """One classified log line. ``stairway`` is the instance (= pod name in Terra services)."""

    kind: Kind
    flight_id: str | None = None
    stairway: str | None = None
    count: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class _Rule:
    kind: Kind
    pattern: re.Pattern[str]
    build: Callable[[re.Match[str], str], EngineEvent]


_UUIDISH = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_FLIGHT_IN_JSON = re.compile(r'"flightId"\s*:\s*"([^"]+)"')
_CAUSE = re.compile(r"^(?:Caused by: )?([\w.$]+(?:Exception|Error)): ?(.*)$", re.M)


def _flight_from_json(text: str) -> str | None:
    try:
        obj = json.loads(text)
        if isinstance(obj, dict) and isinstance(obj.get("flightId"), str):
            return str(obj["flightId"])
    except ValueError:
        pass
    m = _FLIGHT_IN_JSON.search(text)
    return m.group(1) if m else None


def root_cause(message: str) -> str:
    """The innermost ``Caused by:`` (or the first exception line) of a logged stack trace."""
    causes = _CAUSE.findall(message)
    if not causes:
        return ""
    name, text = causes[-1]
    return f"{name}: {text}".strip().rstrip(":")


def _g(m: re.Match[str], name: str) -> str | None:
    try:
        return m.group(name)
    except IndexError:
        return None


def _simple(kind: Kind) -> Callable[[re.Match[str], str], EngineEvent]:
    def build(m: re.Match[str], line: str) -> EngineEvent:
        count = _g(m, "count")
        return EngineEvent(
            kind=kind,
            flight_id=_g(m, "flight"),
            stairway=_g(m, "stairway"),
            count=int(count) if count is not None else None,
            detail=_g(m, "detail") or "",
        )

    return build


def _message(kind: Kind) -> Callable[[re.Match[str], str], EngineEvent]:
    def build(m: re.Match[str], line: str) -> EngineEvent:
        detail = m.group("msg")
        return EngineEvent(
            kind=kind,
            flight_id=_flight_from_json(detail),
            detail=_g(m, "id") or "",
        )

    return build


def _delaying(m: re.Match[str], line: str) -> EngineEvent:
    subject = m.group("subject")
    cls = _g(m, "cls")
    flight = subject if (m.group("id_word") or _UUIDISH.match(subject)) else None
    if flight is None and cls is None:
        cls = subject  # the merged DelayHook logged the flight class name
    return EngineEvent(
        kind=Kind.DELAYING,
        flight_id=flight,
        detail=f"step {m.group('step')} by {m.group('delay')}" + (f" ({cls})" if cls else ""),
    )


def _dispatch(m: re.Match[str], line: str) -> EngineEvent:
    return EngineEvent(kind=Kind.DISPATCH_ERROR, detail=root_cause(line))


def _watch(m: re.Match[str], line: str) -> EngineEvent:
    return EngineEvent(kind=Kind.POD_WATCH, stairway=m.group("stairway"), detail=m.group("op"))


def _obsolete(m: re.Match[str], line: str) -> EngineEvent:
    return EngineEvent(kind=Kind.OBSOLETE, detail=m.group("obsolete").strip())


def _r(
    kind: Kind, pattern: str, build: Callable[[re.Match[str], str], EngineEvent] | None = None
) -> _Rule:
    return _Rule(kind, re.compile(pattern, re.S), build or _simple(kind))


_ID = r"(?P<flight>[\w-]+)"
_NAME = r"(?P<stairway>[\w.-]+)"

#: the classification table: (kind, regex on the message, builder). First match wins.
RULES: tuple[_Rule, ...] = (
    _r(
        Kind.POD_WATCH,
        r"^(?P<op>ADDED|MODIFIED|DELETED|ERROR|BOOKMARK) : " + _NAME + r"\s*$",
        _watch,
    ),
    _r(Kind.API_POD_ADDED, r"^Added api pod: " + _NAME),
    _r(Kind.API_POD_DELETED, r"^Deleted api pod: " + _NAME),
    _r(Kind.INSTANCE_CLEANUP, r"^Attempting clean up of deleted stairway instance: " + _NAME),
    _r(
        Kind.RECOVER_FAILED,
        r"^Stairway recover(?:y)?Stairway failed to recover(?:y)? pod: " + _NAME,
    ),
    _r(Kind.POD_LISTENER_ERROR, r"^KubePodListener caught exception: (?P<detail>.*)"),
    _r(
        Kind.OBSOLETE,
        r"existingStairways: (?P<existing>.*?)\.? obsoleteStairways: (?P<obsolete>.*)$",
        _obsolete,
    ),
    _r(Kind.RECOVERING, r"^Recovering stairway " + _NAME),
    _r(Kind.DISOWNED, r"^Disowned (?P<count>\d+) flights for stairway: " + _NAME),
    _r(Kind.READY_FOUND, r"^Found ready flights: (?P<count>\d+)"),
    _r(
        Kind.QUEUED,
        r"^Queued message\. Id: (?P<id>[^;]*); Msg: (?P<msg>.*)$",
        _message(Kind.QUEUED),
    ),
    _r(Kind.RECEIVED, r"^Received message: (?P<msg>.*)$", _message(Kind.RECEIVED)),
    _r(Kind.TAKING_OWNERSHIP, r"^Stairway " + _NAME + r" taking ownership of flight " + _ID),
    _r(
        Kind.LAUNCHING,
        r"^Launching flight (?:class: (?P<detail>\S+) stairway: "
        + _NAME
        + r" flightid: "
        + _ID
        + ")?",
    ),
    _r(Kind.RESUMED, r"^Stairway " + _NAME + r" resumed flight: " + _ID),
    _r(
        Kind.NOT_RESUMED,
        r"^Stairway " + _NAME + r" did not (?:resume flight|find flight to resume): " + _ID,
    ),
    _r(Kind.DISPATCH_ERROR, r"^Unexpected exception dispatching messages", _dispatch),
    _r(Kind.STAIRWAY_ERROR, r"^Unexpected stairway error(?:, leaving " + _ID + r" on the queue)?"),
    _r(
        Kind.DELAYING,
        r"^Delaying flight (?P<id_word>ID )?(?P<subject>[\w.$-]+)(?: class (?P<cls>[\w.$]+))?"
        r" step (?P<step>\d+) by (?P<delay>\S+)",
        _delaying,
    ),
    _r(Kind.RESUMING, r"^Resuming flight (?:ID )?" + _ID),
    _r(Kind.STATE_CHANGE, r"^Flight ID " + _ID + r" changed status to (?P<detail>\w+)"),
    _r(Kind.SUBMIT_TO_QUEUE, r"Submitting flight to queue: " + _ID),
    _r(Kind.INTERRUPTED, r"^Flight interrupted: " + _ID),
    _r(Kind.DISMAL_FAILURE, r"DISMAL FAILURE(?P<detail>.*)"),
    _r(Kind.SQL_RETRY, r"^Caught SQL (?P<detail>[\w ]+? error \(\w+\)) - retrying"),
    _r(Kind.DB_FAILED, r"Database operation failed: (?P<detail>[\w.]+)"),
)


def classify(message: str) -> EngineEvent | None:
    """The engine event a log message is, or None for anything else."""
    text = message.strip()
    for rule in RULES:
        m = rule.pattern.search(text)
        if m:
            return rule.build(m, text)
    return None


# --------------------------------------------------------------------------------------------
# timelines


@dataclass(frozen=True)
class LogLine:
    """The parts of a log entry the classifier and timelines need."""

    timestamp: dt.datetime
    pod: str
    message: str
    severity: str = "INFO"


@dataclass(frozen=True)
class TimelineItem:
    """One engine event on a timeline."""

    at: dt.datetime
    pod: str
    event: EngineEvent
    message: str = field(repr=False, default="")

    def summary(self) -> str:
        e = self.event
        k = e.kind
        if k is Kind.DISOWNED:
            return f"disowned {e.count} flight(s) of {e.stairway}"
        if k is Kind.TAKING_OWNERSHIP:
            return f"{e.stairway} took ownership of {e.flight_id}"
        if k is Kind.POD_WATCH:
            return f"pod watch {e.detail} {e.stairway}"
        if k is Kind.READY_FOUND:
            return f"found {e.count} ready flight(s)"
        if k is Kind.DISPATCH_ERROR:
            return "dispatch failed" + (f": {e.detail}" if e.detail else "")
        if k is Kind.DELAYING:
            return f"delaying {e.detail}"
        first = self.message.strip().splitlines()[0] if self.message.strip() else k.value
        return first[:200]

    def to_json(self) -> dict[str, object]:
        e = self.event
        return {
            "at": rfc3339(self.at),
            "pod": self.pod,
            "kind": e.kind.value,
            "flight_id": e.flight_id,
            "stairway": e.stairway,
            "count": e.count,
            "detail": e.detail,
            "summary": self.summary(),
        }


def classify_all(lines: Iterable[LogLine]) -> list[TimelineItem]:
    """Every engine event in ``lines``, oldest first."""
    items = []
    for line in lines:
        ev = classify(line.message)
        if ev is not None:
            items.append(
                TimelineItem(at=line.timestamp, pod=line.pod, event=ev, message=line.message)
            )
    items.sort(key=lambda i: i.at)
    return items


def flight_timeline(
    lines: Iterable[LogLine],
    flight_id: str,
    *,
    lead: dt.timedelta = dt.timedelta(seconds=30),
    trail: dt.timedelta = dt.timedelta(seconds=30),
) -> list[TimelineItem]:
    """The engine's events for one flight, oldest first.

    Lines that name the flight are always kept. Lines that name no flight (``Disowned …``,
    ``Found ready flights``, pod watch ``DELETED``, ``Added api pod``, clean-up, dispatch errors,
    SQL retries) are kept when they come from, or are about, a pod that handled the flight (see
    ``_concerns``: pod-watch ADDED/MODIFIED and ``Found ready flights: 0`` are noise), and fall
    inside the flight's window: from ``lead`` before the first line naming it (recovery logs
    ``Disowned`` and ``Found ready flights`` just before it queues the flight) to ``trail`` after
    the last
    one (``Unexpected exception dispatching messages`` follows ``taking ownership``). That is
    how ``Disowned 1 flights for stairway: <owner>`` joins the timeline of the flight.
    """
    items = classify_all(lines)
    own = [i for i in items if i.event.flight_id == flight_id]
    if not own:
        return []
    first, start, end = own[0].at, own[0].at - lead, own[-1].at + trail
    related = {i.pod for i in own} | {i.event.stairway for i in own if i.event.stairway}
    return [
        i
        for i in items
        if i.event.flight_id == flight_id
        or (
            i.event.flight_id is None
            and start <= i.at <= end
            and (i.at >= first or i.event.kind in _RECOVERY)
            and _concerns(i, related)
        )
    ]


#: what a pod logs while recovering a dead one, just before it queues the flight
_RECOVERY = frozenset(
    {
        Kind.POD_WATCH,
        Kind.INSTANCE_CLEANUP,
        Kind.RECOVERING,
        Kind.DISOWNED,
        Kind.READY_FOUND,
        Kind.API_POD_DELETED,
    }
)


#: lines about a pod (``stairway``): kept when that pod handled the flight
_ABOUT_POD = frozenset(
    {
        Kind.DISOWNED,
        Kind.INSTANCE_CLEANUP,
        Kind.API_POD_ADDED,
        Kind.API_POD_DELETED,
        Kind.RECOVERING,
        Kind.RECOVER_FAILED,
    }
)
#: lines that name no flight or pod: kept when logged by a pod that handled the flight
_FROM_POD = frozenset(
    {
        Kind.READY_FOUND,
        Kind.DISPATCH_ERROR,
        Kind.STAIRWAY_ERROR,
        Kind.SQL_RETRY,
        Kind.DB_FAILED,
        Kind.POD_LISTENER_ERROR,
        Kind.DELAYING,
        Kind.RESUMING,
        Kind.LAUNCHING,
        Kind.DISMAL_FAILURE,
    }
)


def _concerns(item: TimelineItem, related: set[str]) -> bool:
    e = item.event
    if e.kind is Kind.POD_WATCH:
        return e.detail == "DELETED" and e.stairway in related  # ADDED/MODIFIED are noise
    if e.kind is Kind.DISOWNED:  # the recovering pod queues the flight next
        return bool(e.count) and (e.stairway in related or item.pod in related)
    if e.kind in _ABOUT_POD:
        return e.stairway in related
    if e.kind is Kind.READY_FOUND and not e.count:
        return False
    return e.kind in _FROM_POD and item.pod in related
