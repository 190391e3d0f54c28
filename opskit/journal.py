"""The experiment journal (``artifacts/<run-id>/journal.json``, schema ``stairway-ops.journal/1``).

One pod-kill experiment run: the experiment as run, the environment, the setup (delay hook,
deployment, TestRunner server spec and suite, database connect line, logs query), every command
the run executed, steady state before and after, one record per attempt (timeline, pods, masked
log excerpts, SQL evidence, final flight state, repair), notes and the progress events. The shape
is Chaos Toolkit's journal (status + ``deviated``) with a Litmus-style ``verdict``/``fail_step``.

Runbooks are rendered from journals only (:mod:`opskit.runbooks`), so the journal is the single
record of what ran. Rules the runner follows:

- ``commands`` holds every command a runbook may quote, with the exact text that ran. ``id`` is a
  stable purpose key (:data:`COMMAND_IDS`); an id may repeat (one per attempt); the last one wins
  unless a template asks for the one inside an attempt's time window.
- ``attempts[].sql_evidence[].name`` is a stable key (:data:`SQL_NAMES`) for the query text.
- Times are RFC 3339 UTC with ``Z`` (``2026-11-29T01:30:00Z``, fractions allowed).
- Nothing secret: :func:`redact` masks known secrets (DB password, tokens) in text before it
  enters the journal, and :func:`write` refuses a journal that still holds one.

API: ``Journal.from_json(doc, source=...)`` / ``journal.to_json()`` (every model class has both;
round trips are exact), :func:`load`, :func:`dumps`, :func:`write`, :func:`redact`,
:func:`find_secrets`. Errors are :class:`JournalError` (one line: file, key path, problem).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import tempfile
import typing
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic.dataclasses import dataclass

from opskit.errors import ExitCode, OpsError
from opskit.events import Event
from repairtool.datafile import (
    STRICT,
    Bool,
    Float,
    Int,
    JsonScalar,
    Rfc3339,
    parse_json,
    read_text,
    validate,
)
from repairtool.flightmap.secrets import MASK, SECRET_VALUE, is_secret_key

SCHEMA = "stairway-ops.journal/1"

#: the purpose keys of ``commands[].id`` that templates quote
COMMAND_IDS: Mapping[str, str] = {
    "deploy": "deploy the service with the delay hook (`inv deploy`, skaffold on GKE)",
    "connect-db": "the psql line for the Stairway database (no password in it)",
    "run-test": "start the flight: the TestRunner suite or the sandbox journey (`inv run-test`)",
    "kill-pod": "kill the owner pod inside the delayed step (`inv kill-pod --flight ID`)",
    "logs": "the engine's log lines for the flight (`inv logs --flight ID`)",
    "flights-nonterminal": "`repairtool flights list` of the non-terminal statuses",
    "flights-unowned": "`repairtool flights list` of READY/QUEUED flights with no owner",
    "flights-fatal": "`repairtool flights list --status FATAL` (dismal failures, forced FATAL)",
    "flight-show": "`repairtool flights show ID`: row, inputs (masked), log",
    "instances": "`repairtool flights instances` (the stairwayinstance table)",
    "orphans-dry-run": "`repairtool orphans …` without --fix (human output)",
    "orphans-dry-run-json": "the same with --json (its document is attempts[].repair.dry_run)",
    "orphans-fix": "`repairtool orphans --fix` applying the proposed actions",
    "orphans-fix-resume": "`repairtool orphans --fix --action resume`",
    "orphans-fix-fail": "`repairtool orphans --fix --action fail`",
    "orphans-fix-reencode": "`repairtool orphans --fix --action reencode`",
    "orphans-recheck": "the dry run again after the fix (verification)",
    "recover-force-ready": "`repairtool recover force-ready ID --fix` (stairctl's force ready)",
    "recover-enqueue": "`repairtool recover enqueue ID --fix` (the READY message again)",
    "recover-instance": "`repairtool recover instance NAME --fix` (disownRecovery of a dead pod)",
    "recover-force-fatal": "`repairtool recover force-fatal ID --fix`",
    "recover-disown": "`repairtool recover disown ID --fix`",
    "restart": "`inv restart`: a rolling restart; every new pod runs recoverReady",
    "switches": "`python -m sandbox switches --set …`: the sandbox's run-time faults",
    "service-db-outage": "the service's own database refuses connections (psql)",
    "service-db-restored": "the service's own database accepts connections again (psql)",
    "decode": "`repairtool decode …` without --fix",
    "decode-fix-reencode": "`repairtool decode --fix --action reencode`",
    "audit": "`repairtool flights audit` (the audit trail)",
    "steady-state-orphans": "`repairtool orphans --json` before and after each attempt",
    "drop-db-connections": "cut the service's and the tool's database connections (psql)",
}

#: the keys of ``attempts[].sql_evidence[].name`` that templates quote
SQL_NAMES: Mapping[str, str] = {
    "non-terminal-flights": "flights not in SUCCESS/ERROR/FATAL, with owner",
    "instances": "the stairwayinstance table",
    "flight-log": "the flight's flightlog rows",
    "unowned-ready-queued": "READY/QUEUED flights with no owner",
}

_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z$")
#: a password in a URL's user info, e.g. postgresql://user:pw@host
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]+:)(?P<pw>[^@\s/]+)@", re.I)
_ENV_PASSWORD = re.compile(r"(?P<head>\bPGPASSWORD=)(?P<pw>[^\s'\"]+)")
_MASKED_MARKS = (MASK, "<<TOKEN>>", "***")


class JournalError(OpsError):
    """A journal that cannot be read or written: one line naming the file and the key path."""

    exit_code = ExitCode.USAGE


class SecretInJournal(JournalError):
    """``write`` found a secret; the message names where, never the value."""

    exit_code = ExitCode.REFUSED


Timestamp = Rfc3339
FlightStatus = Literal[
    "RUNNING", "SUCCESS", "ERROR", "FATAL", "WAITING", "READY", "QUEUED", "READY_TO_RESTART"
]
Verdict = Literal["pass", "fail"]
Scalar = JsonScalar


def flight_status(value: Any) -> FlightStatus:
    """A status read from the database, as the journal's type (an unknown value is refused)."""
    for status in typing.get_args(FlightStatus):
        if status == value:
            return typing.cast(FlightStatus, status)
    raise JournalError(f"unexpected flight status {value!r}")


