"""The engine's DbRetry rule and the typed one-line errors, for psycopg 3 errors (and the
SQLAlchemy errors that wrap them) — without importing SQLAlchemy.

Both database paths use it: the SQLAlchemy engine of mutations (`repairtool.stairway.db`) and
the psycopg read path of detection and scans (`repairtool.stairway.pgread`). The rule (see
`repairtool.stairway.db` for the whole story): retry SQLSTATE 40001, 40P01, 08xxx and 53xxx; a
terminated backend (57P01/57P02/57P03) or a socket closed without a SQLSTATE counts as 08006;
anything else becomes a typed one-line error that never holds a SQL parameter, a password or a
stored value.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from repairtool.errors import DatabaseUnreachable, RepairToolError
from repairtool.flightmap.secrets import MASK, SECRET_VALUE
from repairtool.stairway.errors import (
    AuthenticationFailed,
    BadDatabaseValue,
    DatabaseError,
    PermissionDenied,
    UnsupportedSchema,
)

# libpq reports server errors during the start-up packet as text, without a SQLSTATE
_CONNECT_STATES = (
    ("too many connections", "53300"),
    ("too many clients", "53300"),
    ("remaining connection slots are reserved", "53300"),
    ("out of memory", "53200"),
    ("the database system is starting up", "57P03"),
    ("the database system is shutting down", "57P03"),
    ("the database system is in recovery mode", "57P03"),
    ("password authentication failed", "28P01"),
    ("authentication failed", "28000"),
    ("no pg_hba.conf entry", "28000"),
    ("does not exist", "3D000"),
)


def _orig(error: BaseException) -> BaseException:
    """The driver's error (SQLAlchemy wraps it in `.orig`)."""
    return getattr(error, "orig", None) or error


def sqlstate_of(error: BaseException) -> str | None:
    state = getattr(_orig(error), "sqlstate", None)
    return state if isinstance(state, str) else None


def connect_state(error: BaseException) -> str | None:
    """The SQLSTATE of a failed connection attempt (read from libpq's text when it has none)."""
    state = sqlstate_of(error)
    if state is not None:
        return state
    lowered = first_line(error).lower()
    for needle, code in _CONNECT_STATES:
        if needle in lowered:
            return code
    return None


def is_retryable(error: BaseException) -> tuple[bool, str]:
    """The engine's DbRetry rule. Returns (retry?, sqlstate shown in the log)."""
    state = sqlstate_of(error)
    if state is not None:
        if state in ("40001", "40P01") or state[:2] in ("08", "53"):
            return True, state
        if state in ("57P01", "57P02", "57P03"):
            return True, "08006"
        return False, state
    if getattr(error, "connection_invalidated", False) or isinstance(
        _orig(error), psycopg.OperationalError
    ):
        return True, "08006"
    return False, ""


def first_line(error: BaseException) -> str:
    text_ = str(_orig(error)).strip()
    return text_.splitlines()[0].strip() if text_ else ""


_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")


def server_message(error: BaseException) -> str:
    """The server's first line, safe to show: values quoted in data errors are masked, token-like
    strings are masked everywhere, and it is cut to 200 characters."""
    line = first_line(error)
    state = sqlstate_of(error) or ""
    if state[:2] == "P0":  # a trigger's or function's own RAISE: its text may carry any value
        return "raised by a trigger or function in the database"
    if state[:2] in ("22", "XX", "23") or isinstance(_orig(error), psycopg.DataError):
        line = _QUOTED.sub(lambda m: m.group(0)[0] + "…" + m.group(0)[0], line)
    line = SECRET_VALUE.sub(MASK, line)
    return line if len(line) <= 200 else line[:199] + "…"


def translate(error: BaseException, what: str) -> RepairToolError:
    """A database error as a typed one-line error (never the SQL parameters)."""
    state = sqlstate_of(error) or ""
    line = server_message(error)
    tail = f" (SQLSTATE {state})" if state else ""
    if state == "42501":
        return PermissionDenied(f"{what}: the database role lacks a privilege: {line}{tail}")
    if state == "25006":
        return PermissionDenied(
            f"{what}: refused as read-only (a replica, or a read-only transaction): {line}{tail}"
        )
    if state[:2] == "42" or state == "0A000":
        return UnsupportedSchema(
            f"{what}: the database's tables are not in a shape this tool knows: {line}{tail}"
        )
    if state[:2] == "22" or isinstance(_orig(error), psycopg.DataError):
        return BadDatabaseValue(
            f"{what}: the database holds a value this tool cannot handle: {line}{tail}"
        )
    if state[:2] == "28":
        return AuthenticationFailed(f"{what}: the database refused the login: {line}{tail}")
    return DatabaseError(f"{what} failed: {line or type(error).__name__}{tail}")


def connect_error(error: BaseException, settings_hint: str) -> RepairToolError:
    """A connection attempt that retrying cannot help, as a typed one-line error."""
    message = server_message(error)
    state = connect_state(error) or ""
    if state[:2] == "28":
        return AuthenticationFailed(
            f"database refused the login for {settings_hint}: check the user and the password "
            "(PGPASSWORD or ~/.pgpass)"
        )
    if state == "3D000":
        return DatabaseUnreachable(f"database not found at {settings_hint}: {message}")
    return DatabaseUnreachable(
        f"database unreachable at {settings_hint}: {message or type(error).__name__}; "
        "is the server (or the Cloud SQL proxy) running?"
    )


def connect_retry_state(error: BaseException, *, reached: bool, hint: str) -> str:
    """The state to retry a failed connection attempt on, or raise the typed error when retrying
    cannot help: a wrong login or database, or — before this process ever reached the server — a
    server that is not there (nothing to retry into). `reached`: an earlier attempt connected;
    `hint`: the database as messages name it (`describe_url`)."""
    state = connect_state(error) or ""
    if state[:2] == "28" or state == "3D000":
        raise connect_error(error, hint) from None
    if state[:2] == "53" or state == "57P03" or reached:
        return state or "08001"
    raise connect_error(error, hint) from None


@dataclass
class RetryPolicy:
    """Bounded, jittered retries like the engine's DbRetry (20 tries, 250–1000 ms)."""

    attempts: int = 20
    min_sleep: float = 0.25
    max_sleep: float = 1.0
    on_retry: Callable[[int, str, BaseException], None] | None = None

    def sleep(self) -> None:
        time.sleep(random.uniform(self.min_sleep, self.max_sleep))


DEFAULT_RETRY = RetryPolicy()


def retry_message(state: str) -> str:
    # the engine's own lines, logged at INFO (DataBiosphere/stairway impl/DbRetry.java @ 18489f6)
    if state in ("40001", "40P01"):
        return f"Caught SQL serialization error ({state}) - retrying"
    return f"Caught SQL connection or resource error ({state}) - retrying"
