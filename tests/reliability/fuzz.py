"""Fuzzing of database contents and shapes at the library level (hypothesis).

Each example builds a Stairway schema of a random engine generation in a schema of its own, then
breaks it at random — a renamed or dropped column or table, `timestamptz` columns, NULLable
columns, extra columns, a foreign `stairway_ops.audit` — and fills it with random rows: unknown
or NULL statuses, odd owners and flight ids, ±infinity / NULL / year-1 / BC / 294276 AD
timestamps, FlightMap values nested up to 1,500 deep, 200 kB values, malformed JSON, tokens. Then
it runs what a dry run runs (detection with each liveness source and a catalog, every plan
variant, the read API, generation detection) as the owner and as a SELECT-only role, and in half
the examples applies the plan. Invariants:
- `typed_errors_only`: nothing but a typed one-line error escapes (`RepairToolError`, or the
  FlightMap package's `FlightMapError`), and its message is one line;
- `dry_run_changes_nothing`: the example's tables and the audit trail are byte-identical before
  and after the dry-run operations (and after a refused `--fix` of the SELECT-only role).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import URL

from repairtool.detect import Action, Options, detect
from repairtool.errors import RepairToolError
from repairtool.flightmap import ReaderVersion, load_builtin_catalog
from repairtool.flightmap.errors import FlightMapError
from repairtool.liveness import from_names, from_registry
from repairtool.repair import apply_plan, build_plan, read_inputs
from repairtool.stairway.audit import Actor, list_audit
from repairtool.stairway.db import run_read
from repairtool.stairway.model import FlightStatus
from repairtool.stairway.queries import (
    FlightFilter,
    count_flights,
    get_flight,
    list_flights,
    list_instances,
)
from repairtool.stairway.schema import create_schema
from repairtool.stairway.version import detect_generation
from tests.reliability.harness import FAST, RecordingQueue, compatible, tool_engine, with_app
from tests.reliability.soak import Soak, SoakEnv, SoakResult, Tally
from tests.reliability.soak import register as register_soak

WSM = "bio.terra.workspace.service.workspace.flight.WorkspaceCreateFlight"
LIVE = "workspacemanager-deployment-68f9b944d5-9kgzp"
DEAD = "workspacemanager-deployment-68f9b944d5-5gwdm"
CATALOG = load_builtin_catalog("workspace-manager")
INPUT_KEYS = ("workspaceStage", "workspaceId", "auth_user_info", "description", "spendProfileId")
WHO = Actor(reason="fuzz soak", name="soak@example")
READER_ROLE = "fuzz_reader"
INVARIANTS = ("typed_errors_only", "dry_run_changes_nothing")
ALLOWED = (RepairToolError, FlightMapError)

# -- what an example is made of -----------------------------------------------------------------

TIMES = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "infinity",
            "-infinity",
            "0001-01-01 00:00:00",
            "9999-12-31 23:59:59.999999",
            "294276-12-31 23:59:59",
            "4713-01-01 00:00:00 BC",
            "2021-04-05 10:14:23.723",
        ]
    ),
    st.integers(min_value=0, max_value=10**8).map(lambda s: f"ago {s}"),
)
STATUSES = st.one_of(
    st.sampled_from([s.value for s in FlightStatus]),
    st.sampled_from(["RUNNING", "RUNNING", "READY", "QUEUED"]),
    st.sampled_from(["", "running", "RUNNING ", "ÜNKNOWN"]),
    st.none(),
)
NAMES = st.one_of(
    st.none(),
    st.sampled_from([LIVE, DEAD, "", "pod'; DROP TABLE flight; --", "%", "_"]),
    st.text(max_size=40),
)
TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=20, max_size=40).map(
    lambda s: "ya29." + s
)


def _deep(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "1" + "]" * depth
    if kind == "typed":
        return '["java.util.ArrayList",' * depth + "[]" + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


VALUES = st.one_of(
    st.sampled_from(
        [
            '"MC_WORKSPACE"',
            '["bio.terra.workspace.service.workspace.model.WorkspaceStage","MC_WORKSPACE"]',
            '"2e74e380-cccd-48ad-a0ac-e006b3650dbe"',
            '["java.util.UUID","2e74e380-cccd-48ad-a0ac-e006b3650dbe"]',
            "null",
            "3",
            "[]",
            "{}",
        ]
    ),
    TOKEN.map(
        lambda t: (
            '["bio.terra.workspace.service.iam.AuthenticatedUserRequest",'
            f'{{"email":"u@x","subjectId":null,"token":"{t}","reqId":null}}]'
        )
    ),
    TOKEN.map(json.dumps),
    st.tuples(st.integers(1, 1500), st.sampled_from(["list", "typed", "object"])).map(
        lambda d: _deep(*d)
    ),
    st.integers(1, 200_000).map(lambda n: '"' + "x" * n + '"'),
    st.text(max_size=120),
)
MUTATIONS = st.sampled_from(
    [
        ("rename", "flight", "stairway_id"),
        ("rename", "flight", "status"),
        ("rename", "flight", "submit_time"),
        ("rename", "flightlog", "log_time"),
        ("rename", "flightinput", "value"),
        ("rename", "stairwayinstance", "stairway_id"),
        ("drop_table", "stairwayinstance"),
        ("drop_table", "flightlog"),
        ("drop_table", "flightinput"),
        ("drop_table", "flightworking"),
        ("drop_column", "flight", "debug_info"),
        ("drop_column", "flight", "output_parameters"),
        ("drop_column", "flightlog", "direction"),
        ("timestamptz",),
        ("nullable",),
        ("extra_column",),
        ("status_varchar",),
        ("foreign_audit",),
    ]
)


@dataclass
class FlightRow:
    flight_id: str
    status: str | None
    owner: str | None
    submitted: str | None
    class_name: str | None
    inputs: dict[str, str]
    logs: list[tuple[str | None, int]]


@st.composite
def flights(draw: st.DrawFn) -> FlightRow:
    return FlightRow(
        flight_id=draw(st.one_of(st.uuids().map(str), st.text(min_size=1, max_size=36))),
        status=draw(STATUSES),
        owner=draw(NAMES),
        submitted=draw(TIMES),
        class_name=draw(st.one_of(st.just(WSM), st.just(WSM), st.none(), st.text(max_size=60))),
        inputs=draw(
            st.dictionaries(
                st.one_of(st.sampled_from(INPUT_KEYS), st.text(max_size=30)), VALUES, max_size=4
            )
        ),
        logs=draw(
            st.lists(
                st.tuples(TIMES, st.integers(min_value=-(2**31), max_value=2**31 - 1)),
                max_size=3,
            )
        ),
    )


@dataclass
class Example:
    version: str
    mutations: list[tuple[str, ...]]
    flights: list[FlightRow]
    instances: list[tuple[str | None, str | None]]
    apply: bool
    action: Action | None
    force: bool
    reader: ReaderVersion
    class_name: str | None
    named: list[int] = field(default_factory=list)


EXAMPLES = st.builds(
    Example,
    version=st.sampled_from(["0.0.43", "0.0.60", "1.1.14"]),
    mutations=st.lists(MUTATIONS, max_size=2, unique=True),
    flights=st.lists(flights(), max_size=5),
    instances=st.lists(st.tuples(NAMES, NAMES), max_size=3),
    apply=st.booleans(),
    action=st.sampled_from([None, Action.RESUME, Action.FAIL, Action.REENCODE]),
    force=st.booleans(),
    reader=st.sampled_from(list(ReaderVersion)),
    class_name=st.sampled_from([None, WSM, "bio.terra.*", "x"]),
    named=st.lists(st.integers(0, 4), max_size=2),
)

# -- building an example in its own schema ------------------------------------------------------


def _time(value: str | None) -> str | None:
    if value is None or not value.startswith("ago "):
        return value
    ago = dt.timedelta(seconds=int(value[4:]))
    return (dt.datetime.now(dt.UTC).replace(tzinfo=None) - ago).isoformat(sep=" ")


def _try(conn: Connection, sql: str, params: dict[str, Any] | None = None) -> bool:
    """One statement in a savepoint: rows the broken schema refuses are just not in the example."""
    try:
        with conn.begin_nested():
            conn.execute(text(sql), params or {})
        return True
    except Exception:
        return False


def _mutate(conn: Connection, m: tuple[str, ...]) -> None:
    kind = m[0]
    if kind == "rename":
        _try(conn, f"ALTER TABLE {m[1]} RENAME COLUMN {m[2]} TO {m[2]}_renamed")
    elif kind == "drop_table":
        _try(conn, f"DROP TABLE {m[1]} CASCADE")
    elif kind == "drop_column":
        _try(conn, f"ALTER TABLE {m[1]} DROP COLUMN {m[2]}")
    elif kind == "timestamptz":
        for table, col in (
            ("flight", "submit_time"),
            ("flight", "completed_time"),
            ("flightlog", "log_time"),
        ):
            _try(conn, f"ALTER TABLE {table} ALTER COLUMN {col} TYPE timestamptz")
    elif kind == "nullable":
        for table, col in (("flight", "submit_time"), ("flight", "class_name")):
            _try(conn, f"ALTER TABLE {table} ALTER COLUMN {col} DROP NOT NULL")
        _try(conn, "ALTER TABLE flightlog DROP CONSTRAINT pk_flightlog")
        _try(conn, "ALTER TABLE flightlog ALTER COLUMN log_time DROP NOT NULL")
    elif kind == "extra_column":
        _try(conn, "ALTER TABLE flight ADD COLUMN extra text NOT NULL DEFAULT 'x'")
    elif kind == "status_varchar":
        _try(conn, "ALTER TABLE flight ALTER COLUMN status TYPE varchar(8)")


def _fill(conn: Connection, ex: Example) -> None:
    for f in ex.flights:
        _try(
            conn,
            "INSERT INTO flight (flightid, submit_time, class_name, status, stairway_id)"
            " VALUES (:f, CAST(:t AS timestamp), :c, :s, :o)",
            {
                "f": f.flight_id,
                "t": _time(f.submitted),
                "c": f.class_name,
                "s": f.status,
                "o": f.owner,
            },
        )
        for key, value in f.inputs.items():
            _try(
                conn,
                "INSERT INTO flightinput (flightid, key, value) VALUES (:f, :k, :v)",
                {"f": f.flight_id, "k": key, "v": value},
            )
        for at, step in f.logs:
            _try(
                conn,
                "INSERT INTO flightlog (flightid, log_time, step_index, status)"
                " VALUES (:f, CAST(:t AS timestamp), :i, 'RUNNING')",
                {"f": f.flight_id, "t": _time(at), "i": step},
            )
    for name, sid in ex.instances:
        _try(
            conn,
            "INSERT INTO stairwayinstance (stairway_name, stairway_id) VALUES (:n, :i)",
            {"n": name, "i": sid},
        )


def _checksum(conn: Connection, schema: str) -> str:
    """Every row of the example's tables as one digest, the schemas that exist, and the audit
    trail's size (it only ever grows)."""
    tables = conn.execute(
        text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind = 'r' AND n.nspname = :s ORDER BY c.relname"
        ),
        {"s": schema},
    ).scalars()
    parts = []
    for table in tables:
        digest = conn.execute(
            text(
                "SELECT md5(COALESCE(string_agg(t::text, '|' ORDER BY t::text), ''))"
                f' FROM "{schema}"."{table}" t'
            )
        ).scalar()
        parts.append(f"{table}={digest}")
    parts.append(
        str(
            conn.execute(
                text(
                    "SELECT string_agg(nspname, ',' ORDER BY nspname) FROM pg_namespace"
                    " WHERE nspname NOT LIKE 'pg_%' AND nspname NOT LIKE 'fz%'"
                )
            ).scalar()
        )
    )
    if conn.execute(text("SELECT to_regclass('stairway_ops.audit')")).scalar() is not None:
        parts.append(str(conn.execute(text("SELECT count(*) FROM stairway_ops.audit")).scalar()))
    return ";".join(parts)


