"""Pod-kill experiments as data, and their verdicts (``inv experiment NAME``).

An experiment is one YAML file in ``experiments/`` (:func:`load_definition`): how the service is
deployed (replicas, engine and FlightMap reader generation, the ``DelayHook``), the method (start
a flight through the service API, then kill its owner pod or cut the database connections while
the flight sleeps in the delayed step), what is expected (final status, owner, which pod recovers
the flight, findings of ``repairtool orphans``, log lines) and the repair ``repairtool`` applies.
Loading validates the file like env files: an unknown or missing key, or a value of the wrong
type, is one :class:`ExperimentError` line naming the file and the key.

The verdict is a pure function of what an attempt observed (:func:`judge` on an
:class:`Observation`), so it is tested without a sandbox. Running an experiment is
:func:`opskit.experiment_runner.run_experiment` (re-exported here as :func:`run_experiment`): it
writes the journal (:mod:`opskit.journal`) that runbooks are rendered from.
"""

from __future__ import annotations

import dataclasses
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic.dataclasses import dataclass as pydantic_dataclass

from opskit import paths
from opskit.errors import NotFound, UsageError
from repairtool.datafile import STRICT, Bool, Float, Int, load_yaml, shown_path, validate

if TYPE_CHECKING:
    from opskit.envs import Env
    from opskit.events import Reporter
    from opskit.journal import Journal

FlightStatus = Literal[
    "RUNNING", "SUCCESS", "ERROR", "FATAL", "WAITING", "READY", "QUEUED", "READY_TO_RESTART"
]
TERMINAL: frozenset[str] = frozenset({"SUCCESS", "ERROR", "FATAL"})
#: what the method does to the flight while it sleeps in the delayed step
Fault = Literal["kill-owner", "drop-db-connections"]
#: the owner (``flight.stairway_id``) at the end: a live pod, a dead pod, or none (finished)
OwnerExpectation = Literal["live", "dead", "none"]
#: which pod disowns the killed owner's flights: the killed pod's replacement (its start-up
#: recovery), a pod that lived through the kill (its pod listener), any pod, or none at all
RecoveredBy = Literal["replacement", "survivor", "any", "none"]
RepairAction = Literal["resume", "fail", "reencode"]
FindingKind = Literal["dead_owner", "stalled", "unqueued", "stale_instance"]

#: placeholders a log line of an expectation may use
LOG_PLACEHOLDERS = ("flight", "killed", "owner", "recoverer", "replacement")


def experiments_dir() -> Path:
    return paths.PROJECT_ROOT / "experiments"


class ExperimentError(UsageError):
    """An invalid definition: one line naming the file and the key."""


class UnknownExperiment(NotFound):
    """No ``experiments/<name>.yaml``."""


# --------------------------------------------------------------------------------------------
# the definition


@pydantic_dataclass(frozen=True, config=STRICT)
class DelaySpec:
    """WSM's ``DelayHook``: sleep ``seconds`` at the start of ``step`` (0-based) of the class."""

    flight_class: str
    step: Int
    seconds: Float


@pydantic_dataclass(frozen=True, config=STRICT)
class MethodSpec:
    """Start a flight through the service API, then inject ``fault`` inside ``when_step``."""

    fault: Fault
    when_step: Int
    #: the flight is started like TestRunner's WorkspaceLifecycle create (``inv run-test``)
    start: Literal["service-api"] = "service-api"
    #: ``inv kill-pod --settle``: stop following the flight when nothing changed this long,
    #: beyond the DelayHook's seconds (a resumed flight sleeps in the delayed step again)
    settle_seconds: Float = 15.0
    #: how long to wait for the expected log lines and the flight's end after the fault (and
    #: after a repair), beyond the DelayHook's seconds
    observe_seconds: Float = 40.0

    def settle(self, delay: DelaySpec) -> float:
        return delay.seconds + self.settle_seconds

    def observe(self, delay: DelaySpec) -> float:
        return delay.seconds + self.observe_seconds


