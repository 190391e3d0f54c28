"""Resume latency: from the owner pod's death to the flight RUNNING on another pod, and to
SUCCESS, for the single- and multi-replica pod-kill experiments, with and without a work queue.

    .venv/bin/python bench/bench_resume.py [--runs 3] [--only single-queue,multi-none] [--json FILE]

Each run is a whole `inv experiment` on a sandbox of its own (real pods, Postgres, the Pub/Sub
emulator); the latency comes from the journal (`attempts[].recovery`: the kill recorded by
`inv kill-pod`, then the engine's own `changed status to RUNNING` / `SUCCESS` lines). Reports the
median and p90 per configuration, with two baselines from the same runs: the work queue's ack
deadline (10 s in the sandbox; the engine creates 100 s) — a message the dead pod had pulled comes
back only after it — and the DelayHook the resumed flight sleeps through again in step 1 (SUCCESS
comes at least that long after RUNNING). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opskit.envs import load_env
from opskit.events import Reporter
from opskit.experiment.db import ACK_DEADLINE_SECONDS
from opskit.experiment.definition import ExperimentDefinition, load_definition
from opskit.experiment.runner import run_experiment

#: name → (experiment, work queue)
CONFIGS = {
    "single-queue": ("single-instance-pod-kill", "emulator"),
    "single-none": ("single-instance-pod-kill", "none"),
    "multi-queue": ("multi-instance-pod-kill", "emulator"),
    "multi-none": ("multi-instance-pod-kill", "none"),
}


#: the DelayHook of the benchmark runs: long enough that `inv kill-pod` lands inside the step
#: on a loaded machine (the resumed flight sleeps through it again before SUCCESS)
DELAY_SECONDS = 8.0


def variant(name: str, queue: str) -> ExperimentDefinition:
    """The experiment with that work queue. Without a queue the engine resumes inline (no
    `resumed flight:` line) and any pod may recover it: only the flight's end is expected."""
    d = load_definition(name).with_delay(DELAY_SECONDS)
    if queue == d.queue:
        return d
    expect = dataclasses.replace(d.expect, log_lines=(), recovered_by="any")
    return dataclasses.replace(d, queue=queue, expect=expect)  # type: ignore[arg-type]


def p90(values: list[float]) -> float:
    """The 90th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def run_once(defn: ExperimentDefinition) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="bench-resume-"))
    work.chmod(0o711)
    try:
        journal = run_experiment(
            defn,
            load_env("local"),
            run_dir=work / "run",
            reporter=Reporter([]),
            state_dir=work / "state",
        )
        attempt = journal.attempts[-1] if journal.attempts else None
        rec = attempt.recovery if attempt is not None else None
        return {
            "verdict": journal.verdict,
            "fail_step": journal.fail_step,
            "status": attempt.final_state.status if attempt else None,
            "to_running_s": rec.to_running_s if rec else None,
            "to_success_s": rec.to_success_s if rec else None,
            "running_pod": rec.running_pod if rec else None,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration")
    parser.add_argument("--only", default=",".join(CONFIGS), help="configurations, comma separated")
    parser.add_argument("--json", type=Path, help="also write every run and the summary here")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration {unknown[0]!r}; known: {', '.join(CONFIGS)}")
    delay = DELAY_SECONDS
    results: dict[str, list[dict[str, object]]] = {}
    for name in names:
        experiment, queue = CONFIGS[name]
        defn = variant(experiment, queue)
        for n in range(1, args.runs + 1):
            r = run_once(defn)
            results.setdefault(name, []).append(r)
            print(
                f"{name} run {n}: {r['status']}, RUNNING after {r['to_running_s']} s on"
                f" {r['running_pod']}, SUCCESS after {r['to_success_s']} s ({r['verdict']}"
                + (f": {r['fail_step']})" if r["fail_step"] else ")"),
                flush=True,
            )
    summary: dict[str, dict[str, float]] = {}
    ack = ACK_DEADLINE_SECONDS
    print(f"\nresume latency (baselines: ack deadline {ack} s, DelayHook {delay:g} s)")
    head = ("configuration", "runs", "RUNNING median", "p90", "SUCCESS median", "p90", "/ack")
    print("{:<14} {:>4} {:>15} {:>6} {:>15} {:>6} {:>6}".format(*head))
    for name, runs in results.items():
        running = [float(str(r["to_running_s"])) for r in runs if r["to_running_s"] is not None]
        success = [float(str(r["to_success_s"])) for r in runs if r["to_success_s"] is not None]
        if not running or not success:
            print(f"{name:<14} {len(runs):>4}  no complete recovery")
            continue
        row = {
            "runs": len(runs),
            "complete": min(len(running), len(success)),
            "to_running_median_s": round(statistics.median(running), 2),
            "to_running_p90_s": round(p90(running), 2),
            "to_success_median_s": round(statistics.median(success), 2),
            "to_success_p90_s": round(p90(success), 2),
            "ack_deadline_s": ack,
            "delay_s": delay,
        }
        summary[name] = row
        cells = (
            name, len(runs), row["to_running_median_s"], row["to_running_p90_s"],
            row["to_success_median_s"], row["to_success_p90_s"], row["to_running_median_s"] / ack,
        )  # fmt: skip
        print("{:<14} {:>4} {:>13.1f} s {:>6.1f} {:>13.1f} s {:>6.1f} {:>5.2f}x".format(*cells))
    if args.json:
        args.json.write_text(json.dumps({"runs": results, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
