"""Connections to a Stairway database: settings, engine, errors and the engine's DbRetry rule.

The engine wraps every DAO call in `DbRetry`: up to 20 tries with a random 250–1000 ms sleep,
retrying SQLSTATE 40001 (serialization), 40P01 (deadlock), 08xxx (connection) and 53xxx
(insufficient resources). `run_in_transaction` (writes) and `run_read` (reads) do the same around
one transaction, from connecting to the COMMIT:
- a connection the server terminated (57P01/57P02, or a socket closed without a SQLSTATE) is what
  the JDBC driver reports as 08006, so it is retried as a connection error too;
- opening a connection is retried on 53xxx (e.g. 53300 too many connections) and 57P03 (the
  server is starting up), and on any connection error once this process has reached the server;
  the first connection of a process that fails otherwise is reported at once ("is the server
  running?") — there is nothing to retry into;
- a failure at COMMIT is retried like any other: every mutation of this package first looks up
  its operation id, so a retry after a lost commit acknowledgement returns the first result.
Anything else becomes a typed one-line error (`repairtool.stairway.errors`) that never holds a
SQL parameter (engines are made with `hide_parameters=True`), a password or a stored value.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import URL

from repairtool.stairway.dburl import (
    APPLICATION_NAME,
    ENV_FILE,
    ENV_URL,
    DbSettings,
    UrlLike,
    describe_url,
    parse_db_url,
    read_env_file,
    resolve_url,
)
from repairtool.stairway.errors import (
    AuthenticationFailed,
    OutcomeUnknown,
    RetriesExhausted,
)
from repairtool.stairway.pgread import REACHED, ReadDb, Source, install_loaders
from repairtool.stairway.retry import (
    DEFAULT_RETRY,
    RetryPolicy,
    connect_retry_state,
    is_retryable,
    retry_message,
    server_message,
    sqlstate_of,
    translate,
)

log = logging.getLogger("repairtool.db")

T = TypeVar("T")

__all__ = [
    "APPLICATION_NAME",
    "DEFAULT_RETRY",
    "ENV_FILE",
    "ENV_URL",
    "AuthenticationFailed",
    "DbSettings",
    "RetryPolicy",
    "check_reachable",
    "describe_url",
    "engine_for",
    "hint_of",
    "is_retryable",
    "make_engine",
    "parse_url",
    "read_env_file",
    "reading",
    "resolve_settings",
    "run_in_transaction",
    "run_read",
    "server_message",
    "sqlstate_of",
    "translate",
]


def _sqlalchemy_url(url: UrlLike) -> URL:
    if isinstance(url, URL):
        return url
    return URL.create(
        "postgresql+psycopg",
        username=url.username,
        password=url.password,
        host=url.host,
        port=url.port,
        database=url.database,
        query=dict(url.query),
    )


def parse_url(raw: str, source: str) -> DbSettings:
    """Parse a postgres URL (postgresql://, postgres://, postgresql+DRIVER://) into settings
    (`repairtool.stairway.dburl.parse_db_url`: a password may hold `@ / :` unencoded,
    `?password=` becomes the password)."""
    return DbSettings(_sqlalchemy_url(parse_db_url(raw, source)), source)


def resolve_settings(
    db: str | None = None, env_file: Path | None = None, *, default_env_file: Path | None = None
) -> DbSettings:
    """Find the database URL: `--db`, then `$STAIRWAY_DB_URL`, then an environment file."""
    url, source = resolve_url(db, env_file, default_env_file=default_env_file)
    return DbSettings(_sqlalchemy_url(url), source)


def _install_loaders(dbapi_conn: Any, _record: Any) -> None:
    install_loaders(dbapi_conn)


def make_engine(
    settings: DbSettings,
    *,
    connect_timeout: int = 5,
    pool_size: int = 2,
    application_name: str = APPLICATION_NAME,
) -> Engine:
    """A SQLAlchemy engine on psycopg 3 for the Stairway database.

    `hide_parameters=True`: no SQL error or log line can ever render a bound parameter (they
    hold FlightMap values with tokens)."""
    engine = create_engine(
        _sqlalchemy_url(settings.url),
        pool_size=pool_size,
        max_overflow=2,
        pool_pre_ping=True,
        hide_parameters=True,
        connect_args={"application_name": application_name, "connect_timeout": connect_timeout},
    )
    event.listen(engine, "connect", _install_loaders)
    return engine


def engine_for(source: Source) -> Engine:
    """The engine that changes go through for a read-path source: an `Engine` as it is, a
    `ReadDb` as a new engine on its URL with its connect settings (dispose of it when done)."""
    if not isinstance(source, ReadDb):
        assert isinstance(source, Engine), source
        return source
    settings = DbSettings(_sqlalchemy_url(source.url), "read path")
    return make_engine(
        settings,
        connect_timeout=source.connect_timeout,
        application_name=source.application_name,
    )


# -- the retry rule (repairtool.stairway.retry) ----------------------------------------------


def hint_of(engine: Engine) -> str:
    return describe_url(engine.url)


def _connect(engine: Engine) -> tuple[Connection | None, str]:
    """Open a connection. Returns (connection, "") or (None, state to retry on); raises a typed
    error when retrying cannot help."""
    try:
        conn = engine.connect()
    except exc.DBAPIError as error:
        return None, connect_retry_state(error, reached=engine in REACHED, hint=hint_of(engine))
    REACHED.add(engine)
    return conn, ""


def _run(
    engine: Engine,
    body: Callable[[Connection], T],
    *,
    readonly: bool,
    policy: RetryPolicy,
    what: str,
    op_id: str | None = None,
) -> T:
    isolation = "READ COMMITTED" if readonly else "SERIALIZABLE"
    last_state = ""
    commit_lost = False
    for attempt in range(1, policy.attempts + 1):
        phase = "connect"
        error: BaseException | None = None
        try:
            raw, state = _connect(engine)
            if raw is not None:
                with raw:
                    conn = raw.execution_options(
                        isolation_level=isolation, postgresql_readonly=readonly
                    )
                    phase = "body"
                    with conn.begin():
                        result = body(conn)
                        phase = "commit"
                    return result
            error = None
        except (exc.DBAPIError, psycopg.Error) as failure:  # psycopg's: a body on the driver
            retry, state = is_retryable(failure)
            if not retry:
                raise translate(failure, what) from None
            error = failure
            # a serialization failure at COMMIT is a clear "not committed"; a lost connection
            # there leaves the outcome to the next attempt's look-up of the operation id
            if phase == "commit" and state not in ("40001", "40P01"):
                commit_lost = True
        last_state = state
        log.info(retry_message(state))
        if policy.on_retry is not None:
            policy.on_retry(attempt, state, error if error is not None else RuntimeError(state))
        if attempt < policy.attempts:
            policy.sleep()
    if commit_lost and not readonly:
        raise OutcomeUnknown(
            f"{what}: the connection failed at COMMIT and {policy.attempts} attempts could not"
            " find out whether the change was applied"
            + (f" (operation {op_id}; see `repairtool flights audit`)" if op_id else "")
        )
    raise RetriesExhausted(
        f"Retries exhausted. Request failed:{what} (last error: SQLSTATE {last_state or 'none'})"
    )


def run_in_transaction(
    engine: Engine,
    body: Callable[[Connection], T],
    *,
    readonly: bool = False,
    policy: RetryPolicy = DEFAULT_RETRY,
    what: str = "transaction",
    op_id: str | None = None,
) -> T:
    """Run `body` in one transaction (SERIALIZABLE for writes, READ COMMITTED read-only for reads),
    retrying it as a whole — connect, statements and COMMIT — under the engine's DbRetry rule.
    `body` must be safe to run again: every mutation in this package checks, inside the
    transaction, whether its operation (`op_id`) already happened."""
    return _run(engine, body, readonly=readonly, policy=policy, what=what, op_id=op_id)


def run_read(
    engine: Engine,
    body: Callable[[Connection], T],
    *,
    policy: RetryPolicy = DEFAULT_RETRY,
    what: str = "read",
) -> T:
    """Run a read in one READ COMMITTED read-only transaction, retried like a write (a terminated
    backend during detection is retried, not a traceback)."""
    return _run(engine, body, readonly=True, policy=policy, what=what)


@contextmanager
def reading(engine: Engine, *, policy: RetryPolicy = DEFAULT_RETRY) -> Iterator[Connection]:
    """A READ COMMITTED read-only transaction (the engine's `startReadOnlyTransaction`).

    Opening the connection is retried; the caller's statements cannot be re-run from here, so a
    failure among them becomes a typed one-line error. Prefer `run_read`, which retries them."""
    raw: Connection | None = None
    for attempt in range(1, policy.attempts + 1):
        raw, state = _connect(engine)
        if raw is not None:
            break
        log.info(retry_message(state))
        if attempt < policy.attempts:
            policy.sleep()
    if raw is None:
        raise RetriesExhausted("Retries exhausted. Request failed:connect")
    try:
        with raw:
            conn = raw.execution_options(isolation_level="READ COMMITTED", postgresql_readonly=True)
            with conn.begin():
                yield conn
    except (exc.DBAPIError, psycopg.Error) as error:
        raise translate(error, "read") from None


def check_reachable(engine: Engine) -> None:
    """Open and close one connection; raise a one-line error if that fails."""
    run_read(engine, lambda conn: conn.exec_driver_sql("SELECT 1").scalar(), what="connect")
