"""Parsing and writing Jackson default-typed JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repairtool.flightmap import (
    JacksonParseError,
    JsonFloat,
    Typed,
    dumps,
    loads,
    parse_legacy_map,
    parse_value,
    split_legacy_map,
)
from repairtool.flightmap.jackson import dump_string, java_double_text

FIXTURES = Path(__file__).parent / "fixtures"
LEGACY_MAP = json.loads((FIXTURES / "legacy_working_map.json").read_text())["text"]


def test_wrapper_in_object_context() -> None:
    assert parse_value('["java.util.UUID","x"]') == Typed("java.util.UUID", "x")
    # List.of("a","b") looks exactly like a wrapper: "a" is taken as a type id
    assert parse_value('["a","b"]') == Typed("a", "b")
    assert parse_value("[1,2]") == [1, 2]
    assert parse_value("null") is None


def test_list_and_map_contents_are_object_context_pojo_content_is_plain() -> None:
    tree = parse_value('["java.util.ArrayList",["a",["java.util.UUID","u"]]]')
    assert tree == Typed("java.util.ArrayList", ["a", Typed("java.util.UUID", "u")])
    pojo = parse_value('["com.x.Pojo",{"pair":["a","b"]}]')
    assert pojo == Typed("com.x.Pojo", {"pair": ["a", "b"]})
    hashmap = parse_value('["java.util.HashMap",{"k":["java.lang.Long",3]}]')
    assert hashmap == Typed("java.util.HashMap", {"k": Typed("java.lang.Long", 3)})


def test_decimal_text_is_kept() -> None:
    value = parse_value("1617631399.046000000")
    assert isinstance(value, JsonFloat)
    assert value.text == "1617631399.046000000"
    assert dumps(value) == "1617631399.046000000"


def test_legacy_whole_map() -> None:
    tree = parse_legacy_map(LEGACY_MAP)
    assert tree["myenum"] == Typed("bio.terra.stairway.FlightMapTest$MyEnum", "FOO")
    assert tree["mykey"] == 3
    rows = split_legacy_map(LEGACY_MAP)
    assert rows["myuuid"] == '["java.util.UUID","2e74e380-cccd-48ad-a0ac-e006b3650dbe"]'
    assert rows["mylong"] == '["java.lang.Long",3]'
    assert parse_legacy_map("null") == {}
    with pytest.raises(JacksonParseError, match="not a legacy FlightMap"):
        parse_legacy_map('"x"')


def test_dumps_round_trips_compact_jackson_text() -> None:
    text = LEGACY_MAP
    assert dumps(loads(text)[0]) == text
    assert dumps(Typed("java.lang.Long", 3)) == '["java.lang.Long",3]'


def test_string_escapes_match_jackson() -> None:
    assert dump_string('a"b\\c\n\t\r\b\f') == '"a\\"b\\\\c\\n\\t\\r\\b\\f"'
    assert dump_string("\x01\x1f") == '"\\u0001\\u001F"'  # Jackson: upper-case hex
    assert dump_string("é/€") == '"é/€"'  # non-ASCII and "/" unescaped


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3.0, "3.0"),
        (1e7, "1.0E7"),
        (1.5e20, "1.5E20"),
        (1e-4, "1.0E-4"),
        (0.001, "0.001"),
        (-2.5, "-2.5"),
        (123.456, "123.456"),
    ],
)
def test_java_double_text(value: float, text: str) -> None:
    assert java_double_text(value) == text


def test_parse_errors_carry_position_not_text() -> None:
    with pytest.raises(JacksonParseError) as err:
        loads('{"token": "secret-value"')
    assert err.value.position is not None
    assert "secret" not in str(err.value)


def test_trailing_text_position() -> None:
    assert loads("3  x") == (3, 3)
    assert loads(" 3 \n") == (3, None)
