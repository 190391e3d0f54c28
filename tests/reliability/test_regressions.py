"""The defects of issue 12 that live below the CLI, one test each, plus guards of what must keep
working. A test whose docstring starts with "Before:" reproduced its defect on the code before the
fix (its calls go through `compatible`, so it ran there: see the README's Reliability section)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from repairtool.detect import Action, Kind, Options, detect
from repairtool.errors import DatabaseUnreachable, UsageError
from repairtool.flightmap import ReaderVersion, load_builtin_catalog
from repairtool.liveness import from_names
from repairtool.localpg import LocalPostgres, create_database
from repairtool.repair import apply_plan, build_plan
from repairtool.stairway import recovery
from repairtool.stairway.audit import Actor, list_audit
from repairtool.stairway.db import RetryPolicy, make_engine, parse_url, run_read
from repairtool.stairway.errors import (
    BadDatabaseValue,
    ForeignAuditTable,
    PermissionDenied,
    UnsupportedSchema,
)
from repairtool.stairway.model import FlightState, FlightStatus, Outcome
from repairtool.stairway.pgread import ReadDb
from repairtool.stairway.queries import get_flight, list_flights
from repairtool.stairway.queue import QueueError
from tests.reliability.harness import (
    FAST,
    EngineWriter,
    RecordingQueue,
    audit_rows,
    compatible,
    expect,
    history,
    insert_flight,
    new_id,
    read_row,
    register,
    tool_engine,
)
from tests.reliability.proxy import DropBeforeCommit, DropCommitAck, FaultProxy

DEAD = "workspacemanager-deployment-68f9b944d5-5gwdm"
LIVE = "workspacemanager-deployment-68f9b944d5-9kgzp"
WHO = Actor(reason="issue 12 regression", name="tester@example")
OWNER_DEAD = recovery.Because(recovery.Evidence.OWNER_DEAD, "pod deleted")
CATALOG = load_builtin_catalog("workspace-manager")


def seed(db: Engine, flight_id: str, **kw: object) -> None:
    with db.begin() as c:
        register(c, DEAD, LIVE)
        insert_flight(c, flight_id, **kw)  # type: ignore[arg-type]


def queue() -> RecordingQueue:
    return RecordingQueue("test-project", "terra-test-workspace-stairway")


# -- compare-and-set end to end -----------------------------------------------------------------


def test_enqueue_reports_changed_and_audits_only_a_change_that_applied(
    db: Engine, tool: Engine, writer: EngineWriter
) -> None:
    """Before: the READY message was published first, the flight read outside the transaction
    and the UPDATE's row count ignored — a pod taking the flight in between still got an audit
    row, CHANGED, and a READY message for a flight it owned."""
    flight = new_id()
    seed(db, flight, status="READY", owner=None)
    with db.connect() as c:
        seen = read_row(c, flight)
    assert seen is not None
    q = queue()
    # the engine's resume lands while the tool is between its decision and its write
    real_publish = q.publish

    def publish_during_takeover(message: str, timeout: float = 30.0) -> str:
        writer.resume(LIVE, flight)
        return real_publish(message, timeout)

    q.publish = publish_during_takeover  # type: ignore[method-assign]
    result = compatible(
        recovery.enqueue_ready,
        tool,
        flight,
        queue=q,
        expected=expect(seen.status or "", seen.owner, seen.version),
        actor=WHO,
        policy=FAST,
    )
    with db.connect() as c:
        ours = [h for h in history(c, flight) if h.who == "repairtool"]
        audited = audit_rows(c, result.op_id)
    applied = len(ours) == 1 and ours[0].old_rev == seen.rev
    assert (result.outcome is Outcome.CHANGED) == applied
    assert audited == (1 if applied else 0)
    # the message left only after the tool's own change committed, for an unowned flight
    assert q.count(flight) == (1 if applied else 0)
    assert ours[0].new_owner is None if ours else True


def test_enqueue_skips_a_flight_another_pod_took_since_the_plan(
    db: Engine, tool: Engine, writer: EngineWriter
) -> None:
    flight = new_id()
    seed(db, flight, status="READY", owner=None)
    with db.connect() as c:
        seen = read_row(c, flight)
    assert seen is not None
    writer.resume(LIVE, flight)
    q = queue()
    result = compatible(
        recovery.enqueue_ready,
        tool,
        flight,
        queue=q,
        expected=expect("READY", None, seen.version),
        actor=WHO,
        policy=FAST,
    )
    assert result.outcome is Outcome.SKIPPED
    assert q.published == []
    with db.connect() as c:
        assert audit_rows(c, result.op_id) == 0


def test_a_failed_publish_undoes_the_queued_mark(db: Engine, tool: Engine) -> None:
    flight = new_id()
    seed(db, flight, status="READY", owner=None)
    with db.connect() as c:
        seen = read_row(c, flight)
    assert seen is not None
    q = queue()
    q.fail_next = 1
    with pytest.raises(QueueError, match="set back to READY"):
        recovery.enqueue_ready(
            tool,
            flight,
            queue=q,
            expected=expect("READY", None, seen.version),
            actor=WHO,
            policy=FAST,
        )
    with db.connect() as c:
        row = read_row(c, flight)
    assert row is not None and (row.status, row.owner) == ("READY", None)
    assert [r.action for r in list_audit(db)] == ["enqueue_ready_undone", "enqueue_ready"]


def test_a_named_disown_skips_a_takeover_by_the_same_pod_name(
    db: Engine, tool: Engine, writer: EngineWriter
) -> None:
    """Before: `recover disown F` compared only status and owner, read at --fix time; a pod whose
    container restarted under the same name had recovered and re-taken the flight since the dry
    run, and the tool disowned that fresh takeover (the flight then runs twice)."""
    flight = new_id()
    seed(db, flight, status="RUNNING", owner=DEAD)
    with db.connect() as c:
        seen = read_row(c, flight)  # the dry run
    assert seen is not None
    writer.disown_recovery(DEAD)  # the container restarts: own name in the obsolete list
    writer.register(DEAD)
    assert writer.resume(DEAD, flight)
    result = compatible(
        recovery.disown,
        tool,
        flight,
        expected=expect("RUNNING", DEAD, seen.version),
        expected_owner=DEAD,
        because=OWNER_DEAD,
        actor=WHO,
        policy=FAST,
    )
    assert result.outcome is Outcome.SKIPPED
    assert "changed since it was read" in result.detail
    with db.connect() as c:
        assert [h.who for h in history(c, flight)] == ["stairway-engine", "stairway-engine"]
        assert audit_rows(c, result.op_id) == 0


def test_stalled_does_not_count_the_time_before_the_current_owner_took_the_flight(
    db: Engine, writer: EngineWriter
) -> None:
    """Before: `stalled` counted from the submit or the last log row (3 h ago here), although a
    live pod took the flight over a moment ago: a named repair then disowned a fresh takeover."""
    flight = new_id()
    seed(db, flight, status="RUNNING", owner=DEAD, submitted_ago=dt.timedelta(hours=3))
    writer.disown_recovery(DEAD)
    assert writer.resume(LIVE, flight)  # just now
    found = detect(db, from_names([LIVE]), Options(stalled_after=dt.timedelta(minutes=10)))
    assert [f for f in found.findings if f.flight_id == flight] == []


def test_the_make_flight_failure_is_still_found_when_the_takeover_time_is_unknown(
    db: Engine, writer: EngineWriter
) -> None:
    flight = new_id()
    seed(
        db,
        flight,
        status="RUNNING",
        owner=DEAD,
        inputs={"workspaceStage": '"MC_WORKSPACE"', "description": '"d"'},
    )
    writer.disown_recovery(DEAD)
    assert writer.resume(LIVE, flight)  # and the ≤0.0.60 reader fails to construct it
    found = detect(db, from_names([LIVE]), Options(catalog=CATALOG, reader=ReaderVersion.LEGACY))
    [stalled] = [f for f in found.findings if f.flight_id == flight]
    assert stalled.kind is Kind.STALLED
    assert "make-flight failure" in stalled.evidence["pattern"]
    assert stalled.evidence["state_since_source"] == "unknown"
    assert stalled.evidence["idle_for"].startswith("unknown")


def test_with_commit_timestamps_stalled_counts_from_the_takeover(tmp_path: Path) -> None:
    """`track_commit_timestamp = on` (a Cloud SQL flag) gives the exact time of the takeover."""
    from repairtool.stairway.schema import create_schema
    from tests.reliability.harness import install_history

    local = LocalPostgres(tmp_path / "pg")
    server = local.start()
    try:
        admin = make_engine(parse_url(server.url().render_as_string(False), "t"))
        with admin.connect() as c:
            c.execution_options(isolation_level="AUTOCOMMIT").execute(
                text("ALTER SYSTEM SET track_commit_timestamp = on")
            )
        admin.dispose()
        local.stop()
        server = local.start()
        url = create_database(server, "ct")
        engine = tool_engine(url)
        with engine.begin() as c:
            create_schema(c, "1.1.14")
        install_history(engine)
        writer = EngineWriter(url)
        flight = new_id()
        seed(engine, flight, status="RUNNING", owner=DEAD)
        writer.disown_recovery(DEAD)
        assert writer.resume(LIVE, flight)
        time.sleep(1.2)
        found = detect(engine, from_names([LIVE]), Options(stalled_after=dt.timedelta(seconds=1)))
        [stalled] = found.findings
        assert stalled.kind is Kind.STALLED
        assert stalled.evidence["state_since_source"] == "commit_timestamp"
        assert stalled.evidence["idle_for"] in ("1s", "2s")
        writer.close()
        engine.dispose()
    finally:
        local.destroy()


def test_naming_a_stalled_flight_does_not_bypass_the_liveness_rule(db: Engine) -> None:
    flight = new_id()
    seed(db, flight, status="RUNNING", owner=LIVE)
    found = detect(
        db,
        from_names([LIVE]),
        Options(stalled_after=dt.timedelta(minutes=10), flight_ids=(flight,)),
    )
    [stalled] = found.findings
    assert stalled.kind is Kind.STALLED
    plan = build_plan(found, action=Action.FAIL, named=frozenset({flight}))
    assert plan.changes == () and [r.finding.flight_id for r in plan.refused] == [flight]
    forced = build_plan(found, action=Action.FAIL, named=frozenset({flight}), force=True)
    out = apply_plan(db, forced, actor=WHO, policy=FAST)
    assert [a.change.finding.flight_id for a in out.applied] == [flight]
    [record] = list_audit(db)
    assert record.evidence is not None and record.evidence["evidence"] == "forced"


def test_a_live_owned_flight_is_not_changed_without_evidence(db: Engine, tool: Engine) -> None:
    flight = new_id()
    seed(db, flight, status="RUNNING", owner=LIVE)
    with pytest.raises(recovery.LiveOwnerRefused, match="owned by"):
        recovery.force_fatal(
            tool, flight, expected=FlightState("RUNNING", LIVE), actor=WHO, policy=FAST
        )
    with db.connect() as c:
        assert history(c, flight) == []


def test_an_unowned_running_flight_is_its_own_finding_not_an_assertion(db: Engine) -> None:
    """Before: detected as `dead_owner` with no owner; applying its resume hit an
    AssertionError (a traceback)."""
    flight = new_id()
    seed(db, flight, status="RUNNING", owner=None)
    found = detect(db, from_names([LIVE]), Options())
    [finding] = [f for f in found.findings if f.flight_id == flight]
    assert (finding.kind, finding.proposed_action) == (Kind.UNOWNED_RUNNING, Action.NONE)
    assert [c for c in build_plan(found).changes if c.finding.flight_id == flight] == []
    plan = build_plan(found, action=Action.RESUME, named=frozenset({flight}))
    out = apply_plan(db, plan, actor=WHO, policy=FAST)
    assert flight in [a.change.finding.flight_id for a in out.applied]
    with db.connect() as c:
        assert read_row(c, flight).status == "READY"  # type: ignore[union-attr]


# -- retries like DbRetry -----------------------------------------------------------------------


def _kill_when_waiting(db: Engine, app: str, release: threading.Event) -> None:
    """Hold an exclusive lock on flightlog until the tool's session waits on it, then terminate
    that session (a backend killed mid-read), then release the lock."""
    with db.connect() as c, c.begin():
        c.execute(text("LOCK TABLE flightlog IN ACCESS EXCLUSIVE MODE"))
        deadline = time.monotonic() + 10
        pid = None
        with db.connect() as k:
            while pid is None and time.monotonic() < deadline:
                k.execute(text("SELECT pg_stat_clear_snapshot()"))  # stats are cached per txn
                pid = k.execute(
                    text(
                        "SELECT pid FROM pg_stat_activity WHERE application_name = :a"
                        " AND wait_event_type = 'Lock'"
                    ),
                    {"a": app},
                ).scalar()
                time.sleep(0.02)
            assert pid is not None, "the tool never waited on the lock"
            k.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            k.commit()
        time.sleep(0.1)
    release.set()


def test_a_terminated_backend_during_detection_is_retried(db: Engine) -> None:
    """Before: reads were never retried; a backend terminated during detection was a traceback."""
    seed(db, new_id(), status="RUNNING", owner=DEAD)
    tool = tool_engine(db.url, app="repairtool-detect")
    retries: list[str] = []
    released = threading.Event()
    killer = threading.Thread(target=_kill_when_waiting, args=(db, "repairtool-detect", released))
    killer.start()
    policy = RetryPolicy(min_sleep=0.01, max_sleep=0.05, on_retry=lambda n, s, e: retries.append(s))
    found = compatible(run_read, tool, lambda c: detect_in_conn(c), policy=policy)
    killer.join()
    assert released.is_set() and retries[:1] == ["08006"]
    assert found == 2  # the dead owner's flight and its instance
    tool.dispose()


def detect_in_conn(conn: object) -> int:
    from repairtool.detect import detect_in

    return len(detect_in(conn, from_names([LIVE]), Options()).findings)  # type: ignore[arg-type]


def test_detect_itself_retries_a_terminated_backend(db: Engine) -> None:
    seed(db, new_id(), status="RUNNING", owner=DEAD)
    tool = tool_engine(db.url, app="repairtool-detect2")
    released = threading.Event()
    killer = threading.Thread(target=_kill_when_waiting, args=(db, "repairtool-detect2", released))
    killer.start()
    found = detect(tool, from_names([LIVE]), Options())
    killer.join()
    assert released.is_set(), "the tool's session was never terminated"
    assert [f.kind for f in found.findings] == [Kind.DEAD_OWNER, Kind.STALE_INSTANCE]
    tool.dispose()


def test_a_flights_view_on_the_read_path_retries_a_terminated_backend(db: Engine) -> None:
    """`repairtool flights show` reads on psycopg directly (no SQLAlchemy): a backend terminated
    mid-read is retried there as on the SQLAlchemy path, not a traceback."""
    flight = new_id()
    seed(db, flight, status="RUNNING", owner=DEAD)
    source = ReadDb(db.url, application_name="repairtool-show")
    released = threading.Event()
    killer = threading.Thread(target=_kill_when_waiting, args=(db, "repairtool-show", released))
    killer.start()
    try:
        detail = get_flight(source, flight)
    finally:
        killer.join()
        source.close()
    assert released.is_set(), "the tool's session was never terminated"
    assert (detail.flight.flight_id, detail.flight.owner) == (flight, DEAD)


@pytest.mark.parametrize("fault", [DropBeforeCommit(), DropCommitAck()], ids=["kill", "lost-ack"])
def test_a_connection_lost_at_commit_on_the_first_attempt_applies_the_change_once(
    db: Engine, fault: DropBeforeCommit | DropCommitAck
) -> None:
    """Before: a failure at COMMIT on the first attempt was taken for a failed connect (exit 4,
    "is the server running?", the rest of the plan abandoned) — although after a lost
    acknowledgement the change had committed."""
    flight = new_id()
    seed(db, flight, status="RUNNING", owner=DEAD)
    with db.connect() as c:
        seen = read_row(c, flight)
    assert seen is not None and db.url.port is not None
    with FaultProxy(db.url.port) as proxy:
        via = tool_engine(db.url.set(port=proxy.port), sslmode_off=True)
        _warm(via)  # the process has reached the server before the fault
        proxy.arm(fault)
        result = compatible(
            recovery.disown,
            via,
            flight,
            expected=expect("RUNNING", DEAD, seen.version),
            expected_owner=DEAD,
            because=OWNER_DEAD,
            actor=WHO,
            policy=FAST,
        )
        assert proxy.fired, "the fault never fired"
        via.dispose()
    assert result.outcome is Outcome.CHANGED
    if isinstance(fault, DropCommitAck):
        assert "earlier attempt" in result.detail
    with db.connect() as c:
        assert [(h.who, h.new_status) for h in history(c, flight)] == [("repairtool", "READY")]
        assert audit_rows(c, result.op_id) == 1


def _warm(engine: Engine) -> None:
    from repairtool.stairway.audit import ensure_audit_table

    ensure_audit_table(engine)


def test_too_many_connections_at_connect_is_retried(db: Engine) -> None:
    """Before: SQLSTATE 53300 at connect failed at once ("database unreachable")."""
    role = f"limited_{new_id()[:8]}"
    with db.begin() as c:
        c.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD 'pw' CONNECTION LIMIT 1"))
        c.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"))
    url = db.url.set(username=role, password="pw")
    holder = tool_engine(url, app="holder")
    held = holder.connect()
    tool = tool_engine(url)
    threading.Timer(0.3, lambda: (held.close(), holder.dispose())).start()
    retries: list[str] = []
    policy = RetryPolicy(min_sleep=0.05, max_sleep=0.1, on_retry=lambda n, s, e: retries.append(s))
    try:
        assert run_read(tool, lambda c: c.execute(text("SELECT 1")).scalar(), policy=policy) == 1
        assert retries and set(retries) == {"53300"}
    finally:
        tool.dispose()
        holder.dispose()


def test_a_wrong_address_still_fails_at_once(db: Engine) -> None:
    tool = tool_engine(db.url.set(port=1))
    started = time.monotonic()
    with pytest.raises(DatabaseUnreachable, match="is the server"):
        run_read(tool, lambda c: 1)
    assert time.monotonic() - started < 5


# -- nothing secret in errors -------------------------------------------------------------------


def test_sql_parameters_are_never_rendered(db: Engine, tool: Engine) -> None:
    """Before: engines rendered `[parameters: …]`, which printed a re-encoded token."""
    token = "ya29.a0AfH6SMC-PLANTED-TOKEN-DO-NOT-SHOW"
    with pytest.raises(BadDatabaseValue) as caught:
        run_read(tool, lambda c: c.execute(text("SELECT CAST(:v AS int)"), {"v": token}))
    assert token not in str(caught.value) and "SQLSTATE 22P02" in str(caught.value)
    # SQLAlchemy's own text renders no parameters (the server's message may still quote the
    # value, which is why only `translate`d one-liners are ever shown)
    with tool.connect() as c, pytest.raises(Exception) as raw:
        c.execute(text("SELECT CAST(:v AS int)"), {"v": token})
    assert "[SQL parameters hidden due to hide_parameters=True]" in str(raw.value)
    assert "[parameters:" not in str(raw.value)


@pytest.mark.parametrize(
    "form",
    [
        "postgresql://u:{pw}@127.0.0.1:1/db",
        "postgresql://u@127.0.0.1:1/db?password={pw}",
        "postgresql://u:{pct}@127.0.0.1:1/db",
        "postgres://u:{pw}@127.0.0.1:1/db?sslmode=disable",
    ],
)
def test_a_password_in_any_url_form_stays_out_of_messages(form: str) -> None:
    """Before: `?password=` was echoed by every connection error, and a password with `@` leaked
    its tail (which was sent to the resolver as the host name)."""
    from urllib.parse import quote

    pw = "s3cr@t/p:w?x"
    raw = form.format(pw=pw if "?" not in form else "s3cr@tpw", pct=quote(pw, safe=""))
    settings = parse_url(raw, "--db")
    assert settings.url.host == "127.0.0.1" and settings.url.port == 1
    assert settings.url.password in (pw, "s3cr@tpw")
    engine = make_engine(settings)
    with pytest.raises(DatabaseUnreachable) as caught:
        run_read(engine, lambda c: 1)
    for text_ in (str(caught.value), repr(settings), settings.safe_url):
        for part in ("s3cr", "@t/p", "p:w", "tpw"):
            assert part not in text_


# -- bad database contents and shapes -----------------------------------------------------------


def test_a_renamed_column_is_a_one_line_error(db: Engine) -> None:
    """Before: a traceback (UndefinedColumn) instead of one line."""
    with db.begin() as c:
        c.execute(text("ALTER TABLE flight RENAME COLUMN stairway_id TO owner_id"))
    with pytest.raises(UnsupportedSchema, match=r"column flight.stairway_id is missing"):
        detect(db, from_names([LIVE]), Options())
    with pytest.raises(UnsupportedSchema):
        list_flights(db)


def test_a_missing_stairwayinstance_table_is_a_one_line_error(db: Engine) -> None:
    """Before: a traceback (UndefinedTable)."""
    with db.begin() as c:
        c.execute(text("DROP TABLE stairwayinstance"))
    with pytest.raises(UnsupportedSchema, match="table stairwayinstance is missing"):
        detect(db, from_names([LIVE]), Options())


def test_a_newer_schema_with_timestamptz_is_read(db: Engine) -> None:
    """Before: a traceback (naive minus aware datetime) in detection."""
    flight = new_id()
    seed(db, flight, status="RUNNING", owner=DEAD)
    with db.begin() as c:
        for table, col in (("flight", "submit_time"), ("flight", "completed_time")):
            c.execute(text(f"ALTER TABLE {table} ALTER COLUMN {col} TYPE timestamptz"))
        c.execute(text("ALTER TABLE flightlog ALTER COLUMN log_time TYPE timestamptz"))
    found = detect(db, from_names([LIVE]), Options())
    assert [f.kind for f in found.findings if f.flight_id == flight] == [Kind.DEAD_OWNER]
    assert get_flight(db, flight).flight.submit_time is not None


@pytest.mark.parametrize("value", ["infinity", "-infinity", None])
def test_infinite_or_null_timestamps_are_read(db: Engine, tool: Engine, value: str | None) -> None:
    """Before: a traceback (psycopg cannot load ±infinity; max() of nothing for NULL)."""
    flight = new_id()
    seed(db, flight, status="READY", owner=None)
    with db.begin() as c:
        c.execute(text("ALTER TABLE flight ALTER COLUMN submit_time DROP NOT NULL"))
        c.execute(text("UPDATE flight SET submit_time = :v"), {"v": value})
        c.execute(text("UPDATE flightlog SET log_time = 'infinity'"))
    found = detect(tool, from_names([LIVE]), Options())
    assert found.scanned == 1
    listed = list_flights(tool)
    assert [f.flight_id for f in listed] == [flight]


def test_a_foreign_audit_table_is_never_written(db: Engine, tool: Engine) -> None:
    """Before: a traceback (UndefinedColumn) when writing to someone else's table."""
    flight = new_id()
    seed(db, flight, status="RUNNING", owner=DEAD)
    with db.begin() as c:
        c.execute(text("CREATE SCHEMA stairway_ops"))
        c.execute(text("CREATE TABLE stairway_ops.audit (id int, note text)"))
    found = detect(tool, from_names([LIVE]), Options())  # a dry run works
    plan = build_plan(found)
    with pytest.raises(ForeignAuditTable, match="not repairtool's audit table"):
        apply_plan(tool, plan, actor=WHO, policy=FAST)
    with pytest.raises(ForeignAuditTable):
        list_audit(tool)
    with db.connect() as c:
        assert history(c, flight) == []


