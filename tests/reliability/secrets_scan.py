"""Secrets: plant tokens and passwords everywhere they can be, then scan everything the library
produced for them.

Each trial makes fresh secrets — an OAuth access token (`ya29.…`), a JWT, a password full of URL
characters (`@ / : ? # %`) and a plain one — and plants them:
- in FlightMaps: `auth_user_info`'s token, an `accessToken` key, a token inside a description,
  a token where the catalog expects an enum or a UUID (a decode failure), a password under a
  nested `password` key, a token in `serialized_exception` and in a working-map row;
- in the database login: the role's password, in every URL form (`user:pw@host`, `?password=`,
  percent-encoded, `postgres://`), used to connect (it must authenticate), with a closed port,
  a wrong password and a missing database (each must fail with one line);
- in database errors: a trigger that raises with the stored value in its message, a cast of a
  token that fails.
Then it runs detection (both readers), every plan, the apply (resume with READY messages, fail,
re-encode), direct input rewrites, and scans every error message, log record (with tracebacks),
audit row, event and result for any planted secret or any 8-character piece of a password.
Invariants (0 hits each): `errors`, `logs`, `audit_rows`, `events_and_results`; and
`url_forms_authenticate` — each URL form reaches the database with its password.
"""

from __future__ import annotations

import json
import logging
import random
import string
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from repairtool.detect import Action, Options, detect
from repairtool.errors import RepairToolError
from repairtool.events import Event
from repairtool.flightmap import ReaderVersion, load_builtin_catalog
from repairtool.flightmap.errors import FlightMapError
from repairtool.liveness import from_names
from repairtool.repair import apply_plan, build_plan, read_inputs
from repairtool.stairway import recovery
from repairtool.stairway.audit import Actor
from repairtool.stairway.db import make_engine, parse_url, run_read
from tests.reliability.harness import (
    FAST,
    RecordingQueue,
    compatible,
    insert_flight,
    new_id,
    register,
)
from tests.reliability.soak import Soak, SoakEnv, SoakResult, Tally
from tests.reliability.soak import register as register_soak

LIVE = "workspacemanager-deployment-live-0001"
POJO = "bio.terra.workspace.service.iam.AuthenticatedUserRequest"
CATALOG = load_builtin_catalog("workspace-manager")
WHO = Actor(reason="secret scan", name="soak@example")
ROLE = "secret_scan_user"
INVARIANTS = ("errors", "logs", "audit_rows", "events_and_results", "url_forms_authenticate")


