"""The read path on psycopg 3: detection and scans read the Stairway database without SQLAlchemy.

A :class:`ReadDb` opens plain psycopg connections from a parsed URL (`--db`,
`$STAIRWAY_DB_URL`, an env file, or an `--env` target's settings) and keeps one open for the
next read of the same command. A SQLAlchemy `Engine` is a source too: its pool's connections,
opened with its connect arguments and listeners (the library API, `repairtool watch` and the
reliability suite pass engines).

:func:`run_read` runs a body in one READ COMMITTED read-only transaction and retries it as a
whole — connect, statements, COMMIT — under the engine's DbRetry rule
(:mod:`repairtool.stairway.retry`), exactly as `repairtool.stairway.db.run_read` does on the
SQLAlchemy path: a terminated backend is retried, never a traceback; an error that retrying
cannot help becomes the same typed one-line error, with no password, parameter or stored value.
"""

from __future__ import annotations

import datetime as dt
import logging
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

import psycopg
from psycopg.adapt import AdaptersMap
from psycopg.types.datetime import TimestampLoader, TimestamptzLoader

from repairtool.stairway.dburl import APPLICATION_NAME, UrlLike, connect_kwargs, describe_url
from repairtool.stairway.errors import RetriesExhausted
from repairtool.stairway.retry import (
    DEFAULT_RETRY,
    RetryPolicy,
    connect_retry_state,
    is_retryable,
    retry_message,
    translate,
)

log = logging.getLogger("repairtool.db")

T = TypeVar("T")


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


def install_loaders(conn: Any) -> None:
    """Register the clamping timestamp loaders on a psycopg connection (or adapters map)."""
    conn.adapters.register_loader("timestamp", _ClampedTimestampLoader)
    conn.adapters.register_loader("timestamptz", _ClampedTimestamptzLoader)


_ADAPTERS = AdaptersMap(psycopg.adapters)
_ADAPTERS.register_loader("timestamp", _ClampedTimestampLoader)
_ADAPTERS.register_loader("timestamptz", _ClampedTimestamptzLoader)


# -- sources -----------------------------------------------------------------------------------


class EngineLike(Protocol):
    """A SQLAlchemy engine, as far as this module uses one (no SQLAlchemy import here)."""

    @property
    def url(self) -> Any: ...

    def raw_connection(self) -> Any: ...


class ReadDb:
    """A Stairway database reached with psycopg directly. The password lives only in `url`."""

    def __init__(
        self,
        url: UrlLike,
        *,
        application_name: str = APPLICATION_NAME,
        connect_timeout: int = 5,
    ) -> None:
        self.url = url
        self.application_name = application_name
        self.connect_timeout = connect_timeout
        self._idle: psycopg.Connection[Any] | None = None

    def __repr__(self) -> str:
        return f"ReadDb({describe_url(self.url)!r})"

    @property
    def hint(self) -> str:
        return describe_url(self.url)

    def connect(self) -> psycopg.Connection[Any]:
        """A new connection (raises psycopg's error when it fails)."""
        kwargs = connect_kwargs(self.url)
        kwargs.update(application_name=self.application_name, connect_timeout=self.connect_timeout)
        return psycopg.connect(**kwargs, context=_ADAPTERS)

    def close(self) -> None:
        """Close the connection kept for the next read, if any."""
        if self._idle is not None:
            self._idle.close()
            self._idle = None


Source = ReadDb | EngineLike

#: sources (ReadDb, Engine) this process has connected through at least once: a later connection
#: failure is a server that went away, not a wrong address, so it is retried (both paths use it)
REACHED: weakref.WeakSet[Any] = weakref.WeakSet()


