"""One exit-code table for `repairtool` and `inv`: every error class of both packages maps to
exactly one code of it, the same number means the same thing, and every help and the README
print it from the one source."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from repairtool.exitcodes import ExitCode, code_of_class, exit_code_of, help_text, markdown_table

ROOT = Path(__file__).resolve().parent.parent

#: every error class of repairtool and opskit, and the one code it means (a new error class
#: must be added here: the test below walks the packages and fails on one that is missing)
EXPECTED: dict[str, ExitCode] = {
    "repairtool.errors.RepairToolError": ExitCode.INTERNAL,
    "repairtool.errors.UsageError": ExitCode.USAGE,
    "repairtool.errors.RefusedError": ExitCode.REFUSED,
    "repairtool.errors.DatabaseUnreachable": ExitCode.DB_UNREACHABLE,
    "repairtool.errors.NotStairwayDatabase": ExitCode.NOT_STAIRWAY_DB,
    "repairtool.errors.NotFoundError": ExitCode.NOT_FOUND,
    "repairtool.errors.UnknownFlight": ExitCode.NOT_FOUND,
    "repairtool.errors.LocalPostgresError": ExitCode.LOCAL_POSTGRES,
    "repairtool.errors.PlatformUnreachable": ExitCode.PLATFORM_UNREACHABLE,
    "repairtool.durations.InvalidDuration": ExitCode.USAGE,
    "repairtool.stairway.errors.AuthenticationFailed": ExitCode.DB_LOGIN_REFUSED,
    "repairtool.liveness.KubeUnavailable": ExitCode.PLATFORM_UNREACHABLE,
    "repairtool.stairway.queue.QueueError": ExitCode.PLATFORM_UNREACHABLE,
    # the database layer's typed failures (issue 12; round two may give some a code of their own)
    "repairtool.stairway.errors.PermissionDenied": ExitCode.REFUSED,
    "repairtool.stairway.errors.ForeignAuditTable": ExitCode.REFUSED,
    "repairtool.stairway.errors.LiveOwnerRefused": ExitCode.REFUSED,
    "repairtool.stairway.errors.UnsupportedSchema": ExitCode.NOT_STAIRWAY_DB,
    "repairtool.stairway.errors.BadDatabaseValue": ExitCode.USAGE,
    "repairtool.stairway.errors.RetriesExhausted": ExitCode.DB_UNREACHABLE,
    "repairtool.stairway.errors.OutcomeUnknown": ExitCode.DB_UNREACHABLE,
    "repairtool.stairway.errors.DatabaseError": ExitCode.DB_UNREACHABLE,
    "repairtool.flightmap.errors.FlightMapError": ExitCode.USAGE,
    "repairtool.flightmap.errors.CatalogError": ExitCode.USAGE,
    "repairtool.flightmap.errors.ReaderVersionError": ExitCode.USAGE,
    "repairtool.flightmap.errors.JacksonParseError": ExitCode.USAGE,
    "opskit.errors.OpsError": ExitCode.INTERNAL,
    "opskit.errors.OperationFailed": ExitCode.FINDINGS,
    "opskit.errors.UsageError": ExitCode.USAGE,
    "opskit.errors.EnvError": ExitCode.USAGE,
    "opskit.errors.ToolMissing": ExitCode.TOOL_MISSING,
    "opskit.errors.NotFound": ExitCode.NOT_FOUND,
    "opskit.errors.UnknownEnv": ExitCode.NOT_FOUND,
    "opskit.errors.Refused": ExitCode.REFUSED,
    "opskit.envchoice.NoEnvChosen": ExitCode.REFUSED,
    "opskit.errors.CommandFailed": ExitCode.COMMAND_FAILED,
    "opskit.errors.OpsTimeout": ExitCode.TIMEOUT,
    "opskit.errors.Unavailable": ExitCode.PLATFORM_UNREACHABLE,
    "opskit.secrets.SecretCorrupted": ExitCode.PLATFORM_UNREACHABLE,
    "opskit.experiment.definition.ExperimentError": ExitCode.USAGE,
    "opskit.experiment.definition.UnknownExperiment": ExitCode.NOT_FOUND,
    "opskit.experiment.runner.SteadyStateFailed": ExitCode.FINDINGS,
    "opskit.journal.JournalError": ExitCode.USAGE,
    "opskit.journal.SecretInJournal": ExitCode.REFUSED,
    "opskit.runbooks.RunbookError": ExitCode.USAGE,
    # signals caught where they are raised: escaping to a command would be a bug
    "opskit.journey.HttpFailure": ExitCode.INTERNAL,
    "repairtool.flightmap.reencode._NoWay": ExitCode.INTERNAL,
    "repairtool.flightmap.scalars.Reject": ExitCode.INTERNAL,
}


def _error_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined in a module of repairtool or opskit (all modules imported)."""
    found: dict[str, type[BaseException]] = {}
    for package in ("repairtool", "opskit"):
        root = importlib.import_module(package)
        names = [package] + [
            m.name
            for m in pkgutil.walk_packages(root.__path__, prefix=f"{package}.")
            if not m.name.endswith(".__main__")  # importing it would run the command
        ]
        for name in names:
            module = importlib.import_module(name)
            for _, obj in inspect.getmembers(module, inspect.isclass):
                if issubclass(obj, BaseException) and obj.__module__ == name:
                    found[f"{name}.{obj.__qualname__}"] = obj
    return found


def test_every_error_class_maps_to_exactly_the_code_it_means() -> None:
    classes = _error_classes()
    assert set(classes) == set(EXPECTED), (
        "error classes without a decided exit code (add them to EXPECTED): "
        f"{sorted(set(classes) - set(EXPECTED))}; gone: {sorted(set(EXPECTED) - set(classes))}"
    )
    wrong = {
        name: (code_of_class(cls).name, EXPECTED[name].name)
        for name, cls in classes.items()
        if code_of_class(cls) is not EXPECTED[name]
    }
    assert not wrong, wrong


def test_ops_errors_and_repair_errors_are_one_tree() -> None:
    from opskit.errors import OpsError
    from repairtool.errors import RepairToolError

    assert issubclass(OpsError, RepairToolError)


def test_codes_are_distinct_and_the_fixed_ones_hold() -> None:
    values = [c.value for c in ExitCode]
    assert len(values) == len(set(values))
    assert (ExitCode.OK, ExitCode.FINDINGS, ExitCode.USAGE, ExitCode.REFUSED) == (0, 1, 2, 3)
    assert (ExitCode.INTERNAL, ExitCode.INTERRUPTED) == (70, 130)
    assert all(c.meaning and "\n" not in c.meaning for c in ExitCode)


def test_an_unclassified_exception_is_internal_and_ctrl_c_is_interrupted() -> None:
    assert exit_code_of(TypeError("x")) is ExitCode.INTERNAL
    assert exit_code_of(KeyboardInterrupt()) is ExitCode.INTERRUPTED


def test_the_readme_prints_the_table_from_the_one_source() -> None:
    assert markdown_table() in (ROOT / "README.md").read_text()


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["orphans", "--help"],
        ["flights", "audit", "--help"],
        ["recover", "force-fatal", "--help"],
        ["local", "up", "--help"],
    ],
)
def test_every_repairtool_help_ends_with_the_table(argv: list[str]) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "repairtool", *argv], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.endswith(help_text())
