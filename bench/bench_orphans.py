"""Benchmark: `repairtool orphans` end to end vs the same detection as one `psql` query (the
floor), side by side on one generated database (issue 11's: 1,000,000 flights, 5,000 RUNNING —
2,500 owned by a dead pod — 3 log rows and 3 inputs each; `bench/benchdb.py`).

    python bench/bench_orphans.py [--flights 1000000] [--waiting 200] [--repeat 3]
                                  [--state-dir .stairway-ops/bench]

The database is generated once and kept in the state dir's Postgres for re-runs. Figures are
medians of --repeat runs, interleaved; ratios are against baselines measured in the same run:

* orphans: (`repairtool orphans --json` wall time − `python -c pass` wall time) / the psql floor
  (target ≤ 1.5); the same for `-o table` and `--no-decode`; peak RSS of each;
* the driver floor (`bench/driver_floor.py`: python, import psycopg, connect, the same query,
  fetch the rows): its ratio to the psql floor is what no code of ours can remove, so orphans is
  also given as a ratio to it;
* start-up: `repairtool --help`, `repairtool orphans --help` (target ≤ 0.1 s) and the time from
  process start to the first SQL statement (target ≤ 0.15 s), next to `python -c pass`.

The JSON document is checked: its dead_owner findings are the generator's (the issue's 2,500).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchdb import LIVE, Spec, ensure  # noqa: E402
from bench.measure import FirstQuery, Run, bench_env, run  # noqa: E402
from repairtool.localpg import LocalPostgres, PgServer  # noqa: E402

# The floor: one query returning the non-terminal flights with their newest log time and owner,
# and whether the owner is live — the detection, without the evidence.
FLOOR_SQL = """
SELECT f.flightid, f.class_name, f.status, f.stairway_id, f.submit_time, l.log_time, l.step_index,
       f.stairway_id IS NOT NULL AND f.stairway_id NOT IN ({live}) AS dead_owner
FROM flight f
LEFT JOIN LATERAL (SELECT log_time, step_index FROM flightlog WHERE flightid = f.flightid
                   ORDER BY log_time DESC LIMIT 1) l ON true
