"""The error tree of the repair package; each leaf maps to one exit code of `repairtool`.

Exit codes: 0 nothing found / all done; 1 findings left (dry run, or some repairs skipped);
2 usage or bad input (incl. an unknown flight id); 3 refused by a safety rule; 4 database
unreachable; 5 database refused the login; 6 not a Stairway database; 7 local Postgres failed.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1


class RepairToolError(Exception):
    """Base of every error the toolkit reports to a person as one line."""

    exit_code = 2


class UsageError(RepairToolError):
    """Bad input: a wrong flag, file, flight id, or a database that is not a Stairway database."""

    exit_code = 2


class RefusedError(RepairToolError):
    """A safety rule refused the operation (e.g. no --reason, no terminal for the y/N question)."""

    exit_code = 3


class DatabaseUnreachable(RepairToolError):
    """The database could not be reached or refused the login."""

    exit_code = 4


class NotStairwayDatabase(RepairToolError):
    """The database is reachable but holds no Stairway tables."""

    exit_code = 6


class UnknownFlight(UsageError):
    """No flight with that id."""


class LocalPostgresError(RepairToolError):
    """The project-managed local Postgres could not be started or found."""

    exit_code = 7
