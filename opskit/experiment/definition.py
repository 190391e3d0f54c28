"""Experiments as data: ``experiments/<name>.yaml`` loaded into a validated definition.

An experiment says how the service is deployed (replicas, engine and FlightMap reader
generation, the ``DelayHook``), the method (start a flight through the service API, then kill
its owner pod or cut the database connections while the flight sleeps in the delayed step), what
is expected (final status, owner, which pod recovers the flight, findings of ``repairtool
orphans``, log lines) and the repair ``repairtool`` applies. Loading goes through the one data
loader (:mod:`repairtool.datafile`): an unknown or missing key, or a value of the wrong type, is
one :class:`ExperimentError` line naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Any, Literal

from pydantic.dataclasses import dataclass

from opskit import paths
from opskit.errors import NotFound, UsageError
from repairtool.datafile import STRICT, Bool, Float, Int, load_yaml, shown_path, validate
from repairtool.durations import InvalidDuration, parse_duration
from repairtool.errors import UsageError as RepairUsageError
from repairtool.stairway.schema import EngineVersion

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


@dataclass(frozen=True, config=STRICT)
class DelaySpec:
    """WSM's ``DelayHook``: sleep ``seconds`` at the start of ``step`` (0-based) of the class."""

    flight_class: str
    step: Int
    seconds: Float


@dataclass(frozen=True, config=STRICT)
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


@dataclass(frozen=True, config=STRICT)
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


@dataclass(frozen=True, config=STRICT)
class RepairSpec:
    """``repairtool orphans --fix --action ACTION --reason REASON`` and the state it must reach."""

    action: RepairAction
    reason: str
    expect_status: FlightStatus


@dataclass(frozen=True, config=STRICT)
class Detection:
    """Options of the ``repairtool orphans`` runs (durations like ``5s``, ``1m``)."""

    stalled_after: str = "5s"


@dataclass(frozen=True, config=STRICT)
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

    def summary(self) -> str:
        """One line: how the service is set up for the experiment."""
        return (
            f"{self.replicas} replicas, Stairway {self.engine_version}, reader {self.reader},"
            f" DelayHook step {self.delay.step} {self.delay.seconds:g} s"
        )

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
    except InvalidDuration as exc:
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
