"""Benchmark: `repairtool orphans --json` end to end vs the same detection as one raw SQL query
through psql (the floor), side by side on one generated database.

    python bench/bench_orphans.py [--flights 1000000] [--repeat 3]

The database has N flights (0.5 % RUNNING, the rest SUCCESS/ERROR with a few READY/QUEUED),
10 flightlog rows and 10 flightinput rows per flight, written as the 1.1.14 engine lays them out.
Figures are medians of --repeat runs; ratios are against baselines measured in the same run:
the psql floor, and interpreter start-up (`python -c pass`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from repairtool.localpg import LocalPostgres, create_database, temporary_postgres  # noqa: E402
from repairtool.stairway.schema import create_schema  # noqa: E402

LIVE = [
    "workspacemanager-deployment-68f9b944d5-live0",
    "workspacemanager-deployment-68f9b944d5-live1",
]
DEAD = "workspacemanager-deployment-5ffc97854c-dead0"

GENERATE = [
    # flights: every 200th RUNNING (0.5 %), owners alternate between a live and a dead pod
    """INSERT INTO flight (flightid, submit_time, class_name, completed_time, status,
         serialized_exception, stairway_id, debug_info)
       SELECT lpad(to_hex(g), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(g), 12, '0'),
              now()::timestamp - interval '1 day' + g * interval '50 ms',
              'bio.terra.workspace.service.workspace.flight.WorkspaceCreateFlight',
              CASE WHEN g % 200 = 0 OR g % 5003 = 0 THEN NULL ELSE now()::timestamp END,
              CASE WHEN g % 200 = 0 THEN 'RUNNING' WHEN g % 5003 = 0 THEN 'READY'
                   WHEN g % 17 = 0 THEN 'ERROR' ELSE 'SUCCESS' END,
              '',
              CASE WHEN g % 200 = 0 THEN (CASE WHEN g % 400 = 0 THEN :dead ELSE :live END) END,
              '{}'
       FROM generate_series(1, :n) g""",
    """INSERT INTO flightlog (flightid, log_time, step_index, succeeded, status,
         serialized_exception, rerun, direction, id)
       SELECT f.flightid, f.submit_time + s * interval '1 ms', s, true, 'RUNNING', '', false,
              'DO', gen_random_uuid()
       FROM flight f, generate_series(0, 9) s""",
    """INSERT INTO flightinput (flightid, key, value)
       SELECT f.flightid, k.key, k.value FROM flight f, (VALUES
         ('description', '"Create workspace 5c2f2f6b-7b64-4c79-9d8a-f2a8f6a2d8a4"'),
         ('request', 'null'), ('subjectId', '"155452395893727468398"'), ('mdcKey', '"null"'),
         ('workspaceId', '"5c2f2f6b-7b64-4c79-9d8a-f2a8f6a2d8a4"'),
         ('workspaceStage', '"MC_WORKSPACE"'), ('displayNameId', '""'), ('descriptionId', '""'),
         ('spendProfileId', '"wm-default-spend-profile"'),
         ('auth_user_info', '["bio.terra.workspace.service.iam.AuthenticatedUserRequest",'
                            '{"email":"u@x.org","subjectId":"1","token":"t","reqId":"r"}]')
       ) AS k(key, value)""",
    "INSERT INTO stairwayinstance VALUES (:live, :live), (:dead, :dead)",
    "ANALYZE",
]

# The floor: the same detection as one query (non-terminal flights, last progress, owner liveness).
FLOOR_SQL = """
SELECT f.flightid, f.class_name, f.status, f.stairway_id, f.submit_time, l.log_time, l.step_index,
       f.stairway_id IS NOT NULL AND f.stairway_id NOT IN ({live}) AS dead_owner
FROM flight f
LEFT JOIN LATERAL (SELECT log_time, step_index FROM flightlog WHERE flightid = f.flightid
                   ORDER BY log_time DESC LIMIT 1) l ON true
