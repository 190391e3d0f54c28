"""Typed errors of the database layer: every way a database can refuse, fail or surprise us.

Each is a leaf of :class:`repairtool.errors.RepairToolError` with a one-line message that never
holds a password, a SQL parameter or a stored FlightMap value. Exit codes are inherited from the
base classes in :mod:`repairtool.errors` (the CLI may give a leaf a code of its own).
"""

from __future__ import annotations

import re

from repairtool.errors import (
    DatabaseUnreachable,
    NotStairwayDatabase,
    RefusedError,
    RepairToolError,
    UsageError,
)
from repairtool.exitcodes import ExitCode

_PLAIN = re.compile(r"[A-Za-z0-9._:@/+=-]{1,80}")


def shown(value: object, limit: int = 60) -> str:
    """A name or id from the input or the database as it may appear in a one-line message:
    plain ids as they are, anything else (newlines, control or odd characters, huge values)
    quoted with escapes and cut to `limit` characters."""
    text = str(value)
    if _PLAIN.fullmatch(text):
        return text
    cut = text[:limit]
    return repr(cut)[:-1] + ("…" + repr(cut)[-1] if len(text) > limit else repr(cut)[-1])


class PermissionDenied(RefusedError):
    """The database role may not do this (SQLSTATE 42501), or the database is read-only (25006).

    Dry runs need SELECT on the engine's tables; `--fix` also needs UPDATE on `flight` (and
    `flightinput` for re-encoding) and either CREATE on the database or INSERT on an existing
    `stairway_ops.audit`."""


class UnsupportedSchema(NotStairwayDatabase):
    """The engine's tables exist but not in a shape this tool knows (a table or column missing or
    renamed, a type it cannot compare)."""


class BadDatabaseValue(UsageError):
    """The database holds a value that cannot be read or written (SQLSTATE class 22)."""


class ForeignAuditTable(RefusedError):
    """`stairway_ops.audit` exists but is not this tool's audit table; it is never written to."""


class LiveOwnerRefused(RefusedError):
    """A RUNNING flight owned by an instance was to be changed without evidence that its owner is
    dead or stuck (or an explicit force)."""


class AuthenticationFailed(DatabaseUnreachable):
    """The server is up but refused the login (wrong user or password)."""

    exit_code = ExitCode.DB_LOGIN_REFUSED


class RetriesExhausted(DatabaseUnreachable):
    """Every attempt of the engine's DbRetry rule failed (20 tries)."""


class OutcomeUnknown(RetriesExhausted):
    """A COMMIT was sent, its acknowledgement was lost, and no later attempt could look up the
    operation id: the change may or may not have been applied (the audit trail will tell)."""


class DatabaseError(RepairToolError):
    """The database failed an operation for a reason no other class names; the message carries
    the SQLSTATE and the server's first line (values masked)."""

    # the database family's code until the CLI gives this leaf its own
    exit_code = DatabaseUnreachable.exit_code


__all__ = [
    "AuthenticationFailed",
    "BadDatabaseValue",
    "DatabaseError",
    "ForeignAuditTable",
    "LiveOwnerRefused",
    "OutcomeUnknown",
    "PermissionDenied",
    "RetriesExhausted",
    "UnsupportedSchema",
    "shown",
]
