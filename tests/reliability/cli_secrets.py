"""Secrets through the CLI: every command's output, every error path, and the journal and runbooks
an experiment builds from them — scanned for tokens and passwords planted everywhere.

Each trial makes fresh secrets (secrets_scan.py: an OAuth token, a JWT, a password full of URL
characters, a plain one) and plants them in every place a FlightMap or an exception can hold
one: `flightinput` (auth_user_info's token, an accessToken key, a token inside a description, a
token where an enum or a UUID belongs — a decode failure —, a nested password), `flightworking`,
the legacy whole-map JSON (`flightlog.working_parameters`, `flight.output_parameters`),
`flightpersisted`, `flight.serialized_exception`, `flightlog.serialized_exception`,
`flight.debug_info`; the database role's password goes into the URL in one of its forms, given
as `--db`, `$STAIRWAY_DB_URL`, `--env-file` or an environment file (`--env NAME`, the password
from the variable it names). Then `repairtool` runs every read command in every output format
(`flights show --raw` excepted: it prints stored values on purpose), the dry runs and the fixes
(resume, fail, reencode, recover), and the error paths: a wrong password and a closed port in
the same URL form, a missing database, the URL given without `--db` or to `--env`, a trigger
that raises with the stored value, files holding the token where a catalog, a dry-run document
or a dotenv line is expected. Last, the runs become an experiment journal (the committed
single-instance journal with these commands and repair documents in it), written by
`opskit.journal` and rendered into runbooks by `opskit.runbooks`.
Invariants (0 hits each): `cli_outputs`, `error_paths`, `journal`, `runbooks` — no planted
secret and no 8-character piece of a password anywhere —, and `url_forms_authenticate`: the URL
form reached the database with its password.
"""

from __future__ import annotations

import json
import random
import shlex
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import yaml
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from opskit import journal as journals
from opskit import runbooks
from repairtool.clock import rfc3339, utcnow
from tests.reliability.clirun import CliRun, clean_env, run_cli
from tests.reliability.harness import insert_flight, new_id, register
from tests.reliability.secrets_scan import ROLE, _pieces, _secrets, _url_forms
from tests.reliability.soak import Soak, SoakEnv, SoakResult, Tally
from tests.reliability.soak import register as register_soak

ROOT = Path(__file__).resolve().parents[2]
LIVE = "workspacemanager-deployment-live-0001"
POJO = "bio.terra.workspace.service.iam.AuthenticatedUserRequest"
INVARIANTS = ("cli_outputs", "error_paths", "journal", "runbooks", "url_forms_authenticate")
HOWS = ("--db", "variable", "env-file", "env")
JOURNAL = ROOT / "runbooks" / "journals" / "single-instance-pod-kill-local.json"


@dataclass
class Trial:
    secrets: dict[str, str]
    pod: str
    flights: list[str]
    how: str
    form: str
    tmp: Path
    env: dict[str, str] = field(default_factory=dict)
    db_args: list[str] = field(default_factory=list)
    runs: list[tuple[str, CliRun]] = field(default_factory=list)  # (purpose, run)
    errors: list[tuple[str, CliRun]] = field(default_factory=list)