def parse_time(value: str) -> dt.datetime:
    """A journal timestamp as an aware UTC datetime."""
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


# --------------------------------------------------------------------------------------------
# (de)serialisation: validated by the one data loader (repairtool.datafile)


class _Model:
    """Mixin: ``to_json()`` / ``from_json()`` for the journal's frozen pydantic dataclasses.

    A field with a default of ``None`` is an optional key: it may be absent and is left out when
    ``None``. Every other field is a required key. Unknown keys are errors.
    """

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def to_json(self) -> dict[str, Any]:
        return typing.cast(dict[str, Any], _encode(self))

    @classmethod
    def from_json(cls, data: Any, *, source: str = "<journal>", path: str = "") -> Self:
        return validate(cls, data, shown=source, error=JournalError, prefix=path)


def _encode(value: Any) -> Any:
    if isinstance(value, _Model):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if item is None and f.default is None:
                continue
            out[f.name] = _encode(item)
        return out
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------
# the model


@dataclass(frozen=True, config=STRICT)
class DelayHook(_Model):
    """WSM's ``DelayHook``: sleep ``duration_s`` at the start of ``step`` of ``flight_class``."""

    flight_class: str
    step: Int
    duration_s: Float


@dataclass(frozen=True, config=STRICT)
class Kill(_Model):
    """The fault: kill the owner pod, kill a pod that owns nothing, cut the database
    connections, or make the service's own database unavailable, at this step."""

    when_step: Int
    target: Literal["owner", "db-connections", "idle-pod", "service-db"]


@dataclass(frozen=True, config=STRICT)
class Expectation(_Model):
    """The hypothesis: where the flight ends and what detection and the logs show."""

    final_status: FlightStatus
    owner: Literal["live", "dead"] | None
    findings: tuple[str, ...]
    log_lines: tuple[str, ...]


@dataclass(frozen=True, config=STRICT)
class RepairSpec(_Model):
    """The repair as defined: the first ``orphans --fix`` action and reason, and (newer
    journals) every step in order, with the status the flight must reach."""

    action: Literal["resume", "fail", "reencode"] | None
    reason: str | None
    steps: tuple[str, ...] | None = None
    expect_status: FlightStatus | None = None


