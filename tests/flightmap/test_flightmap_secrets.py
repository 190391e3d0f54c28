"""mask() and shape(): secrets never reach output."""

from __future__ import annotations

import json
from pathlib import Path

from repairtool.flightmap import MASK, Typed, is_secret_key, mask, mask_tree, parse_value, shape

FIXTURES = Path(__file__).parent / "fixtures"
WSM = json.loads((FIXTURES / "wsm_create_flight_input.json").read_text())
TOKEN = "ya29.FAKE-planted-token-0123456789abcdefghijklmnop"


def test_mask_auth_user_info_token() -> None:
    text = WSM["rows"]["auth_user_info"]
    masked = mask(text)
    assert TOKEN not in masked
    assert f'"token":"{MASK}"' in masked
    assert '"email":"jcarlton@test.firecloud.org"' in masked  # other fields stay readable
    assert masked.startswith('["bio.terra.workspace.service.iam.AuthenticatedUserRequest",{')


def test_mask_tree_nested_and_keys() -> None:
    tree = parse_value(
        '["java.util.HashMap",{"creds":{"accessToken":"a","refreshToken":{"x":1},'
        '"password":null,"clientSecret":"b"},"note":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"}]'
    )
    masked = mask_tree(tree)
    assert isinstance(masked, Typed) and isinstance(masked.value, dict)
    creds = masked.value["creds"]
    assert creds == {
        "accessToken": MASK,
        "refreshToken": MASK,
        "password": None,
        "clientSecret": MASK,
    }
    assert masked.value["note"] == MASK  # JWT-looking value, whatever its key


def test_mask_by_flightmap_key_and_malformed_text() -> None:
    assert mask('"abc"', key="accessToken") == f'"{MASK}"'
    assert mask('"abc"', key="description") == '"abc"'
    assert mask('{"token": "abc') == "<malformed JSON, 14 chars>"
    assert is_secret_key("auth_token") and is_secret_key("Credentials")
    assert not is_secret_key("subjectId")


def test_shape_never_shows_content() -> None:
    text = WSM["rows"]["auth_user_info"]
    described = shape(parse_value(text))
    assert described == (
        'wrapper ["bio.terra.workspace.service.iam.AuthenticatedUserRequest", object of 4 fields]'
    )
    assert shape(parse_value('"MC_WORKSPACE"'), enum_values=["MC_WORKSPACE"]) == (
        "plain JSON string (12 chars, matches enum constant MC_WORKSPACE)"
    )
    assert shape(parse_value('"MC_WORKSPACE"')) == "plain JSON string (12 chars)"
    assert shape(parse_value(f'"{TOKEN}"')) == f"plain JSON string ({len(TOKEN)} chars)"
    # a List.of whose first element is a token: the "type id" is not shown
    assert TOKEN not in shape(parse_value(f'["{TOKEN}","b"]'))
    assert shape(parse_value('["java.util.UUID","x"]')) == 'wrapper ["java.util.UUID", string]'
    assert shape(parse_value("1617631399.046000000")) == (
        "plain JSON decimal number (20 chars, seconds.nanos form)"
    )
    assert shape(parse_value("3000000000")) == "plain JSON integer (beyond int, fits long)"
    assert shape(parse_value("[1,2,3]")) == "plain JSON array (3 elements, first integer)"
