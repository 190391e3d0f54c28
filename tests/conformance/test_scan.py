"""The full path `repairtool decode` takes, refereed by real Jackson.

Generated flights are written by the oracle as each engine generation stores them — 0.0.43
(flightinput rows + whole-map ``working_parameters``), 0.0.60 (the same + flightworking rows),
1.1.14 (flightinput + flightworking rows, ``working_parameters`` NULL) — into real Postgres
databases created by our schema code at that generation. ``decodescan.scan`` reads them back
(inputs, and the working map each reader generation reads) and its findings must be exactly the
entries the oracle's reader fails on, failing at the same moment (rebuilding the map, or at
``get``).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, text

from repairtool.decodescan import scan
from repairtool.flightmap import Catalog, FlightSpec, KeySpec, ReaderVersion
from repairtool.localpg import PgServer, create_database, drop_database
from repairtool.stairway.schema import create_schema
from tests.conformance.compare import Disagreements, type_label, value_label
from tests.conformance.conftest import CASES, DERANDOMIZE, TALLY, Tally
from tests.conformance.javavalues import DECLARED, Case, cases, describe, oracle_type
from tests.conformance.oracle_client import Oracle

#: engine generation → the oracle mapper it writes with
WRITERS = {"0.0.43": "legacy", "0.0.60": "legacy", "1.1.14": "modern"}
READERS = {"legacy": ReaderVersion.LEGACY, "typed": ReaderVersion.TYPED}
FLIGHTS_PER_BATCH = 10
_names = itertools.count(1)


@dataclass(frozen=True)
class GeneratedFlight:
    writer: str
    inputs: tuple[Case, ...]
    working: tuple[Case, ...]
    logged: bool  # has a flightlog row (a step finished)


def _keyed(prefix: str, items: list[Case]) -> tuple[Case, ...]:
    return tuple(Case(f"{prefix}{i}", c.value, c.asked) for i, c in enumerate(items))


flights = st.builds(
    GeneratedFlight,
    st.sampled_from(sorted(WRITERS)),
    st.lists(cases(), max_size=4).map(lambda xs: _keyed("in", xs)),
    st.lists(cases(), max_size=4).map(lambda xs: _keyed("w", xs)),
    st.sampled_from([True, True, True, False]),
)


@pytest.fixture(scope="module")
def databases(pg_server: PgServer) -> Iterator[dict[str, Engine]]:
    """One Stairway database per writer generation, made by our schema code."""
    made: dict[str, Engine] = {}
    names = {}
    for version in WRITERS:
        name = f"conformance_{version.replace('.', '_')}_{next(_names)}"
        engine = create_engine(create_database(pg_server, name), pool_size=2)
        with engine.begin() as conn:
            create_schema(conn, version)
        made[version], names[version] = engine, name
    yield made
    for version, engine in made.items():
        engine.dispose()
        drop_database(pg_server, names[version])


@dataclass
class Stored:
    flight_id: str
    class_name: str
    flight: GeneratedFlight
    inputs: dict[str, str]
    rows: dict[str, str]
    working_parameters: str | None


def store(oracle: Oracle, engines: dict[str, Engine], batch: list[GeneratedFlight]) -> list[Stored]:
    """Write each flight's values with its generation's mapper and insert its rows."""
    requests: list[dict[str, Any]] = []
    for f in batch:
        gen = WRITERS[f.writer]
        requests += [{"op": "write", "gen": gen, "value": describe(c.value)} for c in f.inputs]
        requests += [{"op": "write", "gen": gen, "value": describe(c.value)} for c in f.working]
        entries = [[c.key, describe(c.value)] for c in f.working]
        requests.append({"op": "write_map", "gen": gen, "entries": entries})
    answers = iter(r["text"] for r in oracle.batch(requests))
    stored = []
    for f in batch:
        inputs = {c.key: next(answers) for c in f.inputs}
        per_key = {c.key: next(answers) for c in f.working}
        whole = next(answers)
        legacy_json = f.writer in ("0.0.43", "0.0.60")
        stored.append(
            Stored(
                str(uuid.uuid4()),
                f"conformance.flight.Generated{next(_names)}Flight",
                f,
                inputs,
                per_key if f.writer != "0.0.43" else {},
                whole if legacy_json else None,
            )
        )
    for version, engine in engines.items():
        mine = [s for s in stored if s.flight.writer == version]
        if mine:
            _insert(engine, version, mine)
    return stored


def _insert(engine: Engine, version: str, flights: list[Stored]) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO flight (flightid, submit_time, class_name, status, stairway_id,"
                " serialized_exception, debug_info) VALUES (:id, CURRENT_TIMESTAMP, :cls,"
                " 'RUNNING', 'conformance-pod', '', '{}')"
            ),
            [{"id": s.flight_id, "cls": s.class_name} for s in flights],
        )
        inputs = [{"id": s.flight_id, "k": k, "v": v} for s in flights for k, v in s.inputs.items()]
        if inputs:
            conn.execute(
                text("INSERT INTO flightinput (flightid, key, value) VALUES (:id, :k, :v)"),
                inputs,
            )
        logged = [s for s in flights if s.flight.logged]
        if not logged:
            return
        has_id = version != "0.0.43"
        log_ids = {s.flight_id: str(uuid.uuid4()) for s in logged}
        conn.execute(
            text(
                "INSERT INTO flightlog (flightid, log_time, working_parameters, step_index,"
                " succeeded, status, serialized_exception, rerun, direction"
                + (", id" if has_id else "")
                + ") VALUES (:id, CURRENT_TIMESTAMP, :wp, 0, true, 'RUNNING', '', false, 'DO'"
                + (", CAST(:log AS uuid)" if has_id else "")
                + ")"
            ),
            [
                {"id": s.flight_id, "wp": s.working_parameters, "log": log_ids[s.flight_id]}
                for s in logged
            ],
        )
        rows = [
            {"log": log_ids[s.flight_id], "k": k, "v": v} for s in logged for k, v in s.rows.items()
        ]
        if rows:
            conn.execute(
                text(
                    "INSERT INTO flightworking (flightlog_id, key, value)"
                    " VALUES (CAST(:log AS uuid), :k, :v)"
                ),
                rows,
            )


def catalog_of(stored: list[Stored]) -> Catalog:
    return Catalog(
        tuple(
            FlightSpec(
                s.class_name,
                input=tuple(KeySpec(c.key, c.asked, optional=True) for c in s.flight.inputs),
                working=tuple(KeySpec(c.key, c.asked, optional=True) for c in s.flight.working),
            )
            for s in stored
        ),
        declared=DECLARED,
    )


def truth_failures(answer: dict[str, Any]) -> dict[str, str]:
    """Key → when the oracle's reader fails on it (``rebuild`` or ``get``)."""
    out = dict.fromkeys(answer["rebuild_failures"], "rebuild")
    for key, verdict in answer["gets"].items():
        if not verdict["ok"]:
            out[key] = "rebuild" if verdict["stage"] == "rebuild" else "get"
    return out


