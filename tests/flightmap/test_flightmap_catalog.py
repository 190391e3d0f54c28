"""The type catalog: strict YAML loading, dump round trip, the shipped WSM catalog, drafting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repairtool.flightmap import (
    CatalogError,
    CatalogType,
    ReadAs,
    TypeKind,
    draft_catalog,
    dump_catalog,
    load_builtin_catalog,
    load_catalog,
    loads_catalog,
    parse_type,
)

FIXTURES = Path(__file__).parent / "fixtures"
CATALOGS = FIXTURES / "catalogs"
WSM = "bio.terra.workspace.service.workspace.flight.WorkspaceCreateFlight"
THING = "bio.terra.example.flight.CreateThingFlight"


def test_shipped_workspace_manager_catalog() -> None:
    catalog = load_builtin_catalog("workspace-manager")
    spec = catalog.flight(WSM)
    assert spec is not None
    keys = spec.keys("input")
    assert keys["workspaceStage"].type == CatalogType(
        TypeKind.ENUM,
        "bio.terra.workspace.service.workspace.model.WorkspaceStage",
        ("RAWLS_WORKSPACE", "MC_WORKSPACE"),
    )
    assert keys["workspaceId"].type.kind is TypeKind.UUID
    assert keys["auth_user_info"].type == CatalogType(
        TypeKind.POJO, "bio.terra.workspace.service.iam.AuthenticatedUserRequest"
    )
    for name in (
        "description",
        "subjectId",
        "mdcKey",
        "spendProfileId",
        "displayNameId",
        "descriptionId",
    ):
        assert keys[name].type.kind is TypeKind.STRING, name
    assert keys["request"].type.kind is TypeKind.ANY
    assert [k for k, s in keys.items() if s.optional] == ["spendProfileId"]
    assert spec.keys("working") == {}


def test_nested_catalog_loads_and_round_trips() -> None:
    catalog = load_catalog(CATALOGS / "nested.yaml")
    keys = catalog.flight(THING).keys("input")  # type: ignore[union-attr]
    assert keys["labels"].type.read_as is ReadAs.TYPE_REFERENCE
    assert keys["grid"].type.render() == "list<list<int>>"
    assert keys["owner"].type.classes == ("bio.terra.example.Admin",)
    assert keys["anything"].optional and keys["anything"].note == "free-form"
    assert catalog.flight("bio.terra.example.flight.EmptyFlight") is not None
    assert loads_catalog(dump_catalog(catalog)) == catalog
    shipped = load_builtin_catalog("workspace-manager")
    assert loads_catalog(dump_catalog(shipped, header="copy")) == shipped


KEY = f"flight {THING}: input key"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bad-kind.yaml", f"{KEY} thingKind: unknown type kind 'enumeration'"),
        ("missing-class.yaml", f"{KEY} thingKind: type enum needs field 'class'"),
        ("unknown-field.yaml", f"flight {THING}: working key owner: field 'nullable' is not"),
        ("yaml-bool-values.yaml", f"{KEY} switch: 'values' must be a list of strings"),
        ("bad-yaml.yaml", "invalid YAML at line"),
        ("duplicate-key.yaml", "invalid YAML at line 7: duplicate key 'thingId'"),
        (
            "nested-unknown-field.yaml",
            f"{KEY} grid: of: of: field 'read_as' is not allowed for type int",
        ),
        ("key-not-string.yaml", f"flight {THING}: working key 404: a key must be a string"),
        (
            "declared-class-twice.yaml",
            "classes bio.terra.example.ThingKind: 'values' lists an entry twice",
        ),
        ("not-a-mapping.yaml", "expected a mapping at the top level, not a list"),
        ("not-utf8.yaml", ": not UTF-8 text (byte 153)"),
    ],
)
def test_catalog_errors_are_one_line_naming_file_flight_and_key(name: str, message: str) -> None:
    path = CATALOGS / name
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(str(path))
    assert message in text


def _doc(key_spec: str) -> str:
    return f"flights: {{{THING}: {{input: {{k: {key_spec}}}}}}}"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("flights: []", "'flights' must map"),
        ("version: 2\nflights: {}", "unsupported catalog version"),
        ("flight: {}", "unknown top-level field 'flight'"),
        ("{}", "missing field 'flights'"),
        ("flights: {NotAClass: {}}", "flight NotAClass: a flight class must be a Java class"),
        (f"flights: {{{THING}: {{inputs: {{}}}}}}", "unknown field 'inputs'"),
        (_doc("{optional: true}"), "key k: missing field 'type'"),
        (_doc("{type: enum, class: a.B, values: []}"), "key k: 'values' must list"),
        (_doc("{type: list, of: {type: nope}}"), "key k: of: unknown type kind 'nope'"),
        (_doc("{type: list, read_as: generic}"), "key k: 'read_as' must be"),
        (_doc("{type: string, optional: maybe}"), "key k: 'optional' must be true or false"),
        (_doc("{type: enum, class: a.B, values: [A, A]}"), "lists an entry twice"),
        (_doc("{type: pojo, class: NoPackage}"), "'class' must be a Java class name"),
        (_doc("{type: enum, class: a.B, values: ['{x}']}"), "has an invalid entry '{x}'"),
        (_doc("[uuid]"), "key k: expected a kind"),
    ],
)
def test_catalog_validation(doc: str, message: str) -> None:
    with pytest.raises(CatalogError, match=r"^cat\.yaml: ") as err:
        loads_catalog(doc, "cat.yaml")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_types_nested_deeper_than_the_validator_follows_are_one_line(tmp_path: Path) -> None:
    deep = "{type: list, of: " * 300 + "uuid" + "}" * 300
    path = tmp_path / "deep.yaml"
    path.write_text(f"flights: {{{THING}: {{input: {{k: {deep}}}}}}}")
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    assert str(err.value) == f"{path}: {KEY} k: nested too deeply, or a YAML anchor loops"


def test_a_type_as_deep_as_a_service_writes_loads() -> None:
    nested = "{type: list, of: " * 20 + "uuid" + "}" * 20
    catalog = loads_catalog(f"flights: {{{THING}: {{input: {{k: {nested}}}}}}}")
    assert str(catalog.flight(THING).keys("input")["k"].type).count("list<") == 20  # type: ignore[union-attr]


def test_missing_file() -> None:
    with pytest.raises(CatalogError, match="cannot read"):
        load_catalog(CATALOGS / "nope.yaml")
    with pytest.raises(CatalogError, match="no such built-in catalog"):
        load_builtin_catalog("nope")


def test_parse_type_shorthand_and_render() -> None:
    assert parse_type("uuid") == CatalogType(TypeKind.UUID)
    t = parse_type({"type": "map", "of": {"type": "list", "of": "long"}})
    assert str(t) == "map<list<long>>"
    assert t.java_type == "java.util.Map"
    with pytest.raises(CatalogError, match=r"^here: unknown type kind"):
        parse_type("str", "here")


def test_draft_catalog_from_rows() -> None:
    wsm = json.loads((FIXTURES / "wsm_create_flight_input.json").read_text())
    other = {**wsm["rows"], "spendProfileId": '"wm-default-spend-profile"'}
    del other["description"]
    rows = [(wsm["class_name"], k, v) for k, v in wsm["rows"].items()]
    rows += [(wsm["class_name"], k, v) for k, v in other.items()]
    uuid = '["java.util.UUID","2e74e380-cccd-48ad-a0ac-e006b3650dbe"]'
    rows += [
        ("com.x.OtherFlight", key, text)
        for key, text in [
            ("ids", f'["java.util.ArrayList",[{uuid}]]'),
            ("count", '["java.lang.Long",3]'),
            ("count", "5"),
            ("when", "1617631399.046000000"),
            ("stage", '["com.x.Stage","BIG"]'),
            ("stage", '["com.x.Stage","SMALL"]'),
            ("pair", '["a","b"]'),
            ("broken", '{"a":'),
            ("mixed", '"text"'),
            ("mixed", "true"),
        ]
    ]
    catalog = draft_catalog(rows)
    keys = catalog.flight(wsm["class_name"]).keys("input")  # type: ignore[union-attr]
    assert keys["workspaceId"].type.kind is TypeKind.UUID and keys["workspaceId"].inferred
    assert keys["workspaceStage"].type.kind is TypeKind.STRING and keys["workspaceStage"].inferred
    assert "enum" in keys["workspaceStage"].note
    assert keys["auth_user_info"].type == CatalogType(
        TypeKind.POJO, "bio.terra.workspace.service.iam.AuthenticatedUserRequest"
    )
    assert not keys["auth_user_info"].inferred
    assert keys["request"].type.kind is TypeKind.ANY
    assert keys["spendProfileId"].optional and keys["description"].optional
    assert not keys["subjectId"].optional
    other_keys = catalog.flight("com.x.OtherFlight").keys("input")  # type: ignore[union-attr]
    assert other_keys["ids"].type.render() == "list<uuid>"
    assert other_keys["count"].type.kind is TypeKind.LONG
    assert other_keys["when"].type.kind is TypeKind.INSTANT and other_keys["when"].inferred
    assert other_keys["stage"].type == CatalogType(TypeKind.ENUM, "com.x.Stage", ("BIG", "SMALL"))
    assert other_keys["pair"].type.kind is TypeKind.LIST and "List.of" in other_keys["pair"].note
    assert (
        other_keys["broken"].type.kind is TypeKind.ANY and "malformed" in other_keys["broken"].note
    )
    assert other_keys["mixed"].type.kind is TypeKind.ANY and "mixed" in other_keys["mixed"].note
    # the draft is a valid catalog, and never quotes a stored value
    text = dump_catalog(catalog, header="drafted")
    assert loads_catalog(text) == catalog
    assert "ya29" not in text and "jcarlton" not in text and "wm-default" not in text


def test_draft_working_keys_are_optional() -> None:
    catalog = draft_catalog([("com.x.F", "response", '"ok"')], source="working")
    spec = catalog.flight("com.x.F")
    assert spec is not None and spec.input == ()
    assert spec.keys("working")["response"].optional
