"""The verdict of an attempt: a pure function of what it observed (:func:`judge`).

Tested without a sandbox: an :class:`Observation` is plain data, and every expectation of the
definition becomes one :class:`Check`, in a fixed order.
"""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from opskit.experiment.definition import (
    TERMINAL,
    ExperimentDefinition,
    OwnerExpectation,
    RecoveredBy,
)


@dataclass(frozen=True)
class FindingSeen:
    """One finding of the dry run ``repairtool orphans --json`` (for the flight or an instance)."""

    kind: str
    flight_id: str | None
    pattern: str = ""
    proposed_action: str = ""
    instance: str | None = None


def findings_seen(doc: Mapping[str, Any]) -> tuple[FindingSeen, ...]:
    """The findings of a ``repairtool.orphans/1`` document, as the verdict needs them."""
    return tuple(
        FindingSeen(
            kind=str(f.get("kind")),
            flight_id=f.get("flight_id"),
            pattern=str((f.get("evidence") or {}).get("pattern") or ""),
            proposed_action=str(f.get("proposed_action") or ""),
            instance=f.get("instance"),
        )
        for f in doc.get("findings") or []
    )


@dataclass(frozen=True)
class Observation:
    """What one attempt saw, reduced to what the verdict needs (no I/O behind it)."""

    flight_id: str | None
    final_status: str | None
    owner: str | None
    owner_alive: bool | None
    killed: str | None = None
    replacement: str | None = None
    survivors: tuple[str, ...] = ()
    #: the pod that logged ``Disowned N flights for stairway: <killed>`` (N > 0)
    recoverer: str | None = None
    #: every log message seen for the attempt (the expected lines are searched in these)
    messages: tuple[str, ...] = ()
    #: the flight's ``flightlog`` rows as (step_index, direction)
    steps: tuple[tuple[int, str], ...] = ()
    findings: tuple[FindingSeen, ...] = ()
    #: after ``--fix``: the flight's status, and how many findings the re-check still reports
    repaired_status: str | None = None
    recheck_findings: int | None = None
    #: steady state after the attempt (``None``: not checked)
    steady_after: bool | None = None
    #: the method could not be carried out (the kill came too late, …)
    method_error: str | None = None
    #: each repair step: (what it ran, status expected, status seen, seen after the hold)
    repair_steps: tuple[tuple[str, str | None, str | None, str | None], ...] = ()
    #: the killed pod's stairwayinstance row after the repair: "present" or "gone"
    instance_after: str | None = None


@dataclass(frozen=True)
class Check:
    """One expectation, checked."""

    name: str
    ok: bool
    detail: str


def expected_lines(lines: Sequence[str], obs: Observation) -> list[tuple[str, str | None]]:
    """Each expected log line with its placeholders filled, or None when a value is unknown."""
    values = {
        "flight": obs.flight_id,
        "killed": obs.killed,
        "owner": obs.owner,
        "recoverer": obs.recoverer,
        "replacement": obs.replacement,
    }
    out: list[tuple[str, str | None]] = []
    for line in lines:
        names = [f for _, f, _, _ in string.Formatter().parse(line) if f]
        if any(values.get(n) is None for n in names):
            out.append((line, None))
        else:
            out.append((line, line.format_map({k: v or "" for k, v in values.items()})))
    return out


def _owner_check(expect: OwnerExpectation, obs: Observation) -> Check:
    if expect == "none":
        ok = obs.owner is None
        return Check("owner", ok, "no owner" if ok else f"owned by {obs.owner}")
    alive = "alive" if obs.owner_alive else "dead"
    if obs.owner is None:
        return Check("owner", False, f"no owner; expected a {expect} owner")
    ok = bool(obs.owner_alive) == (expect == "live")
    return Check("owner", ok, f"owned by {obs.owner} ({alive})")


def _recovered_check(expect: RecoveredBy, obs: Observation) -> Check:
    who = obs.recoverer
    if expect == "none":
        return Check("recovered-by", who is None, f"disowned by {who or 'nobody'}")
    if who is None:
        return Check("recovered-by", False, f"nobody disowned {obs.killed or 'the owner'}")
    if expect == "replacement":
        return Check(
            "recovered-by", who == obs.replacement, f"{who} (replacement: {obs.replacement})"
        )
    if expect == "survivor":
        return Check("recovered-by", who in obs.survivors, f"{who} (survivors: {obs.survivors})")
    return Check("recovered-by", who != obs.killed, f"disowned by {who}")


