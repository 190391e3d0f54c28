"""Races: every mutation against a concurrent engine doing what a live Stairway does.

Each trial seeds one situation, reads it as a plan would (status, owner, row version), then runs
the tool's mutation and one random engine action (complete, disownRecovery, resume/takeover —
also by a pod that came back under the same name —, yield, queue, grooming) at the same moment
(the engine's start is jittered from 2 ms before to 6 ms after the tool's). Invariants, from
the change history the trigger records:
- `no_clobber`: every change the tool made started from the row version its plan saw — the
  engine's committed update is never overwritten;
- `audit_iff_applied`: an audit row exists iff the tool's change applied;
- `changed_iff_applied`: the result says CHANGED iff the change applied;
- `message_iff_changed` (enqueue): a READY message was published iff CHANGED;
- `no_stranded` (recover_instance): no RUNNING flight names an instance whose row is gone.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text

from repairtool.stairway import recovery
from repairtool.stairway.audit import Actor, ensure_audit_table
from repairtool.stairway.model import FlightState, MutationResult, Outcome
from tests.reliability.harness import (
    FAST,
    TOOL_APP,
    EngineWriter,
    RecordingQueue,
    Row,
    audit_rows,
    compatible,
    concurrently,
    expect,
    history,
    input_history,
    insert_flight,
    new_id,
    read_row,
    register,
    tool_engine,
)
from tests.reliability.soak import Soak, SoakEnv, SoakResult, Tally
from tests.reliability.soak import register as register_soak

LIVE = "workspacemanager-deployment-live-0001"
WHO = Actor(reason="race soak", name="soak@example")
DEAD_OWNER = recovery.Because(recovery.Evidence.OWNER_DEAD, "its pod is gone")
INVARIANTS = ("no_clobber", "audit_iff_applied", "changed_iff_applied")


@dataclass
class World:
    """One database for a whole soak: the engine, the tool and an admin session."""

    admin: Engine
    writer: EngineWriter
    tool: Engine
    queue: RecordingQueue
    rng: random.Random

    def close(self) -> None:
        self.writer.close()
        self.tool.dispose()
        self.admin.dispose()


def _world(env: SoakEnv, rng: random.Random) -> World:
    url, admin = env.stairway_db()
    with admin.begin() as c:
        register(c, LIVE)
    tool = tool_engine(url)
    ensure_audit_table(tool)
    queue = RecordingQueue("soak-project", "terra-soak-workspace-stairway", inner=env.queue)
    return World(admin, EngineWriter(url), tool, queue, rng)


def _pod(rng: random.Random) -> str:
    return f"workspacemanager-deployment-dead-{rng.randrange(16**6):06x}"


def _seed(w: World, status: str, owner: str | None, **kw: Any) -> tuple[str, Row]:
    flight = new_id()
    with w.admin.begin() as c:
        if owner is not None and owner != LIVE:
            register(c, owner)
        insert_flight(c, flight, status=status, owner=owner, **kw)
    with w.admin.connect() as c:
        row = read_row(c, flight)
    assert row is not None
    return flight, row


def _state(row: Row) -> FlightState:
    return expect(row.status or "", row.owner, row.version)


def _engine_action(
    w: World, flight: str, owner: str | None, status: str
) -> tuple[str, Callable[[], Any]]:
    """A random thing a live Stairway does to this flight now."""
    e = w.writer
    rng = w.rng
    if status == "RUNNING" and owner is not None:
        choices: list[tuple[str, Callable[[], Any]]] = [
            ("disownRecovery", lambda: e.disown_recovery(owner)),
            ("disownRecovery+resume", lambda: (e.disown_recovery(owner), e.resume(LIVE, flight))),
            (
                "restart-same-name",
                lambda: (e.disown_recovery(owner), e.register(owner), e.resume(owner, flight)),
            ),
            ("complete", lambda: e.complete(flight)),
            ("yield", lambda: e.yield_ready(flight)),
            ("none", lambda: None),
        ]
    elif status in ("READY", "QUEUED", "READY_TO_RESTART", "WAITING"):
        choices = [
            ("resume", lambda: e.resume(LIVE, flight)),
            ("resume+complete", lambda: (e.resume(LIVE, flight), e.complete(flight))),
            ("queued", lambda: e.queued(flight)),
            ("none", lambda: None),
        ]
    else:  # terminal
        choices = [("groom", lambda: e.groom(flight)), ("none", lambda: None)]
    return rng.choice(choices)


def _check_flight(
    t: Tally, w: World, flight: str, plan: Row, result: MutationResult | None, ops: list[str]
) -> int:
    """The three flight invariants; returns how many tool changes the history shows."""
    with w.admin.connect() as c:
        hist = history(c, flight)
        audited = sum(audit_rows(c, op) for op in ops)
    ours = [h for h in hist if h.who == TOOL_APP]
    t.check(
        "no_clobber",
        all(h.old_rev == plan.rev for h in ours) and len(ours) <= 1,
        lambda: f"{flight}: planned rev {plan.rev}, tool changes {ours}, history {hist}",
    )
    t.check(
        "audit_iff_applied",
        audited == len(ours),
        lambda: f"{flight}: {audited} audit rows, {len(ours)} tool changes",
    )
    if result is not None:
        t.check(
            "changed_iff_applied",
            (result.outcome is Outcome.CHANGED) == (len(ours) == 1),
            lambda: f"{flight}: {result.outcome} ({result.detail}) with {len(ours)} tool changes",
        )
        t.stats[result.outcome.value] += 1
    return len(ours)


def _race(
    w: World, action: Callable[[], Any], mutate: Callable[[], MutationResult]
) -> tuple[MutationResult | None, BaseException | None]:
    delay = w.rng.uniform(-0.002, 0.006)
    result: MutationResult | None = None
    error: BaseException | None = None
    with concurrently(action, delay) as engine_out:
        try:
            result = mutate()
        except Exception as e:  # counted as a violation by the caller
            error = e
    if engine_out and isinstance(engine_out[0], BaseException):
        raise engine_out[0]
    return result, error


def _flight_soak(
    name: str,
    situations: Callable[[random.Random], tuple[str, str | None]],
    mutate: Callable[[World, str, Row], MutationResult],
    what: str,
) -> Soak:
    def trial(w: World, t: Tally) -> None:
        status, owner = situations(w.rng)
        flight, plan = _seed(w, status, owner)
        label, action = _engine_action(w, flight, owner, status)
        t.stats[f"engine {label}"] += 1
        result, error = _race(w, action, lambda: mutate(w, flight, plan))
        t.check("changed_iff_applied", error is None, lambda: f"{flight}: raised {error!r}")
        _check_flight(t, w, flight, plan, result, [result.op_id] if result else [])

    def run(env: SoakEnv, trials: int, rng: random.Random) -> SoakResult:
        started = time.monotonic()
        t = Tally(INVARIANTS)
        w = _world(env, rng)
        try:
            for _ in range(trials):
                trial(w, t)
        finally:
            w.close()
        return t.result(name, "library", trials, started, [])

    return Soak(name, "library", what, INVARIANTS, run, full=1000, ci=40)


def _dead_running(rng: random.Random) -> tuple[str, str | None]:
    return "RUNNING", _pod(rng)


register_soak(
    _flight_soak(
        "race.disown",
        _dead_running,
        lambda w, f, p: compatible(
            recovery.disown,
            w.tool,
            f,
            expected=_state(p),
            expected_owner=p.owner,
            because=DEAD_OWNER,
            actor=WHO,
            policy=FAST,
        ),
        "disown a dead owner's flight while the engine recovers, resumes, completes it",
    )
)


def _fatal_or_running(rng: random.Random) -> tuple[str, str | None]:
    return ("FATAL", None) if rng.random() < 0.4 else ("RUNNING", _pod(rng))


def _force_ready(w: World, f: str, p: Row) -> MutationResult:
    because = DEAD_OWNER if p.status == "RUNNING" else None
    return compatible(
        recovery.force_ready, w.tool, f, expected=_state(p), because=because, actor=WHO, policy=FAST
    )


register_soak(
    _flight_soak(
        "race.force_ready",
        _fatal_or_running,
        _force_ready,
        "force ready (FATAL or dead-owned) while the engine recovers, completes or grooms it",
    )
)


def _running_or_ready(rng: random.Random) -> tuple[str, str | None]:
    return ("READY", None) if rng.random() < 0.3 else ("RUNNING", _pod(rng))


register_soak(
    _flight_soak(
        "race.force_fatal",
        _running_or_ready,
        lambda w, f, p: compatible(
            recovery.force_fatal,
            w.tool,
            f,
            expected=_state(p),
            because=DEAD_OWNER if p.status == "RUNNING" else None,
            actor=WHO,
            policy=FAST,
        ),
        "force fatal while the engine completes, takes over or queues it",
    )
)


# -- enqueue: the same, plus the message ---------------------------------------------------------


def _enqueue_trial(w: World, t: Tally) -> None:
    status = w.rng.choice(["READY", "READY", "QUEUED", "READY_TO_RESTART"])
    flight, plan = _seed(w, status, None)
    label, action = _engine_action(w, flight, None, status)
    t.stats[f"engine {label}"] += 1
    result, error = _race(
        w,
        action,
        lambda: compatible(
            recovery.enqueue_ready,
            w.tool,
            flight,
            queue=w.queue,
            expected=_state(plan),
            actor=WHO,
            policy=FAST,
        ),
    )
    t.check("changed_iff_applied", error is None, lambda: f"{flight}: raised {error!r}")
    applied = _check_flight(t, w, flight, plan, result, [result.op_id] if result else [])
    sent = w.queue.count(flight)
    changed = result is not None and result.outcome is Outcome.CHANGED
    t.check(
        "message_iff_changed",
        sent == (1 if changed else 0) and sent == applied,
        lambda: f"{flight}: {sent} messages, result {result}",
    )


def _enqueue_run(env: SoakEnv, trials: int, rng: random.Random) -> SoakResult:
    started = time.monotonic()
    t = Tally((*INVARIANTS, "message_iff_changed"))
    w = _world(env, rng)
    try:
        for _ in range(trials):
            _enqueue_trial(w, t)
    finally:
        w.close()
    notes = ["READY messages on the Pub/Sub emulator" if env.queue else "READY messages recorded"]
    return t.result("race.enqueue", "library", trials, started, notes)


register_soak(
    Soak(
        "race.enqueue",
        "library",
        "enqueue (READY message) while the engine resumes, queues or completes the flight",
        (*INVARIANTS, "message_iff_changed"),
        _enqueue_run,
        full=1000,
        ci=40,
    )
)


# -- rewrite_input: the engine moves the flight on, or a second operator rewrites the input ----


OLD_STAGE = '"MC_WORKSPACE"'
NEW_STAGE = '["bio.terra.workspace.service.workspace.model.WorkspaceStage","MC_WORKSPACE"]'


def _rewrite_trial(w: World, t: Tally, other_tool: Engine) -> None:
    owner = _pod(w.rng)
    flight, plan = _seed(w, "RUNNING", owner, inputs={"workspaceStage": OLD_STAGE})

    def rewrite(engine: Engine, new: str) -> MutationResult:
        return compatible(
            recovery.rewrite_input,
            engine,
            flight,
            "workspaceStage",
            old_value=OLD_STAGE,
            new_value=new,
            expected=_state(plan),
            actor=WHO,
            policy=FAST,
        )

    second = w.rng.random() < 0.3
    if second:
        label, action = "second operator", lambda: rewrite(other_tool, NEW_STAGE + " ")
    else:
        label, action = _engine_action(w, flight, owner, "RUNNING")
    t.stats[f"engine {label}"] += 1
    result, error = _race(w, action, lambda: rewrite(w.tool, NEW_STAGE))
    t.check("changed_iff_applied", error is None, lambda: f"{flight}: raised {error!r}")
    with w.admin.connect() as c:
        inputs = input_history(c, flight)
        hist = history(c, flight)
        audited = audit_rows(c, result.op_id) if result else 0
        mine, engine_first = c.execute(
            text(
                "SELECT (SELECT min(seq) FROM flightinput_history WHERE flightid = :f"
                " AND who = 'repairtool'), (SELECT min(seq) FROM flight_history"
                " WHERE flightid = :f AND who = 'stairway-engine')"
            ),
            {"f": flight},
        ).one()
    ours = [i for i in inputs if i[1] == TOOL_APP]
    applied = len(ours) == 1 and ours[0][2] == OLD_STAGE
    # the tool locks the flight row before it writes the input: an engine change that got the
    # row first (a smaller history number) must have made the tool skip
    clobbered = applied and engine_first is not None and engine_first < mine
    t.check(
        "no_clobber",
        len(ours) <= 1 and not clobbered,
        lambda: f"{flight}: inputs {inputs}, history {hist}",
    )
    t.check("audit_iff_applied", audited == (1 if applied else 0), lambda: f"{flight}")
    if result is not None:
        t.check(
            "changed_iff_applied",
            (result.outcome is Outcome.CHANGED) == applied,
            lambda: f"{flight}: {result.outcome} ({result.detail}); inputs {inputs}",
        )
        t.stats[result.outcome.value] += 1
    if second:
        both = [i for i in inputs if i[1] in (TOOL_APP, "repairtool-2")]
        t.check("one_writer_wins", len(both) == 1, lambda: f"{flight}: {both}")


def _rewrite_run(env: SoakEnv, trials: int, rng: random.Random) -> SoakResult:
    started = time.monotonic()
    t = Tally((*INVARIANTS, "one_writer_wins"))
    w = _world(env, rng)
    other_tool = tool_engine(w.tool.url, app="repairtool-2")
    try:
        for _ in range(trials):
            _rewrite_trial(w, t, other_tool)
    finally:
        other_tool.dispose()
        w.close()
    return t.result("race.rewrite_input", "library", trials, started, [])


register_soak(
    Soak(
        "race.rewrite_input",
        "library",
        "re-encode an input while the engine takes the flight over or another operator rewrites it",
        (*INVARIANTS, "one_writer_wins"),
        _rewrite_run,
        full=1000,
        ci=40,
    )
)


# -- recover_instance: the pod listener of a live pod recovers the same instance ---------------


def _instance_trial(w: World, t: Tally) -> None:
    e = w.writer
    pod = _pod(w.rng)
    flights = [_seed(w, "RUNNING", pod) for _ in range(w.rng.randint(1, 3))]
    with w.admin.connect() as c:
        inst_version = c.execute(
            text("SELECT xmin::text FROM stairwayinstance WHERE stairway_name = :n"),
            {"n": pod},
        ).scalar_one()
    one = flights[0][0]
    label, action = w.rng.choice(
        [
            ("listener disownRecovery", lambda: e.disown_recovery(pod)),
            ("zombie completes one", lambda: e.complete(one)),
            (
                "pod came back",
                lambda: (e.disown_recovery(pod), e.register(pod), e.resume(pod, one)),
            ),
            ("recovered and resumed", lambda: (e.disown_recovery(pod), e.resume(LIVE, one))),
            ("none", lambda: None),
        ]
    )
    t.stats[f"engine {label}"] += 1
    op = str(uuid.uuid4())
    rec: recovery.InstanceRecovery | None = None
    error: BaseException | None = None
    with concurrently(action, w.rng.uniform(-0.002, 0.006)):
        try:
            rec = compatible(
                recovery.recover_instance,
                w.tool,
                pod,
                actor=WHO,
                expected_id=pod,
                expected_version=inst_version,
                expected_flights={f: r.version for f, r in flights},
                op_id=op,
                policy=FAST,
            )
        except Exception as err:  # counted as a violation below
            error = err
    t.check("changed_iff_applied", error is None, lambda: f"{pod}: raised {error!r}")
    changed = {r.flight_id for r in rec.flights} if rec else set()
    for flight, plan in flights:
        n = _check_flight(t, w, flight, plan, None, [str(uuid.uuid5(uuid.UUID(op), flight))])
        t.check(
            "changed_iff_applied",
            (flight in changed) == (n == 1),
            lambda: f"{pod}: reported {sorted(changed)}, history differs",
        )
    with w.admin.connect() as c:
        stranded = c.execute(
            text(
                "SELECT count(*) FROM flight f WHERE f.status = 'RUNNING'"
                " AND f.stairway_id = :n AND NOT EXISTS (SELECT 1 FROM stairwayinstance"
                " i WHERE i.stairway_id = f.stairway_id)"
            ),
            {"n": pod},
        ).scalar_one()
        deleted_by_us = c.execute(
            text(
                "SELECT count(*) FROM stairway_ops.audit WHERE op_id = CAST(:op AS uuid)"
                " AND action = 'delete_instance'"
            ),
            {"op": op},
        ).scalar_one()
    t.check("no_stranded", stranded == 0, lambda: f"{pod}: {stranded} stranded ({label})")
    if rec is not None:
        # (before issue 12 a CHANGED instance recovery always deleted the row)
        deleted = getattr(rec, "instance_deleted", rec.outcome is Outcome.CHANGED)
        t.check(
            "audit_iff_applied",
            deleted_by_us == (1 if deleted else 0),
            lambda: f"{pod}: deleted {deleted}, audit {deleted_by_us}",
        )
        t.stats["row deleted" if deleted else f"row kept ({rec.outcome.value})"] += 1


def _instance_run(env: SoakEnv, trials: int, rng: random.Random) -> SoakResult:
    started = time.monotonic()
    t = Tally((*INVARIANTS, "no_stranded"))
    w = _world(env, rng)
    try:
        for _ in range(trials):
            _instance_trial(w, t)
    finally:
        w.close()
    return t.result("race.recover_instance", "library", trials, started, [])


register_soak(
    Soak(
        "race.recover_instance",
        "library",
        "recover a dead instance while a live pod's listener recovers it, or the pod comes back",
        (*INVARIANTS, "no_stranded"),
        _instance_run,
        full=1000,
        ci=40,
    )
)