# -- the operations -----------------------------------------------------------------------------


@dataclass
class Outcome:
    unexpected: list[str] = field(default_factory=list)
    typed: int = 0

    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except ALLOWED as error:
            self.typed += 1
            if "\n" in str(error).strip():
                self.unexpected.append(f"{what}: a message of several lines: {str(error)[:120]!r}")
            return None
        except Exception as error:
            self.unexpected.append(f"{what}: {type(error).__name__}: {str(error)[:160]}")
            return None


def _dry_run(engine: Engine, ex: Example, out: Outcome) -> Any:
    ids = [f.flight_id for f in ex.flights]
    named = frozenset(ids[i] for i in ex.named if i < len(ids))
    plan = None
    for liveness in (from_names([LIVE]), from_registry()):
        options = Options(
            catalog=CATALOG,
            reader=ex.reader,
            class_name=ex.class_name,
            stalled_after=dt.timedelta(minutes=10),
        )
        found = out.call(
            "detect", lambda lv=liveness, o=options: compatible(detect, engine, lv, o, policy=FAST)
        )
        if found is None:
            continue
        inputs = out.call(
            "read_inputs",
            lambda f=found: read_inputs(
                engine, [x.flight_id for x in f.findings if x.flight_id][:3]
            ),
        )
        plan = out.call(
            "build_plan",
            lambda f=found, i=inputs: build_plan(
                f,
                action=ex.action,
                named=named,
                force=ex.force,
                queue=RecordingQueue("fuzz-project", "fuzz"),
                catalog=CATALOG,
                reader=ex.reader,
                inputs=i,
            ),
        )
    out.call("count_flights", lambda: count_flights(engine))
    out.call(
        "list_flights",
        lambda: list_flights(
            engine,
            FlightFilter(statuses=(FlightStatus.RUNNING,), class_name=ex.class_name),
            limit=50,
        ),
    )
    out.call("list_flights", lambda: list_flights(engine, limit=None))
    for fid in [*ids[:3], str(uuid.uuid4())]:
        out.call("get_flight", lambda f=fid: get_flight(engine, f))
    out.call("list_instances", lambda: list_instances(engine))
    out.call("list_audit", lambda: list_audit(engine, flight_id=ids[0] if ids else None))
    out.call("detect_generation", lambda: run_read(engine, detect_generation, policy=FAST))
    return plan


