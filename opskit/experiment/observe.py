"""What an attempt saw: steady state, the engine's log lines, the flight row, who recovered it.

Everything here reads — the Kubernetes API, Cloud Logging (the sandbox's or GKE's), the
Stairway database — through the same platform code ``inv kill-pod`` and ``inv logs`` use, and
returns plain data for the verdict (:mod:`opskit.experiment.verdict`) and the journal.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opskit.cloudlogs import ENGINE_PHRASES
from opskit.engine_events import Kind, LogLine, TimelineItem, classify_all, flight_timeline
from opskit.errors import OpsError
from opskit.experiment.db import (
    SQL_FLIGHT_LOG,
    SQL_INSTANCES,
    SQL_NON_TERMINAL,
    SQL_UNOWNED,
    checked_flight_id,
)
from opskit.experiment.definition import TERMINAL
from opskit.experiment.lab import Lab, SubmittedFlight
from opskit.experiment.verdict import Observation, expected_lines
from opskit.journal import LogExcerpt, Probe, SqlEvidence, SteadyState
from repairtool.clock import rfc3339
from repairtool.durations import parse_duration

#: log excerpts kept per attempt
MAX_EXCERPTS = 60


# -- steady state ---------------------------------------------------------------------------
def pods_probe(lab: Lab, wait: float = 0.0) -> Probe:
    """The service's pods are Ready (waiting up to ``wait`` s for them)."""
    want = lab.replicas
    deadline = time.monotonic() + wait
    while True:
        ready = lab.ready_pods()
        if len(ready) >= want or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    ok = len(ready) >= want
    return Probe(
        name="pods-ready", ok=ok, detail=f"{len(ready)}/{want} pods Ready: {', '.join(ready)}"
    )


def orphan_probes(lab: Lab, doc: dict[str, Any]) -> list[Probe]:
    """``repairtool orphans`` finds no stuck flight and no stale instance."""
    findings = list(doc.get("findings") or [])
    flights = [f for f in findings if f.get("flight_id")]
    stale = [f for f in findings if f.get("kind") == "stale_instance"]
    non_terminal = len(lab.db.rows(SQL_NON_TERMINAL))
    listed = ": " + ", ".join(f"{f['kind']} {f['flight_id']}" for f in flights) if flights else ""
    return [
        Probe(
            name="no-stuck-flights",
            ok=not flights,
            detail=f"repairtool orphans: {len(flights)} flight findings{listed};"
            f" {non_terminal} non-terminal flights",
        ),
        Probe(
            name="no-stale-instances",
            ok=not stale,
            detail=f"{len(stale)} stale instances"
            + (": " + ", ".join(str(f.get("instance")) for f in stale) if stale else ""),
        ),
    ]


def steady_state(lab: Lab, which: str, doc: dict[str, Any], wait: float = 0.0) -> SteadyState:
    """The steady state ``before`` or ``after`` an attempt (``doc``: an orphans document)."""
    probes = (pods_probe(lab, wait), *orphan_probes(lab, doc))
    state = SteadyState(ok=all(p.ok for p in probes), probes=probes)
    lab.rep.emit(
        f"steady_state.{which}",
        f"steady state {which}: "
        + ("ok" if state.ok else "NOT OK")
        + "".join(f"; {p.name} {'ok' if p.ok else 'FAILED'} ({p.detail})" for p in probes),
        level="info" if state.ok else "warn",
        ok=state.ok,
    )
    return state


# -- the flight -----------------------------------------------------------------------------
def wait_for_flight(lab: Lab, since: dt.datetime, still_running: Any) -> SubmittedFlight | None:
    """The flight of the delayed class submitted at or after ``since`` (database time), once
    it appears; None when ``still_running()`` turns false first or a minute passes."""
    d = lab.defn
    deadline = time.monotonic() + 60 + d.delay.seconds
    while time.monotonic() < deadline:
        row = lab.db.new_flight(d.delay.flight_class, since)
        if row is not None:
            return SubmittedFlight(
                str(row["flightid"]), row["stairway_id"], row["submit_time"].replace(tzinfo=dt.UTC)
            )
        if not still_running():
            return None
        time.sleep(0.1)
    return None


