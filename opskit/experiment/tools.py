"""The commands an experiment runs, as an operator types them, and their machine-readable results.

Every command is a real process recorded in the journal (:mod:`opskit.experiment.commands`).
When the experiment needs a command's result it never reads the human output: ``inv run-test``
and ``inv kill-pod`` write a versioned JSON document to the file named by ``--json-out``
(the result, or the error with its exit code), ``repairtool … --json`` prints its versioned
document on stdout, and ``psql --csv`` prints CSV.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opskit import paths
from opskit.dbproxy import DbTarget
from opskit.errors import OperationFailed
from opskit.experiment.commands import CommandLog, CommandResult, RunningCommand, join
from opskit.experiment.db import (
    SQL_SERVICE_DB_DOWN,
    SQL_SERVICE_DB_UP,
    SQL_TERMINATE,
    csv_rows,
    psql_command,
)
from opskit.experiment.definition import ExperimentDefinition
from opskit.testrunner import JourneyResult, TestRunSummary, summary_from_json

#: schemas of the documents the ops tasks write with ``--json-out``
RUN_TEST_SCHEMA = "stairway-ops.run-test/1"
KILL_POD_SCHEMA = "stairway-ops.kill-pod/1"
ERROR_SCHEMA = "stairway-ops.error/1"
ORPHANS_SCHEMA = "repairtool.orphans/1"
RECOVER_SCHEMA = "repairtool.recover/1"


def rel(path: Path) -> str:
    """``path`` relative to the project root when inside it (commands run from there)."""
    try:
        return str(path.resolve().relative_to(paths.PROJECT_ROOT))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class TaskError:
    """A task's ``--json-out`` error document: its exit code and one-line message."""

    code: int
    name: str
    message: str


@dataclass(frozen=True)
class ClientRun:
    """What the client (``inv run-test``) saw: exit code (None: stopped while it waited),
    and its summary when it wrote one."""

    rc: int | None
    summary: TestRunSummary | None
    journeys: tuple[JourneyResult, ...] = ()
    error: TaskError | None = None


