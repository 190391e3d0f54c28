"""Benchmark: FlightMap decode scan throughput (values/s), next to plain ``json.loads``.

Generates realistic stored values (the per-key forms of reference/stairway-engine.md §5.3,
weighted like a Workspace Manager flightinput table), each with the catalog type the service
asks for, then times ``decode_value`` over all of them for each reader, and ``json.loads`` of
the same texts as the floor. Target (issue 11): ≥ 250,000 values/s for both readers.

    python bench/bench_decode.py [--n 200000] [--reader legacy|typed|both] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from repairtool.flightmap import (
    ANY,
    CatalogType,
    Finding,
    ReaderVersion,
    TypeKind,
    decode_value,
    load_builtin_catalog,
)
from repairtool.flightmap.decode import clear_memo

WSM = "bio.terra.workspace.service.workspace.flight.WorkspaceCreateFlight"
POJO = "bio.terra.workspace.service.iam.AuthenticatedUserRequest"


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def make_values(n: int, seed: int = 1) -> list[tuple[str, CatalogType]]:
    """``n`` (stored text, expected type) pairs in a realistic mix."""
    rng = random.Random(seed)
    keys = load_builtin_catalog("workspace-manager").flight(WSM)
    assert keys is not None
    spec = keys.keys("input")
    stage = spec["workspaceStage"].type
    user = spec["auth_user_info"].type
    string, uuid_t = CatalogType(TypeKind.STRING), CatalogType(TypeKind.UUID)
    long_t, instant = CatalogType(TypeKind.LONG), CatalogType(TypeKind.INSTANT)
    uuids = CatalogType(TypeKind.LIST, element=uuid_t)
    roles = CatalogType(TypeKind.MAP, element=string)

    def pick() -> tuple[str, CatalogType]:
        r = rng.random()
        if r < 0.30:
            return json.dumps(f"Create workspace {_uuid(rng)}"), string
        if r < 0.42:
            return json.dumps(_uuid(rng)), uuid_t
        if r < 0.47:
            return f'["java.util.UUID","{_uuid(rng)}"]', uuid_t
        if r < 0.55:
            return json.dumps(rng.choice(["MC_WORKSPACE", "RAWLS_WORKSPACE"])), stage
        if r < 0.58:
            return f'["{stage.java_class}","MC_WORKSPACE"]', stage
        if r < 0.68:
            token = "ya29." + "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=150))
            body = {"email": "user@test.firecloud.org", "subjectId": None, "token": token}
            body["reqId"] = _uuid(rng)
            return json.dumps([POJO, body], separators=(",", ":")), user
        if r < 0.73:
            return str(rng.randrange(1, 10**6)), long_t
        if r < 0.76:
            return f"{rng.randrange(1600000000, 1700000000)}.{rng.randrange(10**9):09d}", instant
        if r < 0.82:
            items = ",".join(f'["java.util.UUID","{_uuid(rng)}"]' for _ in range(rng.randrange(4)))
            return f'["java.util.ArrayList",[{items}]]', uuids
        if r < 0.86:
            return '["java.util.HashMap",{"READER":"policy-1@dev.test.firecloud.org"}]', roles
        if r < 0.89:
            return '["java.util.Collections$EmptyList",[]]', uuids
        if r < 0.92:
            return '["a","b"]', CatalogType(TypeKind.LIST, element=string)
        if r < 0.97:
            return "null", ANY
        if r < 0.99:
            return "true", CatalogType(TypeKind.BOOL)
        return '{"truncated": ', string

    return [pick() for _ in range(n)]


def _time(run: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        clear_memo()  # each run sees the values for the first time, as one scan does
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="number of values")
    parser.add_argument("--reader", choices=["legacy", "typed", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best)")
    args = parser.parse_args(argv)

    values = make_values(args.n)
    texts = [text for text, _ in values]

    def baseline() -> None:
        loads = json.loads
        for text in texts:
            with contextlib.suppress(ValueError):
                loads(text)

    floor = _time(baseline, args.repeat)
    print(f"values: {args.n}")
    print(f"json.loads baseline: {args.n / floor:>12,.0f} values/s")
    readers = ["legacy", "typed"] if args.reader == "both" else [args.reader]
    worst = float("inf")
    for name in readers:
        reader = ReaderVersion(name)

        def scan(reader: ReaderVersion = reader) -> None:
            for text, expected in values:
                decode_value(text, expected, reader)

        elapsed = _time(scan, args.repeat)
        rate = args.n / elapsed
        worst = min(worst, rate)
        findings = sum(
            isinstance(decode_value(text, expected, reader), Finding) for text, expected in values
        )
        print(
            f"decode_value {name:>6}: {rate:>12,.0f} values/s  "
            f"({elapsed / floor:.1f}x json.loads time, {findings} findings)"
        )
    target = 250_000
    print(f"target {target:,} values/s: {'met' if worst >= target else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
