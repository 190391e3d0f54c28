"""argparse types that check a value before anything runs: counts, rates, times.

Each refuses with one line naming the grammar and the bounds (argparse prefixes the option), and
names the refused value only when it is short and plain (:func:`messages.shown_input`). Bounds
are those the rest of the tool can honour: a count fits Postgres' and Java's `int`, a rate is a
finite number of changes per second, a duration stays within :data:`durations.MAX`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math

from repairtool.cli.messages import shown_input
from repairtool.clock import parse_rfc3339, utcnow
from repairtool.durations import InvalidDuration, parse_duration

#: the largest count any option takes (Postgres' and Java's int)
MAX_COUNT = 2**31 - 1
MAX_RATE = 1_000_000.0


def _count(text: str, low: int) -> int:
    plain = text.strip()
    if plain.isascii() and plain.isdigit() and len(plain) <= 12:
        value = int(plain)
        if low <= value <= MAX_COUNT:
            return value
    raise argparse.ArgumentTypeError(
        f"not a whole number from {low} to {MAX_COUNT:,}: {shown_input(text)}"
    )


def count(text: str) -> int:
    """A whole number from 0 to 2³¹−1 (`--limit`, `--offset`)."""
    return _count(text, 0)


def positive_count(text: str) -> int:
    """A whole number from 1 to 2³¹−1."""
    return _count(text, 1)


def rate(text: str) -> float:
    """A finite number of changes per second, above 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isfinite(value) and 0 < value <= MAX_RATE:
        return value
    raise argparse.ArgumentTypeError(
        f"not a number of changes per second above 0 and at most {MAX_RATE:,.0f}:"
        f" {shown_input(text)}"
    )


def duration(text: str) -> dt.timedelta:
    """The one duration grammar (`90s`, `10m`, `1h30m`, `3d`), 0 to 10 years."""
    try:
        return parse_duration(text)
    except InvalidDuration as error:
        bad = str(error).replace(repr(text), shown_input(text))
        raise argparse.ArgumentTypeError(bad) from None


def time_or_age(text: str) -> dt.datetime:
    """An RFC 3339 time (`2021-04-05T14:03:19Z`, `2021-04-05`) or an age (`10m`, `2h`, `3d`)."""
    try:
        return parse_rfc3339(text)
    except (ValueError, OverflowError):
        pass
    try:
        return utcnow() - parse_duration(text)
    except (InvalidDuration, OverflowError):
        raise argparse.ArgumentTypeError(
            f"not a time: {shown_input(text)}; use RFC 3339 or an age like 10m, 2h, 3d"
        ) from None
