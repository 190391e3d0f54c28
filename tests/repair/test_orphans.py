"""The two 2021 situations, rebuilt on a real Postgres: detected with the right kinds, repaired
both ways, idempotent, compare-and-set, audited."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from sqlalchemy import Engine, text

from repairtool.detect import Action, Kind, Options, detect
from repairtool.flightmap import ReaderVersion, load_builtin_catalog
from repairtool.liveness import from_names, from_registry
from repairtool.repair import apply_plan, build_plan, read_inputs
from repairtool.seed import load_document, load_flights, seed_2021
from repairtool.stairway.audit import Actor, list_audit
from repairtool.stairway.queries import get_flight, list_instances
from tests.conftest import FIXTURES, pull_messages

ATTEMPT_1 = "7348bc13-2255-4a50-85b5-fcb5534674cb"  # RUNNING, live owner, "MC_WORKSPACE" input
ATTEMPT_4 = "7028cce9-5017-48dc-9c17-ce8b23517459"  # RUNNING, owner pod deleted
LIVE = [
    "workspacemanager-deployment-68f9b944d5-9kgzp",
    "workspacemanager-deployment-68f9b944d5-bj2qd",
]
DEAD = "workspacemanager-deployment-68f9b944d5-5gwdm"
CATALOG = load_builtin_catalog("workspace-manager")
WHO = Actor(reason="repair the 2021 orphans", name="oncall@example")


def options(reader: ReaderVersion = ReaderVersion.LEGACY, **kw: Any) -> Options:
    return Options(catalog=CATALOG, reader=reader, **kw)


@pytest.fixture
def db(stairway_db: Engine) -> Engine:
    seed_2021(stairway_db)
    return stairway_db


def by_kind(detection: Any) -> dict[Kind, list[Any]]:
    out: dict[Kind, list[Any]] = {}
    for f in detection.findings:
        out.setdefault(f.kind, []).append(f)
    return out


def status(engine: Engine, flight_id: str) -> tuple[str, str | None]:
    f = get_flight(engine, flight_id).flight
    return str(f.status), f.owner


def test_both_2021_orphans_are_found_with_their_evidence(db: Engine) -> None:
    found = by_kind(detect(db, from_names(LIVE), options()))
    [dead] = found[Kind.DEAD_OWNER]
    assert (dead.flight_id, dead.owner) == (ATTEMPT_4, DEAD)
    assert dead.evidence["owner_registered"] is True
    # the 2021 reader would hit the same enum bug when it rebuilds this flight: re-encode first
    assert dead.proposed_action is Action.REENCODE
    [stalled] = found[Kind.STALLED]
    assert stalled.flight_id == ATTEMPT_1
    assert "make-flight failure" in stalled.evidence["pattern"]
    failures = {f["key"]: f for f in stalled.evidence["decode_failures"]}
    assert set(failures) == {"workspaceStage", "workspaceId"}
    assert failures["workspaceStage"]["engine_exception"] == (
        "java.lang.ClassCastException: Found value 'MC_WORKSPACE' is not an instance of type "
        "bio.terra.workspace.service.workspace.model.WorkspaceStage"
    )
    assert stalled.proposed_action is Action.REENCODE
    [stale] = found[Kind.STALE_INSTANCE]
    assert (stale.instance, stale.evidence["running_flights"]) == (DEAD, [ATTEMPT_4])


def test_with_the_fixed_reader_the_live_owned_flight_is_only_reported(db: Engine) -> None:
    found = by_kind(detect(db, from_names(LIVE), options(ReaderVersion.TYPED)))
    assert found[Kind.DEAD_OWNER][0].proposed_action is Action.RESUME
    [stalled] = found[Kind.STALLED]
    assert "decode_failures" not in stalled.evidence
    assert stalled.proposed_action is Action.NONE
    plan = build_plan(detect(db, from_names(LIVE), options(ReaderVersion.TYPED)))
    assert stalled.flight_id in [f.flight_id for f in plan.report_only]


def test_without_pod_evidence_nothing_is_called_dead(db: Engine) -> None:
    detection = detect(db, from_registry(), options())
    assert {f.kind for f in detection.findings} == {Kind.STALLED}
    assert detection.liveness.confidence == "low"


def test_repair_by_failing_both(db: Engine) -> None:
    detection = detect(db, from_names(LIVE), options())
    plan = build_plan(detection, action=Action.FAIL)
    assert {(c.target, c.steps) for c in plan.changes} == {
        (ATTEMPT_4, ("force_fatal",)),
        (ATTEMPT_1, ("force_fatal",)),
        (f"instance {DEAD}", ("recover_instance",)),
    }
    outcome = apply_plan(db, plan, actor=WHO)
    assert len(outcome.applied) == 3 and not outcome.skipped
    assert status(db, ATTEMPT_1) == ("FATAL", None)
    assert status(db, ATTEMPT_4) == ("FATAL", None)
    assert DEAD not in {i.stairway_name for i in list_instances(db)}
    actions = sorted(r.action for r in list_audit(db))
    assert actions == ["delete_instance", "force_fatal", "force_fatal"]
    # re-running the same fix is a no-op
    assert detect(db, from_names(LIVE), options()).findings == ()


def test_repair_by_resuming_reencodes_and_sends_ready_messages(db: Engine, work_queue: Any) -> None:
    detection = detect(db, from_names(LIVE), options())
    failing = [f.flight_id for f in detection.findings if f.evidence.get("decode_failures")]
    plan = build_plan(
        detection,
        queue=work_queue,
        catalog=CATALOG,
        reader=ReaderVersion.LEGACY,
        inputs=read_inputs(db, failing),
    )
    steps = {c.target: c.steps for c in plan.changes}
    assert steps[ATTEMPT_4] == ("rewrite_input", "disown", "enqueue")
    assert steps[ATTEMPT_1] == ("rewrite_input", "disown", "enqueue")
    outcome = apply_plan(db, plan, actor=WHO, queue=work_queue)
    assert not outcome.skipped
    assert status(db, ATTEMPT_4) == ("QUEUED", None)
    assert status(db, ATTEMPT_1) == ("QUEUED", None)
    inputs = get_flight(db, ATTEMPT_1).inputs
    assert inputs["workspaceStage"] == (
        '["bio.terra.workspace.service.workspace.model.WorkspaceStage","MC_WORKSPACE"]'
    )
    assert inputs["workspaceId"] == '["java.util.UUID","5c2f2f6b-7b64-4c79-9d8a-f2a8f6a2d8a4"]'
    messages = sorted(pull_messages(work_queue))
    assert messages == sorted(
        json.dumps(
            {"type": {"version": "1", "messageEnum": "QUEUE_MESSAGE_READY"}, "flightId": fid},
            separators=(",", ":"),
        )
        for fid in (ATTEMPT_1, ATTEMPT_4)
    )
    # the re-encoded inputs now decode for the legacy reader: nothing is left to find
    assert detect(db, from_names(LIVE), options()).findings == ()


def test_resume_is_refused_for_inputs_the_reader_cannot_decode(db: Engine) -> None:
    plan = build_plan(detect(db, from_names(LIVE), options()), action=Action.RESUME)
    assert {r.finding.flight_id for r in plan.refused} == {ATTEMPT_1, ATTEMPT_4}
    assert all("would not let the engine finish it" in r.why for r in plan.refused)
    assert all("input workspaceStage" in r.why for r in plan.refused)  # names the map
    forced = build_plan(detect(db, from_names(LIVE), options()), action=Action.RESUME, force=True)
    assert ATTEMPT_1 in [c.target for c in forced.changes]


def test_a_flight_the_engine_moved_on_after_planning_is_skipped(db: Engine) -> None:
    plan = build_plan(detect(db, from_names(LIVE), options()), action=Action.FAIL)
    with db.begin() as conn:  # another pod's recovery takes the dead owner's flight first
        conn.execute(
            text("UPDATE flight SET status = 'RUNNING', stairway_id = :pod WHERE flightid = :id"),
            {"pod": LIVE[1], "id": ATTEMPT_4},
        )
    outcome = apply_plan(db, plan, actor=WHO)
    [skipped] = outcome.skipped
    assert skipped.change.target == ATTEMPT_4 and "moved on" in skipped.why
    assert status(db, ATTEMPT_4) == ("RUNNING", LIVE[1])
    assert ATTEMPT_4 not in {r.flight_id for r in list_audit(db)}


def test_limit_defers_the_rest_and_events_report_progress(db: Engine) -> None:
    events: list[str] = []
    plan = build_plan(detect(db, from_names(LIVE), options()), action=Action.FAIL, limit=1)
    assert len(plan.changes) == 1 and len(plan.deferred) == 2
    apply_plan(db, plan, actor=WHO, on_event=lambda e: events.append(e.kind))
    assert events == ["apply.start", "change.start", "change.done", "apply.done"]


def test_unqueued_ready_and_expired_queued_flights(stairway_db: Engine, work_queue: Any) -> None:
    load_flights(stairway_db, json.loads((FIXTURES / "unqueued-flights.json").read_text()))
    detection = detect(stairway_db, from_names(LIVE), options(ReaderVersion.TYPED))
    found = {f.flight_id: f for f in detection.findings}
    assert set(found) == {
        "0b7d1c2e-0000-4000-8000-0000000ready",
        "0b7d1c2e-0000-4000-8000-000000queued",
    }
    assert {f.kind for f in found.values()} == {Kind.UNQUEUED}
    assert "message has expired" in found["0b7d1c2e-0000-4000-8000-000000queued"].evidence["why"]
    plan = build_plan(detection, queue=work_queue)
    assert {c.steps for c in plan.changes} == {("enqueue",)}
    apply_plan(stairway_db, plan, actor=WHO, queue=work_queue)
    assert len(pull_messages(work_queue)) == 2
    assert status(stairway_db, "0b7d1c2e-0000-4000-8000-0000000ready") == ("QUEUED", None)


def test_concurrent_repairs_apply_each_change_once(db: Engine) -> None:
    """Two operators run the same fix at once: every flight is changed once, audited once."""
    plans = [
        build_plan(detect(db, from_names(LIVE), options()), action=Action.FAIL) for _ in range(2)
    ]
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda p=p: results.append(apply_plan(db, p, actor=WHO)))
        for p in plans
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    applied = sum(len(r.applied) for r in results)
    assert applied == 3
    assert len(list_audit(db)) == 3
    _ = load_document  # the seed loader is the same one `repairtool local up --seed` uses