@dataclass
class Place:
    """Where an example lives: its schema and the tool's engines for it (owner, SELECT-only)."""

    schema: str
    owner: Engine
    reader: Engine
    reused: bool


def _engines(url: URL, schema: str) -> tuple[Engine, Engine]:
    opts = {"options": f"-csearch_path={schema}"}
    owner = tool_engine(url.update_query_dict(opts))
    reader = tool_engine(url.set(username=READER_ROLE, password="pw").update_query_dict(opts))
    return owner, reader


def _grant(conn: Connection, schema: str) -> None:
    conn.execute(text(f'GRANT USAGE ON SCHEMA "{schema}" TO {READER_ROLE}'))
    conn.execute(text(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO {READER_ROLE}'))


def _fresh_place(admin: Engine, url: URL, ex: Example, n: int) -> Place:
    schema = f"fz_{n}_{uuid.uuid4().hex[:6]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        conn.execute(text(f'SET LOCAL search_path TO "{schema}"'))
        create_schema(conn, ex.version)
        for m in ex.mutations:
            _mutate(conn, m)
        _fill(conn, ex)
        _grant(conn, schema)
    return Place(schema, *_engines(url, schema), reused=False)


ENGINE_TABLES = ("flight", "flightlog", "flightinput", "flightworking", "flightpersisted")


def _reused_place(admin: Engine, url: URL, ex: Example, cache: dict[str, Place]) -> Place:
    """An intact schema of the example's generation, emptied and filled again."""
    place = cache.get(ex.version)
    with admin.begin() as conn:
        if place is None:
            schema = f"fzbase_{ex.version.replace('.', '_')}"
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            conn.execute(text(f'SET LOCAL search_path TO "{schema}"'))
            create_schema(conn, ex.version)
            _grant(conn, schema)
            place = cache[ex.version] = Place(schema, *_engines(url, schema), reused=True)
        conn.execute(text(f'SET LOCAL search_path TO "{place.schema}"'))
        present = [
            t
            for t in (*ENGINE_TABLES, "stairwayinstance")
            if conn.execute(text("SELECT to_regclass(:t)"), {"t": t}).scalar() is not None
        ]
        conn.execute(text(f"TRUNCATE {', '.join(present)}"))
        _fill(conn, ex)
    return place


def _run_example(admin: Engine, place: Place, ex: Example, t: Tally) -> None:
    owner, reader = place.owner, place.reader
    try:
        with admin.connect() as conn:
            before = _checksum(conn, place.schema)
        out = Outcome()
        plan = _dry_run(owner, ex, out)
        _dry_run(reader, ex, out)
        if plan is not None:
            # a role that may only read: refused before anything is written
            out.call(
                "apply (SELECT-only role)",
                lambda: compatible(apply_plan, reader, plan, actor=WHO, policy=FAST),
            )
        with admin.connect() as conn:
            after = _checksum(conn, place.schema)
        t.check(
            "dry_run_changes_nothing",
            before == after,
            lambda: (
                f"{place.schema}: changed by a dry run ({ex.mutations}, {len(ex.flights)} flights)"
            ),
        )
        if ex.apply and plan is not None:
            queue = RecordingQueue("fuzz-project", "fuzz")
            out.call(
                "apply",
                lambda: compatible(
                    apply_plan, owner, plan, actor=WHO, queue=queue, policy=FAST, on_error="record"
                ),
            )
            t.stats["applied"] += 1
        t.check(
            "typed_errors_only",
            not out.unexpected,
            lambda: f"{place.schema} {ex.version} {ex.mutations}: {out.unexpected[:2]}",
        )
        t.stats["typed errors"] += out.typed
    finally:
        if not place.reused:
            owner.dispose()
            reader.dispose()
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{place.schema}" CASCADE'))


def _fuzz_soak(name: str, shapes: bool, full: int, ci: int, what: str) -> Soak:
    examples = EXAMPLES if shapes else EXAMPLES.map(lambda ex: _intact(ex))

    def run(env: SoakEnv, trials: int, rng: random.Random) -> SoakResult:
        started = time.monotonic()
        t = Tally(INVARIANTS)
        url = env.new_database("fuzz")
        foreign_url = env.new_database("fuzz_foreign")
        admin = with_app(url, "soak-admin")
        foreign_admin = with_app(foreign_url, "soak-admin")
        for a in (admin, foreign_admin):
            with a.begin() as conn:
                conn.execute(
                    text(
                        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname ="
                        f" '{READER_ROLE}') THEN CREATE ROLE {READER_ROLE} LOGIN PASSWORD 'pw';"
                        " END IF; END $$"
                    )
                )
        with foreign_admin.begin() as conn:
            conn.execute(text("CREATE SCHEMA stairway_ops"))
            conn.execute(text("CREATE TABLE stairway_ops.audit (id int, note text)"))
            conn.execute(text("INSERT INTO stairway_ops.audit VALUES (1, 'not ours')"))
        counter = iter(range(10**9))
        cache: dict[str, Place] = {}
        ran = 0

        @seed(rng.randrange(2**32))
        @settings(
            max_examples=trials,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(examples)
        def one(ex: Example) -> None:
            nonlocal ran
            ran += 1
            if ("foreign_audit",) in ex.mutations:
                a, u = foreign_admin, foreign_url
            else:
                a, u = admin, url
            if shapes:
                place = _fresh_place(a, u, ex, next(counter))
            else:
                place = _reused_place(a, u, ex, cache)
            _run_example(a, place, ex, t)

        try:
            one()
        finally:
            for place in cache.values():
                place.owner.dispose()
                place.reader.dispose()
            admin.dispose()
            foreign_admin.dispose()
        return t.result(name, "library", ran, started, [what])

    return Soak(name, "library", what, INVARIANTS, run, full=full, ci=ci)


def _intact(ex: Example) -> Example:
    ex.mutations = []
    return ex


register_soak(
    _fuzz_soak(
        "fuzz.shapes",
        True,
        full=800,
        ci=16,
        what="broken schemas (renamed/dropped columns and tables, timestamptz, foreign audit)"
        " with random rows, as the owner and a SELECT-only role",
    )
)
register_soak(
    _fuzz_soak(
        "fuzz.contents",
        False,
        full=2500,
        ci=40,
        what="random rows in intact schemas of three generations, as the owner and a"
        " SELECT-only role",
    )
)