def read_document(path: Path, schema: str) -> dict[str, Any] | TaskError | None:
    """A ``--json-out`` file: the result (``schema``), the task's error, or None when absent."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    if doc.get("schema") == ERROR_SCHEMA:
        return TaskError(int(doc["code"]), str(doc["name"]), str(doc["message"]))
    if doc.get("schema") != schema:
        raise OperationFailed(f"{path}: schema {doc.get('schema')!r}, expected {schema}")
    return doc


class Tools:
    """Builds and runs the experiment's commands; ``results_dir`` holds their documents."""

    def __init__(
        self, defn: ExperimentDefinition, env_name: str, cmds: CommandLog, results_dir: Path
    ) -> None:
        self.defn = defn
        self.env = env_name
        self.cmds = cmds
        self.results_dir = results_dir
        self._outputs = 0

    def _json_out(self, command_id: str) -> Path:
        self._outputs += 1
        self.results_dir.mkdir(parents=True, exist_ok=True)
        return self.results_dir / f"{self._outputs:02d}-{command_id}.json"

    def connect_db(self, target: DbTarget) -> CommandResult:
        """The psql line for the Stairway database, checked with ``\\conninfo``."""
        return self.cmds.run(
            "connect-db",
            f"{target.psql_line()} -c '\\conninfo'",
            extra_env=target.child_env(),
            timeout=30,
        )

    # -- repairtool --------------------------------------------------------------------------
    def repairtool(self, *args: str) -> str:
        return join(["repairtool", *args])

    def orphans_command(self, *extra: str) -> str:
        d = self.defn
        return self.repairtool(
            "orphans", "--env", self.env, "--reader", d.reader, *d.detection.options(), *extra,
        )  # fmt: skip

    def orphans(self, command_id: str, *extra: str) -> dict[str, Any]:
        """``repairtool orphans … --json``: its versioned document (stdout)."""
        result = self.cmds.run(
            command_id, self.orphans_command(*extra, "--json"), timeout=120, quiet=True
        )
        doc = _stdout_document(result, ORPHANS_SCHEMA)
        if doc is None:
            raise OperationFailed(
                f"repairtool orphans --json gave no {ORPHANS_SCHEMA} document (exit {result.rc})"
            )
        return doc

    def orphans_dry_run(self) -> CommandResult:
        """The dry run as a person reads it (the runbooks quote its output)."""
        return self.cmds.run("orphans-dry-run", self.orphans_command(), timeout=120)

    def fix(
        self, flight_id: str | None, action: str | None, reason: str
    ) -> tuple[CommandResult, dict[str, Any] | None]:
        """``repairtool orphans [--flight ID] --fix [--action A] --reason R --yes --json``
        (no flight: the whole plan; no action: the proposed actions)."""
        scope = ("--flight", flight_id) if flight_id else ()
        act = ("--action", action) if action else ()
        flags = (*scope, "--fix", *act, "--reason", reason)
        result = self.cmds.run(
            f"orphans-fix-{action}" if action else "orphans-fix",
            self.orphans_command(*flags, "--yes", "--json"),
            timeout=120,
            quiet=True,
        )
        return result, _stdout_document(result, ORPHANS_SCHEMA)

    def recover(
        self, action: str, target: str, reason: str
    ) -> tuple[CommandResult, dict[str, Any] | None]:
        """``repairtool recover ACTION --env E TARGET --fix --reason R --yes --json``."""
        command = self.repairtool(
            "recover", action, "--env", self.env, target, "--fix", "--reason", reason,
            "--yes", "--json",
        )  # fmt: skip
        result = self.cmds.run(f"recover-{action}", command, timeout=120, quiet=True)
        return result, _stdout_document(result, RECOVER_SCHEMA)

    def restart(self) -> CommandResult:
        """``inv restart --env E``: a rolling restart, watched until stable."""
        return self.cmds.run("restart", join(["inv", "restart", "--env", self.env]), timeout=300)

    def switches(self, sandbox_dir: Path, values: dict[str, bool]) -> CommandResult:
        """``python -m sandbox switches --state-dir DIR --set NAME=on|off …``."""
        sets = [x for k, v in values.items() for x in ("--set", f"{k}={'on' if v else 'off'}")]
        command = join(
            ["python", "-m", "sandbox", "switches", "--state-dir", rel(sandbox_dir), *sets]
        )
        result = self.cmds.run("switches", command, timeout=60)
        if result.rc != 0:
            raise OperationFailed(f"sandbox switches failed (exit {result.rc}): {command}")
        return result

    def audit(self, flight_id: str) -> tuple[dict[str, Any], ...]:
        """``repairtool flights audit --flight ID --json``: the audit rows."""
        command = self.repairtool("flights", "audit", "--env", self.env, "--flight", flight_id)
        doc = _stdout_document(
            self.cmds.run("audit", command + " --json", quiet=True), "repairtool.audit/1"
        )
        rows = (doc or {}).get("audit") or []
        return tuple(x for x in rows if isinstance(x, dict))

    def look(self, flight_id: str) -> None:
        """What an operator runs to look at the flight (quoted by the runbooks)."""
        e = self.env
        self.cmds.run("logs", join(["inv", "logs", "--env", e, "--flight", flight_id]))
        self.cmds.run("flight-show", self.repairtool("flights", "show", flight_id, "--env", e))
        listing = ("flights", "list", "--env", e)
        statuses = ("RUNNING", "READY", "QUEUED", "WAITING", "READY_TO_RESTART")
        self.cmds.run(
            "flights-nonterminal",
            self.repairtool(*listing, *[x for st in statuses for x in ("--status", st)]),
        )
        unowned = ("--status", "READY", "--status", "QUEUED", "--owner", "none")
        self.cmds.run("flights-unowned", self.repairtool(*listing, *unowned))
        self.cmds.run("flights-fatal", self.repairtool(*listing, "--status", "FATAL"))
        self.cmds.run("instances", self.repairtool("flights", "instances", "--env", e))
        self.cmds.run(
            "decode",
            self.repairtool(
                "decode", "--env", e, "--reader", self.defn.reader, "--flight", flight_id
            ),
        )

    # -- the ops tasks -----------------------------------------------------------------------
    def start_run_test(self) -> tuple[RunningCommand, Path]:
        """``inv run-test --env E --json-out FILE`` in the background (the client's request)."""
        out = self._json_out("run-test")
        command = join(["inv", "run-test", "--env", self.env, "--json-out", rel(out)])
        return self.cmds.start("run-test", command), out

    def finish_run_test(self, running: RunningCommand, out: Path, timeout: float) -> ClientRun:
        result = running.wait(timeout)
        doc = read_document(out, RUN_TEST_SCHEMA)
        if isinstance(doc, TaskError):
            return ClientRun(result.rc, None, error=doc)
        if doc is None:
            return ClientRun(result.rc, None)
        return ClientRun(
            result.rc,
            summary_from_json(doc["summary"], source=str(out)),
            tuple(JourneyResult.from_json(j) for j in doc.get("journeys") or []),
        )

    def kill_pod(
        self, flight_id: str, *, pod: str | None = None, replacement_timeout: float | None = None
    ) -> tuple[CommandResult, dict[str, Any] | TaskError | None]:
        """``inv kill-pod --flight ID --when-step N`` (or ``--pod NAME``: a pod that owns
        nothing, once the flight is inside the step): the same code path as by hand.
        ``replacement_timeout``: when the ReplicaSet is not to replace the pod."""
        d = self.defn
        settle = math.ceil(d.method.settle(d.delay))  # whole seconds read better in runbooks
        timeout = math.ceil(2 * d.delay.seconds + settle + 60)
        out = self._json_out("kill-pod")
        what = ["--pod", pod] if pod else ["--flight", flight_id]
        waits = (
            ["--replacement-timeout", f"{math.ceil(replacement_timeout)}s"]
            if replacement_timeout is not None
            else []
        )
        command = join(
            [
                "inv", "kill-pod", "--env", self.env, *what,
                *(["--when-step", str(d.method.when_step)] if not pod else []),
                "--timeout", f"{timeout}s", "--settle", f"{settle}s", *waits,
                "--json-out", rel(out),
            ]
        )  # fmt: skip
        result = self.cmds.run("kill-pod", command, timeout=timeout + 60)
        return result, read_document(out, KILL_POD_SCHEMA)

    # -- psql ----------------------------------------------------------------------------------
    def service_db(self, target: DbTarget, available: bool) -> CommandResult:
        """``psql … -c "ALTER DATABASE wsm …"``: the service's own database refuses new
        connections and its sessions are ended (a dependency outage), or accepts them again."""
        sql = SQL_SERVICE_DB_UP if available else SQL_SERVICE_DB_DOWN
        result = self.cmds.run(
            "service-db-restored" if available else "service-db-outage",
            psql_command(target, sql),
            extra_env=target.child_env(),
            timeout=60,
        )
        if result.rc != 0:
            raise OperationFailed(f"psql failed (exit {result.rc}): see {result.log}")
        return result

    def terminate_connections(self, target: DbTarget) -> tuple[CommandResult, list[dict[str, str]]]:
        """``psql --csv -c SQL_TERMINATE``: every client backend cut, as psql's CSV rows."""
        result = self.cmds.run(
            "drop-db-connections",
            psql_command(target, SQL_TERMINATE, as_csv=True),
            extra_env=target.child_env(),
            timeout=60,
        )
        return result, csv_rows(result.stdout) if result.ok else []


def _stdout_document(result: CommandResult, schema: str) -> dict[str, Any] | None:
    """The versioned JSON document a command printed on stdout, or None."""
    try:
        doc = json.loads(result.stdout)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and doc.get("schema") == schema else None
