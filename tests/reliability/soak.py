"""The soak registry and runner: every reliability soak, its trial counts, and the figures table.

A soak is a function `(env, trials, rng) -> SoakResult` that runs `trials` randomized trials and
counts, per invariant, the trials that violated it. `SOAKS` is the registry: the CI subset
(`tests/reliability/test_soak.py`) runs each with its `ci` count, `inv soak` with its `full`
count and prints the table the README quotes. Suites register themselves when their module is
imported; `SUITES` lists the modules (round two adds the CLI-level and sandbox chaos suites here).

    python -m tests.reliability.soak [--only NAME,...] [--scale 1.0] [--seed N] [--json FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import itertools
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import URL

from repairtool.localpg import PgServer, create_database, drop_database, temporary_postgres
from repairtool.stairway.queue import WorkQueue

#: the modules whose import registers soaks (in table order)
SUITES = (
    "tests.reliability.races",
    "tests.reliability.faults",
    "tests.reliability.fuzz",
    "tests.reliability.secrets_scan",
    "tests.reliability.cli_races",
    "tests.reliability.cli_fuzz",
    "tests.reliability.cli_secrets",
    "tests.reliability.chaos",
)


@dataclass
class SoakResult:
    """Figures of one soak: trials run, violations per invariant (0 each = pass), time."""

    name: str
    layer: str
    trials: int
    violations: dict[str, int]
    seconds: float
    notes: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)  # the first few violations, described

    @property
    def total_violations(self) -> int:
        return sum(self.violations.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "layer": self.layer,
            "trials": self.trials,
            "violations": self.violations,
            "seconds": round(self.seconds, 1),
            "notes": self.notes,
            "examples": self.examples,
        }


class Tally:
    """Collects violations while a soak runs (every invariant is listed, even at 0)."""

    def __init__(self, invariants: tuple[str, ...]) -> None:
        self.counts: Counter[str] = Counter(dict.fromkeys(invariants, 0))
        self.examples: list[str] = []
        self.stats: Counter[str] = Counter()

    def check(self, invariant: str, ok: bool, describe: Callable[[], str]) -> None:
        if ok:
            return
        self.counts[invariant] += 1
        if len(self.examples) < 5:
            self.examples.append(f"{invariant}: {describe()}")

    def result(
        self, name: str, layer: str, trials: int, started: float, notes: list[str]
    ) -> SoakResult:
        stats = ", ".join(f"{k} {v}" for k, v in sorted(self.stats.items()))
        return SoakResult(
            name,
            layer,
            trials,
            dict(self.counts),
            time.monotonic() - started,
            [*notes, *([stats] if stats else [])],
            self.examples,
        )


@dataclass
class SoakEnv:
    """What a soak runs against: a Postgres server (databases made on demand) and, when the
    machine has it, the Pub/Sub emulator for the READY messages."""

    server: PgServer
    queue: WorkQueue | None = None
    _made: list[str] = field(default_factory=list)
    _counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def new_database(self, prefix: str = "soak") -> URL:
        name = f"{prefix}_{next(self._counter)}_{random.randrange(10**6)}"
        self._made.append(name)
        return create_database(self.server, name)

    def stairway_db(self, version: str = "1.1.14", *, history: bool = True) -> tuple[URL, Engine]:
        """A fresh database with the engine's schema (and the change history installed)."""
        from repairtool.stairway.schema import create_schema
        from tests.reliability.harness import install_history, with_app

        url = self.new_database()
        admin = with_app(url, "soak-admin")
        with admin.begin() as conn:
            create_schema(conn, version)
        if history:
            install_history(admin)
        return url, admin

    def close(self) -> None:
        for name in self._made:
            drop_database(self.server, name)
        self._made.clear()


SoakFn = Callable[[SoakEnv, int, random.Random], SoakResult]


@dataclass(frozen=True)
class Soak:
    name: str
    layer: str  # "library" (this round); "cli" and "sandbox" come with round two
    what: str
    invariants: tuple[str, ...]
    run: SoakFn
    full: int  # trials in `inv soak`
    ci: int  # trials in the CI subset


SOAKS: dict[str, Soak] = {}


def register(soak: Soak) -> Soak:
    if soak.name in SOAKS:
        raise ValueError(f"soak {soak.name} registered twice")
    SOAKS[soak.name] = soak
    return soak


def load() -> dict[str, Soak]:
    for module in SUITES:
        importlib.import_module(module)
    return SOAKS


