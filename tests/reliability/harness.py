"""What the reliability suite runs against: a real Postgres, the engine's own SQL as a concurrent
writer, a history of every committed change, and a work queue that records what it published.

- `install_history`: a trigger on `flight` (and `flightinput`) numbers every row version (`rev`)
  and records each committed UPDATE/DELETE — with the `xmin` of the version it replaced — and
  who made it (`application_name`): the engine
  writer is `stairway-engine`, the tool `repairtool`. "The engine's committed update is never
  overwritten" is then checkable: every change the tool made must start from the row version its
  plan was built from.
- `EngineWriter`: what a live Stairway does to a flight, with the engine's exact SQL
  (`stairway-engine.md` §1.4 complete and disown, §3.3 disownRecovery, §3.5 resume), each call
  one SERIALIZABLE transaction retried like DbRetry.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import URL

from repairtool.stairway.db import RetryPolicy, is_retryable, make_engine, parse_url
from repairtool.stairway.model import FlightState
from repairtool.stairway.queue import WorkQueue

T = TypeVar("T")

WSM_CREATE = "bio.terra.workspace.service.workspace.flight.WorkspaceCreateFlight"
ENGINE_APP = "stairway-engine"
TOOL_APP = "repairtool"
#: the tool's retry rule with short sleeps (same attempts and SQLSTATEs as DbRetry)
FAST = RetryPolicy(attempts=20, min_sleep=0.002, max_sleep=0.02)

HISTORY_DDL = (
    "ALTER TABLE flight ADD COLUMN rev int NOT NULL DEFAULT 0",
    # one sequence for both histories: numbers follow the order the row locks were taken
    "CREATE SEQUENCE history_seq",
    """CREATE TABLE flight_history (
        seq bigint PRIMARY KEY DEFAULT nextval('history_seq'),
        flightid varchar(36), who text, op text, old_rev int, old_status text,
        old_owner text, new_status text, new_owner text,
        at timestamptz DEFAULT clock_timestamp(), old_xmin text)""",
    """CREATE FUNCTION flight_history_fn() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP = 'UPDATE' THEN
        NEW.rev := OLD.rev + 1;
        INSERT INTO flight_history (flightid, who, op, old_rev, old_status, old_owner,
          new_status, new_owner, old_xmin) VALUES (OLD.flightid,
          current_setting('application_name'), 'UPDATE', OLD.rev, OLD.status, OLD.stairway_id,
          NEW.status, NEW.stairway_id, OLD.xmin::text);
        RETURN NEW;
      END IF;
      INSERT INTO flight_history (flightid, who, op, old_rev, old_status, old_owner)
        VALUES (OLD.flightid, current_setting('application_name'), 'DELETE', OLD.rev,
        OLD.status, OLD.stairway_id);
      RETURN OLD;
    END $$""",
    "CREATE TRIGGER flight_history_trg BEFORE UPDATE OR DELETE ON flight"
    " FOR EACH ROW EXECUTE FUNCTION flight_history_fn()",
    """CREATE TABLE flightinput_history (
        seq bigint PRIMARY KEY DEFAULT nextval('history_seq'),
        flightid varchar(36), key text, who text, old_value text, new_value text)""",
    """CREATE FUNCTION flightinput_history_fn() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO flightinput_history (flightid, key, who, old_value, new_value) VALUES
        (OLD.flightid, OLD.key, current_setting('application_name'), OLD.value, NEW.value);
      RETURN NEW;
    END $$""",
    "CREATE TRIGGER flightinput_history_trg BEFORE UPDATE ON flightinput"
    " FOR EACH ROW EXECUTE FUNCTION flightinput_history_fn()",
)


def install_history(engine: Engine) -> None:
    with engine.begin() as conn:
        for stmt in HISTORY_DDL:
            conn.execute(text(stmt))


@dataclass(frozen=True)
class HistoryRow:
    who: str
    op: str
    old_rev: int
    old_status: str | None
    old_owner: str | None
    new_status: str | None
    new_owner: str | None


def history(conn: Connection, flight_id: str) -> list[HistoryRow]:
    return [
        HistoryRow(*r)
        for r in conn.execute(
            text(
                "SELECT who, op, old_rev, old_status, old_owner, new_status, new_owner"
                " FROM flight_history WHERE flightid = :f ORDER BY seq"
            ),
            {"f": flight_id},
        ).all()
    ]


def changed_versions(conn: Connection, flight_id: str, who: str) -> list[tuple[str, str | None]]:
    """(the row version — `xmin` — each change by `who` started from, the owner it replaced):
    what the CLI-level races compare with the versions the tool's plan saw."""
    return [
        (str(r[0]), r[1])
        for r in conn.execute(
            text(
                "SELECT old_xmin, old_owner FROM flight_history WHERE flightid = :f AND who = :w"
                " AND op = 'UPDATE' ORDER BY seq"
            ),
            {"f": flight_id, "w": who},
        ).all()
    ]


