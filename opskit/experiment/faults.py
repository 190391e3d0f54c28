"""The faults an experiment injects while the flight sleeps in the delayed step: one class each.

- :class:`KillOwner`: ``inv kill-pod --flight ID --when-step N`` deletes the pod that owns the
  flight and follows the replacement (its ``--json-out`` document is read back);
- :class:`DropDbConnections`: the experiment holds the flight's row from its own connection
  until the engine's write waits on it, then ``psql --csv … pg_terminate_backend(…)`` cuts the
  service's and the tools' connections.

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


FaultResult = KillOwnerResult | DropConnectionsResult


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


class KillOwner(Fault):
    """Kill the pod that owns the flight (``inv kill-pod``) and watch the replacement."""

    @staticmethod
    def title(defn: ExperimentDefinition) -> str:
        return f"kill the owner pod inside step {defn.method.when_step}"

    def inject(self, flight: SubmittedFlight) -> KillOwnerResult:
        lab = self.lab
        survivors = tuple(p for p in lab.ready_pods() if p != flight.receiver)
        result, doc = lab.tools.kill_pod(flight.flight_id)
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


def fault_for(lab: Lab) -> Fault:
    """The definition's fault."""
    return KillOwner(lab) if lab.defn.kills_owner else DropDbConnections(lab)


def fault_title(defn: ExperimentDefinition) -> str:
    return (KillOwner if defn.kills_owner else DropDbConnections).title(defn)


__all__ = [
    "DropConnectionsResult",
    "DropDbConnections",
    "Fault",
    "FaultResult",
    "KillOwner",
    "KillOwnerResult",
    "fault_for",
    "fault_title",
]
