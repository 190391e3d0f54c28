"""Benchmark: how `repairtool orphans --json` grows with the database, next to the `psql` floor
on the same database in the same run.

    python bench/bench_scale.py [--big] [--decode-all] [--repeat 3]
                                [--state-dir .stairway-ops/bench]

Cases (`bench/benchdb.py`; generated once with generate_series and kept in the state dir):

* 100k: 100,000 flights, 500 RUNNING, 20 waiting;
* 1M: the issue's database (1,000,000 flights, 5,000 RUNNING, 200 waiting);
* incident: 1,000,000 flights of which 100,000 are non-terminal (5,000 RUNNING, 95,000
  unowned READY/QUEUED: a queue outage);
* 10M (only with --big; not in CI): 10,000,000 flights, 50,000 RUNNING, 2,000 waiting.

For each: wall time and peak RSS of `orphans --json` (the document to a file), of `python -c
pass`, of the floor (one psql query returning the non-terminal flights with their newest log
time and owner) and of the driver floor (`bench/driver_floor.py`: python importing psycopg and
fetching the same query); the ratios (t − python) / floor and (t − python) / (driver − python);
and the findings in the document.

With --decode-all, also `repairtool decode --all --json` over the 1M case's 3,000,000 stored
inputs for each reader: values/s, document size and peak RSS, next to its floor (the same values
streamed with psycopg and parsed with `json.loads`, in the same run).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_orphans import driver_floor_command, floor_command, start_server, tool_command  # noqa: E402
from bench.benchdb import Spec, ensure  # noqa: E402
from bench.measure import Run, bench_env, run  # noqa: E402
from repairtool.localpg import PgServer  # noqa: E402

CASES = {
    "100k": Spec(flights=100_000, running=500, waiting=20),
    "1M": Spec(),
    "incident": Spec(flights=1_000_000, running=5_000, waiting=95_000),
    "10M": Spec(flights=10_000_000, running=50_000, waiting=2_000),
}


#: the floor of `decode --all`: the same stored values read the same way (one statement streamed
#: by psycopg) and parsed by `json.loads`, in a process of its own
_DECODE_FLOOR = """
import json, sys, psycopg
values = 0
with psycopg.connect(sys.argv[1]) as conn:
    conn.read_only = True
    for (text,) in conn.cursor(binary=True).stream("SELECT value FROM flightinput", size=1000):
        values += 1
        try:
            json.loads(text)
        except ValueError:
            pass
print(values)
"""


def decode_all(server: PgServer, env: dict[str, str]) -> None:
    """`repairtool decode --all --json` over every stored input of the 1M case, once per
    reader: wall time, values/s, peak RSS, next to the floor (the same values streamed with
    psycopg and parsed with `json.loads`, in the same run)."""
    spec = CASES["1M"]
    conninfo, _ = ensure(server, spec)
    with tempfile.TemporaryDirectory() as tmp:
        document = Path(tmp) / "decode.json"
        floor_out = Path(tmp) / "floor.txt"
        floor = run([sys.executable, "-c", _DECODE_FLOOR, conninfo], env, floor_out)
        floor_values = int(floor_out.read_text())
        print(
            f"decode --all floor (psycopg stream + json.loads): {floor_values:,} values in"
            f" {floor.seconds:.1f}s ({floor_values / floor.seconds:,.0f} values/s)",
            flush=True,
        )
        for reader in ("0.0.60", "0.0.61"):
            argv = [sys.executable, "-m", "repairtool", "decode", "--all", "--json"]
            result = run([*argv, "--db", conninfo, "--reader", reader], env, document)
            with open(document, "rb") as f:
                doc = json.load(f)
            print(
                f"decode --all --reader {reader}: {doc['values']:,} values of {doc['flights']:,}"
                f" flights in {result.seconds:.1f}s ({doc['values'] / result.seconds:,.0f}"
                f" values/s; floor {floor_values / floor.seconds:,.0f} values/s,"
                f" {result.seconds / floor.seconds:.1f}× its time), {len(doc['findings']):,}"
                f" findings, document {document.stat().st_size / 2**20:,.0f} MB, peak RSS"
                f" {result.peak_rss_mb:.0f} MB",
                flush=True,
            )
            document.unlink()


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--big", action="store_true", help="also the 10M case (not in CI)")
    ap.add_argument("--only", help="comma-separated case names (default: all)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--decode-all",
        action="store_true",
        help="also time `repairtool decode --all` (both readers) on the 1M case's stored values",
    )
    ap.add_argument("--state-dir", type=Path, default=Path(".stairway-ops/bench"))
    args = ap.parse_args()
    names = args.only.split(",") if args.only else [n for n in CASES if n != "10M" or args.big]
    server = start_server(args.state_dir)
    env = bench_env(server.password)
    rows = []
    for name in names:
        spec = CASES[name]
        conninfo, took = ensure(server, spec)
        generated = f"generated in {took:.0f}s" if took is not None else "kept"
        tool = tool_command(conninfo, "--json")
        floor = floor_command(server, spec.name)
        python = [sys.executable, "-c", "pass"]
        driver = driver_floor_command(conninfo)
        runs: dict[str, list[Run]] = {"tool": [], "floor": [], "python": [], "driver": []}
        with tempfile.TemporaryDirectory() as tmp:
            document = Path(tmp) / "orphans.json"
            run(floor, env)  # warm the caches once
            run(tool, env, document)
            for _ in range(args.repeat):
                runs["floor"].append(run(floor, env))
                runs["python"].append(run(python, env))
                runs["driver"].append(run(driver, env))
                runs["tool"].append(run(tool, env, document))
            with open(document, "rb") as f:
                doc = json.load(f)
        kinds: dict[str, int] = {}
        for finding in doc["findings"]:
            kinds[finding["kind"]] = kinds.get(finding["kind"], 0) + 1
        if kinds.get("dead_owner", 0) != spec.dead_owner:
            print(f"{name}: {kinds} — expected {spec.dead_owner} dead_owner", file=sys.stderr)
            return 1
        t = {k: statistics.median(r.seconds for r in v) for k, v in runs.items()}
        rss = max(r.peak_rss_mb for r in runs["tool"])
        ratio = (t["tool"] - t["python"]) / t["floor"]
        of_driver = (t["tool"] - t["python"]) / (t["driver"] - t["python"])
        rows.append(
            (name, spec, generated, doc["scanned"], sum(kinds.values()), t, rss, ratio, of_driver)
        )
        print(
            f"{name:>8}: {spec.flights:>10,} flights, {doc['scanned']:>7,} non-terminal,"
            f" {sum(kinds.values()):>7,} findings ({generated}) | orphans --json {t['tool']:.3f}s,"
            f" peak RSS {rss:.0f} MB | floor {t['floor']:.3f}s | python {t['python']:.3f}s |"
            f" (t − python) / floor = {ratio:.2f}× | driver floor {t['driver']:.3f}s,"
            f" / driver floor = {of_driver:.2f}×",
            flush=True,
        )
    if args.decode_all:
        decode_all(server, env)
    print()
    print("| case | flights | non-terminal | findings | orphans --json | peak RSS | psql floor |"
          " driver floor | python -c pass | (t − python) / floor | / driver floor |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, spec, _, scanned, found, t, rss, ratio, of_driver in rows:
        print(
            f"| {name} | {spec.flights:,} | {scanned:,} | {found:,} | {t['tool']:.2f} s |"
            f" {rss:.0f} MB | {t['floor']:.2f} s | {t['driver']:.2f} s | {t['python']:.3f} s |"
            f" {ratio:.2f}× | {of_driver:.2f}× |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
