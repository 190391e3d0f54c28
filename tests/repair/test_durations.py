"""One duration grammar for every flag and file, and one RFC 3339 time format for every output."""

from __future__ import annotations

import datetime as dt

import pytest

from repairtool.clock import parse_rfc3339, rfc3339
from repairtool.durations import InvalidDuration, format_duration, parse_duration
from repairtool.exitcodes import ExitCode


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1h30m", 5400),
        ("90s", 90),
        ("3d", 259200),
        ("500ms", 0.5),
        ("1d2h3m4s5ms", 93784.005),
        ("3m", 180),
        ("0.5s", 0.5),
        ("90", 90),
        (" 10m ", 600),
        (20, 20),
        (2.5, 2.5),
        ("0s", 0),
    ],
)
def test_the_grammar(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "not a duration: ''"),
        ("3 minutes", "not a duration: '3 minutes'"),
        ("m", "not a duration: 'm'"),
        ("soon", "use e.g. 90s, 10m, 1h30m, 3d"),
        ("30m1h", "not a duration"),  # units in falling order
        ("1h1h", "not a duration"),
        ("-3s", "negative durations are not allowed"),
        (-3, "negative durations are not allowed"),
        ("99999d", "is too long (at most 3650d)"),
        (True, "not a duration"),
    ],
)
def test_bad_values_are_one_usage_line(text: str | int | bool, problem: str) -> None:
    with pytest.raises(InvalidDuration) as info:
        parse_duration(text)
    assert problem in str(info.value) and "\n" not in str(info.value)
    assert info.value.exit_code is ExitCode.USAGE
    assert isinstance(info.value, ValueError)  # loaders that expect ValueError still catch it


@pytest.mark.parametrize("seconds", [0.5, 20, 90, 180, 3600, 7200, 5400])
def test_format_parses_back(seconds: float) -> None:
    d = dt.timedelta(seconds=seconds)
    assert parse_duration(format_duration(d)) == d


def test_rfc3339_is_utc_with_z_and_naive_database_times_are_utc() -> None:
    aware = dt.datetime(2021, 4, 5, 16, 3, 19, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert rfc3339(aware) == "2021-04-05T14:03:19.123Z"
    assert rfc3339(aware, "seconds") == "2021-04-05T14:03:19Z"
    assert rfc3339(dt.datetime(2021, 4, 5, 14, 3, 19)) == "2021-04-05T14:03:19.000Z"
    assert parse_rfc3339("2021-04-05T14:03:19Z") == dt.datetime(
        2021, 4, 5, 14, 3, 19, tzinfo=dt.UTC
    )
    assert parse_rfc3339("2021-04-05") == dt.datetime(2021, 4, 5, tzinfo=dt.UTC)
    with pytest.raises(ValueError):
        parse_rfc3339("yesterday")