def _plant(admin: Engine, s: dict[str, str], pod: str) -> list[str]:
    """Flights of a dead pod whose every FlightMap place holds a secret."""
    token, jwt, pw = s["token"], s["jwt"], s["plain_password"]
    pojo = json.dumps([POJO, {"email": "u@x", "subjectId": None, "token": token, "reqId": None}])
    inputs = [
        {"auth_user_info": pojo, "workspaceStage": '"MC_WORKSPACE"'},
        {"accessToken": json.dumps(token), "description": json.dumps(f"see {token} ok")},
        {"workspaceStage": json.dumps(token), "workspaceId": json.dumps(jwt)},
        {"request": json.dumps(["java.util.HashMap", {"nested": {"password": pw}}])},
    ]
    legacy = json.dumps(["java.util.HashMap", {"tok": token, "auth": json.loads(pojo)}])
    flights = []
    with admin.begin() as c:
        register(c, pod, LIVE)
        for values in inputs:
            f = new_id()
            insert_flight(c, f, status="RUNNING", owner=pod, inputs=values, logs=0)
            c.execute(
                text(
                    "UPDATE flight SET serialized_exception = :e, output_parameters = :o,"
                    " debug_info = :d WHERE flightid = :f"
                ),
                {
                    "f": f,
                    "e": f"java.lang.IllegalStateException: token {token} expired",
                    "o": legacy,
                    "d": json.dumps({"restartEachStep": False, "note": f"Bearer {jwt}"}),
                },
            )
            log_id = str(uuid.uuid4())
            c.execute(
                text(
                    "INSERT INTO flightlog (id, flightid, log_time, working_parameters, step_index,"
                    " succeeded, status, serialized_exception, rerun, direction) VALUES (:l, :f,"
                    " LOCALTIMESTAMP - interval '1 hour', :w, 1, true, 'RUNNING', :e, false, 'DO')"
                ),
                {"l": log_id, "f": f, "w": legacy, "e": f"caused by: password={pw}"},
            )
            c.execute(
                text("INSERT INTO flightworking (flightlog_id, key, value) VALUES (:l, 'tok', :v)"),
                {"l": log_id, "v": json.dumps(jwt)},
            )
            c.execute(
                text(
                    "INSERT INTO flightpersisted (flightid, key, value) VALUES (:f,"
                    " 'StairwayProgressMeters', :v)"
                ),
                {"f": f, "v": json.dumps(["java.util.HashMap", {"token": token}])},
            )
            flights.append(f)
    return flights


def _env_yaml(name: str, url: URL, variable: str) -> str:
    """A `gke` environment file whose database is the soak's, its password from `variable`."""
    doc = yaml.safe_load((ROOT / "envs" / "jcarlton.yaml").read_text())
    doc["name"] = name
    doc["gke"]["kubeconfig"] = "/nonexistent/kubeconfig"
    db = doc["stairway"]["db"]
    db.update(name=url.database, user=ROLE, host="127.0.0.1", port=url.port)
    db["password"] = {"env": variable}
    return yaml.safe_dump(doc)


def _connect(t: Trial, url: URL, rng: random.Random) -> None:
    """How this trial gives the database: `how` × one URL form with the role's password."""
    pw = t.secrets["url_password"]
    forms = _url_forms(url, pw)
    t.form = rng.choice(forms)
    t.how = rng.choice(HOWS)
    if t.how == "--db":
        t.db_args = ["--db", t.form]
    elif t.how == "variable":
        t.env["STAIRWAY_DB_URL"] = t.form
    elif t.how == "env-file":
        path = t.tmp / "db.env"
        path.write_text(f"# secrets scan\nSTAIRWAY_DB_URL={t.form}\n")
        t.db_args = ["--env-file", str(path)]
    else:
        envs = t.tmp / "envs"
        envs.mkdir(exist_ok=True)
        (envs / "scan.yaml").write_text(_env_yaml("scan", url, "SCAN_DB_PASSWORD"))
        t.env.update(STAIRWAY_OPS_ENVS_DIR=str(envs), SCAN_DB_PASSWORD=pw)
        t.db_args = ["--env", "scan"]


def _run(t: Trial, purpose: str, *argv: str, error: bool = False) -> CliRun:
    run = run_cli(list(argv), env=t.env)
    (t.errors if error else t.runs).append((purpose, run))
    return run


