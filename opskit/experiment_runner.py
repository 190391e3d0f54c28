"""Run an experiment (:func:`run_experiment`) and write its journal.

One run: deploy (``deploy``), connect to the Stairway database (``connect-db``), then per
attempt, as a Chaos Toolkit run with a Litmus verdict:

1. **steady state before**: the pods are Ready and ``repairtool orphans`` finds nothing stuck;
2. **method**: ``inv run-test`` starts the WorkspaceLifecycle journey (the flight is found in the
   database), and inside the delayed step either ``inv kill-pod --flight ID --when-step N`` kills
   its owner, or the runner holds the flight's row from its own connection until the engine waits
   on it and ``psql … pg_terminate_backend(…)`` cuts the service's and the tools' connections;
3. **observation**: the flight followed until it ends or the expected log lines are all there;
   engine events from the logs (:mod:`opskit.cloudlogs`, :mod:`opskit.engine_events`), the flight
   row and log, pod events (from ``kill-pod``), and the commands an operator would run
   (``inv logs``, ``repairtool flights …``, ``repairtool decode``);
4. **repair**: ``repairtool orphans`` dry run (human and ``--json``), ``--fix`` when the
   experiment says so, the audit rows, the state after repair, and a re-check;
5. **steady state after** and the **verdict** (:func:`opskit.experiment.judge`).

Every command is a real process recorded in the journal (:mod:`opskit.experiment_commands`).
The same code runs on GKE: only the stage differs (:mod:`opskit.experiment_stage`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import math
import re
import time
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

from opskit import paths
from opskit.cloudlogs import ENGINE_PHRASES, base_filter
from opskit.dbproxy import DbTarget
from opskit.engine_events import Kind, LogLine, TimelineItem, classify_all, flight_timeline
from opskit.envs import Env
from opskit.errors import OperationFailed, OpsError, OpsTimeout, UsageError
from opskit.events import Collector, Event, JournalWriter, Reporter
from opskit.experiment import (
    TERMINAL,
    Check,
    ExperimentDefinition,
    FindingSeen,
    FlightStatus,
    Observation,
    expected_lines,
    first_failure,
    judge,
    verdict_of,
)
from opskit.experiment_commands import CommandLog, CommandResult, RunningCommand, join
from opskit.experiment_stage import (
    SQL_FLIGHT_LOG,
    SQL_INSTANCES,
    SQL_NON_TERMINAL,
    SQL_TERMINATE,
    SQL_UNOWNED,
    ExperimentDb,
    Stage,
    psql_command,
    stage_for,
)
from opskit.journal import (
    SCHEMA,
    Attempt,
    DatabaseSetup,
    Deployment,
    EnvInfo,
    Expectation,
    Experiment,
    FinalState,
    Journal,
    JournalEvent,
    Kill,
    LogExcerpt,
    Pods,
    Probe,
    RepairRecord,
    RepairSpec,
    RepairState,
    Setup,
    SqlEvidence,
    SteadyState,
    TimelineEntry,
    redact,
    relative_to_project,
    write,
)
from opskit.journal import DelayHook as JournalDelayHook
from opskit.journey import JOURNEY_TOKEN
from repairtool.clock import rfc3339, utcnow

JOURNAL_FILE = "journal.json"
#: log excerpts kept per attempt
MAX_EXCERPTS = 60
_UUID = re.compile(r"^[0-9a-fA-F-]{36}$")
_TIMELINE_LINE = re.compile(r"^timeline \((?P<path>.+)\):$")
Source = Literal["kube", "log", "db", "tool"]
_SOURCES: dict[str, Source] = {
    "kube": "kube",
    "log": "log",
    "logs": "log",
    "db": "db",
    "tool": "tool",
}
_STATUSES: tuple[FlightStatus, ...] = typing.get_args(FlightStatus)


def flight_status(value: Any) -> FlightStatus:
    """A status read from the database, as the journal's type (unknown values are refused)."""
    for s in _STATUSES:
        if s == value:
            return s
    raise OperationFailed(f"unexpected flight status {value!r}")


def tool_version() -> str:
    try:
        return f"stairway-ops {version('stairway-ops')}"
    except PackageNotFoundError:  # pragma: no cover - not installed
        return "stairway-ops (not installed)"


class SteadyStateFailed(OperationFailed):
    """The steady state before an attempt does not hold: the method is not run."""

    def __init__(self, message: str, state: SteadyState) -> None:
        super().__init__(message)
        self.state = state


@dataclass
class _AttemptData:
    """What one attempt collects on its way (mutable while it runs)."""

    number: int
    started: dt.datetime
    flight_id: str | None = None
    receiver: str | None = None
    submitted: dt.datetime | None = None
    killed: str | None = None
    replacement: str | None = None
    survivors: tuple[str, ...] = ()
    method_error: str | None = None
    client: CommandResult | None = None
    kill_doc: dict[str, Any] | None = None
    tool_saw: str | None = None
    terminated: tuple[str, ...] = ()
    timeline: list[TimelineEntry] = field(default_factory=list)

    def add(
        self, at: dt.datetime, source: Source, event: str, detail: str, pod: str | None = None
    ) -> None:
        self.timeline.append(
            TimelineEntry(at=rfc3339(at), source=source, event=event, detail=detail, pod=pod)
        )


