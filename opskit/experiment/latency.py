"""Resume latency (pure): from the owner's death to the flight ``RUNNING`` on another pod, and
to ``SUCCESS`` — what ``inv bench --which resume`` aggregates over many runs.

The owner's death is when ``inv kill-pod`` deleted it (the ``kill`` timeline entry: the sandbox
SIGKILLs the container in the deletion); ``RUNNING`` again is the first ``… changed status to
RUNNING.`` (or ``taking ownership``) logged by another pod after that; ``SUCCESS`` is the engine's
state change to ``SUCCESS``, else — when the flight ended ``SUCCESS`` — the flight row's
``completed_time`` (a flight that ended ``FATAL`` or ``ERROR`` has no time to SUCCESS).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from opskit.engine_events import Kind, TimelineItem
from opskit.journal import Recovery, TimelineEntry, parse_time
from repairtool.clock import rfc3339


def recovery_of(
    killed: str,
    fault_timeline: Sequence[TimelineEntry],
    events: Sequence[TimelineItem],
    completed_time: str | None,
    queue: str | None = None,
    final_status: str | None = None,
) -> Recovery | None:
    """The flight's recovery after ``killed`` died, or None when the kill was not recorded."""
    died = next(
        (parse_time(e.at) for e in fault_timeline if e.event == "kill" and e.pod in (killed, None)),
        None,
    )
    if died is None:
        return None
    running_at: dt.datetime | None = None
    running_pod: str | None = None
    finished: dt.datetime | None = None
    for item in sorted(events, key=lambda i: i.at):
        if item.at < died:
            continue
        e = item.event
        again = (e.kind is Kind.STATE_CHANGE and e.detail == "RUNNING") or (
            e.kind is Kind.TAKING_OWNERSHIP
        )
        if running_at is None and again and item.pod != killed:
            running_at, running_pod = item.at, item.pod
        if finished is None and e.kind is Kind.STATE_CHANGE and e.detail == "SUCCESS":
            finished = item.at
    if finished is None and completed_time and final_status == "SUCCESS":
        done = dt.datetime.fromisoformat(completed_time)
        finished = done if done.tzinfo else done.replace(tzinfo=dt.UTC)

    def secs(t: dt.datetime | None) -> float | None:
        return round((t - died).total_seconds(), 3) if t is not None else None

    return Recovery(
        owner=killed,
        owner_died=rfc3339(died),
        running_pod=running_pod,
        running_again=rfc3339(running_at) if running_at else None,
        finished=rfc3339(finished) if finished else None,
        to_running_s=secs(running_at),
        to_success_s=secs(finished) if finished and finished >= died else None,
        queue=queue if queue in ("emulator", "none") else None,  # type: ignore[arg-type]
    )