def input_history(conn: Connection, flight_id: str) -> list[tuple[str, str, str, str]]:
    return [
        (r.key, r.who, r.old_value, r.new_value)
        for r in conn.execute(
            text(
                "SELECT key, who, old_value, new_value FROM flightinput_history"
                " WHERE flightid = :f ORDER BY seq"
            ),
            {"f": flight_id},
        ).all()
    ]


def audit_rows(conn: Connection, op_id: str) -> int:
    return int(
        conn.execute(
            text("SELECT count(*) FROM stairway_ops.audit WHERE op_id = CAST(:op AS uuid)"),
            {"op": op_id},
        ).scalar_one()
    )


@dataclass(frozen=True)
class Row:
    """The flight row as a plan saw it."""

    status: str | None
    owner: str | None
    version: str
    rev: int


def read_row(conn: Connection, flight_id: str) -> Row | None:
    r = conn.execute(
        text("SELECT status, stairway_id, xmin::text, rev FROM flight WHERE flightid = :f"),
        {"f": flight_id},
    ).first()
    return Row(r[0], r[1], r[2], r[3]) if r else None


def with_app(url: URL, app: str) -> Engine:
    """A plain engine (not the tool's) whose sessions name themselves `app`."""
    return create_engine(
        url.set(drivername="postgresql+psycopg"),
        pool_size=4,
        max_overflow=8,
        connect_args={"application_name": app},
    )


def tool_engine(url: URL, *, app: str = TOOL_APP, sslmode_off: bool = False) -> Engine:
    """The tool's engine exactly as the CLI makes it (`make_engine`)."""
    raw = url.set(drivername="postgresql+psycopg")
    if sslmode_off:
        raw = raw.update_query_dict({"sslmode": "disable"})
    settings = parse_url(raw.render_as_string(hide_password=False), "test")
    return compatible(make_engine, settings, application_name=app)


# -- seeding ------------------------------------------------------------------------------------


def insert_flight(
    conn: Connection,
    flight_id: str,
    *,
    status: str,
    owner: str | None,
    submitted_ago: dt.timedelta = dt.timedelta(hours=3),
    inputs: dict[str, str] | None = None,
    logs: int = 1,
    class_name: str = WSM_CREATE,
) -> None:
    """A flight as the engine stores it: flight row and inputs in one transaction (the submit),
    then `logs` flightlog rows (written by the owner, one step each)."""
    now = conn.execute(text("SELECT LOCALTIMESTAMP")).scalar_one()
    submitted = now - submitted_ago
    conn.execute(
        text(
            "INSERT INTO flight (flightid, submit_time, class_name, status, stairway_id,"
            " serialized_exception, debug_info, completed_time) VALUES (:f, :t, :c, :s, :o, '',"
            " '{}', :done)"
        ),
        {
            "f": flight_id,
            "t": submitted,
            "c": class_name,
            "s": status,
            "o": owner,
            "done": now if status in ("SUCCESS", "ERROR", "FATAL") else None,
        },
    )
    for key, value in (inputs or {"description": '"a flight"'}).items():
        conn.execute(
            text("INSERT INTO flightinput (flightid, key, value) VALUES (:f, :k, :v)"),
            {"f": flight_id, "k": key, "v": value},
        )
    for step in range(logs):
        conn.execute(
            text(
                "INSERT INTO flightlog (flightid, log_time, step_index, succeeded, status,"
                " serialized_exception, rerun, direction, working_parameters)"
                " VALUES (:f, :t, :i, true, 'RUNNING', '', false, 'DO', NULL)"
            ),
            {"f": flight_id, "t": submitted + dt.timedelta(seconds=step + 1), "i": step},
        )