@dataclass(frozen=True, config=STRICT)
class Experiment(_Model):
    """The experiment definition as it ran (a copy, as in Chaos Toolkit's journal)."""

    name: str
    title: str
    description: str
    replicas: Int
    reader: str
    engine_version: str
    delay_hook: DelayHook
    kill: Kill
    expect: Expectation
    repair: RepairSpec
    #: the work queue (``emulator`` or ``none``); absent in older journals (emulator)
    queue: Literal["emulator", "none"] | None = None
    #: the sandbox switches by phase (``before_fault``, ``after_fault``, ``after_detection``)
    switches: dict[str, dict[str, Bool]] | None = None


@dataclass(frozen=True, config=STRICT)
class DbTarget(_Model):
    """Where the Stairway database is reached (never a password)."""

    name: str
    user: str
    host: str
    port: Int


@dataclass(frozen=True, config=STRICT)
class EnvInfo(_Model):
    name: str
    kind: Literal["local", "gke"]
    namespace: str
    deployment: str
    container: str
    service_url: str
    stairway_cluster: str
    db: DbTarget
    project: str | None = None
    cluster: str | None = None
    location: str | None = None


@dataclass(frozen=True, config=STRICT)
class Deployment(_Model):
    command: str
    output_tail: tuple[str, ...]
    seconds: Float


@dataclass(frozen=True, config=STRICT)
class DatabaseSetup(_Model):
    connect_command: str
    notes: tuple[str, ...]


@dataclass(frozen=True, config=STRICT)
class Setup(_Model):
    code_changes: tuple[str, ...]
    deployment: Deployment
    server_spec: dict[str, Any]
    suite: dict[str, Any]
    database: DatabaseSetup
    logs_query: str


@dataclass(frozen=True, config=STRICT)
class CommandRecord(_Model):
    """One command the run executed, exactly as typed, with the tail of its output."""

    id: str
    command: str
    at: Timestamp
    rc: Int | None
    duration_s: Float
    output_tail: tuple[str, ...]


@dataclass(frozen=True, config=STRICT)
class Probe(_Model):
    name: str
    ok: Bool
    detail: str


@dataclass(frozen=True, config=STRICT)
class SteadyState(_Model):
    ok: Bool
    probes: tuple[Probe, ...]


@dataclass(frozen=True, config=STRICT)
class Pods(_Model):
    receiver: str | None
    owner: str | None
    killed: str | None
    replacement: str | None
    survivors: tuple[str, ...]


@dataclass(frozen=True, config=STRICT)
class TimelineEntry(_Model):
    at: Timestamp
    source: Literal["kube", "log", "db", "tool"]
    event: str
    detail: str
    pod: str | None = None


@dataclass(frozen=True, config=STRICT)
class LogExcerpt(_Model):
    at: Timestamp
    pod: str
    severity: str
    message: str


@dataclass(frozen=True, config=STRICT)
class SqlEvidence(_Model):
    name: str
    query: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Scalar, ...], ...]


@dataclass(frozen=True, config=STRICT)
class FinalState(_Model):
    status: FlightStatus
    owner: str | None
    owner_alive: Bool | None
    completed_time: str | None
    last_step: Int | None


@dataclass(frozen=True, config=STRICT)
class RepairState(_Model):
    status: FlightStatus
    owner: str | None


@dataclass(frozen=True, config=STRICT)
class RepairStepRecord(_Model):
    """One repair command as it ran: its command id (``commands[].id``), its ``--json``
    document, and the flight's status after it (and after the hold, when there was one)."""

    command_id: str
    at: Timestamp
    doc: dict[str, Any] | None
    status_after: FlightStatus | None
    held_s: Float | None = None
    status_after_hold: FlightStatus | None = None


@dataclass(frozen=True, config=STRICT)
class RepairRecord(_Model):
    """What repair did: the ``repairtool orphans --json`` documents and the audit rows."""

    dry_run: dict[str, Any] | None
    fix: dict[str, Any] | None
    audit: tuple[dict[str, Any], ...]
    state_after: RepairState
    #: every repair command in order (newer journals)
    steps: tuple[RepairStepRecord, ...] | None = None
    #: the killed pod's stairwayinstance row after the repair: present or gone
    instance_after: Literal["present", "gone"] | None = None


@dataclass(frozen=True, config=STRICT)
class PodLife(_Model):
    """One pod as the Kubernetes API showed it during an attempt (a pod watch): created,
    Ready, and deleted (``None``: still there when the attempt ended)."""

    name: str
    created: Timestamp
    ready: Timestamp | None = None
    deleted: Timestamp | None = None