@pydantic_dataclass(frozen=True, config=STRICT)
class Expectations:
    """The hypothesis an attempt is judged against (before any repair)."""

    final_status: FlightStatus
    owner: OwnerExpectation = "none"
    recovered_by: RecoveredBy = "any"
    #: no step is logged twice in ``flightlog`` (the flight never ran a step twice)
    steps_once: Bool = True
    #: finding kinds ``repairtool orphans`` reports for the flight (dry run, before repair)
    findings: tuple[FindingKind, ...] = ()
    #: a phrase the findings' ``evidence.pattern`` must contain (e.g. ``make-flight failure``)
    finding_pattern: str = ""
    #: log lines (substrings) that must appear; may use ``{flight}``, ``{killed}``, …
    log_lines: tuple[str, ...] = ()


@pydantic_dataclass(frozen=True, config=STRICT)
class RepairSpec:
    """``repairtool orphans --fix --action ACTION --reason REASON`` and the state it must reach."""

    action: RepairAction
    reason: str
    expect_status: FlightStatus


@pydantic_dataclass(frozen=True, config=STRICT)
class Detection:
    """Options of the ``repairtool orphans`` runs (durations like ``5s``, ``1m``)."""

    stalled_after: str = "5s"


@pydantic_dataclass(frozen=True, config=STRICT)
class ExperimentDefinition:
    """One ``experiments/<name>.yaml``, validated."""

    name: str
    title: str
    description: str
    replicas: Int
    engine_version: str
    reader: str
    delay: DelaySpec
    method: MethodSpec
    expect: Expectations
    repair: RepairSpec | None
    detection: Detection = field(default_factory=Detection)
    attempts: Int = 1
    notes: tuple[str, ...] = ()
    path: Path = field(default=Path(), compare=False)

    def with_delay(self, seconds: float) -> ExperimentDefinition:
        """The same experiment with another DelayHook duration (``--delay``)."""
        if seconds <= 0:
            raise ExperimentError(f"--delay must be > 0 seconds, not {seconds:g}")
        return dataclasses.replace(self, delay=dataclasses.replace(self.delay, seconds=seconds))

    @property
    def kills_owner(self) -> bool:
        return self.method.fault == "kill-owner"


def list_definitions(directory: Path | None = None) -> list[str]:
    """Names of the experiments in ``experiments/`` (sorted)."""
    return sorted(p.stem for p in (directory or experiments_dir()).glob("*.yaml"))


def load_definition(name: str, directory: Path | None = None) -> ExperimentDefinition:
    """Load and validate ``experiments/<name>.yaml``."""
    d = directory or experiments_dir()
    path = d / f"{name}.yaml"
    if "/" in name or not path.is_file():
        known = ", ".join(list_definitions(d)) or "none"
        raise UnknownExperiment(f"unknown experiment {name!r} (known: {known})")
    return load_definition_file(path)


def load_definition_file(path: Path) -> ExperimentDefinition:
    """Load and validate one definition file; errors name the file and the key."""
    return definition_from_dict(load_yaml(path, _shown(path), ExperimentError), path)


def definition_from_dict(data: Any, path: Path) -> ExperimentDefinition:
    """Validate a parsed definition (``path`` names the file in errors; its stem is the name)."""
    shown = _shown(path)
    if isinstance(data, Mapping) and "path" in data:
        raise ExperimentError(f"{shown}: unknown key 'path'")
    built = validate(ExperimentDefinition, data, shown=shown, error=ExperimentError)
    defn = dataclasses.replace(built, path=path)
    _check(defn, shown, path.stem)
    return defn


def _shown(path: Path) -> str:
    return shown_path(path, paths.PROJECT_ROOT)


