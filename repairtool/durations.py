"""The one duration grammar of every flag and file: ``1h30m``, ``90s``, ``3d``, ``500ms``.

A duration is one or more ``<number><unit>`` parts, units in falling order (``d``, ``h``, ``m``,
``s``, ``ms``), or a plain number of seconds (``90``, ``0.5``). Negative values and values over
:data:`MAX` (10 years, surely a typo) are refused with one line naming the value and the grammar.
``repairtool`` flags, ``inv`` options and the env/experiment files all use :func:`parse_duration`.
"""

from __future__ import annotations

import datetime as dt
import re

from repairtool.errors import UsageError

#: seconds per unit, in the order the parts must come
UNITS: dict[str, float] = {"d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
MAX = dt.timedelta(days=3650)
GRAMMAR = "use e.g. 90s, 10m, 1h30m, 3d, 500ms (or plain seconds)"
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


class InvalidDuration(UsageError, ValueError):
    """Not a duration of the grammar, negative, or too long (one line naming the value)."""


def parse_duration(value: str | int | float) -> dt.timedelta:
    """``"1h30m"``, ``"90s"``, ``"3d"``, ``"500ms"``, ``"90"`` (seconds) or a number → timedelta."""
    if isinstance(value, bool):
        raise InvalidDuration(f"not a duration: {value!r}; {GRAMMAR}")
    if isinstance(value, int | float):
        return _checked(value, float(value))
    text = value.strip()
    if _NUMBER.fullmatch(text):
        return _checked(value, float(text))
    seconds = 0.0
    pos = 0
    order = list(UNITS)
    last = -1
    for m in _PART.finditer(text):
        rank = order.index(m[2])
        if m.start() != pos or rank <= last:
            break
        seconds += float(m[1]) * UNITS[m[2]]
        pos, last = m.end(), rank
    else:
        if pos == len(text) and pos > 0:
            return _checked(value, seconds)
    if text.startswith("-"):
        raise InvalidDuration(f"not a duration: {value!r}: negative durations are not allowed")
    raise InvalidDuration(f"not a duration: {value!r}; {GRAMMAR}")


def _checked(shown: object, seconds: float) -> dt.timedelta:
    if seconds < 0:
        raise InvalidDuration(f"not a duration: {shown!r}: negative durations are not allowed")
    if seconds > MAX.total_seconds():
        raise InvalidDuration(f"duration {shown!r} is too long (at most {MAX.days}d)")
    return dt.timedelta(seconds=seconds)


def format_duration(d: dt.timedelta) -> str:
    """The shortest whole-unit form: ``2h``, ``3m``, ``90s``, ``0.5s`` (parses back to ``d``)."""
    total = d.total_seconds()
    if total % 3600 == 0 and total >= 3600:
        return f"{int(total // 3600)}h"
    if total % 60 == 0 and total >= 60:
        return f"{int(total // 60)}m"
    return f"{total:g}s"