def test_a_select_only_role_can_dry_run_but_not_fix(db: Engine) -> None:
    """Before: `--fix` with a SELECT-only role was a traceback (InsufficientPrivilege)."""
    flight = new_id()
    seed(db, flight, status="RUNNING", owner=DEAD)
    role = f"reader_{new_id()[:8]}"
    with db.begin() as c:
        c.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD 'pw'"))
        c.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"))
    ro = tool_engine(db.url.set(username=role, password="pw"))
    found = detect(ro, from_names([LIVE]), Options())
    assert [f.kind for f in found.findings] == [Kind.DEAD_OWNER, Kind.STALE_INSTANCE]
    with pytest.raises(PermissionDenied, match="UPDATE on flight") as caught:
        apply_plan(ro, build_plan(found), actor=WHO, policy=FAST)
    assert "\n" not in str(caught.value)
    with db.connect() as c:
        assert history(c, flight) == []
        assert c.execute(text("SELECT to_regclass('stairway_ops.audit')")).scalar() is None
    ro.dispose()


def test_values_nested_a_thousand_deep_are_handled(db: Engine, tool: Engine) -> None:
    deep = "[" * 1000 + "1" + "]" * 1000
    flight = new_id()
    seed(db, flight, status="RUNNING", owner=DEAD, inputs={"workspaceStage": deep})
    found = detect(tool, from_names([LIVE]), Options(catalog=CATALOG))
    assert flight in {f.flight_id for f in found.findings}
    result = recovery.rewrite_input(
        tool, flight, "workspaceStage", old_value=deep, new_value=deep, actor=WHO, policy=FAST
    )
    assert result.outcome is Outcome.CHANGED


