"""Time as every output shows it: UTC, RFC 3339 with a ``Z`` (lines up with Cloud Logging).

Tables, JSON documents, journals and runbooks all format times with :func:`rfc3339`. Database
times are ``timestamp without time zone`` holding UTC (the engine writes ``Instant`` values), so
a naive datetime is taken as UTC.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

Precision = Literal["seconds", "milliseconds", "microseconds"]


def utcnow() -> dt.datetime:
    """Now, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


def as_utc(t: dt.datetime) -> dt.datetime:
    """``t`` in UTC; a naive value is taken as UTC (database times)."""
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def rfc3339(t: dt.datetime, timespec: Precision = "milliseconds") -> str:
    """``2021-04-05T14:03:19.123Z`` (``timespec`` seconds: ``2021-04-05T14:03:19Z``)."""
    return as_utc(t).isoformat(timespec=timespec).replace("+00:00", "Z")


def rfc3339_or_none(t: dt.datetime | None, timespec: Precision = "milliseconds") -> str | None:
    return None if t is None else rfc3339(t, timespec)


def parse_rfc3339(text: str) -> dt.datetime:
    """An RFC 3339 / ISO 8601 time as an aware UTC datetime (no offset: UTC).

    Raises ValueError when ``text`` is not a time.
    """
    t = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    return as_utc(t)
