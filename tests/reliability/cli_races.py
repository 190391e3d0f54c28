"""Races through the CLI: `repairtool` as an operator runs it, against a concurrent engine.

Each trial seeds a RUNNING flight — owned by a dead pod (the usual orphan) or, one time in four,
by the live pod (a slow step: it must never be touched) — and runs one of
- `orphans --flight F --fix` (named) or `orphans --fix` (unnamed: the whole database, the dead
  pod's instance included), resume or `--action fail`;
- `recover disown F` / `recover force-fatal F`: the dry run (`-o json`), then `--fix` with
  `--expect-from` that document;
while the engine does what a live Stairway does to the flight (races.py: complete, yield,
disownRecovery, a takeover — also by a pod back under the same name —, nothing) at a random
moment: during the `--fix` run, or between the dry run and the fix. One trial in ten runs the CLI
as a real process. Invariants, from the change history the trigger records:
- `no_clobber`: every change the tool made started from a row version its plan saw (the
  `row_version` in its JSON findings, or the dry run's `expect.version`);
- `live_never_touched`: no change to a flight the live pod owned (no `--force` is ever given);
- `audit_iff_applied`: one audit row per change, none without;
- `reported_iff_applied`: the JSON reports the flight applied (`changed`) iff it changed;
- `cli_outcome`: no traceback, an exit code of the table (never 70), errors on one line.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from repairtool.stairway.audit import ensure_audit_table
from tests.reliability.clirun import CliRun, clean_env, problems, run_cli, run_process
from tests.reliability.harness import (
    EngineWriter,
    changed_versions,
    concurrently,
    insert_flight,
    new_id,
    register,
)
from tests.reliability.races import LIVE
from tests.reliability.soak import Soak, SoakEnv, SoakResult, Tally
from tests.reliability.soak import register as register_soak

INVARIANTS = (
    "no_clobber",
    "live_never_touched",
    "audit_iff_applied",
    "reported_iff_applied",
    "cli_outcome",
)
COMMANDS = ("orphans-named", "orphans-unnamed", "recover-disown", "recover-force-fatal")
REAL_PROCESS_SHARE = 0.1


@dataclass
class World:
    url: str
    admin: Engine
    writer: EngineWriter
    env: dict[str, str]
    tmp: Path
    rng: random.Random
    span: dict[bool, float]  # how long a --fix run takes: in process / as a real process

    def run(self, argv: list[str], real: bool) -> CliRun:
        if real:
            return run_process(argv, env=self.env)
        return run_cli(argv, env=self.env)


def _engine_action(w: World, flight: str, owner: str) -> tuple[str, Callable[[], Any]]:
    e = w.writer
    return w.rng.choice(
        [
            ("disownRecovery", lambda: e.disown_recovery(owner)),
            ("disownRecovery+resume", lambda: (e.disown_recovery(owner), e.resume(LIVE, flight))),
            (
                "restart-same-name",
                lambda: (e.disown_recovery(owner), e.register(owner), e.resume(owner, flight)),
            ),
            ("complete", lambda: e.complete(flight)),
            ("yield", lambda: e.yield_ready(flight)),
            ("none", lambda: None),
        ]
    )


def _json(run: CliRun) -> dict[str, Any] | None:
    try:
        doc = json.loads(run.stdout)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _seen_by_orphans(doc: dict[str, Any] | None, flight: str) -> tuple[set[str], bool]:
    """The row versions the plan saw for `flight`, and whether the JSON reports it changed."""
    if doc is None:
        return set(), False
    seen: set[str] = set()
    for f in doc.get("findings", []):
        ev = f.get("evidence", {})
        if f.get("flight_id") == flight and ev.get("row_version"):
            seen.add(str(ev["row_version"]))
        if flight in (ev.get("running_versions") or {}):
            seen.add(str(ev["running_versions"][flight]))
    changed = any(
        r.get("flight_id") == flight and r.get("outcome") == "changed"
        for key in ("applied", "skipped", "failed")
        for a in doc.get(key, [])
        for r in a.get("results", [])
    )
    return seen, changed


def _trial(w: World, t: Tally) -> None:
    rng = w.rng
    live_owned = rng.random() < 0.25
    owner = LIVE if live_owned else f"workspacemanager-deployment-dead-{rng.randrange(16**6):06x}"
    flight = new_id()
    with w.admin.begin() as c:
        register(c, LIVE, owner)
        insert_flight(c, flight, status="RUNNING", owner=owner)
    command = rng.choice(COMMANDS)
    label, action = _engine_action(w, flight, owner)
    real = rng.random() < REAL_PROCESS_SHARE
    t.stats[f"{command}{' (process)' if real else ''}"] += 1
    t.stats[f"engine {label}"] += 1
    db = ["--db", w.url, "--live-instances", LIVE]
    fix = ["--fix", "--reason", "cli race", "-y", "--json"]
    runs: list[CliRun] = []
    if command.startswith("orphans"):
        argv = ["orphans", *db, *(["--flight", flight] if command == "orphans-named" else [])]
        argv += ["--action", "fail"] if rng.random() < 0.4 else []
        with concurrently(action, rng.uniform(0, w.span[real])):
            runs.append(w.run([*argv, *fix], real))
        seen, reported = _seen_by_orphans(_json(runs[-1]), flight)
    else:
        verb = command.removeprefix("recover-")
        dry = w.run(["recover", verb, flight, *db, "--json"], real)
        runs.append(dry)
        doc = _json(dry)
        saved = w.tmp / f"{flight}.json"
        saved.write_text(dry.stdout)
        seen = {str(doc["expect"]["version"])} if doc and doc.get("expect") else set()
        argv = ["recover", verb, flight, *db, "--expect-from", str(saved), *fix]
        if rng.random() < 0.5:  # the engine moves on between the dry run and the fix
            t.stats["engine between dry run and fix"] += 1
            action()
            runs.append(w.run(argv, real))
        else:
            with concurrently(action, rng.uniform(0, w.span[real])):
                runs.append(w.run(argv, real))
        fixed = _json(runs[-1])
        reported = bool(fixed) and any(
            r.get("outcome") == "changed"
            for r in fixed.get("results", [])  # type: ignore[union-attr]
        )
    for run in runs:
        p = problems(run)
        t.check(
            "cli_outcome",
            not (p.traceback or p.exit_code or p.one_line),
            lambda p=p: f"{p.traceback or p.exit_code or p.one_line}",
        )
    with w.admin.connect() as c:
        changes = changed_versions(c, flight, "repairtool")
        audited = c.execute(
            text("SELECT count(*) FROM stairway_ops.audit WHERE flightid = :f"), {"f": flight}
        ).scalar_one()
    t.check(
        "no_clobber",
        all(v in seen for v, _ in changes),
        lambda: f"{command} {flight} ({label}): changed from {changes}, plan saw {seen}",
    )
    t.check(
        "live_never_touched",
        all(o != LIVE for _, o in changes),
        lambda: f"{command} {flight} ({label}): changed a live pod's flight: {changes}",
    )
    t.check(
        "audit_iff_applied",
        audited == len(changes),
        lambda: f"{command} {flight}: {audited} audit rows, {len(changes)} changes",
    )
    t.check(
        "reported_iff_applied",
        reported == (len(changes) == 1) and len(changes) <= 1,
        lambda: f"{command} {flight} ({label}): reported {reported}, changes {changes}",
    )
    t.stats["changed" if changes else "not changed"] += 1
    with w.admin.begin() as c:  # the flight ends, the dead pod's row goes: the next trial is clean
        c.execute(
            text(
                "UPDATE flight SET status = 'SUCCESS', stairway_id = NULL,"
                " completed_time = LOCALTIMESTAMP WHERE flightid = :f"
            ),
            {"f": flight},
        )
        c.execute(text("DELETE FROM stairwayinstance WHERE stairway_name <> :l"), {"l": LIVE})


def _calibrate(w: World) -> None:
    """How long one `orphans --fix` takes here, in process and as a real process."""
    for real in (False, True):
        flight = new_id()
        with w.admin.begin() as c:
            register(c, LIVE)
            insert_flight(c, flight, status="SUCCESS", owner=None)
        began = time.monotonic()
        w.run(["orphans", "--db", w.url, "--live-instances", LIVE, "--flight", flight], real)
        w.span[real] = time.monotonic() - began


def _run(env: SoakEnv, trials: int, rng: random.Random) -> SoakResult:
    started = time.monotonic()
    t = Tally(INVARIANTS)
    url, admin = env.stairway_db()
    ensure_audit_table(admin)
    tmp = Path(tempfile.mkdtemp(prefix="cli-races-"))
    w = World(
        url.render_as_string(hide_password=False),
        admin,
        EngineWriter(url),
        clean_env(state_dir=str(tmp / "state")),
        tmp,
        rng,
        {},
    )
    try:
        _calibrate(w)
        for _ in range(trials):
            _trial(w, t)
    finally:
        w.writer.close()
        admin.dispose()
    notes = [
        f"a named dry run takes {w.span[False] * 1000:.0f} ms in process,"
        f" {w.span[True] * 1000:.0f} ms as a process"
    ]
    return t.result("cli.races", "cli", trials, started, notes)


register_soak(
    Soak(
        "cli.races",
        "cli",
        "orphans --fix (named and unnamed) and recover --fix after its dry run, through the CLI,"
        " against a concurrent engine writer",
        INVARIANTS,
        _run,
        full=300,
        ci=16,
    )
)