@dataclass(frozen=True, config=STRICT)
class Recovery(_Model):
    """Resume latency of a flight whose owner died: from the owner's deletion to the flight
    ``RUNNING`` on another pod, and to ``SUCCESS`` (None: it did not get there)."""

    owner: str
    owner_died: Timestamp
    running_pod: str | None = None
    running_again: Timestamp | None = None
    finished: Timestamp | None = None
    to_running_s: Float | None = None
    to_success_s: Float | None = None
    queue: Literal["emulator", "none"] | None = None


@dataclass(frozen=True, config=STRICT)
class Attempt(_Model):
    number: Int
    title: str
    flight_id: str | None
    started: Timestamp
    ended: Timestamp
    pods: Pods
    timeline: tuple[TimelineEntry, ...]
    log_excerpts: tuple[LogExcerpt, ...]
    sql_evidence: tuple[SqlEvidence, ...]
    final_state: FinalState
    what_happened: str
    root_cause: str
    verdict: Verdict
    repair: RepairRecord | None
    #: the pods' lifetimes during the attempt (a pod watch; newer journals)
    pod_lives: tuple[PodLife, ...] | None = None
    #: resume latency after the owner's death (pod-kill attempts; newer journals)
    recovery: Recovery | None = None


@dataclass(frozen=True, config=STRICT)
class JournalEvent(_Model):
    """An :class:`opskit.events.Event` as ``Event.to_json()`` writes it."""

    at: Timestamp
    kind: str
    level: Literal["info", "warn", "error"]
    message: str
    data: dict[str, Any]

    @classmethod
    def from_event(cls, event: Event) -> JournalEvent:
        doc = json.loads(json.dumps(event.to_json(), default=str))
        return cls.from_json(doc, source="<event>")


@dataclass(frozen=True, config=STRICT)
class Journal(_Model):
    run_id: str
    schema: str
    tool_version: str
    experiment: Experiment
    env: EnvInfo
    started: Timestamp
    ended: Timestamp
    duration_s: Float
    status: Literal["completed", "failed", "aborted"]
    deviated: Bool
    verdict: Verdict
    fail_step: str | None
    setup: Setup
    commands: tuple[CommandRecord, ...]
    steady_state_before: SteadyState
    steady_state_after: SteadyState
    attempts: tuple[Attempt, ...]
    notes: tuple[str, ...]
    events: tuple[JournalEvent, ...]

    @classmethod
    def from_json(cls, data: Any, *, source: str = "<journal>", path: str = "") -> Self:
        if isinstance(data, dict) and "schema" in data and data["schema"] != SCHEMA:
            raise JournalError(
                f"{source}: key 'schema' is {json.dumps(data['schema'])}: unsupported"
                f" (expected {SCHEMA})"
            )
        journal = super().from_json(data, source=source, path=path)
        journal._check(source)
        return journal

    def _check(self, source: str) -> None:
        """Cross-field rules: the setup's commands are commands the run executed."""

        def bad(key: str, problem: str) -> JournalError:
            return JournalError(f"{source}: key {key!r} {problem}")

        ran = {(c.id, c.command) for c in self.commands}
        if ("deploy", self.setup.deployment.command) not in ran:
            raise bad(
                "setup.deployment.command",
                "is not among commands[] with id 'deploy' (runbooks quote only commands that ran)",
            )
        if ("connect-db", self.setup.database.connect_command) not in ran:
            raise bad(
                "setup.database.connect_command",
                "is not among commands[] with id 'connect-db' (runbooks quote only commands"
                " that ran)",
            )
        numbers = [a.number for a in self.attempts]
        if numbers != list(range(1, len(numbers) + 1)):
            raise bad("attempts", f"must be numbered 1..N in order, not {numbers}")

    @classmethod
    def load(cls, path: Path | str) -> Journal:
        """Same as :func:`load`."""
        return load(path)

    def write(self, path: Path | str, *, secrets: Iterable[str] = ()) -> Path:
        """Same as :func:`write`."""
        return write(self, path, secrets=secrets)

    def commands_with(self, command_id: str) -> tuple[CommandRecord, ...]:
        return tuple(c for c in self.commands if c.id == command_id)

    def sql_evidence(self) -> Iterator[tuple[Attempt, SqlEvidence]]:
        for attempt in self.attempts:
            for evidence in attempt.sql_evidence:
                yield attempt, evidence


# --------------------------------------------------------------------------------------------
# files and secrets


