"""Connections to a Stairway database: settings, engine, errors and the engine's DbRetry rule.

The engine wraps every DAO call in `DbRetry`: up to 20 tries with a random 250–1000 ms sleep,
retrying SQLSTATE 40001 (serialization), 40P01 (deadlock), 08xxx (connection) and 53xxx
(insufficient resources). `run_in_transaction` does the same around one transaction.
A connection the server terminated (57P01, or a socket closed without a SQLSTATE) is what the
JDBC driver reports as 08006, so it is retried as a connection error too.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Connection, Engine, create_engine, exc
from sqlalchemy.engine import URL, make_url

from repairtool.errors import DatabaseUnreachable, RepairToolError, UsageError
from repairtool.exitcodes import ExitCode

log = logging.getLogger("repairtool.db")

T = TypeVar("T")

ENV_URL = "STAIRWAY_DB_URL"
ENV_FILE = "STAIRWAY_OPS_ENV_FILE"
APPLICATION_NAME = "repairtool"


class AuthenticationFailed(DatabaseUnreachable):
    """The server is up but refused the login (wrong user or password)."""

    exit_code = ExitCode.DB_LOGIN_REFUSED


@dataclass(frozen=True)
class DbSettings:
    """Where the Stairway database is. The password never appears in `repr` or `str`."""

    url: URL = field(repr=False)
    source: str = "--db"

    @property
    def safe_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    def __repr__(self) -> str:
        return f"DbSettings(url={self.safe_url!r}, source={self.source!r})"

    __str__ = __repr__


def parse_url(raw: str, source: str) -> DbSettings:
    """Parse a postgres URL (postgresql://, postgres://, postgresql+psycopg://) into settings."""
    raw = raw.strip()
    if raw.startswith("postgres://"):
        raw = "postgresql://" + raw[len("postgres://") :]
    try:
        url = make_url(raw)
    except exc.ArgumentError:
        raise UsageError(
            f"{source}: not a database URL; expected postgresql://USER@HOST:PORT/DBNAME"
        ) from None
    if url.get_backend_name() != "postgresql":
        raise UsageError(f"{source}: only postgresql URLs are supported, got {url.drivername!r}")
    return DbSettings(url.set(drivername="postgresql+psycopg"), source)


def read_env_file(path: Path) -> dict[str, str]:
    """Read a dotenv-style file (KEY=VALUE lines, # comments, optional quotes)."""
    out: dict[str, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :]
        key, sep, value = line.partition("=")
        if not sep:
            raise UsageError(f"{path}:{n}: expected KEY=VALUE")
        out[key.strip()] = value.strip().strip("'\"")
    return out


def resolve_settings(
    db: str | None = None, env_file: Path | None = None, *, default_env_file: Path | None = None
) -> DbSettings:
    """Find the database URL: `--db`, then `$STAIRWAY_DB_URL`, then an environment file."""
    if db:
        return parse_url(db, "--db")
    if os.environ.get(ENV_URL):
        return parse_url(os.environ[ENV_URL], f"${ENV_URL}")
    candidates: list[Path] = []
    if env_file is not None:
        candidates.append(env_file)
    elif os.environ.get(ENV_FILE):
        candidates.append(Path(os.environ[ENV_FILE]))
    elif default_env_file is not None:
        candidates.append(default_env_file)
    for path in candidates:
        if not path.exists():
            if env_file is not None:
                raise UsageError(f"--env-file {path}: no such file")
            continue
        values = read_env_file(path)
        if ENV_URL not in values:
            raise UsageError(f"{path}: no {ENV_URL}=… line")
        return parse_url(values[ENV_URL], str(path))
    raise UsageError(
        f"no database given: pass --db URL, set ${ENV_URL}, or start the local one with "
        "`repairtool local up`"
    )


def make_engine(settings: DbSettings, *, connect_timeout: int = 5, pool_size: int = 2) -> Engine:
    """A SQLAlchemy engine on psycopg 3 for the Stairway database."""
    return create_engine(
        settings.url,
        pool_size=pool_size,
        max_overflow=2,
        pool_pre_ping=True,
        connect_args={"application_name": APPLICATION_NAME, "connect_timeout": connect_timeout},
    )


def sqlstate_of(error: BaseException) -> str | None:
    orig = getattr(error, "orig", None) or error
    state = getattr(orig, "sqlstate", None)
    return state if isinstance(state, str) else None


def is_retryable(error: BaseException) -> tuple[bool, str]:
    """The engine's DbRetry rule. Returns (retry?, sqlstate shown in the log)."""
    state = sqlstate_of(error)
    if state is not None:
        if state in ("40001", "40P01") or state[:2] in ("08", "53"):
            return True, state
        if state in ("57P01", "57P02", "57P03"):
            return True, "08006"
        return False, state
    if isinstance(error, exc.DBAPIError) and (
        error.connection_invalidated or isinstance(error, exc.OperationalError)
    ):
        return True, "08006"
    return False, ""


def _connect_error(error: exc.DBAPIError, settings_hint: str) -> RepairToolError:
    message = str(getattr(error, "orig", error)).strip().splitlines()[0] if error else ""
    lowered = message.lower()
    if "password authentication failed" in lowered or "authentication failed" in lowered:
        return AuthenticationFailed(
            f"database refused the login for {settings_hint}: check the user and the password "
            "(PGPASSWORD or ~/.pgpass)"
        )
    if "does not exist" in lowered and "database" in lowered:
        return DatabaseUnreachable(f"database not found at {settings_hint}: {message}")
    return DatabaseUnreachable(
        f"database unreachable at {settings_hint}: {message or type(error).__name__}; "
        "is the server (or the Cloud SQL proxy) running?"
    )


def hint_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


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


def _retry_message(state: str) -> str:
    if state == "40001":
        return "Caught SQL serialization error (40001) - retrying"
    if state == "40P01":
        return "Caught SQL deadlock error (40P01) - retrying"
    return f"Caught SQL connection or resource error ({state}) - retrying"


def run_in_transaction(
    engine: Engine,
    body: Callable[[Connection], T],
    *,
    readonly: bool = False,
    policy: RetryPolicy = DEFAULT_RETRY,
    what: str = "transaction",
) -> T:
    """Run `body` in one transaction (SERIALIZABLE for writes, READ COMMITTED read-only for reads),
    retrying it as a whole under the engine's DbRetry rule. `body` must be safe to run again:
    every mutation in this package checks, inside the transaction, whether it already happened.
    """
    isolation = "READ COMMITTED" if readonly else "SERIALIZABLE"
    last: BaseException | None = None
    for attempt in range(1, policy.attempts + 1):
        try:
            with engine.connect() as raw:
                conn = raw.execution_options(
                    isolation_level=isolation, postgresql_readonly=readonly
                )
                with conn.begin():
                    return body(conn)
        except exc.DBAPIError as error:
            retry, state = is_retryable(error)
            if _is_connect_failure(error) and attempt == 1:
                raise _connect_error(error, hint_of(engine)) from None
            if not retry:
                raise
            last = error
            log.warning(_retry_message(state))
            if policy.on_retry is not None:
                policy.on_retry(attempt, state, error)
            if attempt < policy.attempts:
                policy.sleep()
    assert last is not None
    raise DatabaseUnreachable(f"Retries exhausted. Request failed:{what}") from last


def _is_connect_failure(error: exc.DBAPIError) -> bool:
    # An error raised while opening the connection (no statement was sent).
    return error.statement is None and isinstance(error, exc.OperationalError)


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A READ COMMITTED read-only transaction (the engine's `startReadOnlyTransaction`)."""
    try:
        raw = engine.connect()
    except exc.DBAPIError as error:
        raise _connect_error(error, hint_of(engine)) from None
    with raw:
        conn = raw.execution_options(isolation_level="READ COMMITTED", postgresql_readonly=True)
        with conn.begin():
            yield conn


def check_reachable(engine: Engine) -> None:
    """Open and close one connection; raise a one-line error if that fails."""
    with reading(engine) as conn:
        conn.exec_driver_sql("SELECT 1")
