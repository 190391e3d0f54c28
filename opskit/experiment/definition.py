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
import typing
from collections.abc import Callable, Mapping
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
#: what the method does to the flight while it sleeps in the delayed step: kill its owner pod;
#: kill another pod (one that owns nothing); cut the Stairway database connections; make the
#: service's own database unavailable (a dependency outage during the step and its undo)
Fault = Literal["kill-owner", "kill-idle-pod", "drop-db-connections", "wsm-db-outage"]
#: the faults that delete a pod
POD_FAULTS: frozenset[str] = frozenset({"kill-owner", "kill-idle-pod"})
#: the owner (``flight.stairway_id``) at the end: a live pod, a dead pod, or none (finished)
OwnerExpectation = Literal["live", "dead", "none"]
#: which pod disowns the killed owner's flights: the killed pod's replacement (its start-up
#: recovery), a pod that lived through the kill (its pod listener), any pod, or none at all
RecoveredBy = Literal["replacement", "survivor", "any", "none"]
RepairAction = Literal["resume", "fail", "reencode"]
FindingKind = Literal["dead_owner", "stalled", "unqueued", "stale_instance", "queued_overdue"]
#: what a repair step runs: `repairtool orphans --fix`, `repairtool recover ACTION`, `inv restart`
RepairRun = Literal["orphans-fix", "recover", "restart"]
#: `repairtool recover` actions an experiment may run
RecoverAction = Literal["force-ready", "enqueue", "instance", "disown", "force-fatal"]
#: the work queue: the Pub/Sub emulator (the engine's queue), or none (READY flights are
#: resumed inline at recovery)
QueueMode = Literal["emulator", "none"]
#: when a sandbox switch is set: before the fault, once the fault settled (before detection),
#: or after the dry run (before the repair)
SwitchPhase = Literal["before_fault", "after_fault", "after_detection"]
#: the sandbox's run-time switches (``sandbox.cluster.Switches``)
SWITCH_NAMES = (
    "replace_deleted_pods",
    "pod_watch_dropped",
    "work_queue_detached",
    "hold_queue_messages",
)
#: their values when nothing is switched
SWITCH_DEFAULTS: Mapping[str, bool] = {
    "replace_deleted_pods": True,
    "pod_watch_dropped": False,
    "work_queue_detached": False,
    "hold_queue_messages": False,
}

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
class Switches:
    """Sandbox switches (``python -m sandbox switches --set NAME=on|off``) set in each phase of
    the method: the multi-step faults (drop the pod watch, no replacement, lose or hold a work-
    queue message). Whatever was switched is switched back once the repair is done."""

    before_fault: dict[str, Bool] = field(default_factory=dict)
    after_fault: dict[str, Bool] = field(default_factory=dict)
    after_detection: dict[str, Bool] = field(default_factory=dict)

    def phase(self, name: SwitchPhase) -> dict[str, bool]:
        return dict(getattr(self, name))

    @property
    def any(self) -> bool:
        return bool(self.before_fault or self.after_fault or self.after_detection)

    def touched(self) -> list[str]:
        """Every switch set in some phase, in the order first set."""
        out: list[str] = []
        for values in (self.before_fault, self.after_fault, self.after_detection):
            out += [k for k in values if k not in out]
        return out


@dataclass(frozen=True, config=STRICT)
class MethodSpec:
    """Start a flight through the service API, then inject ``fault`` inside ``when_step``."""

    fault: Fault
    when_step: Int
    #: the sandbox switches around the fault (local environments only)
    switches: Switches = field(default_factory=Switches)
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
class RepairStep:
    """One command of a repair, as an operator runs it.

    - ``orphans-fix``: ``repairtool orphans --fix [--action ACTION] --reason …``, for the
      attempt's flight (``scope: flight``, ``--flight ID``) or the whole plan (``scope: all``);
      without ``action``, the proposed actions;
    - ``recover``: ``repairtool recover ACTION TARGET --fix --reason …`` on the flight, or on the
      killed pod's instance (``target: killed``, ``recover instance``);
    - ``restart``: ``inv restart`` (a rolling restart: every new pod runs recoverReady).

    ``expect_status``: the flight's status once the step is done; with ``hold_seconds`` it
    must still be that status this long after (a flight that waits for something else).
    """

    run: RepairRun
    action: str | None = None
    scope: Literal["flight", "all"] = "flight"
    target: Literal["flight", "killed"] = "flight"
    reason: str = ""
    expect_status: FlightStatus | None = None
    hold_seconds: Float = 0.0

    def describe(self) -> str:
        """One line for the journal: what the step runs."""
        if self.run == "orphans-fix":
            what = f"--action {self.action}" if self.action else "the proposed actions"
            scope = "the attempt's flight" if self.scope == "flight" else "the whole plan"
            return f"repairtool orphans --fix ({what}; {scope})"
        if self.run == "recover":
            target = "the killed pod's instance" if self.target == "killed" else "the flight"
            return f"repairtool recover {self.action} --fix ({target})"
        return "inv restart (rolling restart of the deployment)"