def compare_scan(
    oracle: Oracle, engines: dict[str, Engine], batch: list[GeneratedFlight], found: Disagreements
) -> None:
    stored = store(oracle, engines, batch)
    catalog = catalog_of(stored)
    requests = []
    for s in stored:
        for reader in READERS:
            requests.append(
                {
                    "reader": reader,
                    "source": "input",
                    "rows": s.inputs,
                    "gets": {c.key: oracle_type(c.asked) for c in s.flight.inputs},
                }
            )
            requests.append(
                {
                    "reader": reader,
                    "source": "working",
                    "rows": s.rows,
                    "json": s.working_parameters,
                    "gets": {c.key: oracle_type(c.asked) for c in s.flight.working},
                }
            )
    answers = iter(oracle.read_maps(requests))
    truth: dict[tuple[str, str, str], dict[str, str]] = {}
    for s in stored:
        for reader in READERS:
            truth[(s.flight_id, reader, "input")] = truth_failures(next(answers))
            working = truth_failures(next(answers))
            truth[(s.flight_id, reader, "working")] = working if s.flight.logged else {}
    ours: dict[tuple[str, str, str], dict[str, str]] = {k: {} for k in truth}
    for reader, version in READERS.items():
        for gen, engine in engines.items():
            ids = tuple(s.flight_id for s in stored if s.flight.writer == gen)
            if not ids:
                continue
            for finding in scan(engine, catalog, version, flight_ids=ids).findings:
                for failure in finding.evidence["decode_failures"]:
                    assert finding.flight_id is not None
                    where = (finding.flight_id, reader, failure["source"])
                    ours[where][failure["key"]] = failure["when"]
    for s in stored:
        for reader in READERS:
            for source, entries in (("input", s.flight.inputs), ("working", s.flight.working)):
                expected = truth[(s.flight_id, reader, source)]
                got = ours[(s.flight_id, reader, source)]
                for key in sorted({c.key for c in entries} | set(expected) | set(got)):
                    found.cases += 1
                    if expected.get(key) == got.get(key):
                        continue
                    case = next((c for c in entries if c.key == key), None)
                    what = (
                        f"asked {type_label(case.asked)}, value {value_label(case.value)}"
                        if case is not None
                        else key
                    )
                    stored_text = (s.inputs if source == "input" else s.rows).get(key, "")
                    found.add(
                        f"writer {s.flight.writer}, {reader} reader, {source}: {what}: "
                        f"repairtool {got.get(key, 'reads it')}, Jackson "
                        f"{expected.get(key, 'reads it')}",
                        f"{s.flight_id} {stored_text[:160]!r}"
                        f" wp={str(s.working_parameters)[:160]!r}",
                    )


_STATE: dict[str, Any] = {}


# A batch holds a varying number of values (hypothesis decides how many, and its choices move
# between versions), so the run asks for more batches than CASES needs on average and the
# batches after CASES is reached are generated but not written: the count is met, not hoped for.
@settings(
    max_examples=max(1, CASES // (FLIGHTS_PER_BATCH * 3)),
    deadline=None,
    derandomize=DERANDOMIZE,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(flights, min_size=FLIGHTS_PER_BATCH, max_size=FLIGHTS_PER_BATCH))
def _scanned_flights(batch: list[GeneratedFlight]) -> None:
    if _STATE["cases"] >= CASES:
        return
    found = Disagreements()
    compare_scan(_STATE["oracle"], _STATE["engines"], batch, found)
    _STATE["cases"] += found.cases
    TALLY.disagreements["decode scan (Postgres, both readers)"] = max(
        TALLY.disagreements["decode scan (Postgres, both readers)"], sum(found.counts.values())
    )
    assert not found, found.report()


def test_decode_scan_matches_jackson_for_every_writer_and_reader(
    oracle: Oracle, databases: dict[str, Engine], tally: Tally
) -> None:
    _STATE.update(oracle=oracle, engines=databases, cases=0)
    _scanned_flights()
    tally.cases["decode scan (Postgres, both readers)"] += _STATE["cases"]
    assert _STATE["cases"] >= CASES