def _commands(t: Trial, live: list[str]) -> None:
    """Every read command in every format, the dry runs and the fixes."""
    db = t.db_args
    for out in ("table", "wide", "json", "markdown"):
        _run(t, "orphans-dry-run" if out != "json" else "orphans-dry-run-json",
             "orphans", *db, *live, "-o", out)  # fmt: skip
        _run(t, "decode", "decode", *db, "--all", "-o", out)
        _run(t, "flights-nonterminal", "flights", "list", *db, "-o", out)
        _run(t, "flights-count", "flights", "count", *db, "--status", "RUNNING", "-o", out)
        _run(t, "instances", "flights", "instances", *db, "-o", out)
        _run(t, "generation", "flights", "generation", *db, "-o", out)
        for f in t.flights:
            _run(t, "flight-show", "flights", "show", f, *db, "-o", out)
    _run(t, "catalog-draft", "catalog", "draft", *db)
    out_file = t.tmp / "draft.yaml"
    run = _run(t, "catalog-draft-out", "catalog", "draft", *db, "--out", str(out_file))
    if out_file.exists():
        run.stdout += out_file.read_text(errors="replace")
    first, second, third, fourth = t.flights
    fix = ["--fix", "--reason", "secret scan", "-y", "--json"]
    _run(t, "decode-fix-reencode", "decode", *db, "--flight", first, "--action", "reencode", *fix)
    _run(t, "orphans-fix-reencode", "orphans", *db, *live, "--flight", third,
         "--action", "reencode", "--force", *fix)  # fmt: skip
    _run(t, "orphans-fix-fail", "orphans", *db, *live, "--flight", second, "--action", "fail",
         *fix)  # fmt: skip
    dry = _run(t, "recover-dry-run", "recover", "disown", fourth, *db, *live, "--json")
    saved = t.tmp / "dry.json"
    saved.write_text(dry.stdout)
    _run(t, "recover-fix", "recover", "disown", fourth, *db, *live, "--expect-from", str(saved),
         *fix)  # fmt: skip
    _run(t, "orphans-fix", "orphans", *db, *live, *fix)
    _run(t, "orphans-recheck", "orphans", *db, *live)
    for out in ("table", "wide", "json", "markdown"):
        _run(t, "audit", "flights", "audit", *db, "-o", out)


def _error_paths(t: Trial, url: URL, admin: Engine) -> None:
    """Each way a command fails, with the secrets where the failure could repeat them."""
    pw, token = t.secrets["url_password"], t.secrets["token"]
    quoted = quote(pw, safe="")
    wrong = t.form.replace(quoted, quote(pw + "x", safe="")).replace(
        pw.replace("%", "%25"), pw.replace("%", "%25") + "x"
    )
    closed = t.form.replace(f":{url.port}/", ":1/")
    missing = t.form.replace(f"/{url.database}", "/no_such_db")
    for purpose, form in (("wrong password", wrong), ("closed port", closed), ("no db", missing)):
        _run(t, purpose, "flights", "list", "--db", form, error=True)
        _run(t, purpose, "orphans", "--json", "--db", form, error=True)
    _run(t, "URL without --db", "orphans", t.form, error=True)
    _run(t, "URL to a mistyped flag", "flights", "list", "--bd", t.form, error=True)
    _run(t, "URL as the command", t.form, error=True)
    _run(t, "URL to --env", "flights", "list", "--env", t.form, error=True)
    _run(t, "URL as a status", "flights", "count", "--status", t.form, *t.db_args, error=True)
    _run(t, "token as a flight id", "flights", "show", token, *t.db_args, error=True)
    bad = t.tmp / "bad"
    bad.mkdir(exist_ok=True)
    (bad / "catalog.yaml").write_text(f"version: 1\nflights:\n  {token}: [{token}\n")
    _run(t, "token in a catalog", "decode", *t.db_args, "--catalog", str(bad / "catalog.yaml"),
         error=True)  # fmt: skip
    (bad / "dry.json").write_text(json.dumps({"schema": token, "expect": {"version": token}}))
    _run(t, "token in a dry-run document", "recover", "disown", t.flights[0], *t.db_args,
         "--expect-from", str(bad / "dry.json"), "--fix", "--reason", "r", "-y",
         error=True)  # fmt: skip
    (bad / "db.env").write_text(f"{token} {pw}\nSTAIRWAY_DB_URL={t.form}\n")
    _run(t, "token in a dotenv line", "flights", "list", "--env-file", str(bad / "db.env"),
         error=True)  # fmt: skip
    with admin.begin() as c:  # the database refuses, quoting the stored value in its message
        c.execute(
            text(
                "CREATE OR REPLACE FUNCTION scan_refuse_fn() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN RAISE EXCEPTION 'refused %', NEW.serialized_exception; END $$"
            )
        )
        c.execute(text("DROP TRIGGER IF EXISTS scan_refuse_trg ON flight"))
        c.execute(
            text(
                "CREATE TRIGGER scan_refuse_trg BEFORE UPDATE ON flight FOR EACH ROW"
                " EXECUTE FUNCTION scan_refuse_fn()"
            )
        )
    try:
        _run(t, "trigger", "recover", "force-fatal", t.flights[0], *t.db_args, "--force",
             "--expect-status", "RUNNING", "--expect-owner", t.pod, "--fix", "--reason", "r",
             "-y", "--json", error=True)  # fmt: skip
    finally:
        with admin.begin() as c:
            c.execute(text("DROP TRIGGER scan_refuse_trg ON flight"))