def _check(d: ExperimentDefinition, shown: str, stem: str) -> None:
    from repairtool.durations import parse_duration
    from repairtool.errors import UsageError as RepairUsageError
    from repairtool.stairway.schema import EngineVersion

    def bad(key: str, problem: str) -> ExperimentError:
        return ExperimentError(f"{shown}: key {key!r} {problem}")

    if d.name != stem:
        raise bad("name", f"is {d.name!r} but the file is {stem + '.yaml'!r}")
    if d.replicas < 1:
        raise bad("replicas", "must be >= 1")
    if d.attempts < 1:
        raise bad("attempts", "must be >= 1")
    for key, version in (("engine_version", d.engine_version), ("reader", d.reader)):
        try:
            EngineVersion.parse(version)
        except RepairUsageError:
            raise bad(key, f"is not an engine version: {version!r}") from None
    if d.delay.step < 0:
        raise bad("delay.step", "must be >= 0")
    if d.delay.seconds <= 0:
        raise bad("delay.seconds", "must be > 0")
    if d.method.when_step != d.delay.step:
        raise bad("method.when_step", f"must be the delayed step ({d.delay.step})")
    for key, value in (
        ("method.settle_seconds", d.method.settle_seconds),
        ("method.observe_seconds", d.method.observe_seconds),
    ):
        if value <= 0:
            raise bad(key, "must be > 0")
    try:
        parse_duration(d.detection.stalled_after)
    except ValueError as exc:
        raise bad("detection.stalled_after", str(exc)) from None
    e = d.expect
    if e.final_status in TERMINAL and e.owner != "none":
        raise bad("expect.owner", f"must be none for a flight that ends {e.final_status}")
    if e.final_status == "RUNNING" and e.owner == "none":
        raise bad("expect.owner", "must be live or dead for a flight left RUNNING")
    if not d.kills_owner and e.recovered_by in ("replacement", "survivor"):
        raise bad("expect.recovered_by", f"needs method.fault kill-owner, not {d.method.fault}")
    if e.recovered_by == "survivor" and d.replicas < 2:
        raise bad("expect.recovered_by", "survivor needs replicas >= 2")
    for i, line in enumerate(e.log_lines):
        try:
            names = {f for _, f, _, _ in string.Formatter().parse(line) if f is not None}
        except ValueError as exc:
            raise bad(f"expect.log_lines[{i}]", f"is not a valid template: {exc}") from None
        unknown = sorted(names - set(LOG_PLACEHOLDERS))
        if unknown:
            raise bad(
                f"expect.log_lines[{i}]",
                f"uses {{{unknown[0]}}}; known: " + ", ".join(f"{{{p}}}" for p in LOG_PLACEHOLDERS),
            )
    if d.repair is not None and not d.repair.reason.strip():
        raise bad("repair.reason", "must not be empty (it goes into the audit trail)")


# --------------------------------------------------------------------------------------------
# the verdict (pure)


@dataclass(frozen=True)
class FindingSeen:
    """One finding of the dry run ``repairtool orphans --json`` (for the flight or an instance)."""

    kind: str
    flight_id: str | None
    pattern: str = ""
    proposed_action: str = ""


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
    if defn.kills_owner:
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
    own = [f for f in obs.findings if f.flight_id == obs.flight_id]
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
        checks.append(
            Check(
                "repair",
                obs.repaired_status == r.expect_status,
                f"--action {r.action}: {obs.repaired_status} (expected {r.expect_status})",
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
    """Run an experiment and write ``<run_dir>/journal.json``; returns the journal.

    See :func:`opskit.experiment_runner.run_experiment` (kept there: it needs the platform,
    the sandbox and the database, which loading a definition does not).
    """
    from opskit.experiment_runner import run_experiment as run

    return run(
        definition,
        env,
        run_dir=run_dir,
        reporter=reporter,
        attempts=attempts,
        c=c,
        keep_sandbox=keep_sandbox,
        state_dir=state_dir,
    )


__all__ = [
    "Check",
    "DelaySpec",
    "Detection",
    "Expectations",
    "ExperimentDefinition",
    "ExperimentError",
    "FindingSeen",
    "MethodSpec",
    "Observation",
    "RepairSpec",
    "UnknownExperiment",
    "expected_lines",
    "first_failure",
    "judge",
    "list_definitions",
    "load_definition",
    "load_definition_file",
    "run_experiment",
    "verdict_of",
]
