"""The journal (``stairway-ops.journal/1``) built from what a run did: each attempt's record
(pods, timeline, excerpts, evidence, final state, narrative, repair), and the parts that are
copies (the definition as it ran, the setup, the notes, the progress events)."""

from __future__ import annotations

import datetime as dt
import typing
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version

from opskit.cloudlogs import base_filter
from opskit.events import Collector, Event
from opskit.experiment.commands import CommandLog, CommandResult
from opskit.experiment.definition import ExperimentDefinition
from opskit.experiment.faults import FaultResult, KillOwnerResult
from opskit.experiment.lab import Lab, SubmittedFlight, Timeline
from opskit.experiment.narrative import root_cause, what_happened
from opskit.experiment.observe import FlightEnd, excerpts
from opskit.experiment.repair import RepairOutcome
from opskit.experiment.stage import Stage
from opskit.experiment.tools import ClientRun
from opskit.experiment.verdict import Observation
from opskit.journal import (
    SCHEMA,
    Attempt,
    DatabaseSetup,
    DelayHook,
    Deployment,
    EnvInfo,
    Expectation,
    Experiment,
    FinalState,
    Journal,
    JournalEvent,
    Kill,
    Pods,
    RepairSpec,
    Setup,
    SqlEvidence,
    SteadyState,
    Verdict,
    redact,
)
from opskit.journal import flight_status as journal_status
from repairtool.clock import rfc3339, utcnow

#: the journal schema's values of ``experiment.kill.target``
KILL_TARGETS: tuple[str, ...] = tuple(
    str(a) for a in typing.get_args(typing.get_type_hints(Kill)["target"])
)


def tool_version() -> str:
    try:
        return f"stairway-ops {version('stairway-ops')}"
    except PackageNotFoundError:  # pragma: no cover - not installed
        return "stairway-ops (not installed)"


#: the journal's ``experiment.kill.target`` of each fault
FAULT_TARGETS = {
    "kill-owner": "owner",
    "kill-idle-pod": "idle-pod",
    "drop-db-connections": "db-connections",
    "wsm-db-outage": "service-db",
}


def kill_target(defn: ExperimentDefinition) -> str:
    """What the fault hits, as ``opskit.journal.Kill.target`` names it (``owner`` with a note in
    the journal when the schema has no value for it)."""
    target = FAULT_TARGETS[defn.method.fault]
    return target if target in KILL_TARGETS else "owner"


def journal_experiment(defn: ExperimentDefinition) -> Experiment:
    """The definition as the journal records it (a copy, as Chaos Toolkit journals do)."""
    e = defn.expect
    return Experiment(
        name=defn.name,
        title=defn.title,
        description=defn.description,
        replicas=defn.replicas,
        reader=defn.reader,
        engine_version=defn.engine_version,
        delay_hook=DelayHook(
            flight_class=defn.delay.flight_class,
            step=defn.delay.step,
            duration_s=defn.delay.seconds,
        ),
        kill=Kill(when_step=defn.method.when_step, target=kill_target(defn)),  # type: ignore[arg-type]
        expect=Expectation(
            final_status=e.final_status,
            owner=None if e.owner == "none" else e.owner,
            findings=tuple(e.findings),
            log_lines=tuple(e.log_lines),
        ),
        repair=RepairSpec(
            action=defn.repair.first_action if defn.repair else None,
            reason=(defn.repair.first_reason or None) if defn.repair else None,
            steps=tuple(s.describe() for s in defn.repair.plan()) if defn.repair else None,
            expect_status=defn.repair.expect_status if defn.repair else None,
        ),
        queue=defn.queue,
        switches={
            phase: dict(values)
            for phase in ("before_fault", "after_fault", "after_detection")
            if (values := defn.method.switches.phase(phase))
        }
        or None,
    )


def setup_record(stage: Stage, deployed: CommandResult, connect: CommandResult) -> Setup:
    """The journal's setup: what was deployed, how, and where to look."""
    return Setup(
        code_changes=tuple(stage.code_changes()),
        deployment=Deployment(
            command=deployed.record.command,
            output_tail=deployed.record.output_tail,
            seconds=deployed.record.duration_s,
        ),
        server_spec=stage.server_spec(),
        suite=stage.suite(),
        database=DatabaseSetup(
            connect_command=connect.record.command,
            notes=(
                "Look at `flight`, `flightinput`, `flightlog` and `stairwayinstance`; the audit"
                " trail of repairs is `repairtool flights audit`.",
                "The password comes from PGPASSWORD or ~/.pgpass; it is never in a command line.",
            ),
        ),
        logs_query="\n".join(base_filter(stage.platform.log_scope())),
    )