def _journal(t: Trial, out: Path) -> tuple[list[str], str]:
    """The committed single-instance journal with this trial's commands and repair documents;
    written by opskit.journal, rendered by opskit.runbooks. Returns (runbook texts, journal)."""
    doc = json.loads(JOURNAL.read_text())
    now = utcnow()
    records = []
    pw = t.secrets["url_password"]
    known = [pw, quote(pw, safe=""), pw.replace("%", "%25")]
    for n, (purpose, run) in enumerate([*t.runs, *t.errors]):
        command_id = purpose if purpose in journals.COMMAND_IDS else "audit"
        # the runner never puts a secret in a command's text (CommandLog refuses one): the
        # database is named by $STAIRWAY_DB_URL, anything token-like masked
        args = ["$STAIRWAY_DB_URL" if any(k in a for k in known) else a for a in run.argv]
        shown = journals.redact(" ".join(shlex.quote(a) for a in args))
        records.append(
            {
                "id": command_id,
                "command": f"repairtool {shown}"[:400],
                "at": rfc3339(now),
                "rc": run.code,
                "duration_s": 0.1 + n / 1000,
                "output_tail": (run.stdout + run.stderr).splitlines()[-40:],
            }
        )
    doc["commands"] = [*doc["commands"], *records]  # later records win where a runbook quotes
    docs = {p: json.loads(r.stdout) for p, r in t.runs if r.stdout.startswith("{")}
    attempt = doc["attempts"][0]
    if attempt.get("repair") is not None:
        attempt["repair"]["dry_run"] = docs.get("orphans-dry-run-json")
        attempt["repair"]["fix"] = docs.get("orphans-fix")
        audit = next((d for p, d in docs.items() if p == "audit"), {"audit": []})
        attempt["repair"]["audit"] = audit.get("audit", [])
    journal = journals.Journal.from_json(doc, source="secret scan")
    path = journal.write(out / "journal.json")  # refuses a journal that holds a secret
    rendered, _ = runbooks.render_all([journals.load(path)])
    return [r.text for r in rendered], path.read_text()


