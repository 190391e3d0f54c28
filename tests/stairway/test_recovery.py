"""The recovery API: compare-and-set, audited in the same transaction, retried like DbRetry."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Engine, text

from repairtool.seed import seed_2021
from repairtool.stairway.audit import Actor, list_audit
from repairtool.stairway.db import RetryPolicy
from repairtool.stairway.model import FlightState, FlightStatus, Outcome
from repairtool.stairway.queries import get_flight, list_instances
from repairtool.stairway.recovery import (
    Because,
    Evidence,
    disown,
    force_fatal,
    force_ready,
    recover_instance,
    rewrite_input,
)

ATTEMPT_1 = "7348bc13-2255-4a50-85b5-fcb5534674cb"  # RUNNING, owned by a live pod
ATTEMPT_4 = "7028cce9-5017-48dc-9c17-ce8b23517459"  # RUNNING, owned by a deleted pod
LIVE_POD = "workspacemanager-deployment-68f9b944d5-9kgzp"
DEAD_POD = "workspacemanager-deployment-68f9b944d5-5gwdm"
FAST = RetryPolicy(attempts=20, min_sleep=0.05, max_sleep=0.1)
WHO = Actor(reason="rehearsal", name="tester@example")
DEAD = Because(Evidence.OWNER_DEAD, "its pod was deleted")
FORCED = Because(Evidence.FORCED, "test")


@pytest.fixture
def db(stairway_db: Engine) -> Engine:
    seed_2021(stairway_db)
    return stairway_db


def state(engine: Engine, flight_id: str) -> tuple[str, str | None]:
    f = get_flight(engine, flight_id).flight
    return str(f.status), f.owner


def test_disown_moves_running_to_ready_and_audits_it(db: Engine) -> None:
    result = disown(db, ATTEMPT_4, expected_owner=DEAD_POD, because=DEAD, actor=WHO, policy=FAST)
    assert result.outcome is Outcome.CHANGED
    assert state(db, ATTEMPT_4) == ("READY", None)
    [record] = list_audit(db)
    assert (record.action, record.flight_id, record.actor, record.reason) == (
        "disown",
        ATTEMPT_4,
        "tester@example",
        "rehearsal",
    )
    assert record.before is not None and record.after is not None
    assert {k: record.before[k] for k in ("status", "stairway_id", "completed_time")} == {
        "status": "RUNNING",
        "stairway_id": DEAD_POD,
        "completed_time": None,
    }
    assert {k: record.after[k] for k in ("status", "stairway_id", "completed_time")} == {
        "status": "READY",
        "stairway_id": None,
        "completed_time": None,
    }
    # the row versions (xmin) before and after the change
    assert record.before["version"] != record.after["version"]
    assert record.evidence == {"evidence": "owner_dead", "detail": "its pod was deleted"}
    assert record.tool_version.startswith("stairway-ops ")


def test_running_the_same_fix_again_changes_nothing(db: Engine) -> None:
    disown(db, ATTEMPT_4, expected_owner=DEAD_POD, because=DEAD, actor=WHO, policy=FAST)
    again = disown(db, ATTEMPT_4, expected_owner=DEAD_POD, because=DEAD, actor=WHO, policy=FAST)
    assert again.outcome is Outcome.SKIPPED
    assert "found READY" in again.detail
    assert len(list_audit(db)) == 1


def test_a_flight_the_engine_moved_on_is_skipped_not_clobbered(db: Engine) -> None:
    # planning saw RUNNING/DEAD_POD; meanwhile another pod's recovery disowned and resumed it
    seen = FlightState(FlightStatus.RUNNING, DEAD_POD)
    with db.begin() as engine_conn:
        engine_conn.execute(
            text("UPDATE flight SET status = 'RUNNING', stairway_id = :me WHERE flightid = :id"),
            {"me": LIVE_POD, "id": ATTEMPT_4},
        )
    result = force_fatal(db, ATTEMPT_4, expected=seen, because=DEAD, actor=WHO, policy=FAST)
    assert result.outcome is Outcome.SKIPPED
    assert state(db, ATTEMPT_4) == ("RUNNING", LIVE_POD)
    assert list_audit(db) == []


def test_a_concurrent_engine_update_racing_the_mutation_wins(db: Engine) -> None:
    """The engine's resume commits while our transaction is open: serializable CAS skips."""
    started, release = threading.Event(), threading.Event()

    def engine_resume() -> None:
        with db.connect() as c:
            c.execution_options(isolation_level="SERIALIZABLE")
            with c.begin():
                c.execute(text("SELECT status FROM flight WHERE flightid = :id"), {"id": ATTEMPT_4})
                c.execute(
                    text(
                        "UPDATE flight SET status = 'READY', stairway_id = NULL"
                        " WHERE flightid = :id AND status = 'RUNNING'"
                    ),
                    {"id": ATTEMPT_4},
                )
                started.set()
                release.wait(5)

    t = threading.Thread(target=engine_resume)
    t.start()
    started.wait(5)
    threading.Timer(0.5, release.set).start()  # commit while our UPDATE waits on the row lock
    result = disown(db, ATTEMPT_4, expected_owner=DEAD_POD, because=DEAD, actor=WHO, policy=FAST)
    t.join()
    assert result.outcome is Outcome.SKIPPED
    assert state(db, ATTEMPT_4) == ("READY", None)
    assert list_audit(db) == []