def run_notes(defn: ExperimentDefinition, stage: Stage) -> list[str]:
    """How the commands ran (what a reader of the runbook must know), and the definition's."""
    overrides = " ".join(f"{k}={v}" for k, v in stage.env_overrides().items())
    out = [
        f"Every command above ran from the project root with {overrides} (this run's"
        " sandbox and artifacts) and the project's virtualenv first on PATH; psql got the"
        " password through PGPASSWORD.",
    ]
    if not defn.kills_owner and kill_target(defn) == "owner":
        out.append(
            f"No owner pod was killed: the fault was {defn.method.fault} (the journal schema's"
            " `kill.target` has no value for that yet)."
        )
    out += list(defn.notes)
    return out


def journal_events(collector: Collector, mask: Callable[[str], str]) -> tuple[JournalEvent, ...]:
    """The run's progress events, masked; the commands' output is in ``commands[]`` instead."""
    out: list[JournalEvent] = []
    for ev in collector.events:
        if ev.kind == "command.output":
            continue  # the commands' output is in commands[] and <run>/commands/*.log
        masked = Event(
            kind=ev.kind,
            message=mask(ev.message),
            level=ev.level,
            at=ev.at,
            data={k: mask(v) if isinstance(v, str) else v for k, v in ev.data.items()},
        )
        out.append(JournalEvent.from_event(masked))
    return tuple(out)


def attempt_record(
    lab: Lab,
    number: int,
    title: str,
    flight: SubmittedFlight,
    started: dt.datetime,
    end: FlightEnd,
    fault: FaultResult,
    obs: Observation,
    client: ClientRun,
    timeline: Timeline,
    evidence: tuple[SqlEvidence, ...],
    fixed: RepairOutcome,
    verdict: Verdict,
) -> Attempt:
    """One attempt as the journal records it."""
    takers = end.takers
    killed = fault.killed if isinstance(fault, KillOwnerResult) else None
    return Attempt(
        number=number,
        title=title,
        flight_id=flight.flight_id,
        started=rfc3339(started),
        ended=rfc3339(utcnow()),
        pods=Pods(
            receiver=flight.receiver,
            owner=end.owner or (takers[-1] if takers else flight.receiver),
            killed=killed,
            replacement=fault.replacement if isinstance(fault, KillOwnerResult) else None,
            survivors=obs.survivors,
        ),
        timeline=timeline.sorted(),
        log_excerpts=excerpts(lab, end.lines, end.events, obs),
        sql_evidence=evidence,
        final_state=FinalState(
            status=journal_status(end.status),
            owner=end.owner,
            owner_alive=end.owner_alive,
            completed_time=end.completed_time,
            last_step=max((s for s, _ in end.steps), default=None),
        ),
        what_happened=what_happened(lab.defn, flight, fault, obs, end.events, takers, client),
        root_cause=root_cause(lab.defn, obs, end.events),
        verdict=verdict,
        repair=fixed.record(),
    )


def journal_record(
    *,
    run_id: str,
    defn: ExperimentDefinition,
    stage: Stage,
    env_info: EnvInfo,
    setup: Setup,
    cmds: CommandLog,
    started: dt.datetime,
    ended: dt.datetime,
    status: typing.Literal["completed", "failed", "aborted"],
    verdict: Verdict,
    fail_step: str | None,
    runs: Sequence[tuple[Attempt, SteadyState, SteadyState]],
    steady_before: SteadyState | None,
    notes: Sequence[str],
) -> Journal:
    """The run's journal (its ``events`` are added last, once the run reported its end)."""
    empty = SteadyState(ok=False, probes=())
    return Journal(
        run_id=run_id,
        schema=SCHEMA,
        tool_version=tool_version(),
        experiment=journal_experiment(defn),
        env=env_info,
        started=rfc3339(started),
        ended=rfc3339(ended),
        duration_s=round((ended - started).total_seconds(), 1),
        status=status,
        deviated=verdict != "pass",
        verdict=verdict,
        fail_step=fail_step,
        setup=setup,
        commands=cmds.records,
        steady_state_before=steady_before or empty,
        steady_state_after=runs[-1][2] if runs else empty,
        attempts=tuple(attempt for attempt, _, _ in runs),
        notes=tuple(redact(x, cmds.secrets) for x in [*notes, *run_notes(defn, stage)]),
        events=(),
    )