def register(conn: Connection, *names: str) -> None:
    for n in names:
        conn.execute(
            text(
                "INSERT INTO stairwayinstance (stairway_name, stairway_id) VALUES (:n, :n)"
                " ON CONFLICT DO NOTHING"
            ),
            {"n": n},
        )


def new_id() -> str:
    return str(uuid.uuid4())


# -- the engine as a concurrent writer ----------------------------------------------------------


class EngineWriter:
    """What a live Stairway does to flights, with its exact SQL; one SERIALIZABLE transaction per
    call, retried like DbRetry (SQLSTATE 40001, 40P01, 08*, 53*). Sessions are `stairway-engine`."""

    def __init__(self, url: URL, *, retry: RetryPolicy = FAST) -> None:
        self.engine = with_app(url, ENGINE_APP)
        self.retry = retry

    def close(self) -> None:
        self.engine.dispose()

    def _write(self, body: Callable[[Connection], T]) -> T:
        for attempt in range(1, self.retry.attempts + 1):
            try:
                with self.engine.connect() as raw:
                    conn = raw.execution_options(isolation_level="SERIALIZABLE")
                    with conn.begin():
                        return body(conn)
            except Exception as error:
                retry, _ = is_retryable(error)
                if not retry or attempt == self.retry.attempts:
                    raise
                self.retry.sleep()
        raise AssertionError("unreachable")

    def complete(self, flight_id: str, status: str = "SUCCESS") -> bool:
        """§1.4 complete (HEAD form): only a RUNNING flight; the owner is not checked."""
        return self._write(
            lambda c: (
                c.execute(
                    text(
                        "UPDATE flight SET completed_time = CURRENT_TIMESTAMP, status = :status,"
                        " serialized_exception = '', stairway_id = NULL WHERE flightid = :flightId"
                        " AND status = 'RUNNING'"
                    ),
                    {"status": status, "flightId": flight_id},
                ).rowcount
                == 1
            )
        )

    def yield_ready(self, flight_id: str) -> bool:
        """§1.4 disown (STOP / quietDown): RUNNING → READY, owner cleared."""
        return self._write(
            lambda c: (
                c.execute(
                    text(
                        "UPDATE flight SET status = :status, stairway_id = NULL WHERE flightid ="
                        " :flightId AND status = 'RUNNING'"
                    ),
                    {"status": "READY", "flightId": flight_id},
                ).rowcount
                == 1
            )
        )

    def queued(self, flight_id: str) -> bool:
        """§1.4 submit to queue, second half: READY → QUEUED after publishing."""
        return self._write(
            lambda c: (
                c.execute(
                    text(
                        "UPDATE flight SET status = :status WHERE stairway_id IS NULL"
                        " AND flightid = :flightId AND status = 'READY'"
                    ),
                    {"status": "QUEUED", "flightId": flight_id},
                ).rowcount
                == 1
            )
        )

    def disown_recovery(self, stairway_id: str) -> list[str]:
        """§3.3: the instance's RUNNING flights → READY; its stairwayinstance row deleted."""

        def body(c: Connection) -> list[str]:
            rows = c.execute(
                text(
                    "SELECT flightid, class_name, debug_info, status FROM flight WHERE"
                    " stairway_id = :stairwayId AND status = 'RUNNING'"
                ),
                {"stairwayId": stairway_id},
            ).all()
            if rows:
                c.execute(
                    text(
                        "UPDATE flight SET status = 'READY', stairway_id = NULL WHERE"
                        " stairway_id = :stairwayId AND status = 'RUNNING'"
                    ),
                    {"stairwayId": stairway_id},
                )
            c.execute(
                text("DELETE FROM stairwayinstance WHERE stairway_id = :stairwayId"),
                {"stairwayId": stairway_id},
            )
            return [str(r[0]) for r in rows]

        return self._write(body)

    def register(self, name: str) -> None:
        """`findOrCreate`: a pod (re)registers its instance at start-up."""
        self._write(lambda c: register(c, name))

    def resume(self, stairway_id: str, flight_id: str) -> bool:
        """§3.5: take ownership of an unowned WAITING/READY/QUEUED/READY_TO_RESTART flight."""

        def body(c: Connection) -> bool:
            row = c.execute(
                text(
                    "SELECT class_name, debug_info, status FROM flight WHERE (status = 'WAITING'"
                    " OR status = 'READY' OR status = 'QUEUED' OR status = 'READY_TO_RESTART')"
                    " AND stairway_id IS NULL AND flightid = :flightId"
                ),
                {"flightId": flight_id},
            ).first()
            if row is None:
                return False
            c.execute(
                text(
                    "UPDATE flight SET status = :status, stairway_id = :stairwayId WHERE"
                    " flightid = :flightId"
                ),
                {"status": "RUNNING", "stairwayId": stairway_id, "flightId": flight_id},
            )
            return True

        return self._write(body)

    def groom(self, flight_id: str) -> bool:
        """§1.4 grooming / deleteFlight of a completed flight."""

        def body(c: Connection) -> bool:
            n = c.execute(
                text("DELETE FROM flight WHERE flightid = :f AND completed_time IS NOT NULL"),
                {"f": flight_id},
            ).rowcount
            c.execute(text("DELETE FROM flightinput WHERE flightid = :f"), {"f": flight_id})
            c.execute(text("DELETE FROM flightlog WHERE flightid = :f"), {"f": flight_id})
            return n == 1

        return self._write(body)


