"""Property tests: arbitrary JSON (and non-JSON) × arbitrary catalog types × both readers."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from repairtool.flightmap import (
    CatalogType,
    Decoded,
    Finding,
    ReadAs,
    ReaderVersion,
    TypeKind,
    decode_value,
    dumps,
    loads,
    mask,
    mask_tree,
    parse_value,
    reencode,
    shape,
)
from repairtool.flightmap.errors import JacksonParseError

CLASSES = [
    "java.util.UUID",
    "java.lang.Long",
    "java.lang.Integer",
    "java.lang.String",
    "java.time.Instant",
    "java.util.ArrayList",
    "java.util.HashMap",
    "java.util.Collections$EmptyList",
    "com.x.Pojo",
    "com.x.Stage",
    "com.x.MyList",
    "com.x.MyMap",
    "bio.terra.workspace.service.iam.AuthenticatedUserRequest",
]
POJO_CLASSES = ["com.x.Pojo", "bio.terra.workspace.service.iam.AuthenticatedUserRequest"]
CONSTANTS = st.sampled_from(["MC_WORKSPACE", "RAWLS_WORKSPACE", "FOO", "BAR", "A"])
READERS = st.sampled_from(list(ReaderVersion))

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.uuids().map(str)
    | CONSTANTS
)


def _wrapped(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.tuples(st.sampled_from(CLASSES) | st.text(max_size=8), children).map(list)


json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
        | _wrapped(children)
    ),
    max_leaves=12,
)

simple_kinds = st.sampled_from(
    [
        TypeKind.STRING,
        TypeKind.UUID,
        TypeKind.INT,
        TypeKind.LONG,
        TypeKind.BOOL,
        TypeKind.DOUBLE,
        TypeKind.INSTANT,
        TypeKind.ANY,
    ]
)
base_types = (
    simple_kinds.map(CatalogType)
    | st.builds(
        lambda values: CatalogType(TypeKind.ENUM, "com.x.Stage", tuple(dict.fromkeys(values))),
        st.lists(CONSTANTS, min_size=1, max_size=3),
    )
    | st.builds(
        lambda classes: CatalogType(TypeKind.POJO, "com.x.Pojo", classes=tuple(classes)),
        st.lists(st.sampled_from(["com.x.Sub", "com.x.Stage"]), max_size=1),
    )
)
catalog_types = st.recursive(
    base_types,
    lambda children: st.builds(
        CatalogType,
        st.sampled_from([TypeKind.LIST, TypeKind.MAP]),
        element=st.none() | children,
        read_as=st.sampled_from(list(ReadAs)),
        classes=st.sampled_from([(), ("com.x.MyList",), ("com.x.MyMap", "com.x.Pojo")]),
    ),
    max_leaves=3,
)


def _texts() -> st.SearchStrategy[str]:
    as_json = json_values.map(lambda v: json.dumps(v, separators=(",", ":")))
    truncated = st.tuples(as_json, st.integers(min_value=0, max_value=40)).map(
        lambda pair: pair[0][: pair[1]]
    )
    return as_json | truncated | st.text(max_size=30) | json_values.map(json.dumps)


def _rendered(result: Decoded | Finding) -> str:
    if isinstance(result, Finding):
        return " ".join([repr(result), result.render(), json.dumps(result.to_json())])
    return " ".join([repr(result), result.shape])


@settings(max_examples=400)
@given(text=_texts(), expected=catalog_types, reader=READERS)
def test_decode_value_never_raises(text: str, expected: CatalogType, reader: ReaderVersion) -> None:
    result = decode_value(text, expected, reader, flight_id="f", key="k")
    assert isinstance(result, Decoded) != isinstance(result, Finding)
    _rendered(result)
    if isinstance(result, Finding):
        assert not result.reason.startswith("decoder error"), result.reason
        assert "\n" not in result.render()
    new = reencode(text, expected, reader)
    if isinstance(result, Finding):
        assert result.reencodable == (new is not None)
    else:
        assert new == dumps(loads(text)[0])
    if new is not None:
        assert isinstance(decode_value(new, expected, reader), Decoded)


SECRET = st.from_regex(r"s3cr3t-[A-Za-z0-9]{10,20}", fullmatch=True)
SECRET_FIELDS = st.sampled_from(
    ["token", "password", "secret", "credential", "accessToken", "refreshToken", "clientSecret"]
)


@st.composite
def planted(draw: st.DrawFn) -> tuple[str, str]:
    """A stored value with a secret in a token-like field of a POJO (maybe nested)."""
    secret = draw(SECRET)
    fields = draw(st.dictionaries(st.sampled_from(["email", "reqId", "subjectId"]), scalars))
    fields[draw(SECRET_FIELDS)] = secret
    pojo: Any = [draw(st.sampled_from(POJO_CLASSES)), fields]
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        pojo = draw(
            st.sampled_from(
                [
                    ["java.util.ArrayList", [pojo]],
                    ["java.util.HashMap", {"inner": pojo}],
                    ["com.x.Pojo", {"auth": pojo}],
                ]
            )
        )
    return json.dumps(pojo, separators=(",", ":")), secret


@settings(max_examples=300)
@given(case=planted(), expected=catalog_types, reader=READERS)
def test_planted_token_never_rendered(
    case: tuple[str, str], expected: CatalogType, reader: ReaderVersion
) -> None:
    text, secret = case
    result = decode_value(text, expected, reader, flight_id="f", key="auth_user_info")
    assert secret not in _rendered(result)
    tree = parse_value(text)
    assert secret not in shape(tree)
    assert secret not in mask(text)
    assert secret not in dumps(mask_tree(tree))


@settings(max_examples=300)
@given(value=json_values, secret=SECRET, expected=catalog_types, reader=READERS, data=st.data())
def test_no_value_string_reaches_a_finding(
    value: Any, secret: str, expected: CatalogType, reader: ReaderVersion, data: st.DataObject
) -> None:
    """A string planted anywhere (even where Jackson takes it for a type id) is never shown."""
    spot = data.draw(st.sampled_from(["plain", "type id", "in list", "in wrapper"]))
    planted_value: Any = {
        "plain": secret,
        "type id": [secret, value],
        "in list": ["java.util.ArrayList", [value, secret]],
        "in wrapper": [data.draw(st.sampled_from(CLASSES)), secret],
    }[spot]
    text = json.dumps(planted_value)
    result = decode_value(text, expected, reader)
    assert secret not in _rendered(result)
    try:
        assert secret not in shape(parse_value(text))
    except JacksonParseError:  # pragma: no cover - json.dumps output always parses
        raise


def test_a_named_list_class_whose_content_is_not_an_array_is_a_finding_not_a_decoder_error() -> (
    None
):
    """Found by hypothesis (`["com.x.MyList",0]` as list<string> with the class named): the
    legacy reader's element check iterated the integer (`decoder error TypeError`). Jackson's
    collection deserializer refuses a non-array content: the flight cannot be rebuilt."""
    expected = CatalogType(
        TypeKind.LIST, element=CatalogType(TypeKind.STRING), classes=("com.x.MyList",)
    )
    for reader in ReaderVersion:
        result = decode_value('["com.x.MyList",0]', expected, reader, flight_id="f", key="k")
        assert isinstance(result, Finding), reader
        assert "wrapper must be a JSON array" in result.reason, result.reason
