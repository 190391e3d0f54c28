"""An attempt's flight and pods over time, from its journal record (pure; no I/O, no clock).

- :func:`status_changes`: the flight's statuses in order, each with who changed it and the owner
  after it — from the engine's ``Flight ID F changed status to S.`` lines, the flight's
  submission, ``repairtool``'s audit rows and the final state;
- :func:`pod_lives`: each pod's lifetime — the attempt's pod watch when the journal has it,
  else what the timeline shows (the kill, the replacement, the first and last line of a pod);
- :func:`state_diagram`, :func:`gantt`: the Mermaid diagrams the experiment records show.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

from opskit.journal import Attempt, parse_time

TERMINAL = ("SUCCESS", "ERROR", "FATAL")
_STATUS = re.compile(r"changed status to (\w+)")
REPAIRTOOL = "repairtool"


def short_pod(name: str) -> str:
    """``workspacemanager-deployment-68f9b944d5-9kgzp`` → ``68f9b944d5-9kgzp``."""
    parts = name.split("-")
    short = "-".join(parts[-2:]) if len(parts) >= 3 else name
    return re.sub(r"[^A-Za-z0-9._-]", "", short)


@dataclass(frozen=True)
class Change:
    """The flight entered ``status`` at ``at``: made by ``by`` (a pod, ``repairtool``, or
    None when unknown); ``owner`` is its ``stairway_id`` afterwards."""

    at: dt.datetime
    status: str
    by: str | None
    owner: str | None


_FINAL = re.compile(r"^flight (\w+), owner (\S+)")
_DISOWNED = re.compile(r"^[Dd]isowned ([1-9]\d*) flight")


def status_changes(attempt: Attempt) -> list[Change]:
    """The flight's statuses in the order it went through them (consecutive repeats dropped).

    From the engine's state-change lines, and where a journal lacks them (older ones) from its
    submission, ``taking ownership`` and ``Disowned N flights`` lines and the final state seen."""
    found: list[Change] = []
    # the engine's own state-change lines (WSM's MdcHook) are logged after each commit; only a
    # journal without them falls back on the other lines (a losing claim logs taking ownership)
    hooked = any(e.source == "log" and e.event == "state_change" for e in attempt.timeline)
    for e in attempt.timeline:
        at = parse_time(e.at)
        if hooked and e.event in ("taking_ownership", "disowned", "final-state"):
            continue
        if e.event == "submitted" and e.source in ("db", "tool"):
            found.append(Change(at, "RUNNING", e.pod, e.pod))
        elif e.source == "log" and e.event == "state_change":
            m = _STATUS.search(e.detail)
            if m:
                status = m[1]
                found.append(Change(at, status, e.pod, e.pod if status == "RUNNING" else None))
        elif e.source == "log" and e.event == "taking_ownership" and e.pod:
            found.append(Change(at, "RUNNING", e.pod, e.pod))
        elif e.source == "log" and e.event == "disowned" and _DISOWNED.search(e.detail):
            found.append(Change(at, "READY", e.pod, None))
        elif e.source == "db" and e.event == "final-state":
            m = _FINAL.search(e.detail)
            if m:
                owner = None if m[2] == "none" else m[2]
                found.append(Change(at, m[1], owner if m[1] == "RUNNING" else None, owner))
    if attempt.repair is not None:
        for row in attempt.repair.audit:
            after = row.get("after") or {}
            if isinstance(after, dict) and after.get("status") and row.get("at"):
                found.append(
                    Change(
                        parse_time(str(row["at"])),
                        str(after["status"]),
                        REPAIRTOOL,
                        after.get("stairway_id"),
                    )
                )
    found.sort(key=lambda c: c.at)
    if not found or found[0].status != "RUNNING":  # every flight starts RUNNING on its receiver
        first = (
            parse_time(attempt.timeline[0].at) if attempt.timeline else parse_time(attempt.started)
        )
        receiver = attempt.pods.receiver
        found.insert(0, Change(min([first, *(c.at for c in found)]), "RUNNING", receiver, receiver))
    out: list[Change] = []
    for c in found:
        if out and (out[-1].status, out[-1].owner) == (c.status, c.owner):
            continue
        out.append(c)
    last = attempt.repair.state_after.status if attempt.repair else attempt.final_state.status
    if not out or out[-1].status != last:
        out.append(Change(parse_time(attempt.ended), last, None, None))
    return out


@dataclass(frozen=True)
class Life:
    """One pod from ``start`` to ``end`` (None: still there when the attempt ended)."""

    pod: str
    start: dt.datetime
    end: dt.datetime | None
    role: str = ""

    def alive_at(self, at: dt.datetime) -> bool:
        return self.start <= at and (self.end is None or at < self.end)


def _role(attempt: Attempt, pod: str) -> str:
    p = attempt.pods
    if pod == p.killed:
        return "killed"
    if pod == p.replacement:
        return "replacement"
    if pod == p.receiver:
        return "received the flight"
    if pod in p.survivors:
        return "survivor"
    return ""


def pod_lives(attempt: Attempt) -> list[Life]:
    """Each pod's lifetime during the attempt (see the module docstring)."""
    start = parse_time(attempt.started)
    if attempt.pod_lives:
        return [
            Life(
                x.name,
                parse_time(x.created),
                parse_time(x.deleted) if x.deleted else None,
                _role(attempt, x.name),
            )
            for x in attempt.pod_lives
        ]
    # older journals: what the timeline shows
    first: dict[str, dt.datetime] = {}
    end: dict[str, dt.datetime] = {}
    for e in attempt.timeline:
        if not e.pod:
            continue
        at = parse_time(e.at)
        first.setdefault(e.pod, at)
        if e.source == "kube" and e.event in ("kill", "pod_gone", "terminating"):
            end.setdefault(e.pod, at)
        if e.source == "kube" and e.event == "replacement_added":
            first[e.pod] = min(first[e.pod], at)
    pods = [*([attempt.pods.receiver] if attempt.pods.receiver else []), *attempt.pods.survivors]
    for pod in pods:
        first.setdefault(pod, start)
    lives = []
    for pod, at in first.items():
        began = start if pod not in (attempt.pods.replacement,) else at
        lives.append(Life(pod, min(began, at), end.get(pod), _role(attempt, pod)))
    return sorted(lives, key=lambda x: (x.start, x.pod))


