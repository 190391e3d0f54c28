"""Connection faults: kill the tool's database connection at a random point of a repair.

Each trial seeds a dead pod with three RUNNING flights, then runs detection, planning and the
apply (resume = disown + READY message, or fail = force FATAL, then the instance's recovery) while
one fault is armed:
- `faults.terminate`: `pg_terminate_backend` of the tool's busy session at a random moment;
- `faults.proxy`: our loopback proxy drops the connection after a random number of bytes (either
  way), just before a COMMIT reaches the server, or just before a COMMIT's acknowledgement
  reaches the tool (the change committed, the tool cannot know);
- one trial in ten of `faults.proxy` drops the very first connection of a fresh process.
Invariants:
- `applied_once`: each planned step changed its flight exactly once (the history) and the
  instance row was deleted once;
- `audited_once`: one audit row per applied step;
- `message_once`: one READY message per resumed flight;
- `outcome_as_documented`: every change is reported applied (fresh or replayed after a lost
  acknowledgement); a fault on the first connection of a process is `DatabaseUnreachable` with
  nothing changed.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from repairtool.detect import Action, Options, detect
from repairtool.errors import DatabaseUnreachable
from repairtool.liveness import from_names
from repairtool.repair import Outcomes, apply_plan, build_plan
from repairtool.stairway.audit import Actor
from repairtool.stairway.db import RetryPolicy
from repairtool.stairway.errors import OutcomeUnknown
from tests.reliability.harness import (
    FAST,
    RecordingQueue,
    compatible,
    history,
    insert_flight,
    new_id,
    register,
    tool_engine,
)
from tests.reliability.proxy import DropAfterBytes, DropBeforeCommit, DropCommitAck, FaultProxy
from tests.reliability.soak import Soak, SoakEnv, SoakResult, Tally
from tests.reliability.soak import register as register_soak

LIVE = "workspacemanager-deployment-live-0001"
APP = "repairtool-fault"
WHO = Actor(reason="connection fault soak", name="soak@example")
FLIGHTS = 3
INVARIANTS = ("applied_once", "audited_once", "message_once", "outcome_as_documented")


@dataclass
class Trial:
    pod: str
    flights: list[str]
    action: Action | None  # None: the proposed resume


def _seed(admin: Engine, rng: random.Random) -> Trial:
    pod = f"workspacemanager-deployment-dead-{rng.randrange(16**6):06x}"
    flights = [new_id() for _ in range(FLIGHTS)]
    with admin.begin() as c:
        register(c, pod)
        for f in flights:
            insert_flight(c, f, status="RUNNING", owner=pod)
    return Trial(pod, flights, rng.choice([None, None, Action.FAIL]))


def _repair(tool: Engine, queue: RecordingQueue, trial: Trial, policy: RetryPolicy) -> Outcomes:
    found = compatible(detect, tool, from_names([LIVE]), Options(), policy=policy)
    plan = build_plan(found, action=trial.action, queue=queue)
    return compatible(apply_plan, tool, plan, actor=WHO, queue=queue, policy=policy)


def _check(
    t: Tally,
    admin: Engine,
    queue: RecordingQueue,
    trial: Trial,
    out: Outcomes | None,
    error: BaseException | None,
    *,
    cold: bool = False,
) -> None:
    steps = (
        [("RUNNING", "FATAL")]
        if trial.action is Action.FAIL
        else [("RUNNING", "READY"), ("READY", "QUEUED")]
    )
    with admin.connect() as c:
        changes = {
            f: [
                (h.old_status, h.new_status)
                for h in history(c, f)
                if h.who.startswith("repairtool")
            ]
            for f in trial.flights
        }
        audits = dict(
            c.execute(
                text(
                    "SELECT flightid, count(*) FROM stairway_ops.audit WHERE flightid = ANY(:f)"
                    " GROUP BY flightid"
                ),
                {"f": trial.flights},
            ).all()
        )
        deleted = c.execute(
            text(
                "SELECT count(*) FROM stairway_ops.audit WHERE action = 'delete_instance'"
                " AND before->>'stairway_name' = :n"
            ),
            {"n": trial.pod},
        ).scalar_one()
        left = c.execute(
            text("SELECT count(*) FROM stairwayinstance WHERE stairway_name = :n"),
            {"n": trial.pod},
        ).scalar_one()
    if cold:
        t.check(
            "outcome_as_documented",
            isinstance(error, DatabaseUnreachable)
            and not isinstance(error, OutcomeUnknown)
            and all(v == [] for v in changes.values())
            and not audits
            and left == 1,
            lambda: f"cold start: error {error!r}, changes {changes}",
        )
        return
    t.check(
        "outcome_as_documented",
        error is None and out is not None and len(out.applied) == FLIGHTS + 1,
        lambda: f"{trial.pod}: error {error!r}, outcomes {out}",
    )
    t.check(
        "applied_once",
        all(changes[f] == steps for f in trial.flights) and deleted == 1 and left == 0,
        lambda: f"{trial.pod}: changes {changes}, instance deleted {deleted}×, left {left}",
    )
    t.check(
        "audited_once",
        all(audits.get(f, 0) == len(steps) for f in trial.flights),
        lambda: f"{trial.pod}: audit rows {audits}",
    )
    if trial.action is not Action.FAIL:
        t.check(
            "message_once",
            all(queue.count(f) == 1 for f in trial.flights),
            lambda: f"{trial.pod}: messages {[queue.count(f) for f in trial.flights]}",
        )


def _cleanup(admin: Engine, trial: Trial) -> None:
    with admin.begin() as c:
        c.execute(
            text(
                "UPDATE flight SET status = 'SUCCESS', stairway_id = NULL WHERE flightid = ANY(:f)"
            ),
            {"f": trial.flights},
        )
        c.execute(text("DELETE FROM stairwayinstance WHERE stairway_name <> :live"), {"live": LIVE})


def _setup(env: SoakEnv) -> tuple[URL, Engine, RecordingQueue]:
    url, admin = env.stairway_db()
    with admin.begin() as c:
        register(c, LIVE)
    queue = RecordingQueue("soak-project", "terra-soak-workspace-stairway", inner=env.queue)
    return url, admin, queue


# -- pg_terminate_backend -----------------------------------------------------------------------


def _killer(admin: Engine, at: float, done: threading.Event, landed: list[int]) -> None:
    """At `at` seconds, terminate the tool's busy session (retrying every millisecond until one
    is busy or the repair is over)."""
    time.sleep(at)
    with admin.connect() as c:
        while not done.is_set():
            c.execute(text("SELECT pg_stat_clear_snapshot()"))
            n = c.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = :a AND state <> 'idle'"
                    " AND pid <> pg_backend_pid()"
                ),
                {"a": APP},
            ).scalar_one()
            c.commit()
            if n:
                landed.append(n)
                return
            time.sleep(0.001)


def _terminate_run(env: SoakEnv, trials: int, rng: random.Random) -> SoakResult:
    started = time.monotonic()
    t = Tally(INVARIANTS)
    url, admin, queue = _setup(env)
    tool = tool_engine(url, app=APP)
    retries: list[str] = []
    policy = RetryPolicy(
        attempts=FAST.attempts,
        min_sleep=FAST.min_sleep,
        max_sleep=FAST.max_sleep,
        on_retry=lambda n, state, e: retries.append(state),
    )
    landed = 0
    try:
        # calibrate: how long a repair takes here without a fault
        spans = []
        for _ in range(3):
            trial = _seed(admin, rng)
            begin = time.monotonic()
            _repair(tool, queue, trial, policy)
            spans.append(time.monotonic() - begin)
            _cleanup(admin, trial)
        span = sorted(spans)[1]
        for _ in range(trials):
            trial = _seed(admin, rng)
            done = threading.Event()
            hits: list[int] = []
            killer = threading.Thread(
                target=_killer, args=(admin, rng.uniform(0, span), done, hits), daemon=True
            )
            killer.start()
            out: Outcomes | None = None
            error: BaseException | None = None
            try:
                out = _repair(tool, queue, trial, policy)
            except Exception as e:  # anything but a typed error is a violation, counted below
                error = e
            done.set()
            killer.join(10)
            landed += bool(hits)
            _check(t, admin, queue, trial, out, error)
            _cleanup(admin, trial)
    finally:
        tool.dispose()
        admin.dispose()
    t.stats["kills landed"] = landed
    t.stats["retries"] = len(retries)
    return t.result(
        "faults.terminate",
        "library",
        trials,
        started,
        [f"a clean repair (detect + plan + {FLIGHTS + 1} changes) takes {span * 1000:.0f} ms here"],
    )


register_soak(
    Soak(
        "faults.terminate",
        "library",
        "pg_terminate_backend of the tool's busy session at a random point of a repair",
        INVARIANTS,
        _terminate_run,
        full=160,
        ci=12,
    )
)


# -- the loopback proxy -------------------------------------------------------------------------


def _proxy_run(env: SoakEnv, trials: int, rng: random.Random) -> SoakResult:
    started = time.monotonic()
    t = Tally(INVARIANTS)
    url, admin, queue = _setup(env)
    assert url.port is not None
    landed = 0
    kinds: dict[str, int] = {}
    with FaultProxy(url.port) as proxy:
        via = url.set(port=proxy.port)
        tool = tool_engine(via, app=APP, sslmode_off=True)
        try:
            # calibrate: bytes and COMMITs of a clean repair, per kind of repair
            trial = _seed(admin, rng)
            _repair(tool, queue, trial, FAST)  # warm: the process has reached the server
            _cleanup(admin, trial)
            span: dict[Action | None, dict[str, int]] = {}
            commits: dict[Action | None, int] = {}
            for action in (None, Action.FAIL):
                before_bytes, before_commits = dict(proxy.bytes), proxy.commits
                trial = _seed(admin, rng)
                trial.action = action
                _repair(tool, queue, trial, FAST)
                _cleanup(admin, trial)
                span[action] = {d: proxy.bytes[d] - before_bytes[d] for d in proxy.bytes}
                commits[action] = proxy.commits - before_commits
            for n in range(trials):
                trial = _seed(admin, rng)
                cold = n % 10 == 9
                engine = tool_engine(via, app=APP, sslmode_off=True) if cold else tool
                fault: DropAfterBytes | DropBeforeCommit | DropCommitAck
                if cold:
                    fault = DropAfterBytes(rng.choice(["up", "down"]), rng.randint(0, 40))
                else:
                    pick = rng.random()
                    if pick < 0.4:
                        d = rng.choice(["up", "down"])
                        fault = DropAfterBytes(d, rng.randint(0, span[trial.action][d]))
                    elif pick < 0.7:
                        fault = DropBeforeCommit(rng.randint(1, commits[trial.action]))
                    else:
                        fault = DropCommitAck(rng.randint(1, commits[trial.action]))
                proxy.fired.clear()
                proxy.arm(fault)
                out: Outcomes | None = None
                error: BaseException | None = None
                try:
                    out = _repair(engine, queue, trial, FAST)
                except Exception as e:  # anything but a typed error is a violation, counted below
                    error = e
                proxy.disarm()
                if cold:
                    engine.dispose()
                if proxy.fired:
                    landed += 1
                    kinds[proxy.fired[0]] = kinds.get(proxy.fired[0], 0) + 1
                _check(t, admin, queue, trial, out, error, cold=cold and bool(proxy.fired))
                _cleanup(admin, trial)
        finally:
            tool.dispose()
            admin.dispose()
    t.stats["faults landed"] = landed
    for k, v in kinds.items():
        t.stats[k] = v
    return t.result(
        "faults.proxy",
        "library",
        trials,
        started,
        [
            f"a clean resume repair sends {span[None]['up']} bytes, receives"
            f" {span[None]['down']}, {commits[None]} COMMITs; a fail repair {commits[Action.FAIL]}"
        ],
    )


register_soak(
    Soak(
        "faults.proxy",
        "library",
        "the loopback proxy drops the connection at a random byte or around a COMMIT",
        INVARIANTS,
        _proxy_run,
        full=160,
        ci=15,
    )
)