def log_lines(lab: Lab, flight: SubmittedFlight, started: dt.datetime) -> list[LogLine]:
    """The engine's lines about the flight (and the expected ones) since the attempt began."""
    since = flight.submitted - dt.timedelta(seconds=60)
    phrases = [
        line.split("{")[0] for line in lab.defn.expect.log_lines if line.split("{")[0].strip()
    ]
    try:
        lines = lab.stage.platform.query_logs(
            since=since, contains=(flight.flight_id, *ENGINE_PHRASES, *phrases)
        )
    except OpsError as exc:
        lab.rep.emit("logs.unavailable", f"logs: {exc}", level="warn")
        return []
    floor = started - dt.timedelta(seconds=2)
    return [ln for ln in lines if ln.timestamp >= floor]


def recoverer(killed: str | None, lines: Sequence[LogLine]) -> str | None:
    """The pod that logged ``Disowned N flights for stairway: <killed>`` with N > 0."""
    if killed is None:
        return None
    for item in classify_all(lines):
        e = item.event
        if e.kind is Kind.DISOWNED and e.stairway == killed and (e.count or 0) > 0:
            return item.pod
    return None


def wait_settled(
    lab: Lab,
    flight: SubmittedFlight,
    started: dt.datetime,
    killed: str | None,
    replacement: str | None,
) -> None:
    """Until the flight ends (or, when it is expected to stay, the expected lines show)."""
    d = lab.defn
    deadline = time.monotonic() + d.method.observe(d.delay)
    last = ""
    while True:
        row = lab.db.flight(flight.flight_id)
        status = str(row["status"]) if row else "GONE"
        lines = log_lines(lab, flight, started)
        messages = [ln.message for ln in lines]
        partial = Observation(
            flight_id=flight.flight_id,
            final_status=status,
            owner=row["stairway_id"] if row else None,
            owner_alive=None,
            killed=killed,
            replacement=replacement,
            recoverer=recoverer(killed, lines),
        )
        missing = [
            template
            for template, line in expected_lines(d.expect.log_lines, partial)
            if line is None or not any(line in m for m in messages)
        ]
        done = (status in TERMINAL or d.expect.final_status not in TERMINAL) and not missing
        state = f"{status}; waiting for {len(missing)} log lines" if missing else status
        if state != last:
            lab.rep.emit("flight.state", f"flight {flight.flight_id}: {state}", status=status)
            last = state
        if done or time.monotonic() >= deadline:
            return
        time.sleep(1.0)


def wait_status(lab: Lab, flight_id: str, want: str | None) -> str | None:
    """Until the flight reaches ``want`` (or ends, or the observation time is over)."""
    d = lab.defn
    deadline = time.monotonic() + d.method.observe(d.delay)
    while True:
        row = lab.db.flight(flight_id)
        status = str(row["status"]) if row else None
        if status == want or status in TERMINAL or time.monotonic() >= deadline:
            return status
        time.sleep(0.5)


def wait_idle(lab: Lab, flight_id: str) -> float:
    """Until the flight has been idle (no newer ``flightlog`` row, not resubmitted) longer than
    the threshold its expected findings depend on — ``--stalled-after``, ``--queue-retention``,
    the ack deadline plus ``--overdue-margin`` — so the dry run can see them. Returns the
    seconds it had been idle then."""
    d = lab.defn
    wanted = set(d.expect.findings)
    threshold = 0.0
    if "stalled" in wanted:
        threshold = max(threshold, parse_duration(d.detection.stalled_after).total_seconds())
    if "unqueued" in wanted and d.detection.queue_retention:
        threshold = max(threshold, parse_duration(d.detection.queue_retention).total_seconds())
    if "queued_overdue" in wanted:
        margin = parse_duration(d.detection.overdue_margin or "30s").total_seconds()
        threshold = max(threshold, lab.stage.ack_deadline_seconds + margin)
    deadline = time.monotonic() + threshold + 60
    while True:
        row = lab.db.rows(
            "SELECT LOCALTIMESTAMP - GREATEST(f.submit_time, (SELECT max(log_time) FROM flightlog"
            " l WHERE l.flightid = f.flightid)) AS idle FROM flight f WHERE f.flightid = :id",
            {"id": flight_id},
        )
        idle = row[0]["idle"].total_seconds() if row and row[0]["idle"] is not None else 0.0
        if idle > threshold + 1.0 or time.monotonic() >= deadline:
            return float(idle)
        time.sleep(min(1.0, threshold + 1.0 - idle + 0.05))


