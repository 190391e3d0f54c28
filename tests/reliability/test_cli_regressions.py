"""The defects of issue 12 that live in the CLI, one test each (round two). Each test reproduced
its defect on the code before the fix (`main` at ff109ab); its docstring says what it was.

Most run `repairtool` in this process (`clirun.run_cli`: real stdout/stderr encodings, a clean
environment); the ones about bytes on the command line run it as a real process."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from repairtool.exitcodes import ExitCode
from tests.reliability.clirun import CliRun, clean_env, problems, run_cli, run_process
from tests.reliability.harness import (
    EngineWriter,
    history,
    insert_flight,
    new_id,
    read_row,
    register,
)

DEAD = "workspacemanager-deployment-68f9b944d5-5gwdm"
LIVE = "workspacemanager-deployment-68f9b944d5-9kgzp"
SECRET = "hunter2-Pa55w0rd"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return clean_env(state_dir=str(tmp_path / "state"))


@pytest.fixture
def url(db: Engine) -> str:
    return db.url.render_as_string(hide_password=False)


def cli(env: dict[str, str], *argv: str, internal_ok: bool = False) -> CliRun:
    run = run_cli(argv, env=env)
    p = problems(run, internal_ok=internal_ok)
    assert not (p.traceback or p.exit_code or p.one_line), (p, run.stderr)
    return run


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nowhere() -> str:
    """A database URL nobody listens on: validation must fail before it is tried (exit 2, not 4)."""
    return f"postgresql://u:{SECRET}@127.0.0.1:{closed_port()}/x"


def seed(db: Engine, flight: str, *, status: str = "RUNNING", owner: str | None = DEAD) -> None:
    with db.begin() as c:
        register(c, DEAD, LIVE)
        insert_flight(c, flight, status=status, owner=owner)


def error_of(run: CliRun) -> str:
    [line] = run.error_lines
    return line


# -- secrets and raw input in messages ----------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["orphans", "postgresql://u:{pw}@127.0.0.1:1/db"],
        ["orphans", "--bd", "postgresql://u:{pw}@127.0.0.1:1/db"],
        ["postgresql://u:{pw}@127.0.0.1:1/db"],
        ["flights", "list", "postgres://u@h/db?password={pw}"],
        ["flights", "list", "--status", "postgresql://u:{pw}@h/db"],
        ["flights", "list", "--env", "postgresql://u:{pw}@h/db"],
    ],
    ids=["positional", "typo-flag", "as-command", "query-password", "as-value", "as-env"],
)
def test_a_database_url_in_the_wrong_place_is_not_echoed(
    env: dict[str, str], argv: list[str]
) -> None:
    """Before: argparse's `unrecognized arguments: postgresql://u:PASSWORD@…` (and `invalid
    choice: '…'`, `invalid environment name '…'`) repeated the password."""
    run = cli(env, *[a.format(pw=SECRET) for a in argv])
    assert run.code in (ExitCode.USAGE, ExitCode.NOT_FOUND)
    assert SECRET not in run.stderr + run.stdout
    assert "hunter2" not in run.stderr


def test_an_unexpected_error_with_a_password_or_token_in_its_text_is_masked(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catch-all prints any exception's text: a URL password, `?password=` or a token in it
    must not reach the user (defence in depth behind the typed errors)."""
    import repairtool.cli.flights as flights

    def boom(args: object) -> int:
        raise RuntimeError(
            f"postgresql://u:{SECRET}@h:5432/db?password={SECRET} ya29.a0AfH6SMBxTOKENtoken123"
        )

    monkeypatch.setattr(flights, "cmd_count", boom)
    run = cli(env, "flights", "count", "--db", "postgresql://u@127.0.0.1:1/x", internal_ok=True)
    assert run.code == ExitCode.INTERNAL
    line = error_of(run)
    assert SECRET not in line and "TOKENtoken123" not in line
    assert "internal error (RuntimeError)" in line


def test_a_long_or_odd_bad_value_is_not_repeated_as_it_is(env: dict[str, str]) -> None:
    """Before: `invalid int value: '<the whole input>'` repeated any input, newlines included."""
    value = "1" * 50 + "\n\x1b[31mred" + "x" * 300
    run = cli(env, "flights", "list", "--limit", value, "--db", nowhere())
    assert run.code == ExitCode.USAGE
    line = error_of(run)
    assert "\x1b" not in line and "x" * 50 not in line and "--limit" in line


# -- arguments validated before anything is applied ---------------------------------------------


def test_a_bad_time_is_a_usage_error_not_a_traceback(env: dict[str, str]) -> None:
    """Before: `flights list --submitted-after garbage` raised UsageError inside argparse's type
    conversion, outside main's error handling: a traceback, exit 1."""
    run = cli(env, "flights", "list", "--submitted-after", "garbage", "--db", nowhere())
    assert run.code == ExitCode.USAGE
    assert "--submitted-after" in error_of(run)


@pytest.mark.parametrize(
    "argv",
    [
        ["flights", "list", "--limit", "99999999999999999999999"],
        ["flights", "list", "--limit", "-1"],
        ["flights", "list", "--offset", "-5"],
        ["flights", "list", "--offset", "1e400"],
        ["flights", "audit", "--limit", "-3"],
        ["catalog", "draft", "--limit", "-1"],
        ["catalog", "draft", "--limit", "0"],
        ["orphans", "--limit", "-1"],
        ["orphans", "--limit", "99999999999999999999999"],
        ["orphans", "--rate", "0"],
        ["orphans", "--rate", "-1"],
        ["orphans", "--rate", "nan"],
        ["orphans", "--rate", "inf"],
        ["orphans", "--stalled-after", "-5m"],
        ["orphans", "--stalled-after", "1e9d"],
        ["orphans", "--queue-retention", "99999999999999999999s"],
    ],
)
def test_counts_rates_and_durations_are_checked_before_the_database(
    env: dict[str, str], argv: list[str]
) -> None:
    """Before: a huge --limit reached Postgres ("bigint out of range": called a bad *database
    value*), a negative one was Postgres' error or silently empty (`flights audit --limit -3`
    printed "No changes recorded."), `--rate nan` was accepted; none was checked before
    connecting."""
    run = cli(env, *argv, "--db", nowhere())
    assert run.code == ExitCode.USAGE, run.stderr
    assert argv[-2] in error_of(run)


def test_a_bad_rate_changes_nothing(db: Engine, url: str, env: dict[str, str]) -> None:
    """Before (issue 12): `--rate -1` crashed after applying the first change."""
    flights = [new_id(), new_id()]
    for f in flights:
        seed(db, f)
    run = cli(
        env, "orphans", "--db", url, "--live-instances", LIVE, "--fix", "--reason", "r", "-y",
        "--rate", "-1",
    )  # fmt: skip
    assert run.code == ExitCode.USAGE
    with db.connect() as c:
        assert all(history(c, f) == [] for f in flights)


@pytest.mark.parametrize(
    "argv",
    [
        ["flights", "show", b"\xff\xfe"],
        ["flights", "list", "--class", b"caf\xe9"],
        ["orphans", "--class", b"\xff"],
        ["orphans", "--live-instances", LIVE, "--fix", "--reason", b"why \xff", "-y"],
    ],
)
def test_arguments_that_are_not_utf8_are_usage_errors(
    url: str, env: dict[str, str], argv: list[str | bytes]
) -> None:
    """Before: `UnicodeEncodeError` when the argument reached the database driver or stdout:
    exit 70 (internal error) for what is bad input."""
    run = run_process([*argv, "--db", url], env=env)
    p = problems(run)
    assert not (p.traceback or p.exit_code or p.one_line), (p, run.stderr)
    assert run.code == ExitCode.USAGE
    assert "UTF-8" in error_of(run)


def test_a_non_utf8_database_url_in_the_environment_is_a_usage_error(
    env: dict[str, str], tmp_path: Path
) -> None:
    env_file = tmp_path / "bad.env"
    env_file.write_bytes(b"STAIRWAY_DB_URL=postgresql://u@h/\xff\n")
    run = cli(env, "flights", "count", "--env-file", str(env_file))
    assert run.code == ExitCode.USAGE and "UTF-8" in error_of(run)
    run = run_process(
        ["flights", "count"], env={**env, "STAIRWAY_DB_URL": "postgresql://u@h/d\udcff"}
    )
    assert run.code == ExitCode.USAGE and not run.escaped, run.stderr


def test_a_directory_as_the_output_file_is_a_usage_error(
    url: str, env: dict[str, str], tmp_path: Path
) -> None:
    """Before: `catalog draft --out DIR` raised IsADirectoryError after reading the database:
    exit 70."""
    run = cli(env, "catalog", "draft", "--db", url, "--out", str(tmp_path))
    assert run.code == ExitCode.USAGE
    assert "directory" in error_of(run)


def test_an_empty_live_instances_list_is_an_error(
    db: Engine, url: str, env: dict[str, str]
) -> None:
    """Before: `--live-instances ""` silently fell back to the weakest liveness source (the
    stairwayinstance table) and went on."""
    seed(db, new_id())
    for value in ("", ",", " , "):
        run = cli(env, "orphans", "--db", url, "--live-instances", value)
        assert run.code == ExitCode.USAGE, (value, run.stdout)
        assert "--live-instances" in error_of(run)


def test_duplicate_keys_in_a_catalog_are_refused(
    url: str, env: dict[str, str], tmp_path: Path
) -> None:
    """Before: PyYAML kept the last of two equal keys: a catalog typo was silently half-used."""
    catalog = tmp_path / "dup.yaml"
    catalog.write_text(
        "version: 1\nflights:\n  a.b.C:\n    input:\n      k: {type: string}\n"
        "      k: {type: int}\n"
    )
    run = cli(env, "decode", "--db", url, "--catalog", str(catalog))
    assert run.code == ExitCode.USAGE
    assert "duplicate key" in error_of(run) and "line 6" in error_of(run)


def test_an_unknown_flight_is_not_found(db: Engine, url: str, env: dict[str, str]) -> None:
    """Before: `orphans --flight NO-SUCH-ID` printed "0 findings" and exited 0, as if the flight
    were fine; `recover instance NO-SUCH` was a usage error (2)."""
    known = new_id()
    seed(db, known)
    run = cli(env, "orphans", "--db", url, "--live-instances", LIVE, "--flight", "no-such-flight")
    assert run.code == ExitCode.NOT_FOUND and "no-such-flight" in error_of(run)
    run = cli(
        env, "orphans", "--db", url, "--live-instances", LIVE, "--flight", known,
        "--flight", "nope", "--fix", "--reason", "r", "-y",
    )  # fmt: skip
    assert run.code == ExitCode.NOT_FOUND
    with db.connect() as c:
        assert history(c, known) == []  # checked before anything was applied
    run = cli(env, "decode", "--db", url, "--flight", "no-such-flight")
    assert run.code == ExitCode.NOT_FOUND
    run = cli(env, "recover", "instance", "no-such-pod", "--db", url)
    assert run.code == ExitCode.NOT_FOUND


def test_catalog_draft_does_not_print_an_old_style_token_as_a_type_id(
    db: Engine, url: str, env: dict[str, str]
) -> None:
    """Before: an old-style OAuth token (`ya29.Gl…`: lower-case prefix, capital next) stored where
    a type id goes passed for a class name and was printed in the drafted catalog."""
    token = "ya29.GlsEBqFAKEoldSTYLEtokenXYZ0123456789abcdef"
    flight = new_id()
    with db.begin() as c:
        insert_flight(
            c, flight, status="SUCCESS", owner=None, class_name="a.b.TokenFlight",
            inputs={"k1": json.dumps([token, {"a": 1}]), "k2": json.dumps([token, "X"])},
        )  # fmt: skip
    run = cli(env, "catalog", "draft", "--db", url, "--class", "a.b.TokenFlight")
    assert run.code == ExitCode.OK
    assert "a.b.TokenFlight" in run.stdout
    assert token not in run.stdout and "GlsEBq" not in run.stdout


# -- named repairs and the liveness rule --------------------------------------------------------


def test_orphans_does_not_change_a_named_live_owned_flight(
    db: Engine, url: str, env: dict[str, str]
) -> None:
    """Naming a flight chooses it; it does not bypass the liveness rule (round one's library
    fix), seen through the CLI: refused, listed, exit 1, nothing changed. (Before, the JSON of a
    `--fix` with nothing to apply also lacked `applied`.)"""
    flight = new_id()
    seed(db, flight, owner=LIVE)
    run = cli(
        env, "orphans", "--db", url, "--live-instances", LIVE, "--flight", flight,
        "--stalled-after", "1s", "--action", "fail", "--fix", "--reason", "r", "-y", "--json",
    )  # fmt: skip
    assert run.code == ExitCode.FINDINGS
    doc = json.loads(run.stdout)
    assert [r["flight_id"] for r in doc["refused"]] == [flight] and doc["applied"] == []
    with db.connect() as c:
        assert history(c, flight) == []


def _dry_run(env: dict[str, str], *argv: str) -> dict[str, object]:
    run = cli(env, *argv, "--json")
    doc = json.loads(run.stdout)
    assert doc["schema"] == "repairtool.recover/1" and doc["dry_run"] is True
    return dict(doc)


def test_recover_does_not_disown_a_live_owned_flight_without_evidence(
    db: Engine, url: str, env: dict[str, str]
) -> None:
    """Before: `recover disown F --fix` disowned any RUNNING flight, recording it as forced:
    naming the flight bypassed the liveness rule (a live owner then runs it twice)."""
    flight = new_id()
    seed(db, flight, owner=LIVE)
    for liveness in (["--live-instances", LIVE], []):
        dry = cli(env, "recover", "disown", flight, "--db", url, *liveness)
        assert dry.code == ExitCode.REFUSED and "--force" in error_of(dry)
        fix = cli(
            env, "recover", "disown", flight, "--db", url, *liveness, "--expect-status",
            "RUNNING", "--expect-owner", LIVE, "--fix", "--reason", "r", "-y",
        )  # fmt: skip
        assert fix.code == ExitCode.REFUSED
    with db.connect() as c:
        assert history(c, flight) == []
    forced = cli(
        env, "recover", "disown", flight, "--db", url, "--force", "--expect-status", "RUNNING",
        "--expect-owner", LIVE, "--fix", "--reason", "r", "-y", "--json",
    )  # fmt: skip
    assert forced.code == ExitCode.OK, forced.stderr
    audit = cli(env, "flights", "audit", "--db", url, "--json")
    [record] = json.loads(audit.stdout)["audit"]
    assert record["evidence"]["evidence"] == "forced"


def test_recover_disowns_a_dead_owners_flight_with_the_pod_list_as_evidence(
    db: Engine, url: str, env: dict[str, str]
) -> None:
    flight = new_id()
    seed(db, flight, owner=DEAD)
    dry = _dry_run(env, "recover", "disown", flight, "--db", url, "--live-instances", LIVE)
    assert dry["expect"] == {
        "status": "RUNNING",
        "owner": DEAD,
        "version": dry["expect"]["version"],  # type: ignore[index]
    }
    assert dry["evidence"]["evidence"] == "owner_dead"  # type: ignore[index]
    fix = cli(
        env, "recover", "disown", flight, "--db", url, "--live-instances", LIVE,
        "--expect-status", "RUNNING", "--expect-owner", DEAD,
        "--expect-version", str(dry["expect"]["version"]),  # type: ignore[index]
        "--fix", "--reason", "r", "-y", "--json",
    )  # fmt: skip
    assert fix.code == ExitCode.OK, fix.stderr
    assert [r["outcome"] for r in json.loads(fix.stdout)["results"]] == ["changed"]
    with db.connect() as c:
        assert [(h.who, h.new_status) for h in history(c, flight)] == [("repairtool", "READY")]


def test_recover_fix_compares_against_what_the_dry_run_showed(
    db: Engine, url: str, env: dict[str, str], tmp_path: Path
) -> None:
    """Before: `recover disown F --fix` took the state it read at --fix time as its expectation,
    so a pod that came back under the same name and re-took the flight after the dry run had
    its fresh takeover disowned (14 of 120 CLI races)."""
    flight = new_id()
    seed(db, flight, owner=DEAD)
    dry = _dry_run(env, "recover", "disown", flight, "--db", url, "--live-instances", LIVE)
    saved = tmp_path / "dry-run.json"
    saved.write_text(json.dumps(dry))
    writer = EngineWriter(db.url)
    try:  # the container restarts: own name in the obsolete list, then it takes the flight
        writer.disown_recovery(DEAD)
        writer.register(DEAD)
        assert writer.resume(DEAD, flight)
    finally:
        writer.close()
    fix = cli(
        env, "recover", "disown", flight, "--db", url, "--live-instances", LIVE,
        "--expect-from", str(saved), "--fix", "--reason", "r", "-y", "--json",
    )  # fmt: skip
    assert fix.code == ExitCode.FINDINGS
    [result] = json.loads(fix.stdout)["results"]
    assert result["outcome"] == "skipped" and "changed since it was read" in result["detail"]
    with db.connect() as c:
        assert [h.who for h in history(c, flight)] == ["stairway-engine", "stairway-engine"]
        row = read_row(c, flight)
    assert row is not None and (row.status, row.owner) == ("RUNNING", DEAD)


def test_recover_fix_with_yes_needs_the_state_that_was_checked(
    db: Engine, url: str, env: dict[str, str]
) -> None:
    """Without a terminal nobody saw the state `--fix --yes` would compare against: it needs the
    expectation the dry run printed (or its JSON)."""
    flight = new_id()
    seed(db, flight, owner=DEAD)
    run = cli(
        env, "recover", "force-fatal", flight, "--db", url, "--live-instances", LIVE, "--fix",
        "--reason", "r", "-y",
    )  # fmt: skip
    assert run.code == ExitCode.REFUSED and "--expect-" in error_of(run)
    with db.connect() as c:
        assert history(c, flight) == []


def test_recover_instance_of_a_live_pod_is_refused(
    db: Engine, url: str, env: dict[str, str]
) -> None:
    flight = new_id()
    seed(db, flight, owner=LIVE)
    run = cli(env, "recover", "instance", LIVE, "--db", url, "--live-instances", LIVE)
    assert run.code == ExitCode.REFUSED
    with db.connect() as c:
        assert history(c, flight) == []
        assert (
            c.execute(
                text("SELECT count(*) FROM stairwayinstance WHERE stairway_name = :n"), {"n": LIVE}
            ).scalar()
            == 1
        )


# -- a plan stopped part-way still says what it did ---------------------------------------------


@pytest.fixture
def refuse_second(db: Engine) -> Iterator[str]:
    """A trigger that refuses any UPDATE of one flight (the database fails mid-plan)."""
    victim = new_id()
    with db.begin() as c:
        c.execute(
            text(
                "CREATE FUNCTION refuse_fn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                f" IF OLD.flightid = '{victim}' AND NEW.status IS DISTINCT FROM OLD.status"
                " THEN RAISE EXCEPTION 'refused'; END IF;"
                " RETURN NEW; END $$"
            )
        )
        c.execute(
            text(
                "CREATE TRIGGER refuse_trg BEFORE UPDATE ON flight FOR EACH ROW"
                " EXECUTE FUNCTION refuse_fn()"
            )
        )
    yield victim


def test_a_fix_stopped_by_an_error_still_prints_its_json(
    db: Engine, url: str, env: dict[str, str], refuse_second: str
) -> None:
    """Before: an error part-way through `--fix` (here the database refuses the second change)
    was raised past the rendering: exit 4 and no JSON document — a script could not tell which
    changes were applied."""
    first = new_id()
    seed(db, first)
    seed(db, refuse_second)
    with db.begin() as c:  # detection orders by submit time: the refused one comes second
        c.execute(
            text(
                "UPDATE flight SET submit_time = submit_time + interval '1 minute'"
                " WHERE flightid = :f"
            ),
            {"f": refuse_second},
        )
    run = cli(
        env, "orphans", "--db", url, "--live-instances", LIVE, "--action", "fail", "--fix",
        "--reason", "r", "-y", "--json",
    )  # fmt: skip
    assert run.code == ExitCode.DB_UNREACHABLE
    doc = json.loads(run.stdout)
    assert [a["flight_id"] for a in doc["applied"]] == [first]
    assert [a["flight_id"] for a in doc["failed"]] == [refuse_second]
    assert [a["instance"] for a in doc["not_attempted"]] == [DEAD]
    assert doc["error"]["exit_code"] == ExitCode.DB_UNREACHABLE
    assert "raised by a trigger" in error_of(run)


# -- found by the CLI fuzz (cli.fuzz.*) ----------------------------------------------------------


@pytest.mark.parametrize("action", ["up", "down", "status", "destroy"])
def test_a_file_as_the_state_directory_is_a_usage_error(
    env: dict[str, str], tmp_path: Path, action: str
) -> None:
    """Found by cli.fuzz.args: `local destroy --state-dir FILE` (and `up`) raised
    NotADirectoryError: exit 70."""
    state = tmp_path / "a-file"
    state.write_text("x")
    run = cli(env, "local", action, "--state-dir", str(state), "--pg-bin", "/nonexistent")
    assert run.code == ExitCode.USAGE
    assert "not a directory" in error_of(run)
    assert state.read_text() == "x"


def test_an_environment_file_that_is_not_utf8_is_a_usage_error(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Found by cli.fuzz.args: `--env NAME` whose envs/NAME.yaml is not UTF-8 raised
    UnicodeDecodeError: exit 70."""
    envs = tmp_path / "envs"
    envs.mkdir()
    (envs / "fz.yaml").write_bytes(b"name: fz\nkind: \xff\xfe\n")
    run = cli({**env, "STAIRWAY_OPS_ENVS_DIR": str(envs)}, "orphans", "--env", "fz")
    assert run.code == ExitCode.USAGE
    assert "not UTF-8" in error_of(run)


def test_an_environment_file_nested_thousands_deep_is_a_usage_error(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Found by cli.fuzz.args: PyYAML's parser recursed past Python's limit on `envs/NAME.yaml`
    holding `name: [[[[…`: RecursionError, exit 70."""
    envs = tmp_path / "envs"
    envs.mkdir()
    (envs / "fz.yaml").write_text("name: " + "[" * 3000 + "]" * 3000 + "\n")
    run = cli({**env, "STAIRWAY_OPS_ENVS_DIR": str(envs)}, "decode", "--env", "fz")
    assert run.code == ExitCode.USAGE
    assert "nested too deeply" in error_of(run)


def test_a_flight_without_a_class_name_is_listed(db: Engine, url: str, env: dict[str, str]) -> None:
    """Found by cli.fuzz.db: a NULL class_name (a schema without the NOT NULL) made `flights list`
    raise TypeError in its table: exit 70."""
    flight = new_id()
    with db.begin() as c:
        c.execute(text("ALTER TABLE flight ALTER COLUMN class_name DROP NOT NULL"))
        insert_flight(c, flight, status="SUCCESS", owner=None)
        c.execute(text("UPDATE flight SET class_name = NULL WHERE flightid = :f"), {"f": flight})
    for output in ("table", "wide", "markdown", "json"):
        run = cli(env, "flights", "list", "--db", url, "-o", output)
        assert run.code == ExitCode.OK
        assert flight in run.stdout


# -- the rest of the issue's list, through the CLI (fixed below it in round one) ----------------


@pytest.mark.parametrize("port", ["99999", "0", "-1", "65536", "5432x", "1e3"])
def test_a_port_out_of_range_is_refused_before_connecting(env: dict[str, str], port: str) -> None:
    run = cli(env, "flights", "list", "--db", f"postgresql://u:{SECRET}@127.0.0.1:{port}/db")
    assert run.code == ExitCode.USAGE and "port" in error_of(run)
    assert SECRET not in run.stderr


def test_orphans_named_does_not_disown_a_fresh_takeover(
    db: Engine, url: str, env: dict[str, str]
) -> None:
    """Issue 12: "stalled" was measured from the submit or last log time, not from the ownership
    change: `orphans --flight F --fix` disowned a flight a live pod had just taken over."""
    flight = new_id()
    seed(db, flight, owner=DEAD)
    writer = EngineWriter(db.url)
    try:
        writer.disown_recovery(DEAD)
        assert writer.resume(LIVE, flight)  # just now
    finally:
        writer.close()
    run = cli(
        env, "orphans", "--db", url, "--live-instances", LIVE, "--flight", flight,
        "--stalled-after", "10m", "--fix", "--reason", "r", "-y", "--json",
    )  # fmt: skip
    assert run.code == ExitCode.OK
    assert json.loads(run.stdout)["findings"] == []
    with db.connect() as c:
        assert [h.who for h in history(c, flight)] == ["stairway-engine", "stairway-engine"]


def test_recover_enqueue_skips_a_flight_a_pod_took_since_the_dry_run(
    db: Engine, url: str, env: dict[str, str], tmp_path: Path
) -> None:
    """Issue 12: enqueue read the flight outside its transaction and ignored the row count (an
    audit row, CHANGED and a READY message for a flight another pod owned)."""
    flight = new_id()
    seed(db, flight, status="READY", owner=None)
    argv = ["recover", "enqueue", flight, "--db", url, "--cluster", "c", "--project", "p"]
    dry = _dry_run(env, *argv)
    saved = tmp_path / "dry.json"
    saved.write_text(json.dumps(dry))
    writer = EngineWriter(db.url)
    try:
        assert writer.resume(LIVE, flight)
    finally:
        writer.close()
    fix = cli(env, *argv, "--expect-from", str(saved), "--fix", "--reason", "r", "-y", "--json")
    assert fix.code == ExitCode.FINDINGS  # skipped: never published (no work queue is reachable)
    [result] = json.loads(fix.stdout)["results"]
    assert result["outcome"] == "skipped" and result["audit_id"] is None
    with db.connect() as c:
        assert [h.who for h in history(c, flight)] == ["stairway-engine"]


@pytest.mark.parametrize(
    ("shape", "dry", "fix"),
    [
        ("ALTER TABLE flight RENAME COLUMN stairway_id TO owner_id", 6, 6),
        ("DROP TABLE stairwayinstance", 6, 6),
        (
            "ALTER TABLE flight ALTER COLUMN submit_time TYPE timestamptz;"
            " ALTER TABLE flightlog ALTER COLUMN log_time TYPE timestamptz",
            1,
            0,
        ),
        (
            "ALTER TABLE flight ALTER COLUMN submit_time DROP NOT NULL;"
            " UPDATE flight SET submit_time = NULL; UPDATE flightlog SET log_time = 'infinity'",
            1,
            0,
        ),
        ("CREATE SCHEMA stairway_ops; CREATE TABLE stairway_ops.audit (id int, note text)", 1, 3),
        ("SELECT-only role", 1, 3),
    ],
    ids=["renamed-column", "no-stairwayinstance", "timestamptz", "null-infinity", "foreign-audit",
         "select-only"],
)  # fmt: skip
def test_odd_database_shapes_through_the_cli(
    db: Engine, url: str, env: dict[str, str], shape: str, dry: int, fix: int
) -> None:
    """Issue 12's database shapes (each a traceback, exit 1, before round one) seen as a user
    sees them: a dry run and a `--fix`, one line and the documented code each."""
    flight = new_id()
    seed(db, flight)
    if shape == "SELECT-only role":
        role = f"reader_{new_id()[:8]}"
        with db.begin() as c:
            c.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD 'pw'"))
            c.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"))
        url = db.url.set(username=role, password="pw").render_as_string(hide_password=False)
    else:
        with db.begin() as c:
            for statement in shape.split(";"):
                c.execute(text(statement))
    base = ["orphans", "--db", url, "--live-instances", LIVE, "--action", "fail"]
    assert cli(env, *base).code == dry
    assert cli(env, *base, "--fix", "--reason", "r", "-y").code == fix
    with db.connect() as c:
        changed = [h for h in history(c, flight) if h.who == "repairtool"]
    assert bool(changed) == (fix == 0)


def test_a_double_dash_as_an_option_value_is_a_usage_error(env: dict[str, str]) -> None:
    """`flights list --status=--` was exit 70 (`'list' object has no attribute 'strip'`):
    argparse hands a `--` value on as an empty list. Found by the full cli.fuzz.args soak."""
    for option in ("--status=--", "--owner=--", "--class=--"):
        run = cli(env, "flights", "list", "--db", nowhere(), option)
        assert run.code == ExitCode.USAGE, run.stderr
        assert f"{option[:-3]}: '--' is not a value" in run.stderr
    assert SECRET not in run.stderr