WHERE f.status IN ('RUNNING', 'READY', 'READY_TO_RESTART', 'QUEUED');
"""


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    return time.perf_counter() - start, proc


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--flights", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--state-dir",
        type=Path,
        help="keep the generated database here and reuse it on the next run (default: throwaway)",
    )
    args = ap.parse_args()
    if args.state_dir:
        local = LocalPostgres(args.state_dir.absolute())
        server_cm: Any = contextlib.nullcontext(local.start())
    else:
        server_cm = temporary_postgres()
    with server_cm as server:
        t0 = time.perf_counter()
        try:
            url = create_database(server, "bench")
            fresh = True
        except psycopg.errors.DuplicateDatabase:
            url, fresh = server.url("bench"), False
        engine = create_engine(url)
        if fresh:
            with engine.begin() as conn:
                create_schema(conn, "1.1.14")
                for sql in GENERATE:
                    conn.execute(text(sql), {"n": args.flights, "live": LIVE[0], "dead": DEAD})
        with engine.connect() as conn:
            counts = conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM flight),"
                    " (SELECT count(*) FROM flight WHERE status = 'RUNNING'),"
                    " (SELECT count(*) FROM flightlog), (SELECT count(*) FROM flightinput)"
                )
            ).one()
        what = "generated" if fresh else "reused"
        print(
            f"{what} {counts[0]:,} flights ({counts[1]:,} RUNNING), {counts[2]:,} flightlog and"
            f" {counts[3]:,} flightinput rows in {time.perf_counter() - t0:.1f}s"
        )
        env = {**os.environ, "PGPASSWORD": server.password}
        psql = str(server.binaries.bin_dir / "psql")
        live_sql = ", ".join(f"'{n}'" for n in LIVE)
        floor_cmd = [
            psql,
            "-X",
            "-q",
            "-A",
            "-t",
            "-h",
            "127.0.0.1",
            "-p",
            str(server.port),
            "-U",
            "postgres",
            "-d",
            "bench",
            "-c",
            FLOOR_SQL.format(live=live_sql),
        ]
        tool_cmd = [
            sys.executable,
            "-m",
            "repairtool",
            "orphans",
            "--json",
            "--db",
            url.render_as_string(hide_password=False),
            "--live-instances",
            ",".join(LIVE),
            "--reader",
            "0.0.61",
        ]
        nodecode_cmd = [*tool_cmd, "--no-decode"]
        python_cmd = [sys.executable, "-c", "pass"]
        help_cmd = [sys.executable, "-m", "repairtool", "--help"]
        results: dict[str, list[float]] = {
            "floor": [],
            "tool": [],
            "nodecode": [],
            "python": [],
            "help": [],
        }
        for _ in range(args.repeat):
            for name, cmd in (
                ("floor", floor_cmd),
                ("tool", tool_cmd),
                ("nodecode", nodecode_cmd),
                ("python", python_cmd),
                ("help", help_cmd),
            ):
                secs, proc = timed(cmd, env)
                if proc.returncode not in (0, 1):
                    print(proc.stderr, file=sys.stderr)
                    return 1
                results[name].append(secs)
        # the detection query alone, in process (no interpreter start, imports or connect)
        from repairtool.detect import Options, detect
        from repairtool.liveness import from_names
        from repairtool.stairway.db import make_engine, parse_url

        tool_engine = make_engine(parse_url(url.render_as_string(hide_password=False), "bench"))
        detect(tool_engine, from_names(LIVE), Options())  # warm the connection pool
        for _ in range(args.repeat):
            t = time.perf_counter()
            detect(tool_engine, from_names(LIVE), Options())
            results.setdefault("inproc", []).append(time.perf_counter() - t)
        med = {k: statistics.median(v) for k, v in results.items()}
        rows = len(timed(floor_cmd, env)[1].stdout.splitlines())
        print(f"floor (psql, one query, {rows:,} non-terminal flights): {med['floor']:.3f}s")
        print(f"repairtool orphans --json:                            {med['tool']:.3f}s")
        print(f"repairtool orphans --json --no-decode:                {med['nodecode']:.3f}s")
        print(f"python start-up (python -c pass):                     {med['python']:.3f}s")
        print(f"repairtool --help:                                    {med['help']:.3f}s")
        print(f"detect() in process, warm connection (no decode):   {med['inproc']:.3f}s")
        print(f"ratio tool / floor:                    {med['tool'] / med['floor']:.2f}×")
        print(
            f"ratio tool / (floor + python start-up): "
            f"{med['tool'] / (med['floor'] + med['python']):.2f}×  (goal ≤ 2×)"
        )
        print(
            "ratio --no-decode / (floor + python start-up): "
            f"{med['nodecode'] / (med['floor'] + med['python']):.2f}×"
        )
        print(
            f"ratio detect() in process / floor:      {med['inproc'] / med['floor']:.2f}×"
            "  (the floor includes psql's start and login)"
        )
        print(
            f"ratio --help / python start-up:        {med['help'] / med['python']:.2f}×"
            f"  ({med['help']:.3f}s; goal < 0.3 s)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
