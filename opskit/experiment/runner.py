"""Run an experiment (:func:`run_experiment`): the sequence only.

deploy → connect → per attempt: steady state before → method (start the flight, inject the
fault) → observe → repair → steady state after → verdict → the journal. What each step does is
in its own module (see :mod:`opskit.experiment`); every command is a real process recorded in
the journal, and the same sequence runs on GKE: only the stage differs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from opskit import paths
from opskit.engine_events import flight_timeline
from opskit.envs import Env
from opskit.errors import OperationFailed, OpsError, OpsTimeout, UsageError
from opskit.events import Collector, JournalWriter, Reporter
from opskit.experiment.commands import CommandLog
from opskit.experiment.db import ExperimentDb
from opskit.experiment.definition import SWITCH_DEFAULTS, ExperimentDefinition
from opskit.experiment.faults import KillOwnerResult, fault_for, fault_title
from opskit.experiment.lab import Lab, Timeline
from opskit.experiment.latency import recovery_of
from opskit.experiment.narrative import client_saw
from opskit.experiment.observe import (
    flight_end,
    log_lines,
    recoverer,
    sql_evidence,
    steady_state,
    wait_for_flight,
    wait_settled,
)
from opskit.experiment.podwatch import PodWatch
from opskit.experiment.record import attempt_record, journal_events, journal_record, setup_record
from opskit.experiment.repair import repair
from opskit.experiment.stage import LocalStage, stage_for
from opskit.experiment.tools import Tools
from opskit.experiment.verdict import (
    Check,
    Observation,
    findings_seen,
    first_failure,
    judge,
    verdict_of,
)
from opskit.journal import Attempt, Journal, SteadyState, relative_to_project, write
from opskit.journey import JOURNEY_TOKEN
from repairtool.clock import rfc3339, utcnow

JOURNAL_FILE = "journal.json"


class SteadyStateFailed(OperationFailed):
    """The steady state before an attempt does not hold: the method is not run."""

    def __init__(self, message: str, state: SteadyState) -> None:
        super().__init__(message)
        self.state = state


@dataclass(frozen=True)
class AttemptRun:
    """One attempt's record, its checks, and the steady state around it."""

    attempt: Attempt
    checks: tuple[Check, ...]
    before: SteadyState
    after: SteadyState


def _switches(lab: Lab, values: dict[str, bool], tl: Timeline) -> None:
    """Set sandbox switches (``python -m sandbox switches``), recorded in the timeline."""
    if not values:
        return
    stage = lab.stage
    if not isinstance(stage, LocalStage):
        raise UsageError("sandbox switches need a local environment")
    lab.tools.switches(stage.sandbox_dir, values)
    tl.add("tool", "switches", ", ".join(f"{k} {'on' if v else 'off'}" for k, v in values.items()))


def run_attempt(lab: Lab, number: int, total: int) -> AttemptRun:
    """One attempt: steady state → method → observe → repair → steady state → verdict."""
    d, rep, started, tl = lab.defn, lab.rep, utcnow(), Timeline()
    title = fault_title(d)
    rep.emit("attempt.started", f"attempt {number}/{total}: {title}", attempt=number)
    before = steady_state(lab, "before", lab.tools.orphans("steady-state-orphans"))
    tl.add("tool", "steady-state-before", "ok" if before.ok else "NOT OK")
    if not before.ok:
        bad = "; ".join(f"{p.name}: {p.detail}" for p in before.probes if not p.ok)
        raise SteadyStateFailed(
            f"attempt {number}: steady state before does not hold: {bad}", before
        )
    watch = PodWatch(lab.stage.platform).start()
    switched = d.method.switches
    try:
        return _attempt(lab, number, title, started, tl, before, watch)
    except BaseException:
        watch.stop()
        if switched.any:  # switch back whatever was switched before the error is recorded
            with contextlib.suppress(OpsError):
                defaults = {k: SWITCH_DEFAULTS[k] for k in switched.touched()}
                _switches(lab, defaults, Timeline())
        raise