def test_a_very_deep_catalog_is_a_one_line_error(tmp_path: Path) -> None:
    """Before: RecursionError (a traceback) from PyYAML or the type parser."""
    from repairtool.flightmap import load_catalog
    from repairtool.flightmap.errors import CatalogError

    deep = tmp_path / "deep.yaml"
    deep.write_text("flights:\n  x: " + "[" * 2000 + "]" * 2000 + "\n")
    with pytest.raises(CatalogError):
        load_catalog(deep)
    loop = tmp_path / "loop.yaml"
    loop.write_text("flights:\n  a.B:\n    input:\n      k: &t {type: list, of: *t}\n")
    with pytest.raises(CatalogError, match="nested too deeply"):
        load_catalog(loop)


def test_recover_instance_for_one_class_keeps_the_row_of_its_other_flights(
    db: Engine, tool: Engine
) -> None:
    """Before: `--class` scoped the flights but not the instance: the dead pod's row was deleted
    while its flights of other classes stayed RUNNING, stranded for the engine."""
    mine, other = new_id(), new_id()
    seed(db, mine, status="RUNNING", owner=DEAD)
    with db.begin() as c:
        insert_flight(c, other, status="RUNNING", owner=DEAD, class_name="a.b.OtherFlight")
    found = detect(tool, from_names([LIVE]), Options(class_name=CATALOG_CLASS))
    [stale] = [f for f in found.findings if f.kind is Kind.STALE_INSTANCE]
    assert stale.evidence["running_flights"] == [mine]
    assert stale.evidence["running_flights_outside_filter"] == 1
    out = apply_plan(tool, build_plan(found, action=Action.RESUME), actor=WHO, policy=FAST)
    assert [a.change.action for a in out.skipped] == [Action.RECOVER_INSTANCE]
    assert "instance row kept" in out.skipped[0].why
    with db.connect() as c:
        assert (
            c.execute(
                text("SELECT count(*) FROM stairwayinstance WHERE stairway_name = :n"), {"n": DEAD}
            ).scalar()
            == 1
        )
        assert read_row(c, other).status == "RUNNING"  # type: ignore[union-attr]