def test_terminated_connection_mid_mutation_retries_and_applies_exactly_once(db: Engine) -> None:
    retries: list[str] = []
    policy = RetryPolicy(
        attempts=20,
        min_sleep=0.05,
        max_sleep=0.1,
        on_retry=lambda n, state_, err: retries.append(state_),
    )
    locked, done = threading.Event(), threading.Event()

    def hold_row_lock_then_kill_the_tool() -> None:
        with db.connect() as c, c.begin():
            c.execute(
                text("SELECT 1 FROM flight WHERE flightid = :id FOR UPDATE"), {"id": ATTEMPT_4}
            )
            locked.set()
            deadline = time.monotonic() + 10
            pid = None
            while pid is None and time.monotonic() < deadline:
                c.execute(text("SELECT pg_stat_clear_snapshot()"))  # stats are cached per txn
                pid = c.execute(
                    text(
                        "SELECT pid FROM pg_stat_activity WHERE application_name = 'repairtool'"
                        " AND wait_event_type = 'Lock'"
                    )
                ).scalar()
                time.sleep(0.05)
            assert pid is not None, "the tool never blocked on the row lock"
            c.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            time.sleep(0.3)
        done.set()  # rollback: the lock is released, the retried mutation can proceed

    from repairtool.stairway.db import make_engine, parse_url

    tool = make_engine(parse_url(db.url.render_as_string(hide_password=False), "test"))
    t = threading.Thread(target=hold_row_lock_then_kill_the_tool)
    t.start()
    locked.wait(5)
    result = disown(
        tool, ATTEMPT_4, expected_owner=DEAD_POD, because=DEAD, actor=WHO, policy=policy
    )
    t.join()
    assert done.is_set()
    assert retries and retries[0] == "08006"
    assert result.outcome is Outcome.CHANGED
    assert state(db, ATTEMPT_4) == ("READY", None)
    assert len(list_audit(db, flight_id=ATTEMPT_4)) == 1


def test_an_operation_whose_commit_acknowledgement_was_lost_is_not_applied_twice(
    db: Engine,
) -> None:
    first = disown(
        db, ATTEMPT_4, expected_owner=DEAD_POD, because=DEAD, actor=WHO, op_id=None, policy=FAST
    )
    replay = disown(
        db,
        ATTEMPT_4,
        expected_owner=DEAD_POD,
        because=DEAD,
        actor=WHO,
        op_id=first.op_id,
        policy=FAST,
    )
    assert replay.outcome is Outcome.CHANGED and replay.audit_id == first.audit_id
    assert "earlier attempt" in replay.detail
    assert len(list_audit(db)) == 1


def test_force_fatal_sets_completed_time_and_refuses_twice(db: Engine) -> None:
    seen = FlightState(FlightStatus.RUNNING, LIVE_POD)
    result = force_fatal(db, ATTEMPT_1, expected=seen, because=FORCED, actor=WHO, policy=FAST)
    assert result.outcome is Outcome.CHANGED
    f = get_flight(db, ATTEMPT_1).flight
    assert (f.status, f.owner) == (FlightStatus.FATAL, None) and f.completed_time is not None
    again = force_fatal(
        db, ATTEMPT_1, expected=FlightState(FlightStatus.FATAL, None), actor=WHO, policy=FAST
    )
    assert (again.outcome, again.detail) == (Outcome.SKIPPED, "Flight is already FATAL")


