"""The faults an experiment injects while the flight sleeps in the delayed step: one class each.

- :class:`KillOwner`: ``inv kill-pod --flight ID --when-step N`` deletes the pod that owns the
  flight and follows the replacement (its ``--json-out`` document is read back);
- :class:`KillIdlePod`: ``inv kill-pod --pod NAME`` deletes a pod that owns no flight;
- :class:`DropDbConnections`: the experiment holds the flight's row from its own connection
  until the engine's write waits on it, then ``psql --csv … pg_terminate_backend(…)`` cuts the
  service's and the tools' connections;
- :class:`ServiceDbOutage`: the service's own database refuses connections inside the step
  (``psql … ALTER DATABASE wsm WITH ALLOW_CONNECTIONS false``), until the flight has ended.

Each returns a typed result with its own timeline entries; nothing else of the attempt changes.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from opskit.errors import OpsError
from opskit.experiment.definition import TERMINAL, ExperimentDefinition
from opskit.experiment.lab import Lab, SubmittedFlight, Timeline
from opskit.experiment.tools import TaskError
from opskit.flights import FlightReader
from opskit.journal import TimelineEntry
from opskit.killpod import wait_for_step
from repairtool.clock import parse_rfc3339

#: kill-pod timeline kinds as the journal names them (the engine's lines come from the logs)
_KILL_EVENTS = {"deleted": "kill", "outcome": "kill-pod-outcome"}
_KILL_SOURCES = {"kube": "kube", "log": "log", "logs": "log", "db": "db", "tool": "tool"}


@dataclass(frozen=True)
class KillOwnerResult:
    """What killing the owner did: which pod went, which came, who lived through it."""

    killed: str | None
    replacement: str | None
    replacement_ready: bool
    survivors: tuple[str, ...]
    timeline: tuple[TimelineEntry, ...]
    error: str | None = None


@dataclass(frozen=True)
class DropConnectionsResult:
    """What cutting the connections did: the backends psql terminated, what the tool saw."""

    terminated: tuple[str, ...]
    tool_saw: str | None
    timeline: tuple[TimelineEntry, ...]
    error: str | None = None


class Fault(abc.ABC):
    """A fault injected inside the delayed step of a running flight."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    @staticmethod
    @abc.abstractmethod
    def title(defn: ExperimentDefinition) -> str:
        """One line for the journal: what the method does."""

    @abc.abstractmethod
    def inject(self, flight: SubmittedFlight) -> FaultResult:
        """Inject the fault; what went wrong is the result's ``error``."""

    @abc.abstractmethod
    def failed(self, error: str) -> FaultResult:
        """The result of a fault that could not be injected at all."""


def _replacement_timeout(defn: ExperimentDefinition) -> float | None:
    """A short wait for the replacement when the ReplicaSet is switched not to make one."""
    if defn.method.switches.before_fault.get("replace_deleted_pods") is False:
        return 5.0
    return None


class KillOwner(Fault):
    """Kill the pod that owns the flight (``inv kill-pod``) and watch the replacement."""

    @staticmethod
    def title(defn: ExperimentDefinition) -> str:
        return f"kill the owner pod inside step {defn.method.when_step}"

    def inject(self, flight: SubmittedFlight) -> KillOwnerResult:
        lab = self.lab
        survivors = tuple(p for p in lab.ready_pods() if p != flight.receiver)
        result, doc = lab.tools.kill_pod(
            flight.flight_id, replacement_timeout=_replacement_timeout(lab.defn)
        )
        if doc is None or isinstance(doc, TaskError):
            error = (
                f"inv kill-pod failed (exit {result.rc}): {doc.message}"
                if isinstance(doc, TaskError)
                else f"inv kill-pod wrote no result (exit {result.rc})"
            )
            if self._step_missed(flight.flight_id):
                error += f" (the {lab.defn.delay.seconds:g} s delay was too short: raise --delay)"
            tl = Timeline()
            tl.add("tool", "kill-failed", error)
            return KillOwnerResult(None, None, False, survivors, tl.sorted(), error)
        killed = str(doc.get("pod") or "") or None
        return KillOwnerResult(
            killed=killed,
            replacement=doc.get("replacement"),
            replacement_ready=bool(doc.get("replacement_ready")),
            survivors=tuple(p for p in survivors if p != killed),
            timeline=_kill_timeline(doc.get("timeline") or []),
        )

    def failed(self, error: str) -> KillOwnerResult:
        return KillOwnerResult(None, None, False, (), (), error)

    def _step_missed(self, flight_id: str) -> bool:
        """The flight was past the delayed step (or done) when the kill came."""
        row = self.lab.db.flight(flight_id)
        if row is None or row["status"] in TERMINAL:
            return True
        steps = self.lab.db.steps(flight_id)
        return any(step >= self.lab.defn.method.when_step for step, _ in steps)