def dumps(journal: Journal) -> str:
    """The stable text of a journal (sorted keys, 2-space indent, UTF-8, trailing newline)."""
    return json.dumps(journal.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def load(path: Path | str) -> Journal:
    """Read and validate a journal file; errors are one line naming the file and key path."""
    p = Path(path)
    data = parse_json(read_text(p, str(p), JournalError), str(p), JournalError)
    return Journal.from_json(data, source=str(p))


def relative_to_project(journal: Journal, root: Path, *, source: str = "journal") -> Journal:
    """The journal with the project's absolute path written relative to it (`./…`), so that
    journals and the runbooks rendered from them do not depend on where the checkout lives."""
    text = json.dumps(journal.to_json(), ensure_ascii=False)
    base = str(root.resolve())
    text = text.replace(base + "/", "").replace(base, ".")
    return Journal.from_json(json.loads(text), source=source)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask known secrets and anything that looks like one in ``text`` (a log line, output).

    ``secrets`` are literal values the runner knows (DB password, tokens); each occurrence is
    replaced by ``<<MASKED>>``, longest first. OAuth access tokens (``ya29.``), JWTs, passwords
    in URLs (``postgresql://user:pw@``) and ``PGPASSWORD=…`` are masked whatever they are.
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = SECRET_VALUE.sub(MASK, text)
    text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK + "@", text)
    return _ENV_PASSWORD.sub(lambda m: m["head"] + MASK, text)


def _masked(value: str) -> bool:
    return any(value == mark for mark in _MASKED_MARKS)


def _looks_secret(value: str) -> str | None:
    if SECRET_VALUE.search(value):
        return "an OAuth access token or JWT"
    for pattern in (_URL_PASSWORD, _ENV_PASSWORD):
        m = pattern.search(value)
        if m and not _masked(m["pw"]):
            return "a password"
    return None


def find_secrets(journal: Journal, secrets: Iterable[str] = ()) -> list[str]:
    """Where the journal holds a secret: ``key.path: what`` per place (values never shown).

    Checks every string against the given ``secrets`` and the token/password patterns, and every
    value under a secret-looking key (``token``, ``password``, …) in the embedded documents.
    """
    known = sorted({s for s in secrets if s}, key=len, reverse=True)
    found: list[str] = []

    def walk(node: Any, path: str, key: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{path}.{k}" if path else str(k), str(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]", key)
        elif isinstance(node, str):
            if any(s in node for s in known):
                found.append(f"{path}: a secret the runner named")
            elif (what := _looks_secret(node)) is not None:
                found.append(f"{path}: {what}")
            elif key and is_secret_key(key) and node and not _masked(node):
                found.append(f"{path}: a value under the secret-looking key {key!r}")

    walk(journal.to_json(), "", "")
    return found


def write(journal: Journal, path: Path | str, *, secrets: Iterable[str] = ()) -> Path:
    """Write the journal atomically (temp file + rename) as :func:`dumps` text.

    Validates it first as :meth:`Journal.from_json` would (a journal built in code must obey
    the same types and rules), and refuses (:class:`SecretInJournal`) when any string holds a
    secret; mask text with :func:`redact` before it enters the journal.
    """
    p = Path(path)
    # a journal built in code has skipped from_json: check its types and rules the same way
    Journal.from_json(json.loads(json.dumps(journal.to_json())), source=str(p))
    places = find_secrets(journal, secrets)
    if places:
        more = f" (and {len(places) - 1} more)" if len(places) > 1 else ""
        raise SecretInJournal(
            f"{p}: {places[0]}{more}; refusing to write it: mask text with"
            " opskit.journal.redact() first"
        )
    text = dumps(journal)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


__all__ = [
    "COMMAND_IDS",
    "SCHEMA",
    "SQL_NAMES",
    "Attempt",
    "CommandRecord",
    "DatabaseSetup",
    "DbTarget",
    "DelayHook",
    "Deployment",
    "EnvInfo",
    "Expectation",
    "Experiment",
    "FinalState",
    "Journal",
    "JournalError",
    "JournalEvent",
    "Kill",
    "LogExcerpt",
    "PodLife",
    "Pods",
    "Probe",
    "Recovery",
    "RepairRecord",
    "RepairSpec",
    "RepairState",
    "RepairStepRecord",
    "SecretInJournal",
    "Setup",
    "SqlEvidence",
    "SteadyState",
    "TimelineEntry",
    "dumps",
    "find_secrets",
    "flight_status",
    "load",
    "parse_time",
    "redact",
    "write",
]