@dataclass(frozen=True)
class _RepairOutcome:
    """The repair step of an attempt: the ``repairtool orphans --json`` documents and more."""

    dry_run: dict[str, Any]
    fix: dict[str, Any] | None
    repaired_status: str | None
    audit: tuple[dict[str, Any], ...]
    recheck: dict[str, Any]
    state_after: RepairState


class _Runner:
    """One run's attempts: the method, the observation, the repair and the verdict."""

    def __init__(
        self,
        defn: ExperimentDefinition,
        env: Env,
        stage: Stage,
        cmds: CommandLog,
        rep: Reporter,
        attempts: int,
    ) -> None:
        self.defn = defn
        self.env = env
        self.stage = stage
        self.cmds = cmds
        self.rep = rep
        self.attempts = attempts
        self.e = env.name
        self.db: ExperimentDb | None = None
        self.target: DbTarget | None = None

    # -- commands an operator would type ---------------------------------------------------
    def _repairtool(self, *args: str) -> str:
        return join(["repairtool", *args])

    def _orphans(self, *extra: str) -> str:
        return self._repairtool(
            "orphans",
            "--env",
            self.e,
            "--reader",
            self.defn.reader,
            "--stalled-after",
            self.defn.detection.stalled_after,
            *extra,
        )

    def _json_doc(self, result: CommandResult) -> dict[str, Any] | None:
        import json

        try:
            doc = json.loads(result.stdout)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None

    def orphans_doc(self, command_id: str, *extra: str) -> dict[str, Any]:
        result = self.cmds.run(command_id, self._orphans(*extra, "--json"), timeout=120, quiet=True)
        doc = self._json_doc(result)
        if doc is None:
            raise OperationFailed(
                f"repairtool orphans --json gave no document (exit {result.rc}): "
                + (result.output.strip().splitlines() or ["no output"])[-1]
            )
        return doc

    # -- steady state ----------------------------------------------------------------------
    def pods_probe(self, wait: float = 0.0) -> Probe:
        want = self.defn.replicas if self.env.kind == "local" else self.env.service.replicas
        deadline = time.monotonic() + wait
        while True:
            ready = sorted(p.name for p in self.stage.platform.list_pods() if p.ready)
            if len(ready) >= want or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        ok = len(ready) >= want
        return Probe("pods-ready", ok, f"{len(ready)}/{want} pods Ready: {', '.join(ready)}")

    def orphan_probes(self, doc: dict[str, Any]) -> list[Probe]:
        findings = list(doc.get("findings") or [])
        flights = [f for f in findings if f.get("flight_id")]
        stale = [f for f in findings if f.get("kind") == "stale_instance"]
        assert self.db is not None
        non_terminal = len(self.db.rows(SQL_NON_TERMINAL))
        return [
            Probe(
                "no-stuck-flights",
                not flights,
                f"repairtool orphans: {len(flights)} flight findings"
                + (
                    ": " + ", ".join(f"{f['kind']} {f['flight_id']}" for f in flights)
                    if flights
                    else ""
                )
                + f"; {non_terminal} non-terminal flights",
            ),
            Probe(
                "no-stale-instances",
                not stale,
                f"{len(stale)} stale instances"
                + (": " + ", ".join(str(f.get("instance")) for f in stale) if stale else ""),
            ),
        ]

    def steady_state(self, which: str, doc: dict[str, Any], wait: float = 0.0) -> SteadyState:
        probes = (self.pods_probe(wait), *self.orphan_probes(doc))
        state = SteadyState(ok=all(p.ok for p in probes), probes=probes)
        self.rep.emit(
            f"steady_state.{which}",
            f"steady state {which}: "
            + ("ok" if state.ok else "NOT OK")
            + "".join(f"; {p.name} {'ok' if p.ok else 'FAILED'} ({p.detail})" for p in probes),
            level="info" if state.ok else "warn",
            ok=state.ok,
        )
        return state

    # -- the method --------------------------------------------------------------------------
    def start_flight(self, a: _AttemptData) -> RunningCommand:
        assert self.db is not None
        since = self.db.now()
        run_test = self.cmds.start("run-test", join(["inv", "run-test", "--env", self.e]))
        a.add(utcnow(), "tool", "run-test", "started the WorkspaceLifecycle journey")
        deadline = time.monotonic() + 60 + self.defn.delay.seconds
        while True:
            row = self.db.new_flight(self.defn.delay.flight_class, since)
            if row is not None:
                break
            if not run_test.running():
                result = run_test.wait(0)
                raise OperationFailed(
                    f"`inv run-test` ended (exit {result.rc}) before a flight was submitted"
                )
            if time.monotonic() >= deadline:
                raise OpsTimeout("no flight was submitted within 60 s of `inv run-test`")
            time.sleep(0.1)
        a.flight_id = str(row["flightid"])
        a.receiver = row["stairway_id"]
        a.submitted = row["submit_time"].replace(tzinfo=dt.UTC)
        a.add(
            a.submitted,
            "db",
            "submitted",
            f"flight {a.flight_id} submitted ({self.defn.delay.flight_class.rsplit('.', 1)[-1]})",
            a.receiver,
        )
        self.rep.emit(
            "flight.submitted",
            f"flight {a.flight_id} submitted on {a.receiver}",
            flight_id=a.flight_id,
            pod=a.receiver,
        )
        return run_test

    def kill_owner(self, a: _AttemptData) -> None:
        """``inv kill-pod --flight ID --when-step N``: the same code path as by hand."""
        d = self.defn
        assert a.flight_id is not None
        a.survivors = tuple(
            sorted(
                p.name for p in self.stage.platform.list_pods() if p.ready and p.name != a.receiver
            )
        )
        settle = math.ceil(d.method.settle(d.delay))  # `inv kill-pod` takes whole seconds
        timeout = math.ceil(2 * d.delay.seconds + settle + 60)
        command = join(
            [
                "inv",
                "kill-pod",
                "--env",
                self.e,
                "--flight",
                a.flight_id,
                "--when-step",
                str(d.method.when_step),
                "--timeout",
                str(timeout),
                "--settle",
                str(settle),
            ]
        )
        result = self.cmds.run("kill-pod", command, timeout=timeout + 60)
        doc = self._kill_doc(result)
        if doc is None:
            lines = result.output.strip().splitlines() or ["no output"]
            a.method_error = f"inv kill-pod failed (exit {result.rc}): {lines[-1]}"
            if "already finished" in lines[-1] or "past step" in lines[-1]:
                a.method_error += f" (the {d.delay.seconds:g} s delay was too short: raise --delay)"
            a.add(utcnow(), "tool", "kill-failed", a.method_error)
            return
        a.kill_doc = doc
        a.killed = str(doc.get("pod") or "") or None
        a.replacement = doc.get("replacement")
        a.survivors = tuple(p for p in a.survivors if p != a.killed)
        for item in doc.get("timeline") or []:
            kind = str(item.get("kind", ""))
            if kind.startswith("engine.") or kind == "logs_unavailable":
                continue  # the engine's lines come from our own log query
            source = _SOURCES.get(str(item.get("source")), "tool")
            at = dt.datetime.fromisoformat(str(item["at"]).replace("Z", "+00:00"))
            event = {"deleted": "kill", "outcome": "kill-pod-outcome"}.get(kind, kind)
            a.add(at, source, event, str(item.get("detail", "")), item.get("pod") or None)

    def _kill_doc(self, result: CommandResult) -> dict[str, Any] | None:
        import json

        lines = result.output.splitlines()
        candidates: list[Path] = []
        for line in reversed(lines):
            m = _TIMELINE_LINE.match(line.strip())
            if m:
                candidates.append(Path(m["path"]))
        candidates += sorted(
            self.stage.artifacts_dir.glob("kill-pod-*/kill-pod.json"),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        for path in candidates:
            p = path if path.is_absolute() else self.stage.run_dir.parent / path
            with contextlib.suppress(OSError, ValueError):
                doc = json.loads(p.read_text())
                if isinstance(doc, dict):
                    return doc
        return None

    def drop_connections(self, a: _AttemptData) -> None:
        """Hold the flight's row until the engine's write waits on it, then cut every client
        connection of the Stairway database (the service's first, then the tools')."""
        from opskit.flights import FlightReader
        from opskit.killpod import wait_for_step

        d = self.defn
        assert self.db is not None and self.target is not None and a.flight_id is not None
        reader = FlightReader(self.target.sqlalchemy_url())
        try:
            view = wait_for_step(
                reader.get, a.flight_id, d.method.when_step, d.delay.seconds + 30, 0.2, self.rep
            )
        finally:
            reader.close()
        owner = view.owner
        with self.db.row_lock(a.flight_id) as (conn, pid):
            a.add(
                utcnow(),
                "tool",
                "row-lock",
                f"the tool holds flight {a.flight_id}'s row (SELECT … FOR UPDATE, backend {pid})"
                f" while {owner} sleeps in step {d.method.when_step}",
                owner,
            )
            deadline = time.monotonic() + d.delay.seconds + 30
            blocked: list[dict[str, Any]] = []
            while not blocked:
                blocked = self.db.blocked_by(pid)
                if blocked:
                    break
                row = self.db.flight(a.flight_id)
                if row is None or row["status"] in TERMINAL or time.monotonic() >= deadline:
                    a.method_error = (
                        "the engine never waited on the held row (flight "
                        + (str(row["status"]) if row else "gone")
                        + "): no write was in flight to cut"
                    )
                    a.add(utcnow(), "tool", "drop-failed", a.method_error)
                    return
                time.sleep(0.1)
            who = ", ".join(f"{b['application_name'] or '?'} (backend {b['pid']})" for b in blocked)
            a.add(utcnow(), "db", "lock-wait", f"the engine's write waits on the row: {who}", owner)
            self.rep.emit("db.lock_wait", f"the engine's write waits on the held row: {who}")
            result = self.cmds.run(
                "drop-db-connections",
                psql_command(self.target, SQL_TERMINATE),
                extra_env=self.target.child_env(),
                timeout=60,
            )
            a.terminated = tuple(
                line.strip()
                for line in result.output.splitlines()
                if "|" in line and not line.strip().startswith("pid")
            )
            a.add(
                utcnow(),
                "tool",
                "drop-db-connections",
                f"pg_terminate_backend on {len(a.terminated)} client backends (exit {result.rc})",
            )
            try:
                from sqlalchemy import text

                conn.execute(text("SELECT 1"))
                a.tool_saw = "nothing: the tool's connection still answered"
            except Exception as exc:  # the point: the tool's own connection is cut too
                orig = getattr(exc, "orig", None) or exc
                first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
                a.tool_saw = f"{type(orig).__name__}: {first}"
            a.add(utcnow(), "tool", "tool-connection", f"the tool's own connection: {a.tool_saw}")
        self.rep.emit("db.dropped", f"connections cut; the tool saw {a.tool_saw}")

    # -- observation -------------------------------------------------------------------------
    def wait_settled(self, a: _AttemptData) -> None:
        """Until the flight ends (or, when it is expected to stay, the expected lines show)."""
        assert self.db is not None and a.flight_id is not None
        d = self.defn
        deadline = time.monotonic() + d.method.observe(d.delay)
        last = ""
        while True:
            row = self.db.flight(a.flight_id)
            status = str(row["status"]) if row else "GONE"
            lines = self._lines(a)
            messages = [ln.message for ln in lines]
            partial = Observation(
                flight_id=a.flight_id,
                final_status=status,
                owner=row["stairway_id"] if row else None,
                owner_alive=None,
                killed=a.killed,
                replacement=a.replacement,
                recoverer=self._recoverer(a, lines),
            )
            missing = [
                template
                for template, line in expected_lines(d.expect.log_lines, partial)
                if line is None or not any(line in m for m in messages)
            ]
            done = (status in TERMINAL or d.expect.final_status not in TERMINAL) and not missing
            state = f"{status}; waiting for {len(missing)} log lines" if missing else status
            if state != last:
                self.rep.emit("flight.state", f"flight {a.flight_id}: {state}", status=status)
                last = state
            if done or time.monotonic() >= deadline:
                return
            time.sleep(1.0)

    def _lines(self, a: _AttemptData) -> list[LogLine]:
        assert a.flight_id is not None
        since = (a.submitted or a.started) - dt.timedelta(seconds=60)
        phrases = [
            line.split("{")[0] for line in self.defn.expect.log_lines if line.split("{")[0].strip()
        ]
        try:
            lines = self.stage.platform.query_logs(
                since=since, contains=(a.flight_id, *ENGINE_PHRASES, *phrases)
            )
        except OpsError as exc:
            self.rep.emit("logs.unavailable", f"logs: {exc}", level="warn")
            return []
        floor = a.started - dt.timedelta(seconds=2)
        return [ln for ln in lines if ln.timestamp >= floor]

    def _recoverer(self, a: _AttemptData, lines: Sequence[LogLine]) -> str | None:
        if a.killed is None:
            return None
        for item in classify_all(lines):
            e = item.event
            if e.kind is Kind.DISOWNED and e.stairway == a.killed and (e.count or 0) > 0:
                return item.pod
        return None

    # -- one attempt -------------------------------------------------------------------------
    def attempt(self, number: int) -> tuple[Attempt, tuple[Check, ...], SteadyState, SteadyState]:
        d = self.defn
        a = _AttemptData(number=number, started=utcnow())
        self.rep.emit(
            "attempt.started",
            f"attempt {number}/{self.attempts}: {self._title()}",
            attempt=number,
        )
        before = self.steady_state("before", self.orphans_doc("steady-state-orphans"))
        a.add(utcnow(), "tool", "steady-state-before", "ok" if before.ok else "NOT OK")
        if not before.ok:
            bad = [p for p in before.probes if not p.ok]
            raise SteadyStateFailed(
                f"attempt {number}: steady state before does not hold: "
                + "; ".join(f"{p.name}: {p.detail}" for p in bad),
                before,
            )
        run_test = self.start_flight(a)
        try:
            if d.kills_owner:
                self.kill_owner(a)
            else:
                self.drop_connections(a)
        except OpsError as exc:
            a.method_error = str(exc)
            a.add(utcnow(), "tool", "method-failed", a.method_error)
        self.wait_settled(a)
        a.client = run_test.wait(max(1.0, d.method.observe(d.delay) / 2))
        a.add(utcnow(), "tool", "client", self._client_saw(a.client))
        attempt, checks, after = self._observe_and_repair(a)
        return attempt, checks, before, after

    def _title(self) -> str:
        d = self.defn
        if d.kills_owner:
            return f"kill the owner pod inside step {d.method.when_step}"
        return f"cut the Stairway DB connections inside step {d.method.when_step}"

    def _client_saw(self, result: CommandResult) -> str:
        lines = [ln.strip() for ln in result.output.splitlines() if ln.strip()]
        picked = [
            ln.split(" ", 1)[1] if re.match(r"^\d\d:\d\d:\d\d ", ln) else ln
            for ln in lines
            if "journey-" in ln or ln.startswith("WorkspaceLifecycle:")
        ]
        rc = "stopped, still waiting" if result.rc is None else f"exit {result.rc}"
        return f"`inv run-test` {rc}: " + ("; ".join(picked) or "no summary")

    def _look(self, fid: str) -> tuple[SqlEvidence, ...]:
        """What an operator runs to look at the flight, and the SQL evidence."""
        self.cmds.run("logs", join(["inv", "logs", "--env", self.e, "--flight", fid]))
        self.cmds.run("flight-show", self._repairtool("flights", "show", fid, "--env", self.e))
        statuses = ("RUNNING", "READY", "QUEUED", "WAITING", "READY_TO_RESTART")
        listing = ("flights", "list", "--env", self.e)
        self.cmds.run(
            "flights-nonterminal",
            self._repairtool(*listing, *[x for st in statuses for x in ("--status", st)]),
        )
        self.cmds.run(
            "flights-unowned",
            self._repairtool(
                *listing, "--status", "READY", "--status", "QUEUED", "--owner", "none"
            ),
        )
        self.cmds.run("instances", self._repairtool("flights", "instances", "--env", self.e))
        self.cmds.run(
            "decode",
            self._repairtool(
                "decode", "--env", self.e, "--reader", self.defn.reader, "--flight", fid
            ),
        )
        return (
            self._evidence("non-terminal-flights", SQL_NON_TERMINAL),
            self._evidence("instances", SQL_INSTANCES),
            self._evidence("flight-log", SQL_FLIGHT_LOG.format(flight_id=_checked_id(fid))),
            self._evidence("unowned-ready-queued", SQL_UNOWNED),
        )

    def _repair(self, a: _AttemptData, fid: str) -> _RepairOutcome:
        """``repairtool orphans`` dry run (human, ``--json``), ``--fix`` when the experiment
        says so and the state it reaches, the audit rows, and the re-check."""
        assert self.db is not None
        self.cmds.run("orphans-dry-run", self._orphans(), timeout=120)
        dry = self.orphans_doc("orphans-dry-run-json")
        fix: dict[str, Any] | None = None
        repaired: str | None = None
        r = self.defn.repair
        if r is not None:
            flags = ("--flight", fid, "--fix", "--action", r.action, "--reason", r.reason)
            result = self.cmds.run(
                f"orphans-fix-{r.action}",
                self._orphans(*flags, "--yes", "--json"),
                timeout=120,
                quiet=True,
            )
            fix = self._json_doc(result)
            detail = f"repairtool orphans --fix --action {r.action} (exit {result.rc})"
            a.add(utcnow(), "tool", "repair", detail)
            repaired = self._wait_status(fid, r.expect_status)
            a.add(utcnow(), "db", "state-after-repair", f"flight {repaired}")
        audit_cmd = self._repairtool("flights", "audit", "--env", self.e, "--flight", fid, "--json")
        audit_doc = self._json_doc(self.cmds.run("audit", audit_cmd, quiet=True)) or {}
        recheck = self.orphans_doc("orphans-recheck")
        row = self.db.flight(fid)
        return _RepairOutcome(
            dry_run=dry,
            fix=fix,
            repaired_status=repaired,
            audit=tuple(x for x in audit_doc.get("audit") or [] if isinstance(x, dict)),
            recheck=recheck,
            state_after=RepairState(
                status=flight_status(row["status"] if row else "RUNNING"),
                owner=row["stairway_id"] if row else None,
            ),
        )

    def _observe_and_repair(
        self, a: _AttemptData
    ) -> tuple[Attempt, tuple[Check, ...], SteadyState]:
        d = self.defn
        assert self.db is not None and a.flight_id is not None
        fid = a.flight_id
        lines = self._lines(a)
        items = flight_timeline(lines, fid)
        row = self.db.flight(fid)
        live = {p.name for p in self.stage.platform.list_pods() if not p.deleting}
        status = str(row["status"]) if row else "RUNNING"
        owner = row["stairway_id"] if row else None
        steps = self.db.steps(fid)
        for item in items:
            if item.at >= a.started - dt.timedelta(seconds=2):
                a.add(item.at, "log", item.event.kind.value, item.summary(), item.pod or None)
        a.add(utcnow(), "db", "final-state", f"flight {status}, owner {owner or 'none'}", owner)
        evidence = self._look(fid)
        repair = self._repair(a, fid)
        after = self.steady_state("after", repair.recheck, wait=30.0)
        a.add(utcnow(), "tool", "steady-state-after", "ok" if after.ok else "NOT OK")
        obs = Observation(
            flight_id=fid,
            final_status=status,
            owner=owner,
            owner_alive=(owner in live) if owner else None,
            killed=a.killed,
            replacement=a.replacement,
            survivors=a.survivors,
            recoverer=self._recoverer(a, lines),
            messages=tuple(ln.message for ln in lines),
            steps=tuple(steps),
            findings=tuple(
                FindingSeen(
                    kind=str(f.get("kind")),
                    flight_id=f.get("flight_id"),
                    pattern=str((f.get("evidence") or {}).get("pattern") or ""),
                    proposed_action=str(f.get("proposed_action") or ""),
                )
                for f in repair.dry_run.get("findings") or []
            ),
            repaired_status=repair.repaired_status,
            recheck_findings=len(repair.recheck.get("findings") or []),
            steady_after=after.ok,
            method_error=a.method_error,
        )
        checks = judge(d, obs)
        verdict = verdict_of(checks)
        bad = first_failure(checks)
        failed = f"; first failed: {bad.name}: {bad.detail}" if bad else ""
        a.add(utcnow(), "tool", "verdict", f"{verdict}: {len(checks)} checks{failed}")
        for c in checks:
            self.rep.emit(
                "attempt.check",
                f"  {'ok ' if c.ok else 'FAIL'} {c.name}: {c.detail}",
                level="info" if c.ok else "warn",
                check=c.name,
                ok=c.ok,
            )
        takers = [
            i.pod
            for i in items
            if i.event.kind is Kind.TAKING_OWNERSHIP and i.event.flight_id == fid
        ]
        attempt = Attempt(
            number=a.number,
            title=self._title(),
            flight_id=fid,
            started=rfc3339(a.started),
            ended=rfc3339(utcnow()),
            pods=Pods(
                receiver=a.receiver,
                owner=owner or (takers[-1] if takers else a.receiver),
                killed=a.killed,
                replacement=a.replacement,
                survivors=a.survivors,
            ),
            timeline=tuple(sorted(a.timeline, key=lambda t: t.at)),
            log_excerpts=self._excerpts(lines, items, obs),
            sql_evidence=evidence,
            final_state=FinalState(
                status=flight_status(status),
                owner=owner,
                owner_alive=(owner in live) if owner else None,
                completed_time=scalar_time(row["completed_time"]) if row else None,
                last_step=max((s for s, _ in steps), default=None),
            ),
            what_happened=self._what_happened(a, obs, items, takers),
            root_cause=self._root_cause(a, obs, items),
            verdict=verdict,
            repair=RepairRecord(
                dry_run=repair.dry_run,
                fix=repair.fix,
                audit=repair.audit,
                state_after=repair.state_after,
            ),
        )
        self.rep.emit(
            "attempt.verdict",
            f"attempt {a.number}: {verdict.upper()}"
            + (f" ({bad.name}: {bad.detail})" if bad else ""),
            level="info" if verdict == "pass" else "warn",
            attempt=a.number,
            verdict=verdict,
        )
        return attempt, checks, after

    def _wait_status(self, flight_id: str, want: str) -> str | None:
        assert self.db is not None
        deadline = time.monotonic() + self.defn.method.observe(self.defn.delay)
        status: str | None = None
        while True:
            row = self.db.flight(flight_id)
            status = str(row["status"]) if row else None
            if status == want or status in TERMINAL or time.monotonic() >= deadline:
                return status
            time.sleep(0.5)

    def _evidence(self, name: str, sql: str) -> SqlEvidence:
        assert self.db is not None
        columns, rows = self.db.evidence(sql)
        masked = tuple(
            tuple(self.cmds.mask(v) if isinstance(v, str) else v for v in row) for row in rows
        )
        return SqlEvidence(name=name, query=sql, columns=columns, rows=masked)

    def _excerpts(
        self, lines: Sequence[LogLine], items: Sequence[TimelineItem], obs: Observation
    ) -> tuple[LogExcerpt, ...]:
        wanted = [w for _, w in expected_lines(self.defn.expect.log_lines, obs) if w]
        keep: dict[tuple[str, str, str], LogLine] = {}
        by_key = {(ln.timestamp.isoformat(), ln.pod, ln.message): ln for ln in lines}
        for item in items:
            if item.event.kind is Kind.STATE_CHANGE:
                continue
            key = (item.at.isoformat(), item.pod, item.message)
            if key in by_key:
                keep[key] = by_key[key]
        for ln in lines:
            if any(w in ln.message for w in wanted):
                keep[(ln.timestamp.isoformat(), ln.pod, ln.message)] = ln
        chosen = sorted(keep.values(), key=lambda ln: ln.timestamp)[:MAX_EXCERPTS]
        return tuple(
            LogExcerpt(
                at=rfc3339(ln.timestamp),
                pod=ln.pod,
                severity=ln.severity,
                message=self.cmds.mask(ln.message),
            )
            for ln in chosen
        )

    def _what_happened(
        self,
        a: _AttemptData,
        obs: Observation,
        items: Sequence[TimelineItem],
        takers: Sequence[str],
    ) -> str:
        d = self.defn
        out = [
            f"`inv run-test` started the WorkspaceLifecycle journey; flight `{a.flight_id}` was"
            f" submitted on `{a.receiver}` and slept {d.delay.seconds:g} s in step"
            f" {d.delay.step}."
        ]
        if d.kills_owner and a.killed:
            ready = (
                "became Ready"
                if (a.kill_doc or {}).get("replacement_ready")
                else "did not become Ready"
            )
            out.append(
                f"`inv kill-pod` deleted its owner `{a.killed}` inside step {d.method.when_step};"
                f" replacement `{a.replacement or '-'}` {ready}."
            )
        if not d.kills_owner and a.terminated:
            out.append(
                f"While the engine's write waited on the row the tool held, `psql` terminated"
                f" {len(a.terminated)} client backends (the service's first, then the tools');"
                f" the tool's own connection reported `{a.tool_saw}`."
            )
        if a.method_error:
            out.append(f"The method did not go as planned: {a.method_error}.")
        if obs.recoverer:
            out.append(f"`{obs.recoverer}` disowned the dead owner's flights.")
        retries = [i for i in items if i.event.kind is Kind.SQL_RETRY]
        if retries:
            n = len(retries)
            out.append(
                f"The engine logged {n} SQL {'retry' if n == 1 else 'retries'}"
                f" ({retries[0].event.detail}) and carried on."
            )
        if takers:
            out.append(
                "Taking ownership: " + ", ".join(f"`{t}`" for t in dict.fromkeys(takers)) + "."
            )
        errors = [i for i in items if i.event.kind is Kind.DISPATCH_ERROR]
        if errors:
            out.append(
                f"`{errors[-1].pod}` failed to rebuild the flight: {errors[-1].event.detail}."
            )
        if obs.final_status in TERMINAL:
            out.append(f"The flight ended `{obs.final_status}`.")
        else:
            alive = "live" if obs.owner_alive else "dead"
            out.append(
                f"The flight was left `{obs.final_status}`, owned by {alive} pod `{obs.owner}`."
            )
        if a.client is not None:
            out.append(f"The client saw: {self._client_saw(a.client)}.")
        return " ".join(out)

    def _root_cause(self, a: _AttemptData, obs: Observation, items: Sequence[TimelineItem]) -> str:
        errors = [i for i in items if i.event.kind is Kind.DISPATCH_ERROR and i.event.detail]
        if errors:
            return (
                f"`{errors[-1].event.detail}`: the new owner could not rebuild the flight from"
                f" its stored inputs with the {self.defn.reader} FlightMap reader, so it took the"
                " flight and left it RUNNING; `resume()` never accepts a RUNNING flight."
            )
        if not self.defn.kills_owner:
            if any(i.event.kind is Kind.SQL_RETRY for i in items) or any(
                "Caught SQL connection" in m for m in obs.messages
            ):
                return (
                    "The service's connection was terminated mid-statement (SQLSTATE 57P01, which"
                    " the engine's DbRetry reports as 08006); the statement was retried on a new"
                    " connection and the flight went on."
                )
            return "The connections were cut, but no statement of the engine was on the wire."
        if obs.final_status in TERMINAL and obs.recoverer:
            return (
                "The owner pod died inside a step. Recovery (disownRecovery of the dead instance,"
                f" by `{obs.recoverer}`, then a READY message on the work queue) gave the flight"
                " to a live pod, which re-ran the interrupted step."
            )
        if obs.final_status == "RUNNING" and obs.owner_alive is False:
            return "Nobody disowned the dead owner's flights (no pod listener event, no restart)."
        return "Not determined from the logs; see the timeline."


def scalar_time(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return rfc3339(value)
    return str(value)


def _checked_id(flight_id: str) -> str:
    if not _UUID.match(flight_id):
        raise OperationFailed(f"unexpected flight id {flight_id!r}")
    return flight_id


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
        delay_hook=JournalDelayHook(
            flight_class=defn.delay.flight_class,
            step=defn.delay.step,
            duration_s=defn.delay.seconds,
        ),
        kill=Kill(when_step=defn.method.when_step, target=typing.cast(Any, _kill_target(defn))),
        expect=Expectation(
            final_status=e.final_status,
            owner=None if e.owner == "none" else e.owner,
            findings=tuple(e.findings),
            log_lines=tuple(e.log_lines),
        ),
        repair=RepairSpec(
            action=defn.repair.action if defn.repair else None,
            reason=defn.repair.reason if defn.repair else None,
        ),
    )


def _kill_target(defn: ExperimentDefinition) -> str:
    """``owner``, or for the connection drop ``db-connections`` when the journal schema knows it
    (``opskit.journal.Kill.target``); otherwise ``owner`` with a note in the journal."""
    if defn.kills_owner:
        return "owner"
    allowed = _kill_targets()
    return "db-connections" if "db-connections" in allowed else "owner"


def _kill_targets() -> tuple[str, ...]:
    hint = typing.get_type_hints(Kill)["target"]
    return tuple(str(a) for a in typing.get_args(hint))


def _events(collector: Collector, mask: Any) -> tuple[JournalEvent, ...]:
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
    """Run ``definition`` on ``env`` and write ``<run_dir>/journal.json``.

    Args:
        definition: the experiment (``--delay`` already applied).
        env: where: ``local`` (a sandbox of the experiment's own, started and destroyed here)
            or a ``gke`` env (``inv deploy``, the Cloud SQL proxy through ``c``).
        run_dir: ``artifacts/<run-id>``; its name is the journal's ``run_id``.
        reporter: progress; events are also recorded in the journal. Default: only
            ``<run_dir>/events.jsonl``.
        attempts: default: the definition's.
        c: an Invoke ``Context`` (needed for GKE: the Cloud SQL proxy).
        keep_sandbox: leave the local sandbox running.
        state_dir: local: the experiment's state directory (default
            ``<state>/experiments/<name>``; its ``sandbox/`` holds the sandbox).

    Returns:
        The journal, as written to ``<run_dir>/journal.json``. Each attempt's checks were
        reported as ``attempt.check`` events; the failed ones are in its ``notes``.

    Raises:
        OpsError: when the run could not start (deploy, database); once attempts ran, problems
        are recorded in the journal (``status: failed``) instead.
    """
    n_attempts = attempts or definition.attempts
    if n_attempts < 1:
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
    rep.emit(
        "experiment.started",
        f"{definition.name} on {env.name}: {definition.replicas} replicas, Stairway"
        f" {definition.engine_version}, reader {definition.reader}, DelayHook step"
        f" {definition.delay.step} {definition.delay.seconds:g} s, {n_attempts} attempt(s)",
        experiment=definition.name,
        env=env.name,
        run_id=run_dir.name,
    )
    runner = _Runner(definition, env, stage, cmds, rep, n_attempts)
    done = _Attempts()
    setup: Setup | None = None
    env_info: EnvInfo | None = None
    try:
        deployed = stage.deploy(cmds)
        with stage.database(c) as target:
            for secret in stage.secrets(target):
                cmds.add_secret(secret)
            runner.target = target
            runner.db = ExperimentDb(target)
            try:
                connect = cmds.run(
                    "connect-db",
                    f"{target.psql_line()} -c '\\conninfo'",
                    extra_env=target.child_env(),
                    timeout=30,
                )
                env_info = stage.env_info(target)
                setup = _setup(stage, deployed, connect)
                done.run(runner, n_attempts)
            finally:
                cmds.stop_all()
                runner.db.close()
    finally:
        cmds.stop_all()
        with contextlib.suppress(Exception):
            stage.close()
    if setup is None or env_info is None:
        raise OperationFailed("the experiment did not get past its setup")
    verdict = done.verdict()
    ended = utcnow()
    empty = SteadyState(ok=False, probes=())
    journal = Journal(
        run_id=run_dir.name,
        schema=SCHEMA,
        tool_version=tool_version(),
        experiment=journal_experiment(definition),
        env=env_info,
        started=rfc3339(started),
        ended=rfc3339(ended),
        duration_s=round((ended - started).total_seconds(), 1),
        status=done.status,
        deviated=verdict != "pass",
        verdict=verdict,
        fail_step=done.fail_step,
        setup=setup,
        commands=cmds.records,
        steady_state_before=done.befores[0] if done.befores else empty,
        steady_state_after=done.afters[-1] if done.afters else empty,
        attempts=tuple(done.attempts),
        notes=tuple(redact(n, cmds.secrets) for n in [*done.notes, *_notes(definition, stage)]),
        events=(),
    )
    rep.emit(
        "experiment.finished",
        f"{definition.name}: {verdict.upper()} ({done.status}) in {journal.duration_s:g}s",
        level="info" if verdict == "pass" else "warn",
        verdict=verdict,
    )
    journal = dataclasses.replace(journal, events=_events(collector, cmds.mask))
    journal = relative_to_project(journal, paths.PROJECT_ROOT, source=str(run_dir / JOURNAL_FILE))
    write(journal, run_dir / JOURNAL_FILE, secrets=cmds.secrets)
    if done.interrupted is not None:
        raise done.interrupted
    return journal


@dataclass
class _Attempts:
    """The attempts of a run as they finish (or stop the run)."""

    attempts: list[Attempt] = field(default_factory=list)
    checks: list[tuple[int, tuple[Check, ...]]] = field(default_factory=list)
    befores: list[SteadyState] = field(default_factory=list)
    afters: list[SteadyState] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    status: Literal["completed", "failed", "aborted"] = "completed"
    fail_step: str | None = None
    interrupted: BaseException | None = None

    def run(self, runner: _Runner, n: int) -> None:
        rep = runner.rep
        try:
            for number in range(1, n + 1):
                try:
                    attempt, checks, before, after = runner.attempt(number)
                except SteadyStateFailed as exc:
                    self.status, self.fail_step = "failed", f"attempt {number}: steady-state-before"
                    self.befores.append(exc.state)
                    self.notes.append(str(exc))
                    rep.emit("experiment.aborted", str(exc), level="error")
                    return
                except Exception as exc:  # recorded: the journal is the run's record
                    first = (str(exc).strip().splitlines() or [""])[0]
                    what = f"attempt {number}: {type(exc).__name__}"
                    self.status, self.fail_step = "failed", what
                    self.notes.append(f"{what}: {first}")
                    rep.emit("experiment.error", f"{what}: {first}", level="error")
                    return
                self.attempts.append(attempt)
                self.checks.append((number, checks))
                self.befores.append(before)
                self.afters.append(after)
                bad = first_failure(checks)
                if bad is not None:
                    self.notes.append(f"attempt {number} deviated: {bad.name}: {bad.detail}")
                    self.fail_step = self.fail_step or f"attempt {number}: {bad.name}"
        except KeyboardInterrupt as exc:
            self.status, self.interrupted = "aborted", exc
            self.notes.append("interrupted by the operator")

    def verdict(self) -> Literal["pass", "fail"]:
        ok = self.status == "completed" and all(verdict_of(c) == "pass" for _, c in self.checks)
        return "pass" if ok else "fail"


def _setup(stage: Stage, deployed: CommandResult, connect: CommandResult) -> Setup:
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


def _notes(defn: ExperimentDefinition, stage: Stage) -> list[str]:
    overrides = " ".join(f"{k}={v}" for k, v in stage.env_overrides().items())
    out = [
        f"Every command above ran from the project root with {overrides} (this run's"
        " sandbox and artifacts) and the project's virtualenv first on PATH; psql got the"
        " password through PGPASSWORD.",
    ]
    if not defn.kills_owner and _kill_target(defn) == "owner":
        out.append(
            "No pod was killed: the method cut the Stairway database connections (the journal"
            " schema's `kill.target` has no value for that yet)."
        )
    out += list(defn.notes)
    return out


__all__ = ["JOURNAL_FILE", "run_experiment"]
