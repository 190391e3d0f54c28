"""decode_value / decode_map: the §5.3 table under both readers, the 2021 enum case, maps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from repairtool.flightmap import (
    ANY,
    CatalogType,
    Decoded,
    Finding,
    ReaderVersion,
    TypeKind,
    decode_map,
    decode_value,
    load_builtin_catalog,
    parse_type,
    split_legacy_map,
)

FIXTURES = Path(__file__).parent / "fixtures"
TABLE = json.loads((FIXTURES / "stored_values.json").read_text())["rows"]
WSM = json.loads((FIXTURES / "wsm_create_flight_input.json").read_text())
STAGE = "bio.terra.workspace.service.workspace.model.WorkspaceStage"
LEGACY, TYPED = ReaderVersion.LEGACY, ReaderVersion.TYPED


def _cases() -> list[Any]:
    return [
        pytest.param(row, reader, id=f"{reader.value}: {row['java']}")
        for row in TABLE
        for reader in (LEGACY, TYPED)
    ]


@pytest.mark.parametrize(("row", "reader"), _cases())
def test_stored_value_table(row: dict[str, Any], reader: ReaderVersion) -> None:
    expected = parse_type(row["type"])
    want = row[reader.value]
    result = decode_value(row["stored"], expected, reader, flight_id="f", key="k")
    if "java_class" in want:
        assert isinstance(result, Decoded), getattr(result, "render", lambda: result)()
        assert result.java_class == want["java_class"]
        assert result.reader is reader
    else:
        assert isinstance(result, Finding)
        assert result.engine_exception.startswith(want["exception"]), result.engine_exception
        assert result.reader is reader
        assert result.expected == expected.render()
        assert (result.flight_id, result.key, result.source) == ("f", "k", "input")


def _stage() -> CatalogType:
    return CatalogType(TypeKind.ENUM, STAGE, ("RAWLS_WORKSPACE", "MC_WORKSPACE"))


def test_2021_enum_case_legacy_fails_with_engine_message() -> None:
    finding = decode_value('"MC_WORKSPACE"', _stage(), LEGACY, flight_id="7348", key="ws")
    assert isinstance(finding, Finding)
    assert finding.engine_exception == (
        "java.lang.ClassCastException: Found value 'MC_WORKSPACE' is not an instance of type "
        "bio.terra.workspace.service.workspace.model.WorkspaceStage"
    )
    assert finding.expected == f"enum {STAGE}{{RAWLS_WORKSPACE,MC_WORKSPACE}}"
    assert finding.found == "plain JSON string (12 chars, matches enum constant MC_WORKSPACE)"
    assert "isInstance" in finding.reason
    assert finding.reencodable


def test_2021_enum_case_typed_decodes() -> None:
    decoded = decode_value('"MC_WORKSPACE"', _stage(), TYPED)
    assert isinstance(decoded, Decoded)
    assert decoded.java_class == STAGE
    assert decoded.value == "MC_WORKSPACE"


def test_enum_value_not_in_catalog_is_never_named() -> None:
    finding = decode_value('"SOME_SECRET_CONSTANT"', _stage(), LEGACY)
    assert isinstance(finding, Finding)
    assert "Found value '<value>'" in finding.engine_exception
    assert "SOME_SECRET" not in repr(finding)
    typed = decode_value('"SOME_SECRET_CONSTANT"', _stage(), TYPED)
    assert isinstance(typed, Finding)
    assert "not one of the values accepted" in typed.engine_exception
    assert "SOME_SECRET" not in repr(typed)
    assert not typed.reencodable


@pytest.mark.parametrize("reader", [LEGACY, TYPED])
@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"a":', "char 5"),
        ("", "char 0"),
        ("   ", "char 3"),
        ('"unterminated', "char 0"),
        ("NaN", ""),
        ("[" * 5000, ""),
        ("1" * 5000, ""),
        ("\ufeff3", "char 0"),
        ("{'a': 1}", "char 1"),
    ],
)
def test_malformed_json_is_a_finding(text: str, where: str, reader: ReaderVersion) -> None:
    finding = decode_value(text, CatalogType(TypeKind.STRING), reader)
    assert isinstance(finding, Finding)
    assert finding.found.startswith("malformed JSON")
    assert where in finding.found
    assert "JsonParseException" in finding.engine_exception
    assert not finding.reencodable


def test_trailing_text_is_ignored_like_jackson() -> None:
    decoded = decode_value('"abc" trailing', CatalogType(TypeKind.STRING), TYPED)
    assert isinstance(decoded, Decoded)
    assert decoded.notes == ("text after char 6 ignored (Jackson reads the first value)",)


def test_typed_coercions_are_noted() -> None:
    decoded = decode_value("3", CatalogType(TypeKind.STRING), TYPED)
    assert isinstance(decoded, Decoded)
    assert decoded.java_class == "java.lang.String"
    assert decoded.notes
    legacy = decode_value("3", CatalogType(TypeKind.STRING), LEGACY)
    assert isinstance(legacy, Finding)
    assert not legacy.reencodable  # a number is never turned into a string


def test_list_element_failure_names_the_element() -> None:
    uuids = CatalogType(TypeKind.LIST, element=CatalogType(TypeKind.UUID))
    text = '["java.util.ArrayList",[["java.util.UUID","2e74e380-cccd-48ad-a0ac-e006b3650dbe"],"x"]]'
    finding = decode_value(text, uuids, LEGACY)
    assert isinstance(finding, Finding)
    assert "element 1" in finding.found
    assert finding.engine_exception.startswith(
        "java.lang.ClassCastException: class java.lang.String cannot be cast to class "
        "java.util.UUID"
    )


def test_pojo_without_wrapper_fails_both_readers_and_is_reencodable() -> None:
    pojo = CatalogType(TypeKind.POJO, "com.x.Pojo")
    for reader in (LEGACY, TYPED):
        finding = decode_value('{"a":1}', pojo, reader)
        assert isinstance(finding, Finding)
        assert "WRAPPER_ARRAY" in finding.engine_exception
        assert finding.reencodable


def test_wrapper_of_another_pojo_class() -> None:
    pojo = CatalogType(TypeKind.POJO, "com.x.Pojo")
    legacy = decode_value('["com.x.Other",{}]', pojo, LEGACY)
    assert isinstance(legacy, Finding)
    assert "ClassCastException" in legacy.engine_exception
    typed = decode_value('["com.x.Other",{}]', pojo, TYPED)
    assert isinstance(typed, Finding)
    assert "Not a subtype" in typed.engine_exception
    sub = CatalogType(TypeKind.POJO, "com.x.Pojo", classes=("com.x.Other",))
    assert isinstance(decode_value('["com.x.Other",{}]', sub, TYPED), Decoded)


def _wsm_report(reader: ReaderVersion) -> Any:
    catalog = load_builtin_catalog("workspace-manager")
    return decode_map(WSM["flight_id"], WSM["class_name"], WSM["rows"], catalog, reader)


def test_wsm_create_flight_input_legacy() -> None:
    report = _wsm_report(LEGACY)
    assert report.known_class
    assert [f.key for f in report.findings] == ["workspaceId", "workspaceStage"]
    assert all(f.reencodable and f.flight_id == WSM["flight_id"] for f in report.findings)
    assert report.unknown_keys == ()
    assert report.missing_keys == ()  # spendProfileId is optional
    assert report.decoded["auth_user_info"].java_class == (
        "bio.terra.workspace.service.iam.AuthenticatedUserRequest"
    )
    assert not report.ok


def test_wsm_create_flight_input_typed() -> None:
    report = _wsm_report(TYPED)
    assert report.findings == ()
    assert report.ok
    assert report.decoded["workspaceStage"].java_class == STAGE


def test_decode_map_unknown_and_missing_keys() -> None:
    catalog = load_builtin_catalog("workspace-manager")
    rows = {"workspaceStage": '"MC_WORKSPACE"', "extra": '["a","b"]', "fine": '"x"'}
    legacy = decode_map("f", WSM["class_name"], rows, catalog, LEGACY)
    assert legacy.unknown_keys == ("extra", "fine")
    # a <=0.0.60 reader reads every entry, so an unreadable extra key is a finding too
    extra = [f for f in legacy.findings if f.key == "extra"]
    assert extra and extra[0].expected == "any (key not in the catalog)"
    assert "workspaceId" in legacy.missing_keys
    assert "spendProfileId" not in legacy.missing_keys
    typed = decode_map("f", WSM["class_name"], rows, catalog, TYPED)
    assert [f.key for f in typed.findings] == []
    unknown_class = decode_map("f", "com.x.UnknownFlight", rows, catalog, TYPED)
    assert not unknown_class.known_class
    assert unknown_class.unknown_keys == ("workspaceStage", "extra", "fine")


def test_a_scan_memo_gives_each_flight_the_verdicts_it_would_get_alone() -> None:
    catalog = load_builtin_catalog("workspace-manager")
    rows = {**WSM["rows"], "extra": '["a","b"]'}
    memo: dict[Any, Any] = {}
    for reader in (LEGACY, TYPED):
        memo.clear()
        for flight_id in ("f1", "f2", "f1"):  # the second and third come from the memo
            alone = decode_map(flight_id, WSM["class_name"], rows, catalog, reader)
            memoized = decode_map(flight_id, WSM["class_name"], rows, catalog, reader, memo=memo)
            assert memoized == alone
            assert all(f.flight_id == flight_id for f in memoized.findings)
        # one verdict per key and text; the ≥0.0.61 reader never reads the unknown key
        assert len(memo) == len(rows) - (reader is TYPED)


def test_decode_map_working_map_from_legacy_json() -> None:
    text = json.loads((FIXTURES / "legacy_working_map.json").read_text())["text"]
    rows = split_legacy_map(text)
    catalog = load_builtin_catalog("workspace-manager")
    report = decode_map("f", WSM["class_name"], rows, catalog, LEGACY, source="working")
    assert report.findings == ()  # legacy whole-map values carry their type ids
    with pytest.raises(ValueError, match="source"):
        decode_map("f", WSM["class_name"], rows, catalog, LEGACY, source="output")  # type: ignore[arg-type]


def test_any_accepts_whatever_object_read_accepts() -> None:
    assert isinstance(decode_value('["com.x.Anything",{"a":1}]', ANY, LEGACY), Decoded)
    assert isinstance(decode_value('{"a":1}', ANY, TYPED), Finding)


def test_finding_render_and_json() -> None:
    finding = decode_value('"MC_WORKSPACE"', _stage(), LEGACY, flight_id="f1", key="ws")
    assert isinstance(finding, Finding)
    line = finding.render()
    assert "\n" not in line and line.startswith("f1 input ws: expected enum")
    assert finding.to_json()["reader"] == "legacy"
    assert finding.expected_type == _stage()