class KillIdlePod(Fault):
    """Kill a pod that owns nothing (``inv kill-pod --pod NAME``) while the flight sleeps in
    the delayed step on another pod: with no pod listener and no replacement, its
    ``stairwayinstance`` row stays (a stale instance)."""

    @staticmethod
    def title(defn: ExperimentDefinition) -> str:
        return f"kill a pod that owns no flight while the flight is in step {defn.method.when_step}"

    def inject(self, flight: SubmittedFlight) -> KillOwnerResult:
        lab, d = self.lab, self.lab.defn
        idle = [p for p in lab.ready_pods() if p != flight.receiver]
        if not idle:
            return self.failed("no pod other than the flight's owner to kill (replicas >= 2)")
        reader = FlightReader(lab.target.sqlalchemy_url())
        try:
            wait_for_step(
                reader.get, flight.flight_id, d.method.when_step, d.delay.seconds + 30, 0.2, lab.rep
            )
        except OpsError as exc:
            return self.failed(str(exc))
        finally:
            reader.close()
        victim = idle[0]
        result, doc = lab.tools.kill_pod(
            flight.flight_id, pod=victim, replacement_timeout=_replacement_timeout(d)
        )
        if doc is None or isinstance(doc, TaskError):
            error = (
                f"inv kill-pod failed (exit {result.rc}): {doc.message}"
                if isinstance(doc, TaskError)
                else f"inv kill-pod wrote no result (exit {result.rc})"
            )
            tl = Timeline()
            tl.add("tool", "kill-failed", error)
            return KillOwnerResult(None, None, False, (), tl.sorted(), error)
        killed = str(doc.get("pod") or "") or None
        return KillOwnerResult(
            killed=killed,
            replacement=doc.get("replacement"),
            replacement_ready=bool(doc.get("replacement_ready")),
            survivors=tuple(p for p in lab.ready_pods() if p != killed),
            timeline=_kill_timeline(doc.get("timeline") or []),
        )

    def failed(self, error: str) -> KillOwnerResult:
        return KillOwnerResult(None, None, False, (), (), error)


@dataclass(frozen=True)
class OutageResult:
    """The service's own database was unavailable from ``started`` until ``ended``."""

    timeline: tuple[TimelineEntry, ...]
    flight_status: str | None = None
    error: str | None = None


class ServiceDbOutage(Fault):
    """A dependency outage inside the delayed step: the service's own database (``wsm``)
    refuses connections (``psql … ALTER DATABASE wsm WITH ALLOW_CONNECTIONS false``), so the
    step's DO fails and so does its undo — a dismal failure, the flight ends ``FATAL``. Then the
    outage ends (``ALLOW_CONNECTIONS true``); the flight stays FATAL (STAIRCTL.md's "Recover
    Timed-Out Flight" case)."""

    @staticmethod
    def title(defn: ExperimentDefinition) -> str:
        return f"the service's own database goes down inside step {defn.method.when_step}"

    def inject(self, flight: SubmittedFlight) -> OutageResult:
        lab, d, tl = self.lab, self.lab.defn, Timeline()
        fid = flight.flight_id
        reader = FlightReader(lab.target.sqlalchemy_url())
        try:
            view = wait_for_step(
                reader.get, fid, d.method.when_step, d.delay.seconds + 30, 0.2, lab.rep
            )
        except OpsError as exc:
            tl.add("tool", "method-failed", str(exc))
            return OutageResult(tl.sorted(), None, str(exc))
        finally:
            reader.close()
        try:
            down = lab.tools.service_db(lab.target, available=False)
            tl.add(
                "tool",
                "service-db-outage",
                f"the service's database refuses connections (exit {down.rc}) while"
                f" {view.owner} sleeps in step {d.method.when_step}",
                view.owner,
            )
            deadline = time.monotonic() + d.method.observe(d.delay)
            row = lab.db.flight(fid)
            while (row is None or row["status"] not in TERMINAL) and time.monotonic() < deadline:
                time.sleep(0.5)
                row = lab.db.flight(fid)
            status = str(row["status"]) if row else None
            tl.add("db", "outage-outcome", f"flight {status} during the outage")
        finally:
            up = lab.tools.service_db(lab.target, available=True)
            tl.add("tool", "service-db-restored", f"the service's database is back (exit {up.rc})")
        lab.rep.emit("service_db.outage", f"outage over; flight {status}")
        return OutageResult(tl.sorted(), status)

    def failed(self, error: str) -> OutageResult:
        return OutageResult((), None, error)


