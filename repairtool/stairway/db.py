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

import datetime as dt
import logging
import os
import random
import re
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote

from psycopg.types.datetime import TimestampLoader, TimestamptzLoader
from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import URL

from repairtool.errors import DatabaseUnreachable, RepairToolError, UsageError
from repairtool.exitcodes import ExitCode
from repairtool.flightmap.secrets import MASK, SECRET_VALUE
from repairtool.stairway.errors import (
    BadDatabaseValue,
    DatabaseError,
    OutcomeUnknown,
    PermissionDenied,
    RetriesExhausted,
    UnsupportedSchema,
)

log = logging.getLogger("repairtool.db")

T = TypeVar("T")

ENV_URL = "STAIRWAY_DB_URL"
ENV_FILE = "STAIRWAY_OPS_ENV_FILE"
APPLICATION_NAME = "repairtool"
# query parameters of a URL that can hold a secret: never shown, and `password` becomes the
# URL's password so every rendering hides it
_SECRET_QUERY = ("password", "sslpassword")


class AuthenticationFailed(DatabaseUnreachable):
    """The server is up but refused the login (wrong user or password)."""

    exit_code = ExitCode.DB_LOGIN_REFUSED


def describe_url(url: URL) -> str:
    """`postgresql://USER@HOST:PORT/DB` for messages: no password, no query parameters."""
    user = f"{url.username}@" if url.username else ""
    host = url.host or str(url.query.get("host") or "")
    port = f":{url.port}" if url.port else (f":{url.query['port']}" if "port" in url.query else "")
    return f"postgresql://{user}{host}{port}/{url.database or ''}"


@dataclass(frozen=True)
class DbSettings:
    """Where the Stairway database is. The password never appears in `repr` or `str`."""

    url: URL = field(repr=False)
    source: str = "--db"

    @property
    def safe_url(self) -> str:
        return describe_url(self.url)

    def __repr__(self) -> str:
        return f"DbSettings(url={self.safe_url!r}, source={self.source!r})"

    __str__ = __repr__


_SCHEMES = ("postgresql", "postgres")


def parse_url(raw: str, source: str) -> DbSettings:
    """Parse a postgres URL (postgresql://, postgres://, postgresql+DRIVER://) into settings.

    The user info ends at the *last* `@` before the host, so a password may contain `@`, `/` or
    `:` unencoded (`user:p@ss@host/db`); percent-encoding works as well. `?password=` moves into
    the URL's password. Messages never repeat the URL (it may hold the password).
    """
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes from the environment or a file name
        raise UsageError(f"{source}: the database URL is not valid UTF-8 text") from None
    text_ = raw.strip()
    scheme, sep, rest = text_.partition("://")
    if not sep or not scheme or "@" in scheme or "/" in scheme:
        raise UsageError(
            f"{source}: not a database URL; expected postgresql://USER@HOST:PORT/DBNAME"
        )
    if scheme.split("+", 1)[0].lower() not in _SCHEMES:
        raise UsageError(f"{source}: only postgresql URLs are supported, got {scheme[:30]!r}")
    # The user info ends at the last '@' when a path (/DB) follows it — then the password may
    # hold '@', '/', ':' and even '?' — else at the last '@' before the query ('@' in a query
    # value). A host part that is no host name is refused, never sent to the resolver.
    at = rest.rfind("@")
    if at >= 0 and "/" not in rest[at + 1 :]:
        at = rest.rfind("@", 0, rest.find("?") if "?" in rest else len(rest))
    userinfo, hostpart = (rest[:at], rest[at + 1 :]) if at >= 0 else ("", rest)
    hostpath, _, query_text = hostpart.partition("?")
    hostport, _, database = hostpath.partition("/")
    user, _, password = userinfo.partition(":")
    host, port = _split_host_port(hostport, source)
    query: dict[str, str] = {}
    try:
        pairs = parse_qsl(query_text, keep_blank_values=True, strict_parsing=False)
    except ValueError:
        raise UsageError(f"{source}: the URL's query part cannot be parsed") from None
    for k, v in pairs:
        query[k] = v
    secret = {k: query.pop(k) for k in _SECRET_QUERY if k in query}
    if "password" in secret:
        password = secret.pop("password")
    elif password:
        password = unquote(password)
    if secret:
        raise UsageError(
            f"{source}: sslpassword in the URL is not supported; use a key without a passphrase"
        )
    if not user and "user" in query:
        user = query.pop("user")
    url = URL.create(
        "postgresql+psycopg",
        username=unquote(user) or None,
        password=password or None,
        host=host or None,
        port=port,
        database=unquote(database) or None,
        query=query,
    )
    return DbSettings(url, source)


