"""Proposals follow what the engine does when it resumes a flight, per reader generation, and a
plan never force-fatals a flight unless the operator asked for `--action fail`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from repairtool.decodescan import scan
from repairtool.detect import Action, Detection, Kind, Options, detect
from repairtool.flightmap import Catalog, FlightSpec, KeySpec, ReaderVersion, parse_type
from repairtool.liveness import from_names, from_registry
from repairtool.repair import apply_plan, build_plan, read_inputs
from repairtool.seed import insert_flight, insert_log
from repairtool.stairway.audit import Actor
from repairtool.stairway.db import run_in_transaction
from repairtool.stairway.queries import get_flight

CLS = "a.b.GeneratedFlight"
LIVE, DEAD = "pod-live", "pod-dead"
CATALOG = Catalog(
    (
        FlightSpec(
            CLS,
            input=(
                KeySpec("names", parse_type({"type": "list", "of": "string"})),
                KeySpec("label", parse_type("string")),
                KeySpec("id", parse_type("uuid")),
            ),
            working=(KeySpec("ids", parse_type({"type": "list", "of": "string"})),),
        ),
    )
)
WHO = Actor(reason="test", name="oncall@example")
UUID_TEXT = '"2e74e380-cccd-48ad-a0ac-e006b3650dbe"'
RECORD = {"ref": '{"name":"r","id":null}', "label": '"x"'}


def add_flight(
    engine: Engine,
    flight_id: str,
    *,
    status: str = "RUNNING",
    owner: str | None = DEAD,
    inputs: dict[str, str] | None = None,
    working: dict[str, str] | None = None,
    idle: str = "1h",
) -> None:
    doc: dict[str, Any] = {
        "flight_id": flight_id,
        "submitted": f"AGO:{idle}",
        "class_name": CLS,
        "status": status,
        "owner": owner,
    }

    def body(conn: Any) -> None:
        insert_flight(conn, doc)
        for key, value in (inputs or {}).items():
            conn.execute(
                text("INSERT INTO flightinput (flightid, key, value) VALUES (:f, :k, :v)"),
                {"f": flight_id, "k": key, "v": value},
            )
        if working is not None:
            entry = {"at": f"AGO:{idle}", "step": 0, "working": working}
            insert_log(conn, flight_id, entry, with_ids=True, legacy=False)

    run_in_transaction(engine, body, what="test")


@pytest.fixture
def db(make_db: Any) -> Engine:
    """A database a >=0.0.61 engine made: working maps are flightworking rows only."""
    engine: Engine = make_db("1.1.14")
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO stairwayinstance (stairway_name, stairway_id) VALUES (:n, :n)"),
            {"n": LIVE},
        )
    return engine


def test_a_working_value_that_fails_at_get_does_not_stop_a_resume(db: Engine) -> None:
    # List.of in the working map: a >=0.0.61 reader fails when the step asks for it, so that
    # step fails and the flight undoes -- resuming is safe (earlier: proposed fail)
    add_flight(db, "f-working", inputs={"label": '"x"'}, working={"ids": '["a","b"]'})
    options = Options(catalog=CATALOG, reader=ReaderVersion.TYPED)
    [dead] = detect(db, from_names([LIVE]), options).findings
    assert dead.kind is Kind.DEAD_OWNER and dead.proposed_action is Action.RESUME
    assert "undoes" in dead.evidence["decode"]
    [failure] = dead.evidence["decode_failures"]
    assert (failure["source"], failure["key"], failure["when"]) == ("working", "ids", "get")
    plan = build_plan(detect(db, from_names([LIVE]), options))
    assert [c.action for c in plan.changes] == [Action.RESUME] and not plan.refused
    [undecodable] = scan(db, CATALOG, ReaderVersion.TYPED).findings
    assert undecodable.proposed_action is Action.NONE


def test_a_value_the_engine_cannot_rebuild_proposes_fail_but_only_action_fail_applies_it(
    db: Engine,
) -> None:
    # a record (a final class: no type id) among the inputs: a <=0.0.60 reader fails while it
    # rebuilds the input map, inside resume's transaction -- every resume fails, the flight can
    # neither finish nor undo, and a key the catalog does not know cannot be re-encoded
    add_flight(db, "f-rebuild", status="READY", owner=None, inputs=RECORD)
    [finding] = scan(db, CATALOG, ReaderVersion.LEGACY).findings
    assert finding.proposed_action is Action.FAIL
    assert "cannot rebuild" in finding.evidence["decode"]
    assert "input ref" in finding.evidence["decode"]
    [failure] = finding.evidence["decode_failures"]
    assert (failure["source"], failure["when"], failure["reencodable"]) == (
        "input",
        "rebuild",
        False,
    )


def _decode_plan(db: Engine, action: Action | None) -> Any:
    """The plan `repairtool decode` builds (as its CLI does)."""
    result = scan(db, CATALOG, ReaderVersion.LEGACY)
    return build_plan(
        Detection(result.findings, from_registry(), None, result.flights, ()),
        action=action,
        catalog=CATALOG,
        reader=ReaderVersion.LEGACY,
        inputs=read_inputs(db, [f.flight_id for f in result.findings if f.flight_id]),
    )


def test_fail_is_refused_in_the_plan_unless_asked_for(db: Engine) -> None:
    add_flight(db, "f-rebuild", status="READY", owner=None, inputs=RECORD)
    plan = _decode_plan(db, None)
    [refusal] = plan.refused
    assert refusal.action is Action.FAIL and not plan.changes
    assert refusal.why.startswith("force fatal is irreversible and is applied only with --action")
    assert "cannot rebuild" in refusal.why
    apply_plan(db, plan, actor=WHO)
    assert get_flight(db, "f-rebuild").flight.status == "READY"  # nothing force-fataled
    plan = _decode_plan(db, Action.FAIL)
    assert [c.action for c in plan.changes] == [Action.FAIL]
    apply_plan(db, plan, actor=WHO)
    assert get_flight(db, "f-rebuild").flight.status == "FATAL"


def test_an_input_that_fails_at_get_is_failed_only_on_make_flight_evidence(db: Engine) -> None:
    # a number where the code asks for a String: <=0.0.60 reads an Integer, get fails, and
    # no re-encoding turns a number into a string
    add_flight(db, "f-dead", owner=DEAD, inputs={"label": "3"})
    add_flight(db, "f-stalled", owner=LIVE, inputs={"label": "3"})
    options = Options(catalog=CATALOG, reader=ReaderVersion.LEGACY)
    found = {f.flight_id: f for f in detect(db, from_names([LIVE]), options).findings}
    dead, stalled = found["f-dead"], found["f-stalled"]
    # a dead owner's flight: its constructor or a step reads it -- repairtool cannot tell
    assert dead.proposed_action is Action.NONE
    assert "cannot tell which" in dead.evidence["decode"]
    # owner alive, taken and never launched: the constructor fails -- neither finish nor undo
    assert stalled.kind is Kind.STALLED and stalled.proposed_action is Action.FAIL
    assert "never launched" in stalled.evidence["decode"]
    plan = build_plan(detect(db, from_names([LIVE]), options))
    assert not plan.changes
    assert [r.finding.flight_id for r in plan.refused] == ["f-stalled"]


def test_reencodable_inputs_are_still_reencoded(db: Engine) -> None:
    add_flight(db, "f-enum", owner=DEAD, inputs={"id": UUID_TEXT})
    options = Options(catalog=CATALOG, reader=ReaderVersion.LEGACY)
    [finding] = detect(db, from_names([LIVE]), options).findings
    assert finding.proposed_action is Action.REENCODE
    assert "lets the engine rebuild and run" in finding.evidence["decode"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STAIRWAY_", "PG"))}
    env["STAIRWAY_OPS_STATE_DIR"] = "/nonexistent-state-dir"
    return subprocess.run(
        [sys.executable, "-m", "repairtool", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_decode_fix_without_action_fail_force_fatals_nothing(db: Engine, tmp_path: Path) -> None:
    from repairtool.flightmap import dump_catalog

    add_flight(db, "f-rebuild", status="READY", owner=None, inputs=RECORD)
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(dump_catalog(CATALOG))
    url = db.url.render_as_string(hide_password=False)
    common = ("decode", "--db", url, "--catalog", str(catalog), "--reader", "0.0.60")
    dry = run_cli(*common)
    assert "force fatal is irreversible" in dry.stdout, dry.stdout + dry.stderr
    fixed = run_cli(*common, "--fix", "--reason", "test", "--yes")
    assert fixed.returncode == 1, fixed.stdout + fixed.stderr
    assert get_flight(db, "f-rebuild").flight.status == "READY"
    failed = run_cli(*common, "--fix", "--action", "fail", "--reason", "test", "--yes")
    assert failed.returncode == 0, failed.stdout + failed.stderr
    assert get_flight(db, "f-rebuild").flight.status == "FATAL"