def _kill_timeline(items: list[dict[str, Any]]) -> tuple[TimelineEntry, ...]:
    tl = Timeline()
    for item in items:
        kind = str(item.get("kind", ""))
        if kind.startswith("engine.") or kind == "logs_unavailable":
            continue  # the engine's lines come from the experiment's own log query
        tl.add(
            _KILL_SOURCES.get(str(item.get("source")), "tool"),  # type: ignore[arg-type]
            _KILL_EVENTS.get(kind, kind),
            str(item.get("detail", "")),
            item.get("pod") or None,
            at=parse_rfc3339(str(item["at"])),
        )
    return tl.sorted()


class DropDbConnections(Fault):
    """Cut every client connection of the Stairway database while the engine writes."""

    @staticmethod
    def title(defn: ExperimentDefinition) -> str:
        return f"cut the Stairway DB connections inside step {defn.method.when_step}"

    def inject(self, flight: SubmittedFlight) -> DropConnectionsResult:
        lab, d, tl = self.lab, self.lab.defn, Timeline()
        fid = flight.flight_id
        reader = FlightReader(lab.target.sqlalchemy_url())
        try:
            view = wait_for_step(
                reader.get, fid, d.method.when_step, d.delay.seconds + 30, 0.2, lab.rep
            )
        except OpsError as exc:
            tl.add("tool", "method-failed", str(exc))
            return DropConnectionsResult((), None, tl.sorted(), str(exc))
        finally:
            reader.close()
        owner = view.owner
        with lab.db.row_lock(fid) as (conn, pid):
            tl.add(
                "tool",
                "row-lock",
                f"the tool holds flight {fid}'s row (SELECT … FOR UPDATE, backend {pid})"
                f" while {owner} sleeps in step {d.method.when_step}",
                owner,
            )
            blocked = self._wait_blocked(fid, pid, time.monotonic() + d.delay.seconds + 30)
            if isinstance(blocked, str):
                tl.add("tool", "drop-failed", blocked)
                return DropConnectionsResult((), None, tl.sorted(), blocked)
            who = ", ".join(f"{b['application_name'] or '?'} (backend {b['pid']})" for b in blocked)
            tl.add("db", "lock-wait", f"the engine's write waits on the row: {who}", owner)
            lab.rep.emit("db.lock_wait", f"the engine's write waits on the held row: {who}")
            result, rows = lab.tools.terminate_connections(lab.target)
            terminated = tuple(f"{r['pid']} {r['application_name']}" for r in rows)
            tl.add(
                "tool",
                "drop-db-connections",
                f"pg_terminate_backend on {len(terminated)} client backends (exit {result.rc})",
            )
            tool_saw = _probe(conn)
            tl.add("tool", "tool-connection", f"the tool's own connection: {tool_saw}")
        lab.rep.emit("db.dropped", f"connections cut; the tool saw {tool_saw}")
        return DropConnectionsResult(terminated, tool_saw, tl.sorted())

    def failed(self, error: str) -> DropConnectionsResult:
        return DropConnectionsResult((), None, (), error)

    def _wait_blocked(self, fid: str, pid: int, deadline: float) -> list[dict[str, Any]] | str:
        """The backends waiting on the held row, or why none came."""
        while True:
            blocked = self.lab.db.blocked_by(pid)
            if blocked:
                return blocked
            row = self.lab.db.flight(fid)
            if row is None or row["status"] in TERMINAL or time.monotonic() >= deadline:
                return (
                    "the engine never waited on the held row (flight "
                    + (str(row["status"]) if row else "gone")
                    + "): no write was in flight to cut"
                )
            time.sleep(0.1)


def _probe(conn: Any) -> str:
    """What the tool's own (held) connection says after the cut."""
    try:
        conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:  # the point: the tool's own connection is cut too
        orig = getattr(exc, "orig", None) or exc
        first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
        return f"{type(orig).__name__}: {first}"
    return "nothing: the tool's connection still answered"


FaultResult = KillOwnerResult | DropConnectionsResult | OutageResult

#: one class per fault of the definition
FAULTS: dict[str, type[Fault]] = {
    "kill-owner": KillOwner,
    "kill-idle-pod": KillIdlePod,
    "drop-db-connections": DropDbConnections,
    "wsm-db-outage": ServiceDbOutage,
}


def fault_for(lab: Lab) -> Fault:
    """The definition's fault."""
    return FAULTS[lab.defn.method.fault](lab)


def fault_title(defn: ExperimentDefinition) -> str:
    return FAULTS[defn.method.fault].title(defn)


__all__ = [
    "DropConnectionsResult",
    "DropDbConnections",
    "Fault",
    "FaultResult",
    "KillIdlePod",
    "KillOwner",
    "KillOwnerResult",
    "OutageResult",
    "ServiceDbOutage",
    "fault_for",
    "fault_title",
]