_HOST = re.compile(r"[A-Za-z0-9._%~-]*|[0-9A-Fa-f:.%]+")


def _split_host_port(hostport: str, source: str) -> tuple[str, int | None]:
    host, port_text = hostport, ""
    if hostport.startswith("["):  # [IPv6]:port
        end = hostport.find("]")
        if end < 0:
            raise UsageError(f"{source}: unbalanced [ in the URL's host")
        host, rest = hostport[1:end], hostport[end + 1 :]
        port_text = rest[1:] if rest.startswith(":") else ""
    elif ":" in hostport:
        host, _, port_text = hostport.rpartition(":")
    if not _HOST.fullmatch(host):
        raise UsageError(
            f"{source}: the URL's host is not a host name; percent-encode @ / ? # in a password"
        )
    if not port_text:
        return unquote(host), None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"{source}: the URL's port is not a number between 1 and 65535")
    return unquote(host), int(port_text)


def read_env_file(path: Path) -> dict[str, str]:
    """Read a dotenv-style file (KEY=VALUE lines, # comments, optional quotes)."""
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not an env file") from None
    except OSError as error:
        why = error.strerror or type(error).__name__
        raise UsageError(f"{path}: cannot read ({why})") from None
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(f"{path}: not UTF-8 text (byte {error.start})") from None
    out: dict[str, str] = {}
    for n, line in enumerate(content.splitlines(), start=1):
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


# -- reading values Python cannot hold ---------------------------------------------------------


def _clamp(data: bytes) -> dt.datetime:
    low = data.startswith(b"-") or data.endswith(b"BC")
    return dt.datetime.min if low else dt.datetime.max


class _ClampedTimestampLoader(TimestampLoader):
    """`timestamp` values Python cannot hold (±infinity, after 9999, BC) load as datetime.max
    or datetime.min instead of failing the whole read."""

    def load(self, data: Any) -> dt.datetime:
        try:
            return super().load(data)
        except Exception:
            return _clamp(bytes(data))


class _ClampedTimestamptzLoader(TimestamptzLoader):
    """The same for `timestamptz` (a newer schema's type)."""

    def load(self, data: Any) -> dt.datetime:
        try:
            return super().load(data)
        except Exception:
            return _clamp(bytes(data)).replace(tzinfo=dt.UTC)


def _install_loaders(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.adapters.register_loader("timestamp", _ClampedTimestampLoader)
    dbapi_conn.adapters.register_loader("timestamptz", _ClampedTimestamptzLoader)


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
        settings.url,
        pool_size=pool_size,
        max_overflow=2,
        pool_pre_ping=True,
        hide_parameters=True,
        connect_args={"application_name": application_name, "connect_timeout": connect_timeout},
    )
    event.listen(engine, "connect", _install_loaders)
    return engine


# -- the retry rule ----------------------------------------------------------------------------

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


def sqlstate_of(error: BaseException) -> str | None:
    orig = getattr(error, "orig", None) or error
    state = getattr(orig, "sqlstate", None)
    return state if isinstance(state, str) else None


def _connect_state(error: BaseException) -> str | None:
    state = sqlstate_of(error)
    if state is not None:
        return state
    lowered = _first_line(error).lower()
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
    if isinstance(error, exc.DBAPIError) and (
        error.connection_invalidated or isinstance(error, exc.OperationalError)
    ):
        return True, "08006"
    return False, ""


