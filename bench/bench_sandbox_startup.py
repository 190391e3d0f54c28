"""Start-up time of a 2-replica sandbox (Postgres + Pub/Sub emulator + supervisor + 2 workers),
against the floor of a bare local Postgres (initdb + start) measured in the same run.

    .venv/bin/python bench/bench_sandbox_startup.py [--rounds 3] [--replicas 2]

Prints one line per round and a summary: sandbox seconds, Postgres seconds, their ratio, and the
sandbox's own phase breakdown. A benchmark, not a timed test: the target is < 15 s on a 2-core
machine.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from repairtool.localpg import LocalPostgres
from sandbox.config import SandboxConfig
from sandbox.lifecycle import down, up


def bare_postgres() -> float:
    state = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    state.chmod(0o711)
    local = LocalPostgres(state)
    try:
        t = time.perf_counter()
        local.start()
        return time.perf_counter() - t
    finally:
        local.destroy()
        shutil.rmtree(state, ignore_errors=True)


def sandbox_once(replicas: int) -> tuple[float, dict[str, float]]:
    state = Path(tempfile.mkdtemp(prefix="bench-sandbox-"))
    state.chmod(0o711)
    try:
        t = time.perf_counter()
        handle = up(SandboxConfig(state_dir=state, replicas=replicas, ack_deadline_seconds=10))
        elapsed = time.perf_counter() - t
        phases = dict(handle.phases)
        queue = "emulator" if handle.queue_enabled else "no queue"
        print(
            f"  sandbox up: {elapsed:6.2f} s  ({queue}; "
            + ", ".join(f"{k} {v:.2f}" for k, v in phases.items())
            + ")",
            flush=True,
        )
        return elapsed, phases
    finally:
        down(state)
        shutil.rmtree(state, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=2)
    args = parser.parse_args()
    pg_times: list[float] = []
    sb_times: list[float] = []
    for n in range(1, args.rounds + 1):
        print(f"round {n}", flush=True)
        pg = bare_postgres()
        pg_times.append(pg)
        print(f"  bare postgres: {pg:6.2f} s", flush=True)
        sb, _ = sandbox_once(args.replicas)
        sb_times.append(sb)
    sb_med = statistics.median(sb_times)
    pg_med = statistics.median(pg_times)
    print(
        f"sandbox start-up ({args.replicas} replicas): median {sb_med:.2f} s "
        f"(min {min(sb_times):.2f}, max {max(sb_times):.2f}); bare Postgres median {pg_med:.2f} s;"
        f" ratio {sb_med / pg_med:.1f}x; target < 15 s: {'OK' if sb_med < 15 else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