# -- the work queue -----------------------------------------------------------------------------


@dataclass
class RecordingQueue(WorkQueue):
    """A work queue that records each message it publishes (and, with `inner`, publishes it on a
    real topic — the Pub/Sub emulator)."""

    inner: WorkQueue | None = None
    published: list[str] = field(default_factory=list)
    fail_next: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def publish(self, message: str, timeout: float = 30.0) -> str:
        from repairtool.stairway.queue import QueueError

        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                raise QueueError(f"publishing to {self.topic_path} failed: test outage")
        message_id = self.inner.publish(message, timeout) if self.inner is not None else new_id()
        with self._lock:
            self.published.append(json.loads(message)["flightId"])
        return message_id

    def count(self, flight_id: str) -> int:
        with self._lock:
            return self.published.count(flight_id)


# -- timing helpers -----------------------------------------------------------------------------


@contextmanager
def concurrently(fn: Callable[[], Any], delay: float) -> Iterator[list[Any]]:
    """Run `fn` in a thread after `delay` seconds (negative: before the block starts); the list
    holds its result (or exception) after the block."""
    out: list[Any] = []

    def run() -> None:
        if delay > 0:
            time.sleep(delay)
        try:
            out.append(fn())
        except BaseException as error:  # reported by the caller
            out.append(error)

    if delay < 0:
        run()
        yield out
        return
    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield out
    finally:
        t.join(30)


def jitter(rng: random.Random, low: float = -0.002, high: float = 0.006) -> float:
    return rng.uniform(low, high)


def compatible(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call `fn` with the keywords its signature accepts, so each regression test also runs
    against the code before its fix (whose API lacked e.g. `expected=` or `because=`) and fails
    there on the behaviour, not on a TypeError."""
    import inspect

    params = inspect.signature(fn).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return fn(*args, **kwargs)


def expect(status: str, owner: str | None, version: str | None = None) -> FlightState:
    """The state a plan saw (`compatible`: the code before the fix had no row version)."""
    return compatible(FlightState, status, owner, version=version)
