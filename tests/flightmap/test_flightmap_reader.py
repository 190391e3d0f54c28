"""--reader parsing."""

from __future__ import annotations

import pytest

from repairtool.flightmap import ReaderVersion, ReaderVersionError, parse_reader


@pytest.mark.parametrize(
    ("text", "reader"),
    [
        ("0.0.41", ReaderVersion.LEGACY),
        ("0.0.50", ReaderVersion.LEGACY),
        ("0.0.60", ReaderVersion.LEGACY),
        ("0.0.61", ReaderVersion.TYPED),
        ("0.0.62-SNAPSHOT", ReaderVersion.TYPED),
        ("1.1.14", ReaderVersion.TYPED),
        ("v0.0.60", ReaderVersion.LEGACY),
        ("legacy", ReaderVersion.LEGACY),
        (" Typed ", ReaderVersion.TYPED),
    ],
)
def test_parse_reader(text: str, reader: ReaderVersion) -> None:
    assert parse_reader(text) is reader
    assert ReaderVersion.parse(text) is reader


@pytest.mark.parametrize("text", ["", "0.60", "latest", "0.0.x", "1.2.3.4.5 junk"])
def test_parse_reader_rejects_junk(text: str) -> None:
    with pytest.raises(ReaderVersionError) as err:
        parse_reader(text)
    message = str(err.value)
    assert "\n" not in message
    assert "0.0.60" in message and "legacy" in message


def test_labels() -> None:
    assert ReaderVersion.LEGACY.label == "≤0.0.60"
    assert ReaderVersion.TYPED.label == "≥0.0.61"
