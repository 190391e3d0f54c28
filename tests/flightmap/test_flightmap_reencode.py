"""reencode: rewrite a value for a reader; the result decodes under that reader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from repairtool.flightmap import (
    CatalogType,
    Decoded,
    Finding,
    ReaderVersion,
    TypeKind,
    decode_value,
    dumps,
    loads,
    parse_type,
    reencode,
)

FIXTURES = Path(__file__).parent / "fixtures"
TABLE = json.loads((FIXTURES / "stored_values.json").read_text())["rows"]
STAGE = "bio.terra.workspace.service.workspace.model.WorkspaceStage"
LEGACY, TYPED = ReaderVersion.LEGACY, ReaderVersion.TYPED
UUID = "2e74e380-cccd-48ad-a0ac-e006b3650dbe"


def _stage() -> CatalogType:
    return CatalogType(TypeKind.ENUM, STAGE, ("RAWLS_WORKSPACE", "MC_WORKSPACE"))


@pytest.mark.parametrize(
    ("text", "expected", "reader", "out"),
    [
        ('"MC_WORKSPACE"', _stage(), LEGACY, f'["{STAGE}","MC_WORKSPACE"]'),
        (f'["{STAGE}","MC_WORKSPACE"]', _stage(), TYPED, '"MC_WORKSPACE"'),
        (f'"{UUID}"', CatalogType(TypeKind.UUID), LEGACY, f'["java.util.UUID","{UUID}"]'),
        (f'["java.util.UUID","{UUID.upper()}"]', CatalogType(TypeKind.UUID), TYPED, f'"{UUID}"'),
        ("3", CatalogType(TypeKind.LONG), LEGACY, '["java.lang.Long",3]'),
        ('["java.lang.Long",3]', CatalogType(TypeKind.LONG), TYPED, "3"),
        (
            "1617631399.046000000",
            CatalogType(TypeKind.INSTANT),
            LEGACY,
            '["java.time.Instant",1617631399.046000000]',
        ),
        (
            '["java.time.Instant",1617631399.046]',
            CatalogType(TypeKind.INSTANT),
            TYPED,
            "1617631399.046000000",
        ),
        ("3", CatalogType(TypeKind.DOUBLE), LEGACY, "3.0"),
        (
            '["a","b"]',
            parse_type({"type": "list", "of": "string"}),
            LEGACY,
            '["java.util.ArrayList",["a","b"]]',
        ),
        (
            f'["{UUID}"]',
            parse_type({"type": "list", "of": "uuid"}),
            LEGACY,
            f'["java.util.ArrayList",[["java.util.UUID","{UUID}"]]]',
        ),
        (
            f'["java.util.ArrayList",[["java.util.UUID","{UUID}"]]]',
            parse_type({"type": "list", "of": "uuid", "read_as": "type_reference"}),
            TYPED,
            f'["java.util.ArrayList",["{UUID}"]]',
        ),
        (
            '{"a":"x\\u0001\\u00e9"}',
            parse_type({"type": "pojo", "class": "com.x.Pojo"}),
            TYPED,
            '["com.x.Pojo",{"a":"x\\u0001é"}]',
        ),
        ('["java.lang.String","x"]', CatalogType(TypeKind.STRING), TYPED, '"x"'),
    ],
)
def test_reencode(text: str, expected: CatalogType, reader: ReaderVersion, out: str) -> None:
    assert isinstance(decode_value(text, expected, reader), Finding)
    assert reencode(text, expected, reader) == out
    assert isinstance(decode_value(out, expected, reader), Decoded)


def test_number_for_string() -> None:
    # a <=0.0.60 reader cannot be helped without guessing; >=0.0.61 coerces it already
    assert reencode("3", CatalogType(TypeKind.STRING), LEGACY) is None
    assert reencode(" 3 ", CatalogType(TypeKind.STRING), TYPED) == "3"


def test_wrapped_enum_fails_typed_reader_and_round_trips() -> None:
    legacy_form = reencode('"MC_WORKSPACE"', _stage(), LEGACY)
    assert legacy_form is not None
    assert isinstance(decode_value(legacy_form, _stage(), LEGACY), Decoded)
    failed = decode_value(legacy_form, _stage(), TYPED)
    assert isinstance(failed, Finding)
    assert "MismatchedInputException" in failed.engine_exception
    assert reencode(legacy_form, _stage(), TYPED) == '"MC_WORKSPACE"'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"NOT_A_STAGE"', _stage()),
        ('"not-a-uuid"', CatalogType(TypeKind.UUID)),
        ("3000000000", CatalogType(TypeKind.INT)),
        ('{"a":', CatalogType(TypeKind.STRING)),
        ('["com.x.Other",{}]', CatalogType(TypeKind.POJO, "com.x.Pojo")),
        ('{"a":1}', CatalogType(TypeKind.ANY)),
    ],
)
@pytest.mark.parametrize("reader", [LEGACY, TYPED])
def test_not_reencodable(text: str, expected: CatalogType, reader: ReaderVersion) -> None:
    assert reencode(text, expected, reader) is None
    result = decode_value(text, expected, reader)
    assert isinstance(result, Finding)
    assert not result.reencodable


@pytest.mark.parametrize("row", TABLE, ids=[row["java"] for row in TABLE])
@pytest.mark.parametrize("reader", [LEGACY, TYPED])
def test_table_findings_reencode_to_decodable_text(
    row: dict[str, Any], reader: ReaderVersion
) -> None:
    expected = parse_type(row["type"])
    result = decode_value(row["stored"], expected, reader)
    new = reencode(row["stored"], expected, reader)
    if isinstance(result, Finding):
        assert result.reencodable == (new is not None)
    if new is not None:
        assert isinstance(decode_value(new, expected, reader), Decoded)
        assert new == dumps(loads(new)[0])  # compact, as Jackson writes it
