"""The documents `repairtool orphans` and `repairtool decode` print on the benchmark databases
stay what they were before the incident-scale rework (issue 11): same findings, same evidence,
same plan, same bytes — compared with golden copies captured from the code before it changed.

The databases are the benchmark generator's (`bench/benchdb.py`) at a small size. What cannot be
the same from one run to the next is normalized before comparing: times (relative to the moment
the database was generated, or `<now>` for the time of the scan) and the generating
transaction's id (row versions). Ages ("5h", "12d") are compared as they are: the generator keeps
them half an hour away from a change of unit.

Re-capture (only when a change of the documents is intended and reviewed):
`STAIRWAY_GOLDEN_WRITE=1 python -m pytest tests/repair/test_golden_documents.py`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from bench.benchdb import LIVE, Spec, anchor, generate
from repairtool.localpg import PgServer, create_database, drop_database

GOLDEN = Path(__file__).parent / "golden"
WRITE = os.environ.get("STAIRWAY_GOLDEN_WRITE") == "1"

SHAPES = {
    # the database in small: 1.3 % RUNNING (half of them owned by a dead pod), a few
    # READY/QUEUED, 3 log rows and 3 inputs each; one flight in 7 with inputs that fail to decode
    "small": Spec(flights=3000, running=40, waiting=30, mixed_every=7),
    # the incident in small: a queue outage left a fifth of the flights READY/QUEUED
    "incident": Spec(flights=2000, running=20, waiting=300),
    # every input key the generator knows (10), for the decode scans
    "wide": Spec(flights=200, running=10, waiting=6, inputs=10, mixed_every=5),
}
LIVE_ARGS = ("--live-instances", ",".join(LIVE))

CASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "orphans-typed.json": ("small", ("orphans", "--json", *LIVE_ARGS, "--reader", "0.0.61")),
    "orphans-legacy.json": ("small", ("orphans", "--json", *LIVE_ARGS, "--reader", "0.0.60")),
    "orphans-no-decode.json": (
        "small",
        ("orphans", "--json", *LIVE_ARGS, "--reader", "0.0.61", "--no-decode"),
    ),
    "orphans-registry.json": ("small", ("orphans", "--json", "--reader", "0.0.61")),
    "orphans-class.json": (
        "small",
        ("orphans", "--json", *LIVE_ARGS, "--reader", "0.0.60", "--class", "*CreateFlight"),
    ),
    "orphans-incident.json": ("incident", ("orphans", "--json", *LIVE_ARGS, "--reader", "0.0.61")),
    "orphans-legacy.table.txt": ("small", ("orphans", *LIVE_ARGS, "--reader", "0.0.60")),
    "orphans-legacy.wide.txt": (
        "small",
        ("orphans", "-o", "wide", *LIVE_ARGS, "--reader", "0.0.60"),
    ),
    "orphans-incident.markdown.txt": (
        "incident",
        ("orphans", "-o", "markdown", *LIVE_ARGS, "--reader", "0.0.61"),
    ),
    "decode-legacy.json": ("wide", ("decode", "--json", "--reader", "0.0.60")),
    "decode-all-legacy.json": ("wide", ("decode", "--all", "--json", "--reader", "0.0.60")),
    "decode-all-typed.json": ("wide", ("decode", "--all", "--json", "--reader", "0.0.61")),
    "decode-all-legacy.table.txt": ("wide", ("decode", "--all", "--reader", "0.0.60")),
}  # fmt: skip


class Db:
    def __init__(self, url: str) -> None:
        self.url = url
        self.anchor = anchor(url)
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT xmin::text FROM flight LIMIT 1").fetchone()
        assert row is not None
        self.xid: str = row[0]  # the generating transaction
        self.hidden = make_url(url).set(drivername="postgresql").render_as_string()


@pytest.fixture(scope="module")
def dbs(pg_server: PgServer) -> Iterator[dict[str, Db]]:
    made = {}
    for shape, spec in SHAPES.items():
        name = f"golden_{shape}"
        url = create_database(pg_server, name).set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        generate(conninfo, spec)
        made[shape] = Db(conninfo)
    yield made
    for shape in SHAPES:
        drop_database(pg_server, f"golden_{shape}")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STAIRWAY_", "PG"))}
    env["STAIRWAY_OPS_STATE_DIR"] = "/nonexistent-state-dir"
    return subprocess.run(
        [sys.executable, "-m", "repairtool", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")


def normalize_text(text: str, db: Db) -> str:
    """Times relative to the generation anchor (`<now>` after it), the generating transaction's
    id as `<xid>`."""

    def relative(m: re.Match[str]) -> str:
        t = dt.datetime.fromisoformat(m.group(0).replace("Z", "+00:00")).replace(tzinfo=None)
        if t >= db.anchor:
            return "<now>"
        return f"<anchor-{int((db.anchor - t).total_seconds())}s>"

    text = _TIME.sub(relative, text)
    text = re.sub(rf"row_version={db.xid}\b", "row_version=<xid>", text)
    text = text.replace(f"': '{db.xid}'", "': '<xid>'")  # running_versions={'id': 'xid', …}
    return text


def normalize_doc(doc: Any, db: Db) -> Any:
    if isinstance(doc, dict):
        out = {}
        for k, v in doc.items():
            if k == "row_version" and v == db.xid:
                out[k] = "<xid>"
            elif k == "running_versions":
                out[k] = {fid: ("<xid>" if x == db.xid else x) for fid, x in v.items()}
            else:
                out[k] = normalize_doc(v, db)
        return out
    if isinstance(doc, list):
        return [normalize_doc(v, db) for v in doc]
    if isinstance(doc, str):
        return normalize_text(doc, db)
    return doc


@pytest.mark.parametrize("case", sorted(CASES))
def test_document_is_unchanged(case: str, dbs: dict[str, Db]) -> None:
    shape, args = CASES[case]
    db = dbs[shape]
    proc = run(*args, "--db", db.url)
    assert proc.returncode in (0, 1), proc.stderr  # 1: findings (dry run)
    # on a pipe only the line naming the database (no progress, no warnings)
    assert proc.stderr.splitlines() == [f"database: {db.hidden} (--db)"], proc.stderr
    golden = GOLDEN / case
    if case.endswith(".json"):
        doc = json.loads(proc.stdout)
        # the bytes: json.dumps(indent=2, ensure_ascii=False) of the document, key order kept
        assert proc.stdout == json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
        got = json.dumps(normalize_doc(doc, db), indent=2, ensure_ascii=False, sort_keys=True)
    else:
        got = normalize_text(proc.stdout, db)
    got = f"exit {proc.returncode}\n{got}"
    if WRITE:
        GOLDEN.mkdir(exist_ok=True)
        golden.write_text(got + ("" if got.endswith("\n") else "\n"))
    expected = golden.read_text()
    assert got + ("" if got.endswith("\n") else "\n") == expected