def _first_line(error: BaseException) -> str:
    orig = getattr(error, "orig", None) or error
    text_ = str(orig).strip()
    return text_.splitlines()[0].strip() if text_ else ""


_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")


def server_message(error: BaseException) -> str:
    """The server's first line, safe to show: values quoted in data errors are masked, token-like
    strings are masked everywhere, and it is cut to 200 characters."""
    line = _first_line(error)
    state = sqlstate_of(error) or ""
    if state[:2] == "P0":  # a trigger's or function's own RAISE: its text may carry any value
        return "raised by a trigger or function in the database"
    if state[:2] in ("22", "XX", "23") or isinstance(error, exc.DataError):
        line = _QUOTED.sub(lambda m: m.group(0)[0] + "…" + m.group(0)[0], line)
    line = SECRET_VALUE.sub(MASK, line)
    return line if len(line) <= 200 else line[:199] + "…"


def translate(error: exc.DBAPIError, what: str) -> RepairToolError:
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
    if state[:2] == "22" or isinstance(error, exc.DataError):
        return BadDatabaseValue(
            f"{what}: the database holds a value this tool cannot handle: {line}{tail}"
        )
    if state[:2] == "28":
        return AuthenticationFailed(f"{what}: the database refused the login: {line}{tail}")
    return DatabaseError(f"{what} failed: {line or type(error).__name__}{tail}")


def _connect_error(error: exc.DBAPIError, settings_hint: str) -> RepairToolError:
    message = server_message(error)
    state = _connect_state(error) or ""
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


def hint_of(engine: Engine) -> str:
    return describe_url(engine.url)


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

#: engines this process has connected through at least once (a later connection failure is a
#: server that went away, not a wrong address: retried)
_reached: weakref.WeakSet[Engine] = weakref.WeakSet()


def _retry_message(state: str) -> str:
    # the engine's own lines, logged at INFO (DataBiosphere/stairway impl/DbRetry.java @ 18489f6)
    if state in ("40001", "40P01"):
        return f"Caught SQL serialization error ({state}) - retrying"
    return f"Caught SQL connection or resource error ({state}) - retrying"


def _connect(engine: Engine) -> tuple[Connection | None, str]:
    """Open a connection. Returns (connection, "") or (None, state to retry on); raises a typed
    error when retrying cannot help."""
    try:
        conn = engine.connect()
    except exc.DBAPIError as error:
        state = _connect_state(error) or ""
        if state[:2] == "28" or state == "3D000":
            raise _connect_error(error, hint_of(engine)) from None
        if state[:2] == "53" or state == "57P03" or engine in _reached:
            return None, state or "08001"
        raise _connect_error(error, hint_of(engine)) from None
    _reached.add(engine)
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
        except exc.DBAPIError as failure:
            retry, state = is_retryable(failure)
            if not retry:
                raise translate(failure, what) from None
            error = failure
            # a serialization failure at COMMIT is a clear "not committed"; a lost connection
            # there leaves the outcome to the next attempt's look-up of the operation id
            if phase == "commit" and state not in ("40001", "40P01"):
                commit_lost = True
        last_state = state
        log.info(_retry_message(state))
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
        log.info(_retry_message(state))
        if attempt < policy.attempts:
            policy.sleep()
    if raw is None:
        raise RetriesExhausted("Retries exhausted. Request failed:connect")
    try:
        with raw:
            conn = raw.execution_options(isolation_level="READ COMMITTED", postgresql_readonly=True)
            with conn.begin():
                yield conn
    except exc.DBAPIError as error:
        raise translate(error, "read") from None


def check_reachable(engine: Engine) -> None:
    """Open and close one connection; raise a one-line error if that fails."""
    run_read(engine, lambda conn: conn.exec_driver_sql("SELECT 1").scalar(), what="connect")
