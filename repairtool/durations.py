"""Durations on the command line: `90s`, `10m`, `2h`, `3d`, or plain seconds."""

from __future__ import annotations

import datetime as dt
import re

from repairtool.errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> dt.timedelta:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not m:
        raise UsageError(f"not a duration: {text!r}; use e.g. 90s, 10m, 2h, 3d")
    return dt.timedelta(seconds=float(m[1]) * _UNITS[m[2] or "s"])