def _random(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _secrets(rng: random.Random) -> dict[str, str]:
    word = string.ascii_letters + string.digits
    return {
        "token": "ya29." + _random(rng, word + "_-", 40),
        "jwt": "eyJ"
        + _random(rng, word, 20)
        + "."
        + _random(rng, word, 30)
        + "."
        + _random(rng, word, 20),
        "url_password": _random(rng, word, 6) + "@/:?#%" + _random(rng, word, 8) + "@x",
        "plain_password": _random(rng, word, 18),
    }


def _pieces(secrets: dict[str, str]) -> list[str]:
    """What must not appear: each secret, and every 8-character piece of the passwords (a
    password cut at '@' must not leak its tail either)."""
    out = set(secrets.values())
    for key in ("url_password", "plain_password"):
        pw = secrets[key]
        out.update(pw[i : i + 8] for i in range(len(pw) - 7))
    out.update(s[5:25] for s in (secrets["token"],))
    return sorted(out)


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.texts: list[str] = []
        self.formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(record.getMessage())
        if record.exc_info:
            self.texts.append(self.formatter.formatException(record.exc_info))


@contextmanager
def _logs() -> Iterator[Capture]:
    """Every log record at INFO and above — SQLAlchemy's statement log included, as `echo=True`
    would turn it on (its parameters must stay hidden)."""
    root = logging.getLogger()
    sql = logging.getLogger("sqlalchemy.engine")
    handler = Capture()
    old, old_sql = root.level, sql.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    sql.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
        sql.setLevel(old_sql)


def _plant(admin: Engine, s: dict[str, str], pod: str) -> list[str]:
    """Flights whose FlightMaps hold the secrets (one per place), owned by a dead pod."""
    pojo = json.dumps(
        [POJO, {"email": "u@x", "subjectId": None, "token": s["token"], "reqId": None}]
    )
    places = [
        {"auth_user_info": pojo, "workspaceStage": '"MC_WORKSPACE"'},
        {"accessToken": json.dumps(s["token"]), "description": json.dumps(f"see {s['token']} ok")},
        {"workspaceStage": json.dumps(s["token"]), "workspaceId": json.dumps(s["jwt"])},
        {
            "request": json.dumps(
                ["java.util.HashMap", {"nested": {"password": s["plain_password"]}}]
            )
        },
    ]
    flights = []
    with admin.begin() as c:
        register(c, pod)
        for inputs in places:
            f = new_id()
            insert_flight(c, f, status="RUNNING", owner=pod, inputs=inputs)
            c.execute(
                text("UPDATE flight SET serialized_exception = :e WHERE flightid = :f"),
                {"f": f, "e": f"java.lang.IllegalStateException: token {s['token']} expired"},
            )
            log_id = str(uuid.uuid4())
            c.execute(
                text(
                    "INSERT INTO flightlog (id, flightid, log_time, step_index, succeeded, status,"
                    " serialized_exception, rerun, direction) VALUES (:l, :f, LOCALTIMESTAMP"
                    " - interval '1 hour', 1, true, 'RUNNING', '', false, 'DO')"
                ),
                {"l": log_id, "f": f},
            )
            c.execute(
                text("INSERT INTO flightworking (flightlog_id, key, value) VALUES (:l, 'tok', :v)"),
                {"l": log_id, "v": json.dumps(s["jwt"])},
            )
            flights.append(f)
    return flights


def _url_forms(url: URL, pw: str) -> list[str]:
    host = f"127.0.0.1:{url.port}/{url.database}"
    return [
        # raw: '@', '/', ':', '?' and '#' may stay as they are; '%' is written %25
        f"postgresql://{ROLE}:{pw.replace('%', '%25')}@{host}",
        f"postgresql://{ROLE}@{host}?password={quote(pw, safe='')}",
        f"postgresql://{ROLE}:{quote(pw, safe='')}@{host}",
        f"postgres://{ROLE}:{quote(pw, safe='')}@{host}?sslmode=disable",
    ]


def _trial(env_url: URL, admin: Engine, rng: random.Random, t: Tally) -> None:
    s = _secrets(rng)
    pieces = _pieces(s)
    texts: dict[str, list[str]] = {
        k: [] for k in ("errors", "logs", "audit_rows", "events_and_results")
    }

    def expect_error(what: str, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except (RepairToolError, FlightMapError) as error:
            texts["errors"].append(f"{what}: {error}")
        except Exception as error:  # anything else is a traceback a user would see: scan it all
            texts["errors"].append(f"{what}: UNTYPED {type(error).__name__}: {error}")

    pw = s["url_password"]
    with admin.begin() as c:
        c.execute(text(f"ALTER ROLE {ROLE} PASSWORD '{pw.replace(chr(39), chr(39) * 2)}'"))
    pod = f"workspacemanager-deployment-dead-{rng.randrange(16**6):06x}"
    flights = _plant(admin, s, pod)
    events: list[Event] = []
    with _logs() as logs:
        # the login: every URL form must authenticate, and fail without repeating the password
        good: Engine | None = None
        for form in _url_forms(env_url, pw):
            settings = parse_url(form, "--db")
            texts["events_and_results"].extend([repr(settings), str(settings), settings.safe_url])
            engine = make_engine(settings)
            try:
                run_read(engine, lambda c: c.execute(text("SELECT 1")).scalar(), policy=FAST)
                ok = True
            except RepairToolError as error:
                ok = False
                texts["errors"].append(str(error))
            t.check(
                "url_forms_authenticate",
                ok,
                lambda form=form: f"a URL form did not log in ({form[:12]}…)",
            )
            if good is None and ok:
                good = engine
            else:
                engine.dispose()
            for broken, why in (
                (form.replace(f":{env_url.port}/", ":1/"), "closed port"),
                (
                    form.replace(quote(pw, safe=""), quote(pw + "x", safe="")).replace(
                        pw.replace("%", "%25"), pw.replace("%", "%25") + "x"
                    ),
                    "wrong password",
                ),
                (form.replace(f"/{env_url.database}", "/no_such_db"), "no database"),
            ):

                def connect(b: str = broken) -> None:
                    e = make_engine(parse_url(b, "--db"))
                    try:
                        run_read(e, lambda c: 1, policy=FAST)
                    finally:
                        e.dispose()

                expect_error(why, connect)
        if good is None:
            return
        try:
            # detection, every plan, the apply
            queue = RecordingQueue("soak-project", "terra-soak-workspace-stairway")
            for reader in ReaderVersion:
                found = detect(good, from_names([LIVE]), Options(catalog=CATALOG, reader=reader))
                texts["events_and_results"].extend(
                    json.dumps(f.to_json(), default=str) for f in found.findings
                )
                inputs = read_inputs(good, flights)
                for action in (None, Action.RESUME, Action.FAIL, Action.REENCODE):
                    plan = build_plan(
                        found,
                        action=action,
                        queue=queue,
                        catalog=CATALOG,
                        reader=reader,
                        inputs=inputs,
                        force=True,
                    )
                    texts["events_and_results"].extend(
                        json.dumps(c.to_json()) for c in plan.changes
                    )
                    texts["events_and_results"].extend(
                        json.dumps(r.to_json()) for r in plan.refused
                    )
            plan = build_plan(
                found,
                action=rng.choice([Action.RESUME, Action.REENCODE, Action.FAIL]),
                queue=queue,
                catalog=CATALOG,
                reader=ReaderVersion.LEGACY,
                inputs=inputs,
                force=True,
            )
            out = compatible(
                apply_plan, good, plan, actor=WHO, queue=queue, on_event=events.append, policy=FAST
            )
            for a in (*out.applied, *out.skipped):
                texts["events_and_results"].append(json.dumps(a.to_json(), default=str))
            # direct rewrites whose values hold the secrets (the audit keeps them masked)
            f = flights[0]
            current = read_inputs(good, [f])[f]
            for key, value in current.items():
                new = value.replace("u@x", f"u@x {s['token']}")
                r = recovery.rewrite_input(
                    good, f, key, old_value=value, new_value=new, actor=WHO, policy=FAST
                )
                texts["events_and_results"].append(repr(r))
            # database errors that carry a stored value
            with admin.begin() as c:
                c.execute(
                    text(
                        "CREATE OR REPLACE FUNCTION refuse_fn() RETURNS trigger LANGUAGE plpgsql AS"
                        " $$ BEGIN RAISE EXCEPTION 'refused value %', NEW.value; END $$"
                    )
                )
                c.execute(text("DROP TRIGGER IF EXISTS refuse_trg ON flightinput"))
                c.execute(
                    text(
                        "CREATE TRIGGER refuse_trg BEFORE UPDATE ON flightinput FOR EACH ROW"
                        " EXECUTE FUNCTION refuse_fn()"
                    )
                )
            f2 = flights[1]
            current = read_inputs(good, [f2])[f2]
            key, value = next(iter(current.items()))
            expect_error(
                "trigger",
                lambda: recovery.rewrite_input(
                    good,
                    f2,
                    key,
                    old_value=value,
                    new_value=json.dumps(s["plain_password"] + s["token"]),
                    actor=WHO,
                    policy=FAST,
                ),
            )
            expect_error(
                "cast",
                lambda: run_read(
                    good,
                    lambda c: c.execute(text("SELECT CAST(:v AS uuid)"), {"v": s["token"]}),
                    policy=FAST,
                ),
            )
            with admin.begin() as c:
                c.execute(text("DROP TRIGGER refuse_trg ON flightinput"))
        finally:
            good.dispose()
    texts["logs"] = logs.texts
    texts["events_and_results"].extend(
        f"{e.kind} {e.message} {json.dumps(e.data, default=str)}" for e in events
    )
    with admin.connect() as c:
        texts["audit_rows"] = [
            str(r)
            for r in c.execute(
                text("SELECT row_to_json(a)::text FROM stairway_ops.audit a")
            ).scalars()
        ]
    for where, found_texts in texts.items():
        hits = [(p, x) for x in found_texts for p in pieces if p in x]
        t.check(where, not hits, lambda hits=hits: f"{len(hits)} hits, e.g. {hits[0][1][:200]!r}")
        t.stats[f"{where} scanned"] += len(found_texts)
    with admin.begin() as c:  # keep the audit trail small: the scan reads it whole
        c.execute(text("TRUNCATE stairway_ops.audit"))
        c.execute(
            text(
                "UPDATE flight SET status = 'SUCCESS', stairway_id = NULL WHERE status <> 'SUCCESS'"
            )
        )
        c.execute(text("DELETE FROM stairwayinstance WHERE stairway_name <> :l"), {"l": LIVE})


def _run(env: SoakEnv, trials: int, rng: random.Random) -> SoakResult:
    started = time.monotonic()
    t = Tally(INVARIANTS)
    url, admin = env.stairway_db(history=False)
    with admin.begin() as c:
        register(c, LIVE)
        c.execute(
            text(
                f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}')"
                f" THEN CREATE ROLE {ROLE} LOGIN; END IF; END $$"
            )
        )
        c.execute(text(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {ROLE}"))
        c.execute(text(f'GRANT CREATE ON DATABASE "{url.database}" TO {ROLE}'))
        c.execute(text("CREATE SCHEMA stairway_ops"))
        c.execute(text(f"GRANT ALL ON SCHEMA stairway_ops TO {ROLE}"))
        c.execute(
            text(f"ALTER DEFAULT PRIVILEGES IN SCHEMA stairway_ops GRANT ALL ON TABLES TO {ROLE}")
        )
        c.execute(
            text(
                f"ALTER DEFAULT PRIVILEGES IN SCHEMA stairway_ops GRANT ALL ON SEQUENCES TO {ROLE}"
            )
        )
    try:
        for _ in range(trials):
            _trial(url, admin, rng, t)
    finally:
        admin.dispose()
    return t.result("secrets.scan", "library", trials, started, [])


register_soak(
    Soak(
        "secrets.scan",
        "library",
        "tokens in FlightMaps and passwords in every URL form vs errors, logs, audit, events",
        INVARIANTS,
        _run,
        full=200,
        ci=5,
    )
)
