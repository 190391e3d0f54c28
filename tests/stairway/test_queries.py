"""The read API returns typed flights, instances and whole flights, in read-only transactions."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, text

from repairtool.errors import UnknownFlight
from repairtool.seed import seed_2021
from repairtool.stairway.db import reading
from repairtool.stairway.errors import PermissionDenied
from repairtool.stairway.model import Direction, FlightStatus
from repairtool.stairway.queries import (
    OWNED,
    UNOWNED,
    FlightFilter,
    Order,
    count_flights,
    get_flight,
    list_flights,
    list_instances,
)

ATTEMPT_1 = "7348bc13-2255-4a50-85b5-fcb5534674cb"
ATTEMPT_2 = "882af56c-5fa5-4838-a08d-3d2bb5df0dfe"
ATTEMPT_4 = "7028cce9-5017-48dc-9c17-ce8b23517459"
WSM_CREATE = "bio.terra.workspace.service.workspace.flight.WorkspaceCreateFlight"


@pytest.fixture
def db_2021(stairway_db: Engine) -> Engine:
    seed_2021(stairway_db)
    return stairway_db


def test_counts_and_filters(db_2021: Engine) -> None:
    assert count_flights(db_2021) == 3
    running = FlightFilter(statuses=(FlightStatus.RUNNING,))
    assert count_flights(db_2021, running) == 2
    assert count_flights(db_2021, FlightFilter(owner=UNOWNED)) == 1
    assert count_flights(db_2021, FlightFilter(owner=OWNED)) == 2
    assert count_flights(db_2021, FlightFilter(class_name="*WorkspaceCreateFlight")) == 3
    assert count_flights(db_2021, FlightFilter(class_name="bio.Other")) == 0
    owned = FlightFilter(owner="workspacemanager-deployment-68f9b944d5-9kgzp")
    assert [f.flight_id for f in list_flights(db_2021, owned)] == [ATTEMPT_1]


def test_listing_pages_in_submit_order(db_2021: Engine) -> None:
    newest_first = [f.flight_id for f in list_flights(db_2021)]
    assert newest_first == [ATTEMPT_4, ATTEMPT_2, ATTEMPT_1]
    oldest_first = list_flights(db_2021, order=Order.SUBMITTED_ASC, limit=2, offset=1)
    assert [f.flight_id for f in oldest_first] == [ATTEMPT_2, ATTEMPT_4]


def test_time_window_filters(db_2021: Engine) -> None:
    after = dt.datetime(2021, 4, 5, 14, 20, tzinfo=dt.UTC)
    before = dt.datetime(2021, 4, 5, 14, 40)
    window = FlightFilter(submitted_after=after, submitted_before=before)
    assert [f.flight_id for f in list_flights(db_2021, window)] == [ATTEMPT_2]


def test_one_flight_in_full(db_2021: Engine) -> None:
    detail = get_flight(db_2021, ATTEMPT_2)
    f = detail.flight
    assert (f.status, f.owner, f.class_name) == (FlightStatus.SUCCESS, None, WSM_CREATE)
    assert detail.inputs["workspaceStage"] == '"MC_WORKSPACE"'
    assert [(e.step_index, e.direction) for e in detail.log] == [
        (0, Direction.DO),
        (1, Direction.DO),
    ]
    latest = detail.latest_log
    assert latest is not None and latest.working["response"] == (
        '"9b1c5d3e-0d2c-4e61-8f3a-1c9d7b2e4f60"'
    )
    assert latest.working_parameters is not None  # 0.0.60 also wrote the legacy JSON
    assert detail.persisted is None  # no flightpersisted table before 0.0.70


def test_flightpersisted_is_read_on_newer_generations(make_db) -> None:
    engine = make_db("1.1.14")
    seed_2021(engine)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO flightpersisted (flightid, key, value) VALUES (:f, :k, :v)"),
            {"f": ATTEMPT_1, "k": "StairwayProgressMeters", "v": '{"STAIRWAY_STEP_PROGRESS":{}}'},
        )
    detail = get_flight(engine, ATTEMPT_1)
    assert detail.persisted == {"StairwayProgressMeters": '{"STAIRWAY_STEP_PROGRESS":{}}'}
    assert detail.latest_log is not None and detail.latest_log.working_parameters is None


def test_pre_flightworking_flights_are_read(make_db) -> None:
    engine = make_db("0.0.43")
    seed_2021(engine)
    detail = get_flight(engine, ATTEMPT_2)
    assert [e.log_id for e in detail.log] == [None, None]
    assert detail.log[-1].working_parameters is not None


def test_unknown_flight(db_2021: Engine) -> None:
    with pytest.raises(UnknownFlight, match="Unknown flight id nope"):
        get_flight(db_2021, "nope")


def test_instances(db_2021: Engine) -> None:
    names = [i.stairway_name for i in list_instances(db_2021)]
    assert names == sorted(names) and len(names) == 3
    assert all(i.stairway_name == i.stairway_id for i in list_instances(db_2021))


def test_reads_are_read_only(db_2021: Engine) -> None:
    with (
        pytest.raises(PermissionDenied, match="read-only"),
        reading(db_2021) as conn,
    ):
        conn.execute(text("UPDATE flight SET status = 'FATAL'"))
