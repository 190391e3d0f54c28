"""The error tree of the repair package; each class carries one code of :mod:`repairtool.exitcodes`.

opskit's errors (:mod:`opskit.errors`) derive from :class:`RepairToolError` too, so one rule
turns any error into its one-line message and exit code (:func:`repairtool.exitcodes.exit_code_of`).
"""

from __future__ import annotations

from typing import ClassVar

from repairtool.exitcodes import ExitCode

EXIT_OK = ExitCode.OK
EXIT_FINDINGS = ExitCode.FINDINGS


class RepairToolError(Exception):
    """Base of every error the toolkit reports to a person as one line.

    The base itself has no meaning of its own: raising it directly is a bug (``INTERNAL``).
    """

    exit_code: ClassVar[ExitCode] = ExitCode.INTERNAL


class UsageError(RepairToolError):
    """Bad input: a wrong flag, value or data file."""

    exit_code = ExitCode.USAGE


class RefusedError(RepairToolError):
    """A safety rule refused the operation (e.g. no --reason, no terminal for the y/N question)."""

    exit_code = ExitCode.REFUSED


class DatabaseUnreachable(RepairToolError):
    """The database could not be reached."""

    exit_code = ExitCode.DB_UNREACHABLE


class NotStairwayDatabase(RepairToolError):
    """The database is reachable but holds no Stairway tables."""

    exit_code = ExitCode.NOT_STAIRWAY_DB


class NotFoundError(RepairToolError):
    """Something named on the command line does not exist."""

    exit_code = ExitCode.NOT_FOUND


class UnknownFlight(NotFoundError):
    """No flight with that id."""


class LocalPostgresError(RepairToolError):
    """The project-managed local Postgres could not be started or found."""

    exit_code = ExitCode.LOCAL_POSTGRES


class PlatformUnreachable(RepairToolError):
    """The Kubernetes API, the work queue (Pub/Sub) or Cloud Logging cannot be reached."""

    exit_code = ExitCode.PLATFORM_UNREACHABLE