CATALOG_CLASS = "bio.terra.workspace.service.workspace.flight.WorkspaceCreateFlight"


def test_rate_and_limit_are_checked_before_anything_is_applied(db: Engine) -> None:
    """Before: `--rate -1` crashed after applying the first change; `--limit -1` silently
    dropped the last change."""
    flights = [new_id(), new_id()]
    for f in flights:
        seed(db, f, status="RUNNING", owner=DEAD)
    found = detect(db, from_names([LIVE]), Options())
    with pytest.raises(UsageError, match="--limit"):
        build_plan(found, limit=-1)
    for rate in (-1.0, 0.0, float("nan")):
        with pytest.raises(UsageError, match="--rate"):
            apply_plan(db, build_plan(found), actor=WHO, rate=rate, policy=FAST)
    with db.connect() as c:
        assert all(history(c, f) == [] for f in flights)


def test_a_stopped_apply_reports_what_was_done_and_not_attempted(db: Engine) -> None:
    flights = [new_id(), new_id()]
    for f in flights:
        seed(db, f, status="READY", owner=None, submitted_ago=dt.timedelta(hours=1))
    found = detect(db, from_names([LIVE, DEAD]), Options())
    q = queue()
    plan = build_plan(found, queue=q)
    assert len(plan.changes) == 2
    q.fail_next = 2  # the work queue is down: the first change fails and is undone
    out = apply_plan(db, plan, actor=WHO, queue=q, policy=FAST, on_error="record")
    assert out.applied == () and len(out.failed) == 1 and len(out.not_attempted) == 1
    assert isinstance(out.error, QueueError)
    with db.connect() as c:
        assert {read_row(c, f).status for f in flights} == {"READY"}  # type: ignore[union-attr]