def _trial(url: URL, admin: Engine, rng: random.Random, t_: Tally, tmp: Path) -> None:
    s = _secrets(rng)
    pieces = _pieces(s)
    pw = s["url_password"]
    with admin.begin() as c:
        c.execute(text(f"ALTER ROLE {ROLE} PASSWORD '{pw.replace(chr(39), chr(39) * 2)}'"))
    pod = f"workspacemanager-deployment-dead-{rng.randrange(16**6):06x}"
    t = Trial(s, pod, _plant(admin, s, pod), "", "", tmp, clean_env(state_dir=str(tmp / "st")))
    _connect(t, url, rng)
    t_.stats[f"given by {t.how}"] += 1
    live = ["--live-instances", LIVE]
    first = _run(t, "flights-count", "flights", "count", *t.db_args)
    t_.check(
        "url_forms_authenticate",
        first.code == 0,
        lambda: f"{t.how} with a URL form did not log in: exit {first.code}",
    )
    # the control: `--raw` prints stored values on purpose — if the planted token is not there,
    # the flights hold no secret and the scan below could not fail
    raw = run_cli(["flights", "show", t.flights[0], *t.db_args, "--raw"], env=t.env)
    t_.check(
        "cli_outputs",
        s["token"] in raw.stdout,
        lambda: (
            f"the control failed: `flights show --raw` does not show the planted token ({raw.code})"
        ),
    )
    _commands(t, live)
    _error_paths(t, url, admin)

    def hits(texts: list[str]) -> list[str]:
        return [x for x in texts for p in pieces if p in x]

    outputs = [r.stdout + r.stderr for _, r in t.runs]
    errors = [r.stdout + r.stderr for _, r in t.errors]
    t_.stats["runs scanned"] += len(outputs)
    t_.stats["error paths scanned"] += len(errors)
    for invariant, texts in (("cli_outputs", outputs), ("error_paths", errors)):
        found = hits(texts)
        t_.check(invariant, not found, lambda found=found: f"{found[0][:200]!r}")
    try:
        books, journal_text = _journal(t, tmp / "journal")
    except journals.SecretInJournal as refused:
        why = str(refused)
        t_.check("journal", False, lambda: f"the journal writer refused: {why}")
        return
    t_.check("journal", not hits([journal_text]), lambda: "a secret in the journal")
    t_.check(
        "runbooks", not hits(books), lambda: f"a secret in a runbook: {hits(books)[0][:200]!r}"
    )
    t_.stats["runbooks scanned"] += len(books)


def _setup(env: SoakEnv) -> tuple[URL, Engine]:
    url, admin = env.stairway_db(history=False)
    with admin.begin() as c:
        c.execute(
            text(
                f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}')"
                f" THEN CREATE ROLE {ROLE} LOGIN; END IF; END $$"
            )
        )
        c.execute(text(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {ROLE}"))
        c.execute(text(f'GRANT CREATE ON DATABASE "{url.database}" TO {ROLE}'))
        c.execute(text("CREATE SCHEMA IF NOT EXISTS stairway_ops"))
        c.execute(text(f"GRANT ALL ON SCHEMA stairway_ops TO {ROLE}"))
        c.execute(
            text(f"ALTER DEFAULT PRIVILEGES IN SCHEMA stairway_ops GRANT ALL ON TABLES TO {ROLE}")
        )
        c.execute(
            text(
                f"ALTER DEFAULT PRIVILEGES IN SCHEMA stairway_ops GRANT ALL ON SEQUENCES TO {ROLE}"
            )
        )
    return url, admin


def _soak(env: SoakEnv, trials: int, rng: random.Random) -> SoakResult:
    started = time.monotonic()
    t = Tally(INVARIANTS)
    url, admin = _setup(env)
    try:
        for _ in range(trials):
            tmp = Path(tempfile.mkdtemp(prefix="cli-secrets-"))
            try:
                _trial(url, admin, rng, t, tmp)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
                with admin.begin() as c:  # the next trial plants its own flights
                    c.execute(
                        text(
                            "TRUNCATE flight, flightinput, flightlog, flightworking,"
                            " flightpersisted"
                        )
                    )
                    c.execute(text("DELETE FROM stairwayinstance"))
                    c.execute(text("TRUNCATE stairway_ops.audit"))
    finally:
        admin.dispose()
    return t.result("cli.secrets", "cli", trials, started, [])


register_soak(
    Soak(
        "cli.secrets",
        "cli",
        "tokens in every FlightMap place, passwords in every URL form and way of giving it, vs"
        " every command's output, error paths, the journal and the runbooks",
        INVARIANTS,
        _soak,
        full=60,
        ci=1,
    )
)