def _attempt(
    lab: Lab,
    number: int,
    title: str,
    started: dt.datetime,
    tl: Timeline,
    before: SteadyState,
    watch: PodWatch,
) -> AttemptRun:
    d, rep = lab.defn, lab.rep
    switched = d.method.switches
    _switches(lab, switched.phase("before_fault"), tl)
    # the method: the client starts the flight, the fault hits it inside the delayed step
    since = lab.db.now()
    running, out = lab.tools.start_run_test()
    tl.add("tool", "run-test", "started the WorkspaceLifecycle journey")
    flight = wait_for_flight(lab, since, running.running)
    if flight is None:
        rc = lab.tools.finish_run_test(running, out, 0).rc
        if rc is None:
            raise OpsTimeout("no flight was submitted within 60 s of `inv run-test`")
        raise OperationFailed(f"`inv run-test` ended (exit {rc}) before a flight was submitted")
    fid = flight.flight_id
    cls = d.delay.flight_class.rsplit(".", 1)[-1]
    tl.add("db", "submitted", f"flight {fid} submitted ({cls})", flight.receiver, flight.submitted)
    rep.emit("flight.submitted", f"flight {fid} submitted on {flight.receiver}", flight_id=fid)
    fault = fault_for(lab)
    try:
        result = fault.inject(flight)
    except OpsError as exc:
        result = fault.failed(str(exc))
        tl.add("tool", "method-failed", str(exc))
    tl.extend(result.timeline)
    killed, replacement = (
        (result.killed, result.replacement) if isinstance(result, KillOwnerResult) else (None, None)
    )
    _switches(lab, switched.phase("after_fault"), tl)
    # observe
    wait_settled(lab, flight, started, killed, replacement)
    client = lab.tools.finish_run_test(running, out, max(1.0, d.method.observe(d.delay) / 2))
    tl.add("tool", "client", client_saw(client))
    end = flight_end(lab, flight, started)
    end_at = max((i.at for i in end.events), default=started)
    for item in end.events:
        if item.at >= started - dt.timedelta(seconds=2):
            tl.add("log", item.event.kind.value, item.summary(), item.pod or None, item.at)
    tl.add("db", "final-state", f"flight {end.status}, owner {end.owner or 'none'}", end.owner)
    lab.tools.look(fid)
    evidence = sql_evidence(lab, fid)
    # repair, and the steady state after it (with the switches back to normal)
    fixed = repair(
        lab, fid, killed=killed, switch=lambda phase: _switches(lab, switched.phase(phase), tl)
    )
    tl.extend(fixed.timeline)
    if switched.any:
        _switches(lab, {k: SWITCH_DEFAULTS[k] for k in switched.touched()}, tl)
    after = steady_state(lab, "after", fixed.recheck, wait=30.0)
    tl.add("tool", "steady-state-after", "ok" if after.ok else "NOT OK")
    lives = watch.stop()
    # the verdict
    obs = Observation(
        flight_id=fid,
        final_status=end.status,
        owner=end.owner,
        owner_alive=end.owner_alive,
        killed=killed,
        replacement=replacement,
        survivors=result.survivors if isinstance(result, KillOwnerResult) else (),
        recoverer=recoverer(killed, end.lines),
        messages=tuple(ln.message for ln in end.lines),
        steps=end.steps,
        findings=findings_seen(fixed.dry_run),
        repaired_status=fixed.repaired_status,
        recheck_findings=len(fixed.recheck.get("findings") or []),
        steady_after=after.ok,
        method_error=result.error,
        repair_steps=tuple(
            (spec.describe(), spec.expect_status, rec.status_after, rec.status_after_hold)
            for spec, rec in zip(d.repair.plan() if d.repair else (), fixed.steps, strict=False)
        ),
        instance_after=fixed.instance_after,
    )
    checks = judge(d, obs)
    verdict, bad_check = verdict_of(checks), first_failure(checks)
    failed = f"; first failed: {bad_check.name}: {bad_check.detail}" if bad_check else ""
    tl.add("tool", "verdict", f"{verdict}: {len(checks)} checks{failed}")
    for c in checks:
        level: Literal["info", "warn"] = "info" if c.ok else "warn"
        mark = "ok " if c.ok else "FAIL"
        rep.emit("attempt.check", f"  {mark} {c.name}: {c.detail}", level=level, check=c.name)
    attempt = attempt_record(
        lab, number, title, flight, started, end, result, obs, client, tl, evidence, fixed, verdict
    )
    # the engine's lines once everything (repair included) happened: what the repair made it
    # do joins the timeline, and the resume latency is read from them
    events = flight_timeline(log_lines(lab, flight, started), fid)
    seen = {(x.at, x.pod, x.source, x.event) for x in attempt.timeline}
    later = Timeline()
    for item in events:
        key = (rfc3339(item.at), item.pod or None, "log", item.event.kind.value)
        if item.at > end_at and key not in seen:
            later.add("log", item.event.kind.value, item.summary(), item.pod or None, item.at)
    final = flight_end(lab, flight, started)
    recovery = (
        recovery_of(killed, result.timeline, events, final.completed_time, d.queue, final.status)
        if d.kills_owner and killed
        else None
    )
    attempt = dataclasses.replace(
        attempt,
        timeline=tuple(sorted((*attempt.timeline, *later.entries), key=lambda t: t.at)),
        pod_lives=lives or None,
        recovery=recovery,
    )
    why = f" ({bad_check.name}: {bad_check.detail})" if bad_check else ""
    rep.emit(
        "attempt.verdict",
        f"attempt {number}: {verdict.upper()}{why}",
        level="info" if verdict == "pass" else "warn",
        attempt=number,
        verdict=verdict,
    )
    return AttemptRun(attempt, checks, before, after)


