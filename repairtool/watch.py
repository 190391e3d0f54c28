"""`repairtool watch`: detection on a schedule, as Prometheus metrics and one log line per change.

A :class:`Watcher` scans each of its environments (:class:`WatchSource`) with the public
detection API, exports what it found through a Prometheus registry it is given
(:class:`WatchMetrics`), writes one structured JSON log line per finding that appears or
clears, and — only when asked — resumes ``dead_owner`` flights through the same plan and the
same compare-and-set, audited apply as ``repairtool orphans --fix`` (reason
``watch auto-resume``). :meth:`Watcher.scan_once` is one round and returns a typed
:class:`ScanResult`; :meth:`Watcher.run` repeats it on a jittered interval until its stop event
is set. A scan that fails is counted, logged as one line (no secrets: the error's one-line
message) and the loop goes on.

Auto-resume is limited on purpose (:class:`AutoResume`): ``dead_owner`` only; only when the
liveness came from the Kubernetes API (high confidence) and the owner is not a pod that is
still terminating; only after this watcher has seen the finding for ``min_age``; only the
``resume`` action (a flight whose inputs fail to decode is never resumed); and at most
``max_per_hour`` changes per watcher in any sliding hour (the rest are logged as rate-limited
and retried on later rounds).

Scans read on psycopg directly (a source is a ``ReadDb`` or a SQLAlchemy ``Engine``,
:mod:`repairtool.stairway.pgread`): a watcher that never resumes anything never imports
SQLAlchemy. Auto-resume changes flights through SQLAlchemy's transactional API, with an engine
made for the source's database the first time it applies a change.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import random
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from repairtool.clock import rfc3339, utcnow
from repairtool.detect import Action, Detection, Finding, Kind, Options, detect
from repairtool.errors import UsageError
from repairtool.exitcodes import ExitCode, exit_code_of, one_line
from repairtool.liveness import Confidence, Liveness
from repairtool.plan import build_plan
from repairtool.stairway.auditread import Actor
from repairtool.stairway.model import FlightStatus
from repairtool.stairway.pgread import ReadDb, Source, reading
from repairtool.stairway.queue import WorkQueue

if TYPE_CHECKING:
    from sqlalchemy import Engine

REASON = "watch auto-resume"

# -- metrics -------------------------------------------------------------------------------------

FINDINGS = "stairway_ops_findings"
OLDEST_FINDING_AGE = "stairway_ops_oldest_finding_age_seconds"
FLIGHTS = "stairway_ops_flights"
SCAN_SECONDS = "stairway_ops_scan_seconds"
SCAN_ERRORS = "stairway_ops_scan_errors"  # exported as stairway_ops_scan_errors_total
LAST_SUCCESS = "stairway_ops_last_successful_scan_timestamp_seconds"
REPAIRS = "stairway_ops_repairs"  # exported as stairway_ops_repairs_total

SCAN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class WatchMetrics:
    """The watcher's Prometheus metrics, registered in the registry it is given."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.findings = Gauge(
            FINDINGS,
            "Findings of the last successful scan: flights (or instances) the engine will not"
            " finish by itself, by kind",
            ["env", "kind"],
            registry=registry,
        )
        self.oldest_age = Gauge(
            OLDEST_FINDING_AGE,
            "Seconds since this watcher first saw the oldest finding of each kind still present"
            " (0 when there is none)",
            ["env", "kind"],
            registry=registry,
        )
        self.flights = Gauge(
            FLIGHTS,
            "Flights in the Stairway database, by status",
            ["env", "status"],
            registry=registry,
        )
        self.scan_seconds = Histogram(
            SCAN_SECONDS,
            "Duration of one scan of one environment (detection, flight counts, repairs)",
            ["env"],
            buckets=SCAN_BUCKETS,
            registry=registry,
        )
        self.scan_errors = Counter(
            SCAN_ERRORS,
            "Scans that failed (database, Kubernetes API, …)",
            ["env"],
            registry=registry,
        )
        self.last_success = Gauge(
            LAST_SUCCESS,
            "Unix time of the last scan that succeeded",
            ["env"],
            registry=registry,
        )
        self.repairs = Counter(
            REPAIRS,
            "Changes auto-resume made or tried (outcome: applied, skipped by compare-and-set,"
            " rate_limited, refused)",
            ["env", "kind", "action", "outcome"],
            registry=registry,
        )

    def prepare(self, env: str) -> None:
        """Create every series of an environment (a kind with no finding reads 0, not absent)."""
        for kind in Kind:
            self.findings.labels(env, kind.value)
            self.oldest_age.labels(env, kind.value)
        for status in FlightStatus:
            self.flights.labels(env, status.value)
        self.scan_errors.labels(env)
        self.scan_seconds.labels(env)