def judge(defn: ExperimentDefinition, obs: Observation) -> tuple[Check, ...]:
    """Every expectation of ``defn`` checked against ``obs``, in a fixed order."""
    e = defn.expect
    checks: list[Check] = []
    if obs.method_error is not None:
        checks.append(Check("method", False, obs.method_error))
    if obs.flight_id is None:
        checks.append(Check("flight", False, "no flight was started"))
        return tuple(checks)
    checks.append(
        Check(
            "final-status",
            obs.final_status == e.final_status,
            f"{obs.final_status} (expected {e.final_status})",
        )
    )
    checks.append(_owner_check(e.owner, obs))
    if defn.kills_pod:
        checks.append(_recovered_check(e.recovered_by, obs))
    if e.steps_once:
        twice = sorted(s for s, n in Counter(obs.steps).items() if n > 1)
        detail = (
            "each step logged once: " + ", ".join(f"{i} {d}" for i, d in obs.steps)
            if not twice
            else "logged twice: " + ", ".join(f"step {i} {d}" for i, d in twice)
        )
        checks.append(Check("steps-once", not twice, detail))
    for template, line in expected_lines(e.log_lines, obs):
        if line is None:
            checks.append(Check("log-line", False, f"{template!r}: a placeholder has no value"))
        else:
            found = any(line in m for m in obs.messages)
            checks.append(Check("log-line", found, ("seen: " if found else "missing: ") + line))
    # the flight's findings, and the killed pod's stale instance
    own = [
        f
        for f in obs.findings
        if f.flight_id == obs.flight_id or (obs.killed and f.instance == obs.killed)
    ]
    kinds = sorted({f.kind for f in own})
    want = sorted(set(e.findings))
    checks.append(
        Check("findings", kinds == want, f"{kinds or 'none'} (expected {want or 'none'})")
    )
    if e.finding_pattern:
        hit = any(e.finding_pattern in f.pattern for f in own)
        checks.append(
            Check(
                "finding-pattern",
                hit,
                ("evidence names " if hit else "no evidence names ") + repr(e.finding_pattern),
            )
        )
    if defn.repair is not None:
        r = defn.repair
        for what, expected, seen, held in obs.repair_steps:
            if expected is not None:
                checks.append(
                    Check("repair-step", seen == expected, f"{what}: {seen} (expected {expected})")
                )
            if held is not None:
                checks.append(
                    Check(
                        "repair-waits",
                        held == expected,
                        f"{what}: still {held} after the hold (expected {expected})",
                    )
                )
        plan = r.plan()
        what = "; then ".join(s.describe() for s in plan) if plan else "waited, no action"
        checks.append(
            Check(
                "repair",
                obs.repaired_status == r.expect_status,
                f"{what}: {obs.repaired_status} (expected {r.expect_status})",
            )
        )
        if r.expect_instance_gone:
            checks.append(
                Check(
                    "instance-gone",
                    obs.instance_after == "gone",
                    f"stairwayinstance row of {obs.killed or 'the killed pod'}:"
                    f" {obs.instance_after or 'not checked'}",
                )
            )
    if obs.recheck_findings is not None:
        checks.append(
            Check(
                "recheck",
                obs.recheck_findings == 0 or (defn.repair is None and bool(e.findings)),
                f"{obs.recheck_findings} findings after the attempt",
            )
        )
    if obs.steady_after is not None:
        checks.append(
            Check(
                "steady-state-after",
                obs.steady_after or (defn.repair is None and e.final_status not in TERMINAL),
                "ok" if obs.steady_after else "not restored",
            )
        )
    return tuple(checks)


def verdict_of(checks: Sequence[Check]) -> Literal["pass", "fail"]:
    return "pass" if checks and all(c.ok for c in checks) else "fail"


def first_failure(checks: Sequence[Check]) -> Check | None:
    return next((c for c in checks if not c.ok), None)