@dataclass(frozen=True)
class FlightEnd:
    """The flight after the fault settled: its row, log, steps and the engine's events."""

    flight_id: str
    status: str
    owner: str | None
    owner_alive: bool | None
    completed_time: str | None
    steps: tuple[tuple[int, str], ...]
    lines: tuple[LogLine, ...]
    events: tuple[TimelineItem, ...]

    @property
    def takers(self) -> list[str]:
        """Pods that logged taking ownership of the flight, in order."""
        return [
            i.pod
            for i in self.events
            if i.event.kind is Kind.TAKING_OWNERSHIP and i.event.flight_id == self.flight_id
        ]


def flight_end(lab: Lab, flight: SubmittedFlight, started: dt.datetime) -> FlightEnd:
    fid = flight.flight_id
    lines = log_lines(lab, flight, started)
    row = lab.db.flight(fid)
    owner = row["stairway_id"] if row else None
    completed = row["completed_time"] if row else None
    return FlightEnd(
        flight_id=fid,
        status=str(row["status"]) if row else "RUNNING",
        owner=owner,
        owner_alive=(owner in lab.live_pods()) if owner else None,
        completed_time=rfc3339(completed) if completed is not None else None,
        steps=tuple(lab.db.steps(fid)),
        lines=tuple(lines),
        events=tuple(flight_timeline(lines, fid)),
    )


# -- evidence -------------------------------------------------------------------------------
def sql_evidence(lab: Lab, flight_id: str) -> tuple[SqlEvidence, ...]:
    """The queries the runbooks quote, with the rows they returned (strings masked)."""
    queries = (
        ("non-terminal-flights", SQL_NON_TERMINAL),
        ("instances", SQL_INSTANCES),
        ("flight-log", SQL_FLIGHT_LOG.format(flight_id=checked_flight_id(flight_id))),
        ("unowned-ready-queued", SQL_UNOWNED),
    )
    out = []
    for name, sql in queries:
        columns, rows = lab.db.evidence(sql)
        mask = lab.tools.cmds.mask
        masked = tuple(tuple(mask(v) if isinstance(v, str) else v for v in row) for row in rows)
        out.append(SqlEvidence(name=name, query=sql, columns=columns, rows=masked))
    return tuple(out)


def excerpts(
    lab: Lab, lines: Sequence[LogLine], events: Sequence[TimelineItem], obs: Observation
) -> tuple[LogExcerpt, ...]:
    """The log lines worth quoting: the engine's events and the expected lines (masked)."""
    wanted = [w for _, w in expected_lines(lab.defn.expect.log_lines, obs) if w]
    keep: dict[tuple[str, str, str], LogLine] = {}
    by_key = {(ln.timestamp.isoformat(), ln.pod, ln.message): ln for ln in lines}
    for item in events:
        if item.event.kind is Kind.STATE_CHANGE:
            continue
        key = (item.at.isoformat(), item.pod, item.message)
        if key in by_key:
            keep[key] = by_key[key]
    for ln in lines:
        if any(w in ln.message for w in wanted):
            keep[(ln.timestamp.isoformat(), ln.pod, ln.message)] = ln
    chosen = sorted(keep.values(), key=lambda ln: ln.timestamp)[:MAX_EXCERPTS]
    mask = lab.tools.cmds.mask
    return tuple(
        LogExcerpt(
            at=rfc3339(ln.timestamp), pod=ln.pod, severity=ln.severity, message=mask(ln.message)
        )
        for ln in chosen
    )