WHERE f.status IN ('RUNNING', 'READY', 'READY_TO_RESTART', 'QUEUED')
"""


def floor_command(server: PgServer, dbname: str) -> list[str]:
    live = ", ".join(f"'{n}'" for n in LIVE)
    return [
        str(server.binaries.bin_dir / "psql"),
        *("-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p", str(server.port)),
        *("-U", "postgres", "-d", dbname, "-o", os.devnull, "-c", FLOOR_SQL.format(live=live)),
    ]


def driver_floor_command(conninfo: str) -> list[str]:
    """`bench/driver_floor.py`: import psycopg, connect, run the floor query, fetch its rows."""
    live = ", ".join(f"'{n}'" for n in LIVE)
    return [
        sys.executable,
        str(ROOT / "bench" / "driver_floor.py"),
        conninfo,
        FLOOR_SQL.format(live=live),
    ]


def tool_command(conninfo: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "repairtool",
        "orphans",
        "--db",
        conninfo,
        "--live-instances",
        ",".join(LIVE),
        "--reader",
        "0.0.61",
        *extra,
    ]


def start_server(state_dir: Path) -> PgServer:
    """The benchmarks' Postgres; stopped when the benchmark ends unless it was already running
    (its data — the generated databases — stays in the state dir for the next run)."""
    pg = LocalPostgres(state_dir.absolute())
    if not pg.status().running:
        atexit.register(pg.stop)
    return pg.start()


def dead_owners(document: Path) -> int:
    with open(document, "rb") as f:
        doc = json.load(f)
    return sum(1 for x in doc["findings"] if x["kind"] == "dead_owner")


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--flights", type=int, default=1_000_000)
    ap.add_argument("--running", type=int, default=None, help="default: 0.5 %% of --flights")
    ap.add_argument("--waiting", type=int, default=200, help="unowned READY/QUEUED flights")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--state-dir", type=Path, default=Path(".stairway-ops/bench"))
    args = ap.parse_args()
    running = args.running if args.running is not None else args.flights // 200
    spec = Spec(flights=args.flights, running=running, waiting=args.waiting)
    server = start_server(args.state_dir)
    conninfo, took = ensure(server, spec)
    print(
        f"database {spec.name}: "
        + (f"generated in {took:.0f}s" if took is not None else "kept from an earlier run")
    )
    env = bench_env(server.password)
    floor_cmd = floor_command(server, spec.name)
    relay = FirstQuery(server.port)
    relayed = conninfo.replace(f":{server.port}/", f":{relay.port}/")
    commands = {
        "floor": floor_cmd,
        "python": [sys.executable, "-c", "pass"],
        "driver": driver_floor_command(conninfo),
        "json": tool_command(conninfo, "--json"),
        "table": tool_command(conninfo, "-o", "table"),
        "nodecode": tool_command(conninfo, "--json", "--no-decode"),
        "help": [sys.executable, "-m", "repairtool", "--help"],
        "orphans_help": [sys.executable, "-m", "repairtool", "orphans", "--help"],
    }
    runs: dict[str, list[Run]] = {k: [] for k in (*commands, "first_query")}
    first: list[float] = []
    driver_first: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        document = Path(tmp) / "orphans.json"
        run(commands["json"], env, document)  # warm the caches once
        found = dead_owners(document)
        if found != spec.dead_owner:
            print(f"dead_owner findings: {found}, expected {spec.dead_owner}", file=sys.stderr)
            return 1
        for _ in range(args.repeat):
            for name, cmd in commands.items():
                runs[name].append(run(cmd, env, document if name == "json" else None))
            secs, _run = relay.measure(tool_command(relayed, "--json"), env)
            first.append(secs)
            secs, _run = relay.measure(driver_floor_command(relayed), env)
            driver_first.append(secs)
    t = {k: statistics.median(r.seconds for r in v) for k, v in runs.items() if v}
    rss = {k: max(r.peak_rss_mb for r in v) for k, v in runs.items() if v}
    py, floor = t["python"], t["floor"]
    print(f"dead_owner findings: {found:,} (expected {spec.dead_owner:,})")
    print(f"floor: psql, one query ({spec.non_terminal:,} non-terminal flights): {floor:.3f}s")
    print(f"python start-up (python -c pass):                   {py:.3f}s")
    driver = t["driver"]
    print(
        f"driver floor: python + psycopg, the same query:      {driver:.3f}s"
        f"  ratio (t − python) / floor = {(driver - py) / floor:.2f}×"
        " (what any Python process on psycopg pays)"
    )
    for name, label in (
        ("json", "orphans --json"),
        ("table", "orphans -o table"),
        ("nodecode", "orphans --json --no-decode"),
    ):
        ratio = (t[name] - py) / floor
        goal = "  (goal ≤ 1.5)" if name == "json" else ""
        print(
            f"repairtool {label:<27} {t[name]:.3f}s  peak RSS {rss[name]:.0f} MB"
            f"  ratio (t − python) / floor = {ratio:.2f}×{goal};"
            f" / driver floor = {(t[name] - py) / (driver - py):.2f}×"
        )
    helps = (("help", "repairtool --help"), ("orphans_help", "repairtool orphans --help"))
    for name, label in helps:
        print(f"{label:<27} {t[name]:.3f}s  ({t[name] / py:.1f}× python -c pass; goal ≤ 0.1 s)")
    fq = statistics.median(first)
    print(f"process start → first query: {fq:.3f}s  ({fq / py:.1f}× python -c pass; goal ≤ 0.15 s)")
    dfq = statistics.median(driver_first)
    print(f"  driver floor's first query: {dfq:.3f}s (import psycopg and connect, nothing else)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