def test_force_ready_from_fatal(db: Engine) -> None:
    force_fatal(
        db,
        ATTEMPT_1,
        expected=FlightState(FlightStatus.RUNNING, LIVE_POD),
        because=FORCED,
        actor=WHO,
        policy=FAST,
    )
    result = force_ready(
        db, ATTEMPT_1, expected=FlightState(FlightStatus.FATAL, None), actor=WHO, policy=FAST
    )
    assert result.outcome is Outcome.CHANGED
    assert state(db, ATTEMPT_1) == ("READY", None)
    assert [r.action for r in list_audit(db)] == ["force_ready", "force_fatal"]


def test_unknown_flight_is_reported_not_raised(db: Engine) -> None:
    result = force_fatal(
        db,
        "no-such-flight",
        expected=FlightState(FlightStatus.RUNNING, None),
        actor=WHO,
        policy=FAST,
    )
    assert result.outcome is Outcome.NOT_FOUND


def test_recover_instance_is_the_engines_disown_recovery(db: Engine) -> None:
    rec = recover_instance(db, DEAD_POD, actor=WHO, policy=FAST)
    assert rec.outcome is Outcome.CHANGED
    assert rec.detail == f"Disowned 1 flights for stairway: {DEAD_POD}"
    assert [r.flight_id for r in rec.flights] == [ATTEMPT_4]
    assert state(db, ATTEMPT_4) == ("READY", None)
    assert DEAD_POD not in {i.stairway_name for i in list_instances(db)}
    assert state(db, ATTEMPT_1) == ("RUNNING", LIVE_POD)  # another owner's flight is untouched
    assert sorted(r.action for r in list_audit(db)) == ["delete_instance", "recover_instance"]
    again = recover_instance(db, DEAD_POD, actor=WHO, policy=FAST)
    assert again.outcome is Outcome.NOT_FOUND


def test_rewrite_input_is_compare_and_set_and_masks_secrets_in_the_audit(db: Engine) -> None:
    old = '"MC_WORKSPACE"'
    new = '["bio.terra.workspace.service.workspace.model.WorkspaceStage","MC_WORKSPACE"]'
    result = rewrite_input(
        db, ATTEMPT_1, "workspaceStage", old_value=old, new_value=new, actor=WHO, policy=FAST
    )
    assert result.outcome is Outcome.CHANGED
    assert get_flight(db, ATTEMPT_1).inputs["workspaceStage"] == new
    stale = rewrite_input(
        db, ATTEMPT_1, "workspaceStage", old_value=old, new_value=new, actor=WHO, policy=FAST
    )
    assert stale.outcome is Outcome.SKIPPED

    auth = get_flight(db, ATTEMPT_1).inputs["auth_user_info"]
    rewrite_input(
        db, ATTEMPT_1, "auth_user_info", old_value=auth, new_value=auth, actor=WHO, policy=FAST
    )
    with db.connect() as c:
        dumped = (
            c.execute(text("SELECT before::text || after::text FROM stairway_ops.audit"))
            .scalars()
            .all()
        )
    assert not any("PLACEHOLDER-NOT-A-REAL-TOKEN" in d for d in dumped)
    assert any("<<MASKED>>" in d for d in dumped)


def test_audit_table_lives_in_its_own_schema_and_engine_tables_are_untouched(db: Engine) -> None:
    with db.connect() as c:
        before = c.execute(
            text(
                "SELECT table_name, column_name FROM information_schema.columns"
                " WHERE table_schema = 'public' ORDER BY 1, 2"
            )
        ).all()
    disown(db, ATTEMPT_4, expected_owner=DEAD_POD, because=DEAD, actor=WHO, policy=FAST)
    with db.connect() as c:
        after = c.execute(
            text(
                "SELECT table_name, column_name FROM information_schema.columns"
                " WHERE table_schema = 'public' ORDER BY 1, 2"
            )
        ).all()
        schema = c.execute(text("SELECT to_regclass('stairway_ops.audit')::text")).scalar()
    assert before == after
    assert schema == "stairway_ops.audit"