def alive(lives: Sequence[Life], pod: str, at: dt.datetime) -> bool:
    """Whether ``pod`` was alive at ``at`` (unknown pods are not)."""
    return any(x.pod == pod and x.alive_at(at) for x in lives)


# ----------------------------------------------------------------------------------------------
# Mermaid


def _since(t0: dt.datetime, at: dt.datetime) -> str:
    return f"+{max(0.0, (at - t0).total_seconds()):.1f} s"


def _who(c: Change) -> str:
    if c.by == REPAIRTOOL:
        return "by repairtool"
    if c.status == "RUNNING" and c.owner:
        return f"owner pod {short_pod(c.owner)}"
    if c.by:
        return f"by pod {short_pod(c.by)}"
    return "seen in the database"


def state_diagram(attempt: Attempt) -> str:
    """A Mermaid ``stateDiagram-v2`` of the flight: one state per status it went through, each
    edge with the time since submission and the owner (RUNNING) or who made the change."""
    changes = status_changes(attempt)
    t0 = changes[0].at if changes else parse_time(attempt.started)
    lines = ["stateDiagram-v2", "    direction LR"]
    for i, c in enumerate(changes):
        lines.append(f'    state "{c.status}" as s{i}')
    for i, c in enumerate(changes):
        src = "[*]" if i == 0 else f"s{i - 1}"
        verb = "submitted, " if i == 0 else ""
        lines.append(f"    {src} --> s{i}: {_since(t0, c.at)} {verb}{_who(c)}")
    if changes and changes[-1].status in TERMINAL:
        lines.append(f"    s{len(changes) - 1} --> [*]")
    return "\n".join(lines)


def _gantt_time(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.") + f"{at.microsecond // 1000:03d}"


def gantt(attempt: Attempt) -> str:
    """A Mermaid ``gantt`` chart: each pod's lifetime above the flight's status spans (UTC)."""
    begin, finish = parse_time(attempt.started), parse_time(attempt.ended)
    lines = [
        "gantt",
        f"    title Attempt {attempt.number}: pods and flight statuses (UTC)",
        "    dateFormat YYYY-MM-DD HH:mm:ss.SSS",
        "    axisFormat %H:%M:%S",
        "    section Pods",
    ]
    for n, life in enumerate(pod_lives(attempt), 1):
        start = max(life.start, begin)
        end = min(life.end or finish, finish)
        if end <= start:
            end = start + dt.timedelta(milliseconds=1)
        tag = "crit, " if life.role == "killed" else ""
        label = f"pod {short_pod(life.pod)}" + (f" {life.role}" if life.role else "")
        lines.append(f"    {label} :{tag}p{n}, {_gantt_time(start)}, {_gantt_time(end)}")
    lines.append("    section Flight")
    changes = status_changes(attempt)
    for n, c in enumerate(changes, 1):
        end = changes[n].at if n < len(changes) else finish
        if c.status in TERMINAL:
            tick = c.at + dt.timedelta(milliseconds=1)
            lines.append(
                f"    {c.status} :milestone, f{n}, {_gantt_time(c.at)}, {_gantt_time(tick)}"
            )
            continue
        end = max(end, c.at + dt.timedelta(milliseconds=1))
        where = f" on {short_pod(c.owner)}" if c.status == "RUNNING" and c.owner else ""
        tag = "active, " if c.status == "RUNNING" else ""
        lines.append(f"    {c.status}{where} :{tag}f{n}, {_gantt_time(c.at)}, {_gantt_time(end)}")
    return "\n".join(lines)
