"""The sandbox engine in-process, on real Postgres: what each generation writes, and how the two
FlightMap readers rebuild a flight orphaned by a dead instance (no queue: resume runs inline)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from repairtool.stairway.version import detect_generation
from sandbox.engine import jackson
from sandbox.engine.dao import FlightDao
from sandbox.engine.exceptions import JavaException, MakeFlightException
from sandbox.engine.flight import FlightStatus
from sandbox.engine.flightmap import JsonFlightMap, ObjectFlightMap
from sandbox.engine.hooks import HookWrapper, StateTransitionLogHook, java_duration
from sandbox.engine.stairway import FlightFactory, Stairway
from sandbox.engine.versions import EngineFeatures
from sandbox.flights.workspace import (
    AUTHENTICATED_USER_REQUEST,
    FLIGHTS,
    WORKSPACE_CREATE_FLIGHT,
    WORKSPACE_STAGE,
    WSM_SCHEMA,
    FlightBeanBag,
    WorkspaceDao,
    create_inputs,
)

MakeDb = Callable[..., Engine]


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def captured() -> Iterator[_Capture]:
    handler = _Capture()
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old)


def _inputs(token: str = "tok-secret") -> dict[str, Any]:
    return create_inputs(
        workspace_id=uuid.uuid4(),
        stage="MC_WORKSPACE",
        user_email="u@test.firecloud.org",
        subject_id="1234",
        token=token,
        request_id=str(uuid.uuid4()),
    )


def _stairway(
    engine: Engine, wsm: Engine, name: str, version: str, reader: str | None = None
) -> Stairway:
    features = EngineFeatures.of(version, reader)
    return Stairway(
        name=name,
        cluster_name="ns-workspace-stairway",
        dao=FlightDao(engine, features),
        features=features,
        factory=FlightFactory(features, FLIGHTS),
        hooks=HookWrapper([StateTransitionLogHook()], "hooks"),
        app_context=FlightBeanBag(WorkspaceDao(wsm)),
        work_queue=None,
        max_parallel_flights=4,
    )


def _wsm(make_db: MakeDb) -> Engine:
    wsm = make_db(None)
    with wsm.begin() as conn:
        for stmt in WSM_SCHEMA:
            conn.execute(text(stmt))
    return wsm


def _wait_done(s: Stairway, flight_id: str, timeout: float = 20.0) -> FlightStatus:
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        status = s.get_flight_state(flight_id).status
        if not status.active:
            return status
        time.sleep(0.05)
    raise AssertionError(f"{flight_id} still RUNNING")


def test_jackson_forms_match_the_engine() -> None:
    stage = WORKSPACE_STAGE("MC_WORKSPACE")
    wid = uuid.UUID("2e74e380-cccd-48ad-a0ac-e006b3650dbe")
    assert jackson.write_value(stage) == '"MC_WORKSPACE"'
    assert jackson.write_value(wid) == '"2e74e380-cccd-48ad-a0ac-e006b3650dbe"'
    assert jackson.write_value(None) == "null"
    assert jackson.write_value([]) == '["java.util.Collections$EmptyList",[]]'
    assert jackson.write_value([wid]) == (
        '["java.util.ArrayList",[["java.util.UUID","2e74e380-cccd-48ad-a0ac-e006b3650dbe"]]]'
    )
    user = AUTHENTICATED_USER_REQUEST(email="e", subjectId=None, token="t", reqId="r")
    assert jackson.write_value(user) == (
        '["bio.terra.workspace.service.iam.AuthenticatedUserRequest",'
        '{"email":"e","subjectId":null,"token":"t","reqId":"r"}]'
    )
    # keys in java.util.HashMap's iteration order (by String.hashCode bucket), as real Jackson
    # writes them (tests/conformance/test_sandbox_writer.py checks this against the JVM)
    assert jackson.write_legacy_map({"s": stage, "n": 3, "l": 2**40}) == (
        '["java.util.HashMap",{"s":["bio.terra.workspace.service.workspace.model.WorkspaceStage",'
        '"MC_WORKSPACE"],"l":["java.lang.Long",1099511627776],"n":3}]'
    )
    # ≤0.0.60: a row read back as Object is a String → the typed get fails
    legacy = ObjectFlightMap.from_rows({"workspaceStage": '"MC_WORKSPACE"'})
    with pytest.raises(JavaException) as err:
        legacy.get("workspaceStage", WORKSPACE_STAGE)
    assert err.value.java_class == "java.lang.ClassCastException"
    assert str(err.value) == (
        "Found value 'MC_WORKSPACE' is not an instance of type "
        "bio.terra.workspace.service.workspace.model.WorkspaceStage"
    )
    # the wrapped form repairs a ≤0.0.60 reader and breaks a ≥0.0.61 one
    wrapped = '["bio.terra.workspace.service.workspace.model.WorkspaceStage","MC_WORKSPACE"]'
    assert ObjectFlightMap.from_rows({"k": wrapped}).get("k", WORKSPACE_STAGE) == stage
    with pytest.raises(JavaException, match="Failed to deserialize value"):
        JsonFlightMap({"k": wrapped}).get("k", WORKSPACE_STAGE)
    assert JsonFlightMap({"k": '"MC_WORKSPACE"'}).get("k", WORKSPACE_STAGE) == stage
    assert [java_duration(s) for s in (180, 5, 2.5, 90)] == ["PT3M", "PT5S", "PT2.5S", "PT1M30S"]


@pytest.mark.parametrize(
    ("version", "legacy_json", "has_id", "persisted"),
    [
        ("0.0.43", True, False, False),
        ("0.0.60", True, True, False),
        ("0.0.61", False, True, False),
        ("1.1.14", False, True, True),
    ],
)
def test_each_generation_writes_its_rows(
    make_db: MakeDb, version: str, legacy_json: bool, has_id: bool, persisted: bool
) -> None:
    engine, wsm = make_db(version), _wsm(make_db)
    s = _stairway(engine, wsm, "pod-a", version)
    s.recover_and_start([])
    flight_id = str(uuid.uuid4())
    s.submit(flight_id, WORKSPACE_CREATE_FLIGHT, s.new_input_map(_inputs()))
    assert _wait_done(s, flight_id) == FlightStatus.SUCCESS
    with engine.connect() as conn:
        flight = (
            conn.execute(text("SELECT * FROM flight WHERE flightid = :f"), {"f": flight_id})
            .mappings()
            .one()
        )
        assert flight["debug_info"] == "{}" and flight["serialized_exception"] == ""
        assert (flight["output_parameters"] is not None) == legacy_json
        rows = (
            conn.execute(
                text("SELECT * FROM flightlog WHERE flightid = :f ORDER BY log_time"),
                {"f": flight_id},
            )
            .mappings()
            .all()
        )
        assert [
            (r["step_index"], r["direction"], r["succeeded"], r["rerun"], r["status"]) for r in rows
        ] == [(0, "DO", True, False, "RUNNING"), (1, "DO", True, False, "RUNNING")]
        assert all((r["working_parameters"] is not None) == legacy_json for r in rows)
        if has_id:
            assert all(r["id"] is not None for r in rows)
            n = conn.execute(
                text(
                    "SELECT count(*) FROM flightworking w JOIN flightlog l ON"
                    " l.id = w.flightlog_id WHERE l.flightid = :f"
                ),
                {"f": flight_id},
            ).scalar()
            assert n == 2  # step 1's snapshot: response + status_code
        else:
            assert "id" not in rows[0]
        if persisted:
            assert conn.execute(text("SELECT count(*) FROM flightpersisted")).scalar() == 1
        inputs = dict(
            conn.execute(
                text("SELECT key, value FROM flightinput WHERE flightid = :f"), {"f": flight_id}
            ).all()
        )
        assert inputs["workspaceStage"] == '"MC_WORKSPACE"'
        assert inputs["request"] == "null"
        assert inputs["auth_user_info"].startswith(
            '["bio.terra.workspace.service.iam.AuthenticatedUserRequest",{"email":'
        )
        generation = detect_generation(conn)
        assert version in generation.version, (version, str(generation))
    assert s.dao.instance_list() == ["pod-a"]
    s.shutdown_now()


def _orphan(engine: Engine, version: str, dead: str) -> str:
    """A flight as a pod killed in its DelayHook leaves it: RUNNING, owned, step 0 logged."""
    s = _stairway(engine, engine, dead, version)
    s.dao.instance_find_or_create(dead)
    flight_id = str(uuid.uuid4())
    inputs = s.new_input_map(_inputs())
    s.dao.submit(
        flight_id, WORKSPACE_CREATE_FLIGHT, FlightStatus.RUNNING, dead, inputs.row_json(), "{}"
    )
    from sandbox.engine.flight import Direction, FlightContext
    from sandbox.engine.flightmap import new_map

    ctx = FlightContext(
        flight_id,
        WORKSPACE_CREATE_FLIGHT,
        inputs,
        new_map(s.f.typed_reader),
        dead,
        step_index=0,
        direction=Direction.DO,
    )
    s.dao.step(ctx)
    return flight_id


def test_legacy_reader_orphans_on_inline_resume(make_db: MakeDb, captured: _Capture) -> None:
    engine, wsm = make_db("0.0.60"), _wsm(make_db)
    flight_id = _orphan(engine, "0.0.60", "pod-dead")
    s = _stairway(engine, wsm, "pod-new", "0.0.60")
    with pytest.raises(MakeFlightException) as err:
        s.recover_and_start(["pod-dead", "pod-new"])  # no queue: recoverReady resumes inline
    trace = err.value.trace()
    assert trace.splitlines()[0] == (
        "bio.terra.stairway.exception.MakeFlightException: Failed to make a flight from class "
        "'class bio.terra.workspace.service.workspace.flight.WorkspaceCreateFlight'"
    )
    assert "Caused by: java.lang.reflect.InvocationTargetException: null" in trace
    assert (
        "Caused by: java.lang.ClassCastException: Found value 'MC_WORKSPACE' is not an "
        "instance of type bio.terra.workspace.service.workspace.model.WorkspaceStage"
    ) in trace
    state = s.get_flight_state(flight_id)
    assert state.status == FlightStatus.RUNNING and state.stairway_id == "pod-new"
    assert "Disowned 1 flights for stairway: pod-dead" in captured.lines
    assert "Found ready flights: 1" in captured.lines
    assert f"Stairway pod-new taking ownership of flight {flight_id}" in captured.lines
    assert s.dao.instance_list() == ["pod-new"]
    assert s.resume(flight_id) is False  # resume never accepts RUNNING
    s.shutdown_now()


def test_typed_reader_finishes_inline_resume(make_db: MakeDb, captured: _Capture) -> None:
    engine, wsm = make_db("0.0.60"), _wsm(make_db)
    flight_id = _orphan(engine, "0.0.60", "pod-dead")  # written by 0.0.60 …
    s = _stairway(engine, wsm, "pod-new", "0.0.61")  # … recovered by 0.0.61
    s.recover_and_start(["pod-dead", "pod-new"])
    assert _wait_done(s, flight_id) == FlightStatus.SUCCESS
    assert f"Stairway pod-new taking ownership of flight {flight_id}" in captured.lines
    rows = s.dao.flight_state(flight_id)
    assert rows.latest is not None and rows.latest.step_index == 1
    assert rows.latest.working_parameters is None  # the new writer
    with wsm.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM workspace")).scalar() == 1
    s.shutdown_now()


def test_duplicate_flight_id(make_db: MakeDb) -> None:
    engine, wsm = make_db("0.0.60"), _wsm(make_db)
    s = _stairway(engine, wsm, "pod-a", "0.0.60")
    s.recover_and_start([])
    flight_id = str(uuid.uuid4())
    s.submit(flight_id, WORKSPACE_CREATE_FLIGHT, s.new_input_map(_inputs()))
    with pytest.raises(JavaException, match=f"Duplicate flightID {flight_id}"):
        s.submit(flight_id, WORKSPACE_CREATE_FLIGHT, s.new_input_map(_inputs()))
    _wait_done(s, flight_id)
    s.shutdown_now()


def test_db_retry_rule(captured: _Capture) -> None:
    from sqlalchemy import exc

    from sandbox.engine.dao import DbRetry
    from sandbox.engine.exceptions import DatabaseOperationException

    class Orig(Exception):
        def __init__(self, state: str) -> None:
            super().__init__(f"state {state}")
            self.sqlstate = state

    def failing(states: list[str]) -> Callable[[], str]:
        def fn() -> str:
            if states:
                raise exc.OperationalError("UPDATE flight …", {}, Orig(states.pop(0)))
            return "done"

        return fn

    retry = DbRetry(logging.getLogger("bio.terra.stairway.DbRetry"), min_sleep=0, max_sleep=0)
    assert retry.run("flight.resume", failing(["40001", "08006", "53300"])) == "done"
    assert captured.lines == [
        "Caught SQL serialization error (40001) - retrying",
        "Caught SQL connection or resource error (08006) - retrying",
        "Caught SQL connection or resource error (53300) - retrying",
    ]
    with pytest.raises(DatabaseOperationException) as err:
        retry.run("flight.getFlightState", failing(["42P01"]))
    assert err.value.message == "Database operation failed: flight.getFlightState"
    short = DbRetry(logging.getLogger("x"), attempts=3, min_sleep=0, max_sleep=0)
    with pytest.raises(DatabaseOperationException) as err:
        short.run("flight.resume", failing(["40001"] * 5))
    assert err.value.message == "Retries exhausted. Request failed:flight.resume"


def test_job_wait_failure_is_a_500(make_db: MakeDb) -> None:
    from sandbox.engine.exceptions import DatabaseOperationException
    from sandbox.service import ApiError, JobService, ServiceSettings

    engine, wsm = make_db("0.0.60"), _wsm(make_db)
    s = _stairway(engine, wsm, "pod-a", "0.0.60")

    def broken(flight_id: str) -> Any:
        raise DatabaseOperationException(
            "Database operation failed: flight.getFlightState",
            cause=JavaException(
                "org.postgresql.util.PSQLException",
                "An I/O error occurred while sending to the backend.",
            ),
        )

    s.get_flight_state = broken  # type: ignore[method-assign]
    jobs = JobService(s, ServiceSettings(job_polling_interval_seconds=0.01))
    with pytest.raises(ApiError) as err:
        jobs.wait_for_job("f")
    assert err.value.status == 500
    assert err.value.causes[-1] == (
        "org.postgresql.util.PSQLException: An I/O error occurred while sending to the backend."
    )
    assert "Database operation failed: flight.getFlightState" in err.value.causes[1]