class _Lease:
    """One connection taken from a source for one transaction, and how to give it back."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.fairy: Any = None
        if isinstance(source, ReadDb):
            conn, source._idle = source._idle, None
            if conn is None or conn.closed or conn.broken:
                conn = source.connect()
            self.conn: psycopg.Connection[Any] = conn
        else:
            self.fairy = source.raw_connection()
            self.conn = self.fairy.driver_connection
        self.saved = (self.conn.read_only, self.conn.isolation_level)

    def begin_read(self) -> None:
        # applied by psycopg's implicit BEGIN: no round trip of its own
        self.conn.read_only = True
        self.conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED

    def release(self) -> None:
        """End the transaction (rolled back unless committed) and give the connection back;
        a broken one is thrown away."""
        conn = self.conn
        usable = not (conn.closed or conn.broken)
        if usable:
            try:
                conn.rollback()
                conn.read_only, conn.isolation_level = self.saved
            except psycopg.Error:
                usable = False
        if isinstance(self.source, ReadDb):
            if usable and self.source._idle is None:
                self.source._idle = conn
            else:
                conn.close()
        elif usable:
            self.fairy.close()  # back to the pool
        else:
            self.fairy.invalidate()


def hint_of(source: Source) -> str:
    return source.hint if isinstance(source, ReadDb) else describe_url(source.url)


def _database_error(error: BaseException) -> bool:
    """psycopg's error, or SQLAlchemy's wrapping one (its `.orig`)."""
    return isinstance(error, psycopg.Error) or isinstance(
        getattr(error, "orig", None), psycopg.Error
    )


def _lease(source: Source) -> tuple[_Lease | None, str]:
    """Take a connection. Returns (lease, "") or (None, state to retry on); raises a typed error
    when retrying cannot help."""
    try:
        lease = _Lease(source)
    except Exception as error:
        if not _database_error(error):
            raise
        reached = source in REACHED
        return None, connect_retry_state(error, reached=reached, hint=hint_of(source))
    REACHED.add(source)
    return lease, ""


def run_read(
    source: Source,
    body: Callable[[psycopg.Connection[Any]], T],
    *,
    policy: RetryPolicy = DEFAULT_RETRY,
    what: str = "read",
) -> T:
    """Run `body` in one READ COMMITTED read-only transaction, retried as a whole like the
    engine's DbRetry (a terminated backend during detection is retried, not a traceback)."""
    last_state = ""
    for attempt in range(1, policy.attempts + 1):
        error: BaseException | None = None
        lease, state = _lease(source)
        if lease is not None:
            try:
                lease.begin_read()
                result = body(lease.conn)
                lease.conn.commit()
                return result
            except Exception as failure:
                if not _database_error(failure):
                    raise
                retry, state = is_retryable(failure)
                if not retry:
                    raise translate(failure, what) from None
                error = failure
            finally:
                lease.release()
        last_state = state
        log.info(retry_message(state))
        if policy.on_retry is not None:
            policy.on_retry(attempt, state, error if error is not None else RuntimeError(state))
        if attempt < policy.attempts:
            policy.sleep()
    raise RetriesExhausted(
        f"Retries exhausted. Request failed:{what} (last error: SQLSTATE {last_state or 'none'})"
    )


@contextmanager
def reading(
    source: Source, *, policy: RetryPolicy = DEFAULT_RETRY
) -> Iterator[psycopg.Connection[Any]]:
    """A READ COMMITTED read-only transaction for a long read that streams (a scan): opening the
    connection is retried; a failure among the caller's statements cannot be re-run from here
    and becomes a typed one-line error. Prefer `run_read`, which retries them."""
    lease: _Lease | None = None
    for attempt in range(1, policy.attempts + 1):
        lease, state = _lease(source)
        if lease is not None:
            break
        log.info(retry_message(state))
        if attempt < policy.attempts:
            policy.sleep()
    if lease is None:
        raise RetriesExhausted("Retries exhausted. Request failed:connect")
    try:
        lease.begin_read()
        yield lease.conn
        lease.conn.commit()
    except Exception as error:
        if not _database_error(error):
            raise
        raise translate(error, "read") from None
    finally:
        lease.release()


def estimate_rows(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> int | None:
    """The planner's estimate of the rows `sql` returns, for one planning round trip (the N of a
    scan's progress line); None when the plan does not say."""
    row = conn.execute("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()
    try:
        return int(row[0][0]["Plan"]["Plan Rows"]) if row is not None else None
    except (KeyError, IndexError, TypeError, ValueError):
        return None
