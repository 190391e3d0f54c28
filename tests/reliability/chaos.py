"""Chaos in the sandbox: pods killed at random steps of many concurrent flights, database
connections dropped, pod watches lost — then `repairtool orphans` must account for every flight
that did not finish, with the right kind, and `--fix` must bring each one to an end.

A round starts a sandbox (3 replicas, the DelayHook on step 0 or 1, the Pub/Sub emulator when
installed; the engine generation alternates between the 2021 reader 0.0.60, whose takeovers end
in the make-flight failure, and 1.1.14), keeps at least 20 `WorkspaceCreateFlight`s running,
and meanwhile, every 0.2–0.8 s: deletes a pod (mostly one that owns a RUNNING flight, through
the official kubernetes client: SIGKILL, as in 2021), terminates a pod's database sessions
(`pg_terminate_backend`), or flips the sandbox switches (pod watch dropped: listeners miss the
DELETED event; replacement off: no pod starts to recover). The last kill happens with the watch
dropped and no replacement, so a dead owner's flights are left for the tool. Then, once nothing
has changed for 11 s (the work queue's ack deadline and a second):
- `settled`: every flight is terminal, or `repairtool orphans --kube` reports it with the kind
  the ground truth gives — RUNNING with no live pod: `dead_owner`; RUNNING on a live pod:
  `stalled`; READY/READY_TO_RESTART/QUEUED and unowned: `unqueued`;
- `fixed`: after `repairtool orphans --fix` (and, for a `stalled` flight it refuses without
  evidence, `--force` on that flight — an operator's decision), every reported flight ends
  SUCCESS, ERROR or FATAL;
- `cli_outcome`: every repairtool run has a documented exit code and no traceback.
Trials are pod kills; the notes say how many flights ran, at which step the kills landed and
how many database sessions were dropped.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text

from sandbox.config import DelayHookConfig, SandboxConfig
from sandbox.lifecycle import SandboxError, SandboxHandle, destroy, down, up
from sandbox.pubsub_emulator import find_launcher
from tests.reliability.clirun import CliRun, clean_env, problems, run_process
from tests.reliability.soak import Soak, SoakEnv, SoakResult, Tally
from tests.reliability.soak import register as register_soak

INVARIANTS = ("settled", "fixed", "cli_outcome")
TERMINAL = ("SUCCESS", "ERROR", "FATAL")
CONCURRENT = 20
KILLS_PER_ROUND = 30
STABLE_SECONDS = 11.0  # the work queue's ack deadline (10 s) and a second


@dataclass
class Round:
    h: SandboxHandle
    rng: random.Random
    t: Tally
    flights: list[str] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    kills: int = 0
    drops: int = 0
    _core: Any = None

    def delete_pod(self, name: str) -> None:
        """Through the official kubernetes client (one for the round)."""
        if self._core is None:
            self._core = self.h.core_v1()
        self._core.delete_namespaced_pod(name, self.h.namespace)

    def submit(self, pods: list[str]) -> None:
        """One `POST /api/workspaces/v1` on a random ready pod (it blocks: a thread)."""
        if not pods:
            return
        flight, pod = str(uuid.uuid4()), self.rng.choice(pods)
        self.flights.append(flight)
        thread = threading.Thread(target=_post, args=(self.h, pod, flight), daemon=True)
        thread.start()
        self.threads.append(thread)

    def rows(self) -> dict[str, tuple[str, str | None, int]]:
        """flight → (status, owner, flight log rows)."""
        with self.h.engine().connect() as c:
            return {
                r[0]: (str(r[1]), r[2], int(r[3]))
                for r in c.execute(
                    text(
                        "SELECT f.flightid, f.status, f.stairway_id, (SELECT count(*) FROM"
                        " flightlog l WHERE l.flightid = f.flightid) FROM flight f"
                        " WHERE f.flightid = ANY(:ids)"
                    ),
                    {"ids": self.flights},
                ).all()
            }

    def live_pods(self) -> set[str]:
        return {p["name"] for p in self.h.pods() if not p["terminating"]}

    def kill(self, pods: list[str], rows: dict[str, tuple[str, str | None, int]]) -> None:
        """Delete a ready pod (mostly one that owns a RUNNING flight); two stay alive."""
        if len(pods) < 3:
            self.t.stats["kills skipped: two pods must stay alive"] += 1
            return
        owners = {o for s, o, _ in rows.values() if s == "RUNNING" and o in pods}
        choices = sorted(owners) if owners and self.rng.random() < 0.8 else pods
        victim = self.rng.choice(choices)
        steps = sorted({n for s, o, n in rows.values() if s == "RUNNING" and o == victim})
        self.t.stats["kills landing in step " + ("/".join(map(str, steps)) or "-")] += 1
        try:
            self.delete_pod(victim)
            self.kills += 1
        except Exception:  # the pod went away by itself meanwhile
            self.t.stats["kill of a pod already gone"] += 1

    def drop_connections(self) -> None:
        with self.h.engine().connect() as c:
            n = c.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE"
                    " application_name LIKE :p AND pid <> pg_backend_pid()"
                ),
                {"p": f"{self.h.config.deployment_name}%"},
            ).scalar_one()
            c.commit()
        self.drops += int(n)

    def settle(self, timeout: float = 120.0) -> None:
        """Wait until no flight changed (status, owner, log rows) for STABLE_SECONDS."""
        last, since, deadline = self.rows(), time.monotonic(), time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(1.0)
            now = self.rows()
            if now != last:
                last, since = now, time.monotonic()
            elif (
                all(s in TERMINAL for s, _, _ in now.values())
                or time.monotonic() - since >= STABLE_SECONDS
            ):
                return
        self.t.stats["rounds that never settled"] += 1

    def repairtool(self, *args: str) -> tuple[CliRun, dict[str, Any] | None]:
        """`repairtool orphans` as an operator runs it against the sandbox (a real process)."""
        h = self.h
        argv = [
            "orphans", "--json", "--db", h.stairway_tcp_url().render_as_string(hide_password=False),
            "--kube", "--kubeconfig", str(h.kubeconfig), "--namespace", h.namespace,
            "--stalled-after", "5s", "--unqueued-after", "5s", "--queue-retention", "10s", *args,
        ]  # fmt: skip
        env = clean_env(state_dir=str(h.state_dir / "repairtool"))
        if h.emulator_host:
            env["PUBSUB_EMULATOR_HOST"] = h.emulator_host
            argv += ["--cluster", h.config.stairway_cluster_name, "--project", h.config.project_id]
        run = run_process(argv, env=env, timeout=180)
        p = problems(run)
        self.t.check(
            "cli_outcome",
            not (p.traceback or p.exit_code or p.one_line),
            lambda: f"{p.traceback or p.exit_code or p.one_line}",
        )
        try:
            doc = json.loads(run.stdout)
        except ValueError:
            doc = None
        return run, doc


def _expected(status: str, owner: str | None, live: set[str]) -> str:
    if status in TERMINAL:
        return ""
    if status == "RUNNING":
        return "stalled" if owner in live else "dead_owner"
    return "unqueued"


def _round(env_dir: Path, rng: random.Random, t: Tally, kills: int, version: str, step: int) -> int:
    delay = DelayHookConfig(step_index=step, seconds=rng.uniform(1.5, 3.0))
    t.stats[f"rounds delaying step {step}"] += 1
    config = SandboxConfig(
        state_dir=env_dir,
        replicas=3,
        engine_version=version,
        delay=delay,
        ack_deadline_seconds=10,
        job_timeout_seconds=120.0,
        log_state_transitions=False,
    )
    began = time.monotonic()
    h = up(config)
    r = Round(h, rng, t)
    t.stats["seconds starting sandboxes"] += int(time.monotonic() - began)
    try:
        pods = h.wait_ready()
        for _ in range(CONCURRENT):
            r.submit(pods)
        while r.kills < kills - 1:
            pods, rows = h.ready_pods(), r.rows()
            running = sum(1 for st, _, _ in rows.values() if st not in TERMINAL)
            for _ in range(CONCURRENT - running):
                r.submit(pods)
            pick = rng.random()
            if pick < 0.65:
                r.kill(pods, rows)
            elif pick < 0.8:
                r.drop_connections()
            elif pick < 0.9:
                h.set_switches(pod_watch_dropped=rng.random() < 0.5)
            else:
                h.set_switches(replace_deleted_pods=rng.random() < 0.6)
            if len(pods) < 3:  # the replica set replaces the pods that were killed
                h.set_switches(replace_deleted_pods=True)
            if len(pods) < 2:
                _wait_pods(h, t)
            time.sleep(rng.uniform(0.2, 0.8))
        _last_kill(r)
        t.stats["seconds of chaos"] += int(time.monotonic() - began)
        settling = time.monotonic()
        r.settle()
        t.stats["seconds settling"] += int(time.monotonic() - settling)
        _check(r)
    finally:
        t.stats[f"flights run ({version})"] += len(r.flights)
        t.stats["seconds in rounds"] += int(time.monotonic() - began)
        t.stats["database sessions dropped"] += r.drops
        h.down()
        for thread in r.threads:
            thread.join(0.1)
    return r.kills


def _wait_pods(h: SandboxHandle, t: Tally, want: int = 2) -> None:
    try:
        h.wait_ready(want, timeout=90)
    except SandboxError:  # a slow machine: go on with what runs (counted)
        t.stats["waits for a replacement pod that timed out"] += 1


def _last_kill(r: Round) -> None:
    """The last kill: flights running on the victim, nobody sees it die (watch dropped) and
    nobody replaces it — so that its flights are left for the tool."""
    h = r.h
    # no pod may be starting when the victim dies: a pod's start-up recovers every registered
    # instance without a pod (the engine doing its job) — so the replicas first, then no more
    h.set_switches(replace_deleted_pods=True, pod_watch_dropped=False)
    _wait_pods(h, r.t, h.config.replicas)
    h.set_switches(replace_deleted_pods=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(
        not p["ready"] and not p["terminating"] for p in h.pods()
    ):
        time.sleep(0.2)
    pods = h.ready_pods()
    if len(pods) < 2:
        return
    victim = r.rng.choice(pods)
    mine = []
    for _ in range(3):
        flight = str(uuid.uuid4())
        mine.append(flight)
        r.flights.append(flight)
        thread = threading.Thread(target=lambda f=flight: _post(h, victim, f), daemon=True)
        thread.start()
        r.threads.append(thread)
    delayed = h.config.delay.step_index if h.config.delay else 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # all three in the delayed step on the victim
        rows = r.rows()
        if all(rows.get(f, ("", None, -1)) == ("RUNNING", victim, delayed) for f in mine):
            break
        time.sleep(0.1)
    h.set_switches(pod_watch_dropped=True, replace_deleted_pods=False)
    steps = sorted({r.rows().get(f, ("", None, -1))[2] for f in mine})
    r.t.stats["kills landing in step " + "/".join(map(str, steps))] += 1
    r.delete_pod(victim)
    r.kills += 1


def _post(h: SandboxHandle, pod: str, flight: str) -> None:
    with contextlib.suppress(Exception):  # the pod dies under the request: that is the point
        h.request(
            "POST",
            "/api/workspaces/v1",
            {"id": str(uuid.uuid4()), "jobId": flight, "stage": "MC_WORKSPACE"},
            pod=pod,
            timeout=120,
        )


def _check(r: Round) -> None:
    t = r.t
    _, doc = r.repairtool()
    live = r.live_pods()
    rows = r.rows()
    reported = {
        f["flight_id"]: f["kind"] for f in (doc or {}).get("findings", []) if f.get("flight_id")
    }
    for flight, (status, owner, _) in rows.items():
        want = _expected(status, owner, live)
        if not want:
            continue
        t.stats[f"left {want}"] += 1
        if reported.get(flight) != want:  # a moment later it may have moved on by itself
            time.sleep(2.0)
            status, owner, _ = r.rows()[flight]
            want = _expected(status, owner, r.live_pods())
        t.check(
            "settled",
            not want or reported.get(flight) == want,
            lambda f=flight, w=want, s=status: (
                f"{f} is {s} (expected {w}), reported {reported.get(f)!r}"
            ),
        )
    if not reported:
        return
    _, fixed = r.repairtool("--fix", "--yes", "--reason", "chaos soak")
    stalled = [
        x["flight_id"]
        for x in (fixed or {}).get("refused", [])
        if x.get("kind") == "stalled" and x.get("flight_id")
    ]
    if stalled:  # an operator who checked the pod forces these (they are stuck on a live pod)
        t.stats["forced after checking"] += len(stalled)
        flags = [a for f in stalled for a in ("--flight", f)]
        r.repairtool(*flags, "--force", "--fix", "--yes", "--reason", "chaos soak: forced")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        now = r.rows()
        if all(now[f][0] in TERMINAL for f in reported if f in now):
            break
        time.sleep(1.0)
    now = r.rows()
    for flight in reported:
        t.check(
            "fixed",
            flight not in now or now[flight][0] in TERMINAL,
            lambda f=flight: f"{f} still {now[f][0]} owned by {now[f][1]} after --fix",
        )
    t.stats["reported, then fixed"] += sum(
        1 for f in reported if f not in now or now[f][0] in TERMINAL
    )


def _soak(env: SoakEnv, trials: int, rng: random.Random) -> SoakResult:
    started = time.monotonic()
    t = Tally(INVARIANTS)
    rounds = max(1, -(-trials // KILLS_PER_ROUND))
    notes = []
    if find_launcher() is None:
        notes.append("no Pub/Sub emulator: the sandbox resumes READY flights at pod starts only")
    kills = 0
    first_step = rng.randrange(2)
    for n in range(rounds):
        want = -(-(trials - kills) // (rounds - n))
        state = Path(tempfile.mkdtemp(prefix="chaos-"))
        try:
            version = ("0.0.60", "1.1.14")[n % 2]
            kills += _round(state, rng, t, want, version, (first_step + n // 2) % 2)
        finally:
            down(state)
            destroy(state)
            shutil.rmtree(state, ignore_errors=True)
    return t.result("sandbox.chaos", "sandbox", kills, started, notes)


register_soak(
    Soak(
        "sandbox.chaos",
        "sandbox",
        "pods killed at random steps of ≥20 concurrent flights, database sessions dropped, pod"
        " watches lost; then repairtool orphans accounts for every unfinished flight and --fix",
        INVARIANTS,
        _soak,
        full=60,
        ci=6,
    )
)