@contextmanager
def soak_env(*, with_emulator: bool = True) -> Iterator[SoakEnv]:
    """A throwaway Postgres (and the Pub/Sub emulator when installed) for `inv soak`."""
    with ExitStack() as stack:
        server = stack.enter_context(temporary_postgres())
        queue = stack.enter_context(_emulator_queue()) if with_emulator else None
        env = SoakEnv(server, queue)
        stack.callback(env.close)
        yield env


@contextmanager
def _emulator_queue() -> Iterator[WorkQueue | None]:
    import os
    import tempfile
    from pathlib import Path

    from repairtool.stairway.queue import subscription_id, topic_id
    from sandbox.pubsub_emulator import PubSubEmulator, find_launcher

    if find_launcher() is None:
        yield None
        return
    emulator = PubSubEmulator.start(Path(tempfile.mkdtemp(prefix="soak-pubsub-")) / "log")
    old = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
    try:
        cluster = "terra-soak-workspace-stairway"
        emulator.create_work_queue(
            "soak-project", topic_id(cluster), subscription_id(cluster), ack_deadline_seconds=10
        )
        yield WorkQueue("soak-project", cluster)
    finally:
        if old is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = old
        emulator.stop()


def run(
    env: SoakEnv,
    soaks: list[Soak],
    *,
    scale: float = 1.0,
    ci: bool = False,
    seed: int | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> list[SoakResult]:
    results = []
    base = seed if seed is not None else random.randrange(2**32)
    for n, soak in enumerate(soaks):
        trials = soak.ci if ci else max(1, int(soak.full * scale))
        rng = random.Random(base + n)
        progress(f"{soak.name}: {trials} trials (seed {base + n})")
        result = soak.run(env, trials, rng)
        progress(
            f"{soak.name}: {result.trials} trials, {result.total_violations} violations,"
            f" {result.seconds:.1f}s"
        )
        results.append(result)
    return results


def table(results: list[SoakResult], date: str) -> str:
    """The figures as a Markdown table (what the README's Reliability section quotes)."""
    lines = [
        "| soak | layer | trials | violations (per invariant) | time | date |",
        "|---|---|---:|---|---:|---|",
    ]
    for r in results:
        per = ", ".join(f"{k} {v}" for k, v in r.violations.items())
        lines.append(
            f"| {r.name} | {r.layer} | {r.trials:,} | **{r.total_violations}** ({per}) |"
            f" {r.seconds:.0f} s | {date} |"
        )
    total_t = sum(r.trials for r in results)
    total_v = sum(r.total_violations for r in results)
    total_s = sum(r.seconds for r in results)
    lines.append(f"| **total** | | {total_t:,} | **{total_v}** | {total_s:.0f} s | {date} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="", help="comma-separated soak names (or name prefixes)")
    p.add_argument("--scale", type=float, default=1.0, help="fraction of the full trial counts")
    p.add_argument("--ci", action="store_true", help="the CI subset's trial counts")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--json", default="", help="also write the results to this JSON file")
    p.add_argument("--list", action="store_true", help="list the registered soaks")
    args = p.parse_args(argv)
    if not (args.scale > 0):
        p.error("--scale must be positive")
    registry = load()
    if args.list:
        for s in registry.values():
            print(f"{s.name:<26} {s.layer:<8} full {s.full:>6,}  ci {s.ci:>4}  {s.what}")
        return 0
    wanted = [w for w in args.only.split(",") if w]
    chosen = [
        s for s in registry.values() if not wanted or any(s.name.startswith(w) for w in wanted)
    ]
    if not chosen:
        p.error(f"no soak matches {args.only!r}; see --list")
    started = time.monotonic()
    with soak_env() as env:
        results = run(
            env,
            chosen,
            scale=args.scale,
            ci=args.ci,
            seed=args.seed,
            progress=lambda m: print(f"  {m}", file=sys.stderr, flush=True),
        )
    date = dt.date.today().isoformat()
    print(table(results, date))
    print(f"\nwall time {time.monotonic() - started:.0f} s (server start-up included)")
    for r in results:
        for note in r.notes:
            print(f"  {r.name}: {note}")
        for ex in r.examples:
            print(f"  {r.name} VIOLATION {ex}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"date": date, "results": [r.to_json() for r in results]}, fh, indent=2)
    return 1 if any(r.total_violations for r in results) else 0


if __name__ == "__main__":
    # run through the importable module: the suites register into *its* registry
    from tests.reliability.soak import main as _main

    raise SystemExit(_main())