@dataclass
class _Attempts:
    """The attempts of a run as they finish (or stop the run)."""

    runs: list[AttemptRun] = field(default_factory=list)
    befores: list[SteadyState] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    status: Literal["completed", "failed", "aborted"] = "completed"
    fail_step: str | None = None
    interrupted: BaseException | None = None

    def run(self, lab: Lab, n: int) -> None:
        try:
            for number in range(1, n + 1):
                try:
                    done = run_attempt(lab, number, n)
                except SteadyStateFailed as exc:
                    self.status, self.fail_step = "failed", f"attempt {number}: steady-state-before"
                    self.befores.append(exc.state)
                    self.notes.append(str(exc))
                    lab.rep.emit("experiment.aborted", str(exc), level="error")
                    return
                except Exception as exc:  # recorded: the journal is the run's record
                    what = f"attempt {number}: {type(exc).__name__}"
                    first = (str(exc).strip().splitlines() or [""])[0]
                    self.status, self.fail_step = "failed", what
                    self.notes.append(f"{what}: {first}")
                    lab.rep.emit("experiment.error", f"{what}: {first}", level="error")
                    return
                self.runs.append(done)
                self.befores.append(done.before)
                bad = first_failure(done.checks)
                if bad is not None:
                    self.notes.append(f"attempt {number} deviated: {bad.name}: {bad.detail}")
                    self.fail_step = self.fail_step or f"attempt {number}: {bad.name}"
        except KeyboardInterrupt as exc:
            self.status, self.interrupted = "aborted", exc
            self.notes.append("interrupted by the operator")

    def verdict(self) -> Literal["pass", "fail"]:
        ok = self.status == "completed" and all(verdict_of(r.checks) == "pass" for r in self.runs)
        return "pass" if ok else "fail"


def run_experiment(
    definition: ExperimentDefinition,
    env: Env,
    *,
    run_dir: Path,
    reporter: Reporter | None = None,
    attempts: int | None = None,
    c: Any = None,
    keep_sandbox: bool = False,
    state_dir: Path | None = None,
) -> Journal:
    """Run ``definition`` on ``env`` and write ``<run_dir>/journal.json``; returns the journal.

    ``env``: ``local`` (a sandbox of the experiment's own in ``state_dir``, default
    ``<state>/experiments/<name>``, destroyed unless ``keep_sandbox``) or ``gke`` (``inv
    deploy``; ``c``, an Invoke context, runs the Cloud SQL proxy). ``run_dir`` is
    ``artifacts/<run-id>``. Progress goes to ``reporter`` and into the journal. An
    :class:`OpsError` means the run could not start (deploy, database); once attempts ran,
    problems are recorded in the journal (``status: failed``) instead.
    """
    n = attempts or definition.attempts
    if n < 1:
        raise UsageError("attempts must be >= 1")
    run_dir.mkdir(parents=True, exist_ok=True)
    rep = reporter or Reporter([JournalWriter(run_dir / "events.jsonl")])
    collector = Collector()
    rep.add(collector)
    started = utcnow()
    stage = stage_for(env, definition, run_dir, rep, state_root=state_dir, keep=keep_sandbox)
    cmds = CommandLog(
        cwd=paths.PROJECT_ROOT,
        env=stage.command_env(),
        reporter=rep,
        log_dir=run_dir / "commands",
        secrets=[JOURNEY_TOKEN],
    )
    d, done = definition, _Attempts()
    tools = Tools(d, env.name, cmds, run_dir / "results")
    rep.emit("experiment.started", f"{d.name} on {env.name}: {d.summary()}, {n} attempt(s)")
    try:
        deployed = stage.deploy(cmds)
        with stage.database(c) as target:
            for secret in stage.secrets(target):
                cmds.add_secret(secret)
            db = ExperimentDb(target)
            try:
                setup = setup_record(stage, deployed, tools.connect_db(target))
                env_info = stage.env_info(target)
                done.run(Lab(d, stage, tools, db, target, rep), n)
            finally:
                cmds.stop_all()
                db.close()
    finally:
        cmds.stop_all()
        with contextlib.suppress(Exception):  # tear-down must not hide the run's own error
            stage.close()
    verdict, ended = done.verdict(), utcnow()
    journal = journal_record(
        run_id=run_dir.name,
        defn=d,
        stage=stage,
        env_info=env_info,
        setup=setup,
        cmds=cmds,
        started=started,
        ended=ended,
        status=done.status,
        verdict=verdict,
        fail_step=done.fail_step,
        runs=[(r.attempt, r.before, r.after) for r in done.runs],
        steady_before=done.befores[0] if done.befores else None,
        notes=done.notes,
    )
    rep.emit(
        "experiment.finished",
        f"{d.name}: {verdict.upper()} ({done.status}) in {journal.duration_s:g}s",
        level="info" if verdict == "pass" else "warn",
        verdict=verdict,
    )
    journal = dataclasses.replace(journal, events=journal_events(collector, cmds.mask))
    journal = relative_to_project(journal, paths.PROJECT_ROOT, source=str(run_dir / JOURNAL_FILE))
    write(journal, run_dir / JOURNAL_FILE, secrets=cmds.secrets)
    if done.interrupted is not None:
        raise done.interrupted
    return journal