def exported_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name the registry exports (``…_total``, ``…_bucket`` included)."""
    return {s.name for metric in registry.collect() for s in metric.samples}


# -- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AutoResume:
    """Which findings the watcher may repair by itself, and how fast."""

    kinds: frozenset[Kind] = frozenset({Kind.DEAD_OWNER})
    max_per_hour: int = 6
    min_age: float = 600.0  # seconds this watcher must have seen the finding

    def __post_init__(self) -> None:
        if self.kinds - {Kind.DEAD_OWNER}:
            wrong = ", ".join(sorted(k.value for k in self.kinds - {Kind.DEAD_OWNER}))
            raise UsageError(
                f"--auto-resume {wrong}: only dead_owner can be resumed automatically (its owner"
                " pod is gone, so nobody else will); repair the others with `repairtool orphans"
                " --fix`"
            )
        if self.max_per_hour < 1:
            raise UsageError("--max-per-hour must be at least 1")
        if self.min_age < 0:
            raise UsageError("--min-age must not be negative")


@dataclass(frozen=True)
class WatchOptions:
    interval: float = 60.0  # seconds between scans (before jitter)
    jitter: float = 0.1  # ± fraction of the interval
    auto_resume: AutoResume | None = None
    actor: str = ""  # who the audit trail names (default: repairtool-watch@<host>)

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise UsageError("--interval must be longer than 0s")
        if not 0 <= self.jitter < 1:
            raise UsageError("jitter must be in [0, 1)")


@dataclass(frozen=True)
class WatchSource:
    """One environment the watcher scans: its database (a `ReadDb` or a SQLAlchemy `Engine`),
    how to list live instances, the detection options (catalog, reader, thresholds) and its
    work queue (for resumes)."""

    env: str
    db: Source
    liveness: Callable[[], Liveness]
    options: Options = field(default_factory=Options)
    queue: WorkQueue | None = None


# -- results -------------------------------------------------------------------------------------

FindingKey = tuple[str, str]  # (kind, flight id or "instance <name>")


def key_of(f: Finding) -> FindingKey:
    return f.kind.value, f.flight_id or f"instance {f.instance}"


@dataclass(frozen=True)
class RepairRecord:
    """One auto-resume decision."""

    flight_id: str | None
    kind: str
    action: str
    outcome: str  # applied | skipped | rate_limited | refused
    detail: str = ""
    audit_ids: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"audit_ids": list(self.audit_ids)}


@dataclass(frozen=True)
class EnvScan:
    """One environment in one round."""

    env: str
    ok: bool
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)  # findings by kind
    flights: dict[str, int] = field(default_factory=dict)  # flights by status
    new: tuple[FindingKey, ...] = ()
    cleared: tuple[FindingKey, ...] = ()
    repairs: tuple[RepairRecord, ...] = ()
    liveness: str = ""
    error: str = ""
    code: ExitCode | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "env": self.env,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
        }
        if self.ok:
            out |= {
                "liveness": self.liveness,
                "findings": self.counts,
                "flights": self.flights,
                "new": [list(k) for k in self.new],
                "cleared": [list(k) for k in self.cleared],
                "repairs": [r.to_json() for r in self.repairs],
            }
        else:
            code = self.code or ExitCode.INTERNAL
            out["error"] = {"code": int(code), "name": code.name, "message": self.error}
        return out


@dataclass(frozen=True)
class ScanResult:
    """One round over every environment."""

    at: str  # RFC 3339
    envs: tuple[EnvScan, ...]

    @property
    def ok(self) -> bool:
        return all(e.ok for e in self.envs)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "repairtool.watch-scan/1",
            "at": self.at,
            "envs": [e.to_json() for e in self.envs],
        }


# -- the loop ------------------------------------------------------------------------------------

LogSink = Callable[[dict[str, Any]], None]


def json_lines(stream: TextIO | None = None) -> LogSink:
    """One JSON object per line (Cloud Logging reads ``severity`` and ``message``)."""
    out = stream or sys.stdout
    lock = threading.Lock()

    def write(record: dict[str, Any]) -> None:
        line = json.dumps(record, default=str, ensure_ascii=False, separators=(",", ":"))
        with lock:
            out.write(line + "\n")
            out.flush()

    return write


class Watcher:
    """Scans its sources; ``scan_once`` is one round, ``run`` the loop."""

    def __init__(
        self,
        sources: Sequence[WatchSource],
        registry: CollectorRegistry,
        options: WatchOptions = WatchOptions(),
        *,
        log: LogSink | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        if not sources:
            raise UsageError("nothing to watch: give --env NAME (or --db URL)")
        names = [s.env for s in sources]
        if len(set(names)) != len(names):
            raise UsageError(f"environment given twice: {', '.join(names)}")
        self.sources = tuple(sources)
        self.options = options
        self.metrics = WatchMetrics(registry)
        self.log = log or json_lines()
        self.clock = clock
        self.rng = rng or random.Random()
        self.actor = Actor(
            reason=REASON, name=options.actor or f"repairtool-watch@{socket.gethostname()}"
        )
        self._first_seen: dict[str, dict[FindingKey, float]] = {s.env: {} for s in sources}
        self._present: dict[str, dict[FindingKey, Finding]] = {s.env: {} for s in sources}
        self._repair_times: collections.deque[float] = collections.deque()
        #: refusals and rate limits already reported (logged once per finding, not every round)
        self._told: set[tuple[str, FindingKey, str]] = set()
        #: the engines made for auto-resume on a `ReadDb` source, by environment
        self._engines: dict[str, Engine] = {}
        for s in sources:
            self.metrics.prepare(s.env)

    # -- one round -------------------------------------------------------------------------

    def scan_once(self) -> ScanResult:
        at = rfc3339(utcnow())
        return ScanResult(at, tuple(self._scan_env(s) for s in self.sources))

    def _scan_env(self, src: WatchSource) -> EnvScan:
        t0 = time.monotonic()
        try:
            detection = detect(src.db, src.liveness(), src.options)
            flights = self._count_flights(src.db)
            new, cleared = self._track(src.env, detection)
            repairs = self._auto_resume(src, detection) if self.options.auto_resume else ()
        except Exception as error:  # counted and logged; the loop goes on
            seconds = time.monotonic() - t0
            self.metrics.scan_errors.labels(src.env).inc()
            self.metrics.scan_seconds.labels(src.env).observe(seconds)
            code = exit_code_of(error)
            message = one_line(error)
            self._emit(
                "scan.failed",
                "ERROR",
                src.env,
                f"scan of {src.env} failed: {message}",
                error=message,
                code=code.name,
            )
            return EnvScan(src.env, False, seconds, error=message, code=code)
        seconds = time.monotonic() - t0
        counts = self._export(src.env, detection, flights)
        self.metrics.scan_seconds.labels(src.env).observe(seconds)
        self.metrics.last_success.labels(src.env).set(self.clock())
        return EnvScan(
            src.env,
            True,
            seconds,
            counts=counts,
            flights=flights,
            new=new,
            cleared=cleared,
            repairs=repairs,
            liveness=f"{detection.liveness.source} ({detection.liveness.confidence})",
        )

    @staticmethod
    def _count_flights(db: Source) -> dict[str, int]:
        with reading(db) as conn:
            rows = conn.execute("SELECT status, count(*) FROM flight GROUP BY status").fetchall()
        return {str(status): int(n) for status, n in rows}

    def _track(
        self, env: str, detection: Detection
    ) -> tuple[tuple[FindingKey, ...], tuple[FindingKey, ...]]:
        """Log what appeared and what cleared since the last successful scan."""
        now = self.clock()
        seen = self._first_seen[env]
        before = self._present[env]
        current = {key_of(f): f for f in detection.findings}
        new = [k for k in current if k not in before]
        cleared = [k for k in before if k not in current]
        for k in new:
            seen.setdefault(k, now)
            f = current[k]
            self._emit(
                "finding.new",
                "WARNING",
                env,
                f"new {f.kind.value} finding: {k[1]}" + (f" (owner {f.owner})" if f.owner else ""),
                **_finding_fields(f),
            )
        for k in cleared:
            f = before[k]
            age = now - seen.pop(k, now)
            self._told = {t for t in self._told if t[:2] != (env, k)}
            self._emit(
                "finding.cleared",
                "INFO",
                env,
                f"{f.kind.value} finding cleared: {k[1]} (after {age:.0f}s)",
                **_finding_fields(f),
                age_seconds=round(age, 3),
            )
        self._present[env] = current
        return tuple(new), tuple(cleared)

    def _export(self, env: str, detection: Detection, flights: dict[str, int]) -> dict[str, int]:
        now = self.clock()
        seen = self._first_seen[env]
        counts = {k.value: 0 for k in Kind}
        oldest = {k.value: 0.0 for k in Kind}
        for f in detection.findings:
            counts[f.kind.value] += 1
            age = now - seen.get(key_of(f), now)
            oldest[f.kind.value] = max(oldest[f.kind.value], age)
        for kind, n in counts.items():
            self.metrics.findings.labels(env, kind).set(n)
            self.metrics.oldest_age.labels(env, kind).set(oldest[kind])
        for status in {*(s.value for s in FlightStatus), *flights}:
            self.metrics.flights.labels(env, status).set(flights.get(status, 0))
        return counts

    # -- auto-resume -----------------------------------------------------------------------

    def _budget(self) -> int:
        auto = self.options.auto_resume
        assert auto is not None
        horizon = self.clock() - 3600.0
        while self._repair_times and self._repair_times[0] <= horizon:
            self._repair_times.popleft()
        return max(0, auto.max_per_hour - len(self._repair_times))

    def eligible(self, env: str, detection: Detection) -> list[Finding]:
        """The findings auto-resume may touch now (see the module docstring for the rules)."""
        auto = self.options.auto_resume
        live = detection.liveness
        if auto is None or live.confidence is not Confidence.HIGH:
            return []
        if not live.source.startswith("kube:"):
            return []
        now = self.clock()
        seen = self._first_seen[env]
        return [
            f
            for f in detection.findings
            if f.kind in auto.kinds
            and f.flight_id is not None
            and f.owner not in live.terminating
            and now - seen.get(key_of(f), now) >= auto.min_age
        ]

    def _auto_resume(self, src: WatchSource, detection: Detection) -> tuple[RepairRecord, ...]:
        findings = self.eligible(src.env, detection)
        if not findings:
            return ()
        records: list[RepairRecord] = []
        budget = self._budget()
        plan = build_plan(
            dataclasses.replace(detection, findings=tuple(findings)),
            queue=src.queue,
            limit=budget,
        )
        resumes = tuple(c for c in plan.changes if c.action is Action.RESUME)
        for c in plan.changes:
            if c.action is not Action.RESUME:
                records.append(
                    self._record(src.env, c.finding, c.action.value, "refused",
                                 f"proposed {c.action.value}, not resume: repair it by hand")
                )  # fmt: skip
        for r in plan.refused:
            records.append(self._record(src.env, r.finding, r.action.value, "refused", r.why))
        for c in plan.deferred:
            records.append(
                self._record(src.env, c.finding, c.action.value, "rate_limited",
                             f"--max-per-hour {self.options.auto_resume.max_per_hour}"  # type: ignore[union-attr]
                             " reached; retried on a later scan")
            )  # fmt: skip
        if resumes:
            # lazy: applying goes through SQLAlchemy's transactional API (~0.3 s); scans do not
            from repairtool.repair import apply_plan

            plan = dataclasses.replace(plan, changes=resumes, deferred=(), refused=())
            for _ in resumes:
                self._repair_times.append(self.clock())
            outcomes = apply_plan(self._engine(src), plan, actor=self.actor, queue=src.queue)
            for a in outcomes.applied:
                records.append(
                    self._record(src.env, a.change.finding, a.change.action.value, "applied",
                                 " → ".join(a.change.steps),
                                 tuple(r.audit_id for r in a.results if r.audit_id is not None))
                )  # fmt: skip
            for a in outcomes.skipped:
                records.append(
                    self._record(src.env, a.change.finding, a.change.action.value, "skipped",
                                 a.why,
                                 tuple(r.audit_id for r in a.results if r.audit_id is not None))
                )  # fmt: skip
        return tuple(records)

    def _engine(self, src: WatchSource) -> Engine:
        """The engine auto-resume changes `src`'s flights through (made once per environment
        when the source reads on psycopg)."""
        if not isinstance(src.db, ReadDb):
            return cast("Engine", src.db)  # the caller's own engine
        if src.env not in self._engines:
            # lazy: SQLAlchemy (~0.3 s) only when auto-resume changes a flight
            from repairtool.stairway.db import engine_for

            self._engines[src.env] = engine_for(src.db)
        return self._engines[src.env]

    def close(self) -> None:
        """Dispose of the engines this watcher made for auto-resume (sources stay open)."""
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()

    def _record(
        self,
        env: str,
        f: Finding,
        action: str,
        outcome: str,
        detail: str,
        audit_ids: tuple[int, ...] = (),
    ) -> RepairRecord:
        record = RepairRecord(f.flight_id, f.kind.value, action, outcome, detail, audit_ids)
        if outcome in ("refused", "rate_limited"):
            told = (env, key_of(f), outcome)
            if told in self._told:
                return record
            self._told.add(told)
        self.metrics.repairs.labels(env, f.kind.value, action, outcome).inc()
        severity = "WARNING" if outcome in ("applied", "skipped") else "INFO"
        self._emit(
            f"repair.{outcome}",
            severity,
            env,
            f"auto-resume {action} {f.flight_id}: {outcome}" + (f" ({detail})" if detail else ""),
            flight_id=f.flight_id,
            kind=f.kind.value,
            owner=f.owner,
            action=action,
            reason=REASON,
            detail=detail,
            audit_ids=list(audit_ids),
        )
        return record

    # -- logging and the loop --------------------------------------------------------------

    def _emit(
        self, event: str, severity: str, env: str | None, message: str, **fields: Any
    ) -> None:
        record: dict[str, Any] = {
            "time": rfc3339(utcnow()),
            "severity": severity,
            "event": event,
            "message": message,
        }
        if env is not None:
            record["env"] = env
        record.update(fields)
        self.log(record)

    def next_delay(self) -> float:
        """The interval, jittered by ± ``jitter`` (so many watchers do not scan in step)."""
        j = self.options.jitter
        return self.options.interval * self.rng.uniform(1 - j, 1 + j)

    def run(self, stop: threading.Event, *, rounds: int | None = None) -> int:
        """Scan until ``stop`` is set (or ``rounds`` rounds are done); returns the rounds run."""
        done = 0
        self._emit(
            "watch.started",
            "INFO",
            None,
            f"watching {', '.join(s.env for s in self.sources)} every"
            f" {self.options.interval:g}s ± {self.options.jitter:.0%}"
            + (
                f"; auto-resume {','.join(sorted(k.value for k in self.options.auto_resume.kinds))}"
                f" at most {self.options.auto_resume.max_per_hour}/h after"
                f" {self.options.auto_resume.min_age:g}s"
                if self.options.auto_resume
                else "; auto-resume off"
            ),
            envs=[s.env for s in self.sources],
        )
        while not stop.is_set():
            self.scan_once()
            done += 1
            if rounds is not None and done >= rounds:
                break
            stop.wait(self.next_delay())
        self._emit("watch.stopped", "INFO", None, f"stopped after {done} scans", scans=done)
        return done


def _finding_fields(f: Finding) -> dict[str, Any]:
    """What a log line says about a finding: identity and the why — never stored values."""
    return {
        "kind": f.kind.value,
        "flight_id": f.flight_id,
        "instance": f.instance,
        "class_name": f.class_name,
        "status": f.status,
        "owner": f.owner,
        "proposed_action": f.proposed_action.value,
        "why": f.evidence.get("why"),
    }