def test_reads_of_a_flight_with_a_bad_value_are_one_line(db: Engine) -> None:
    """A plain engine (not made by make_engine) cannot hold ±infinity: a typed one-line error."""
    flight = new_id()
    seed(db, flight, status="READY", owner=None)
    with db.begin() as c:
        c.execute(text("UPDATE flight SET completed_time = 'infinity'"))
    with pytest.raises(BadDatabaseValue) as caught:
        get_flight(db, flight)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("flight_id", ["a\nb", "x" * 500, "\x1b[31mred"])
def test_an_odd_unknown_flight_id_is_named_on_one_line(db: Engine, flight_id: str) -> None:
    """Before: `Unknown flight id <raw input>` — a newline in the id made it several lines
    (found by fuzz.contents)."""
    from repairtool.errors import UnknownFlight

    with pytest.raises(UnknownFlight) as caught:
        get_flight(db, flight_id)
    message = str(caught.value)
    assert "\n" not in message and "\x1b" not in message and len(message) < 120


def test_force_ready_with_a_stale_expectation_is_skipped(db: Engine, writer: EngineWriter) -> None:
    flight = new_id()
    seed(db, flight, status="RUNNING", owner=DEAD)
    writer.complete(flight, "FATAL")
    with db.connect() as c:
        seen = read_row(c, flight)
    assert seen is not None
    writer.groom(flight)
    result = recovery.force_ready(
        db, flight, expected=expect(FlightStatus.FATAL, None, seen.version), actor=WHO
    )
    assert result.outcome is Outcome.NOT_FOUND
