"""Facts real Jackson established (recorded from the conformance oracle into a fixture, so these
run without a JVM): each row is a class of value the earlier model got wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from repairtool.flightmap import (
    Catalog,
    Decoded,
    FlightSpec,
    KeySpec,
    ReaderVersion,
    decode_value,
    loads_catalog,
    parse_type,
    reencode,
)
from repairtool.flightmap.catalog import catalog_classes
from repairtool.flightmap.working import decode_working_map

FACTS = json.loads((Path(__file__).parent / "fixtures" / "oracle_facts.json").read_text())
CLASSES = catalog_classes(parse_type(t) for t in FACTS["classes"].values())


def verdict(result: Any) -> str:
    return "reads" if isinstance(result, Decoded) else f"fails at {result.when}"


@pytest.mark.parametrize("row", FACTS["rows"], ids=[r["what"] for r in FACTS["rows"]])
def test_decode_verdicts_are_what_jackson_does(row: dict[str, Any]) -> None:
    t = parse_type(row["type"])
    legacy = decode_value(row["stored"], t, ReaderVersion.LEGACY, classes=CLASSES)
    typed = decode_value(row["stored"], t, ReaderVersion.TYPED, classes=CLASSES)
    assert (verdict(legacy), verdict(typed)) == (row["legacy"], row["typed"])


SNAPSHOT = parse_type({"type": "pojo", "class": "conformance.model.Snapshot", "final": True})


def test_a_final_class_is_reencoded_without_a_wrapper_for_the_typed_reader() -> None:
    wrapped = '["conformance.model.Snapshot",{"name":"s","version":2,"owner":null}]'
    assert reencode(wrapped, SNAPSHOT, ReaderVersion.TYPED) == (
        '{"name":"s","version":2,"owner":null}'
    )
    # and with one for the <=0.0.60 reader, which reads it only through its type id
    assert reencode('{"name":"s","version":2,"owner":null}', SNAPSHOT, ReaderVersion.LEGACY) == (
        wrapped
    )


UUID_TEXT = "2e74e380-cccd-48ad-a0ac-e006b3650dbe"
STAGE = {"type": "enum", "class": "a.b.Stage", "values": ["A", "B"]}
LEGACY_MAP = (
    '["java.util.HashMap",{"id":["java.util.UUID","' + UUID_TEXT + '"],"n":["java.lang.Long",5],'
    '"stage":["a.b.Stage","B"]}]'
)
CATALOG = Catalog(
    (
        FlightSpec(
            "a.b.F",
            working=(
                KeySpec("id", parse_type("uuid")),
                KeySpec("n", parse_type("long")),
                KeySpec("stage", parse_type(STAGE)),
            ),
        ),
    )
)


def test_a_typed_reader_writes_a_legacy_working_map_out_again_before_it_gets_values() -> None:
    # FlightMapUtils.fromJson: the wrappers of final classes disappear, so typed gets succeed
    origin, report = decode_working_map("f", "a.b.F", {}, LEGACY_MAP, CATALOG, ReaderVersion.TYPED)
    assert origin == "working_parameters"
    assert report.findings == () and set(report.decoded) == {"id", "n", "stage"}


def test_a_legacy_reader_reads_working_parameters_and_never_the_rows() -> None:
    rows = {"id": '"' + UUID_TEXT + '"'}  # the plain form a <=0.0.60 reader could not take
    origin, report = decode_working_map(
        "f", "a.b.F", rows, LEGACY_MAP, CATALOG, ReaderVersion.LEGACY
    )
    assert origin == "working_parameters" and report.findings == ()
    # rows a >=0.0.61 engine wrote (working_parameters NULL): no working map at all
    origin, report = decode_working_map("f", "a.b.F", rows, None, CATALOG, ReaderVersion.LEGACY)
    assert origin == "none" and report.findings == () and not report.decoded


def test_a_typed_reader_prefers_flightworking_rows() -> None:
    rows = {"id": '["java.util.UUID","' + UUID_TEXT + '"]'}  # wrapped: the typed reader rejects it
    origin, report = decode_working_map(
        "f", "a.b.F", rows, LEGACY_MAP, CATALOG, ReaderVersion.TYPED
    )
    assert origin == "flightworking"
    [finding] = report.findings
    assert (finding.key, finding.source, finding.when) == ("id", "working", "get")


def test_catalog_final_bodies_and_declared_classes_round_trip() -> None:
    text = """
version: 1
classes:
  a.b.Op: {type: enum, values: [X, Y], bodies: [X]}
  a.b.Snap: {type: pojo, final: true}
flights:
  a.b.F:
    input:
      snap: {type: pojo, class: a.b.Snap, final: true}
      op: {type: enum, class: a.b.Op, values: [X, Y], bodies: [X]}
      drafted: {type: pojo, final: true}
"""
    catalog = loads_catalog(text)
    spec = catalog.flight("a.b.F")
    assert spec is not None
    keys = spec.keys("input")
    assert keys["snap"].type.is_final and not keys["op"].type.is_final
    assert keys["drafted"].type.is_final and keys["drafted"].type.java_class == ""
    assert catalog.classes["a.b.Op"].bodies == ("X",)
    from repairtool.flightmap import dump_catalog

    assert loads_catalog(dump_catalog(catalog)) == catalog


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("flights: {a.b.F: {input: {k: {type: pojo}}}}", "only a final class may leave it out"),
        (
            "flights: {a.b.F: {input: {k: {type: enum, class: a.b.E, values: [A], bodies: [B]}}}}",
            "'bodies' may only name constants listed in 'values'",
        ),
        ("flights: {}\nclasses: {a.b.C: {type: uuid}}", "expected type enum or pojo"),
        ("flights: {}\nclasses: {a.b.C: {type: pojo, class: a.b.D}}", "leave out 'class'"),
        (
            "flights: {a.b.F: {input: {k: {type: pojo, class: a.b.C, final: yes please}}}}",
            "'final'",
        ),
    ],
)
def test_catalog_format_errors_name_the_problem(text: str, message: str) -> None:
    from repairtool.flightmap import CatalogError

    with pytest.raises(CatalogError, match=message):
        loads_catalog(text)


def test_draft_infers_a_final_class_where_rows_prove_it() -> None:
    from repairtool.flightmap import TypeKind, draft_catalog

    rows = [
        ("a.b.F", "snap", '{"name":"s","version":2,"owner":null}'),  # a null field: a class
        ("a.b.F", "snap", '{"name":"t","version":3,"owner":null}'),
        ("a.b.F", "labels", '{"env":"dev"}'),  # a record, or an immutable map: rows cannot tell
        ("a.b.F", "op", '["a.b.Op","NOOP"]'),  # an enum seen with and without a type id
        ("a.b.F", "op", '"CREATE"'),
    ]
    keys = draft_catalog(rows).flights[0].keys("input")
    snap = keys["snap"]
    assert snap.type.kind is TypeKind.POJO and snap.type.is_final and snap.inferred
    assert "add class:" in snap.note
    assert keys["labels"].type.kind is TypeKind.ANY and "immutable map" in keys["labels"].note
    op = keys["op"].type
    assert (op.kind, op.values, op.bodies, op.is_final) == (
        TypeKind.ENUM,
        ("CREATE", "NOOP"),
        ("CREATE",),
        False,
    )