@dataclass(frozen=True, config=STRICT)
class RepairSpec:
    """What the operator does, and the state it must reach.

    The classic form is one ``repairtool orphans --flight ID --fix --action ACTION --reason R``
    (``action``, ``reason``); ``steps`` lists several commands instead; neither means the fix
    is to wait (the flight must reach ``expect_status`` by itself). ``expect_instance_gone``:
    the killed pod's ``stairwayinstance`` row is gone afterwards."""

    expect_status: FlightStatus
    action: RepairAction | None = None
    reason: str = ""
    steps: tuple[RepairStep, ...] = ()
    expect_instance_gone: Bool = False

    def plan(self) -> tuple[RepairStep, ...]:
        """The commands to run, in order (empty: wait)."""
        if self.steps:
            return self.steps
        if self.action is not None:
            return (RepairStep("orphans-fix", action=self.action, reason=self.reason),)
        return ()

    @property
    def first_action(self) -> RepairAction | None:
        """The ``--action`` of the first ``orphans-fix`` step (the journal's ``repair.action``)."""
        for step in self.plan():
            if step.run == "orphans-fix" and step.action in ("resume", "fail", "reencode"):
                return step.action  # type: ignore[return-value]
        return None

    @property
    def first_reason(self) -> str:
        return next((s.reason for s in self.plan() if s.reason), self.reason)


@dataclass(frozen=True, config=STRICT)
class Detection:
    """Options of the ``repairtool orphans`` runs (durations like ``5s``, ``1m``).

    The rehearsal thresholds are short so that a run takes a minute; the runbooks show the
    production values beside them. ``wait_for_findings``: before the dry run, wait until the
    flight has been idle longer than the threshold its expected finding depends on."""

    stalled_after: str = "5s"
    queue_retention: str | None = None
    overdue_margin: str | None = None
    wait_for_findings: Bool = False

    def options(self) -> tuple[str, ...]:
        """The ``repairtool orphans`` options these thresholds give."""
        out = ["--stalled-after", self.stalled_after]
        if self.queue_retention:
            out += ["--queue-retention", self.queue_retention]
        if self.overdue_margin:
            out += ["--overdue-margin", self.overdue_margin]
        return tuple(out)


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
    queue: QueueMode = "emulator"
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
        queue = "" if self.queue == "emulator" else ", no work queue"
        return (
            f"{self.replicas} replicas, Stairway {self.engine_version}, reader {self.reader},"
            f" DelayHook step {self.delay.step} {self.delay.seconds:g} s{queue}"
        )

    @property
    def kills_owner(self) -> bool:
        return self.method.fault == "kill-owner"

    @property
    def kills_pod(self) -> bool:
        """The fault deletes a pod (the owner, or one that owns nothing)."""
        return self.method.fault in POD_FAULTS


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
    e = d.expect
    if e.final_status in TERMINAL and e.owner != "none":
        raise bad("expect.owner", f"must be none for a flight that ends {e.final_status}")
    if e.final_status == "RUNNING" and e.owner == "none":
        raise bad("expect.owner", "must be live or dead for a flight left RUNNING")
    if not d.kills_pod and e.recovered_by in ("replacement", "survivor"):
        raise bad("expect.recovered_by", f"needs a pod-killing fault, not {d.method.fault}")
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
    _check_switches(d, bad)
    _check_detection(d, bad)
    if d.repair is not None:
        _check_repair(d, d.repair, bad)


def _check_switches(d: ExperimentDefinition, bad: Callable[[str, str], ExperimentError]) -> None:
    for phase in typing.get_args(SwitchPhase):
        for name in d.method.switches.phase(phase):
            if name not in SWITCH_NAMES:
                raise bad(
                    f"method.switches.{phase}.{name}",
                    "is not a sandbox switch (known: " + ", ".join(SWITCH_NAMES) + ")",
                )
    if d.queue == "none" and any(
        n in ("work_queue_detached", "hold_queue_messages") for n in d.method.switches.touched()
    ):
        raise bad("method.switches", "work-queue switches need queue: emulator")


def _check_detection(d: ExperimentDefinition, bad: Callable[[str, str], ExperimentError]) -> None:
    for key in ("stalled_after", "queue_retention", "overdue_margin"):
        value = getattr(d.detection, key)
        if value is None:
            continue
        try:
            parse_duration(value)
        except InvalidDuration as exc:
            raise bad(f"detection.{key}", str(exc)) from None


def _check_repair(
    d: ExperimentDefinition, r: RepairSpec, bad: Callable[[str, str], ExperimentError]
) -> None:
    if r.steps and r.action is not None:
        raise bad("repair.action", "give either action (one orphans --fix) or steps, not both")
    if r.action is not None and not r.reason.strip():
        raise bad("repair.reason", "must not be empty (it goes into the audit trail)")
    for i, step in enumerate(r.steps):
        key = f"repair.steps[{i}]"
        if step.run in ("orphans-fix", "recover") and not step.reason.strip():
            raise bad(f"{key}.reason", "must not be empty (it goes into the audit trail)")
        if step.run == "orphans-fix" and step.action not in (None, *typing.get_args(RepairAction)):
            raise bad(
                f"{key}.action", f"is {step.action!r}; orphans --fix takes resume, fail, reencode"
            )
        if step.run == "recover" and step.action not in typing.get_args(RecoverAction):
            raise bad(
                f"{key}.action",
                f"is {step.action!r}; recover takes " + ", ".join(typing.get_args(RecoverAction)),
            )
        if step.target == "killed" and not (step.run == "recover" and step.action == "instance"):
            raise bad(f"{key}.target", "killed is the instance of `recover instance` only")
        if step.target == "killed" and not d.kills_pod:
            raise bad(f"{key}.target", "killed needs a fault that deletes a pod")
        if step.run == "restart" and (step.action or step.reason):
            raise bad(key, "restart takes no action and no reason")
        if step.hold_seconds < 0:
            raise bad(f"{key}.hold_seconds", "must be >= 0")
    if r.expect_instance_gone and not d.kills_pod:
        raise bad("repair.expect_instance_gone", "needs a fault that deletes a pod")
