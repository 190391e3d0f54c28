"""The documents and tables of `repairtool flights …` stay byte for byte what they were when
these views read through SQLAlchemy (before issue 11 moved them onto the psycopg read path):
golden copies captured from the code before the change, compared the way
`test_golden_documents` compares the orphans and decode documents (times relative to the
generation anchor, the generating transaction's id as `<xid>`).

The audit trail view reads a database where `repairtool orphans --fix` (through SQLAlchemy, the
mutation path) resumed the dead-owner flights; what differs from run to run in its records
(operation ids, row versions, audit times) is normalized too.

Re-capture (only when a change of the output is intended and reviewed):
`STAIRWAY_GOLDEN_WRITE=1 python -m pytest tests/repair/test_golden_flights.py`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from bench.benchdb import Spec, generate
from repairtool.localpg import PgServer, create_database, drop_database
from tests.repair.test_golden_documents import GOLDEN, LIVE_ARGS, WRITE, Db, normalize_doc, run

SHAPE = Spec(flights=600, running=12, waiting=8, mixed_every=7)
#: a flight of the generator with three log rows and three inputs
FLIGHT = "00000001-0000-4000-8000-000000000001"
#: a RUNNING flight of a dead owner: the fix disowns it
DISOWNED = "00000046-0000-4000-8000-000000000046"

CASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "flights-list.json": ("plain", ("flights", "list", "--json", "--limit", "15")),
    "flights-list.wide.txt": (
        "plain",
        ("flights", "list", "-o", "wide", "--status", "RUNNING", "--owner", "any", "--limit",
         "10", "--offset", "2", "--order", "submitted-asc"),
    ),
    "flights-list.markdown.txt": (
        "plain", ("flights", "list", "-o", "markdown", "--owner", "none", "--limit", "5"),
    ),
    "flights-count.json": ("plain", ("flights", "count", "--json", "--status", "RUNNING")),
    "flights-count.table.txt": ("plain", ("flights", "count", "--class", "*CreateFlight")),
    "flights-show.json": ("plain", ("flights", "show", FLIGHT, "--json")),
    "flights-show.raw.json": ("plain", ("flights", "show", FLIGHT, "--json", "--raw")),
    "flights-show.wide.txt": ("plain", ("flights", "show", FLIGHT, "-o", "wide")),
    "flights-instances.json": ("plain", ("flights", "instances", "--json")),
    "flights-instances.table.txt": ("plain", ("flights", "instances")),
    "flights-generation.json": ("plain", ("flights", "generation", "--json")),
    "flights-generation.table.txt": ("plain", ("flights", "generation")),
    "flights-audit.json": ("audited", ("flights", "audit", "--json")),
    "flights-audit.wide.txt": ("audited", ("flights", "audit", "-o", "wide", "--limit", "4")),
    "flights-audit-one.json": ("audited", ("flights", "audit", "--json", "--flight", DISOWNED)),
}  # fmt: skip


@pytest.fixture(scope="module")
def dbs(pg_server: PgServer) -> Iterator[dict[str, Db]]:
    made = {}
    for shape in ("plain", "audited"):
        url = create_database(pg_server, f"golden_flights_{shape}").set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        generate(conninfo, SHAPE)
        made[shape] = Db(conninfo)
    # the fix through the CLI, as an operator runs it (the actor named, not user@host)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STAIRWAY_", "PG"))}
    env |= {"STAIRWAY_OPS_STATE_DIR": "/nonexistent-state-dir", "STAIRWAY_OPS_ACTOR": "golden"}
    fix = subprocess.run(
        [sys.executable, "-m", "repairtool", "orphans", "--fix", "--yes", "--reason", "golden",
         "--db", made["audited"].url, *LIVE_ARGS, "--reader", "0.0.61", "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert fix.returncode in (0, 1), fix.stderr
    assert json.loads(fix.stdout)["applied"], fix.stdout
    yield made
    for shape in ("plain", "audited"):
        drop_database(pg_server, f"golden_flights_{shape}")


_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


def normalize_audit(text: str, ops: dict[str, str]) -> str:
    """Operation ids (random per run) as `<op1>`, `<op2>`, … in order of appearance; the row
    versions a fix leaves (`"version": "1234"`) as `<version>`; in a table, the padding."""

    def op(m: re.Match[str]) -> str:
        value = m.group(0)
        if value.startswith("0000"):  # the generator's flight ids
            return value
        return ops.setdefault(value, f"<op{len(ops) + 1}>")

    text = _UUID.sub(op, text)
    text = re.sub(r'("version": ?"?|version=)\d+', r"\1<version>", text)
    # a table's padding follows the width of those values: compared without it
    return re.sub(r"  +", "  ", text) if not text.startswith("exit 0\n{") else text


def document_text(case: str, stdout: str, db: Db) -> str:
    if case.endswith(".json"):
        doc: Any = json.loads(stdout)
        # the bytes: json.dumps(indent=2, ensure_ascii=False) of the document, key order kept
        assert stdout == json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
        return json.dumps(normalize_doc(doc, db), indent=2, ensure_ascii=False)
    return normalize_doc(stdout, db)  # type: ignore[no-any-return]


@pytest.mark.parametrize("case", sorted(CASES))
def test_flights_view_is_unchanged(case: str, dbs: dict[str, Db]) -> None:
    shape, args = CASES[case]
    db = dbs[shape]
    proc = run(*args, "--db", db.url)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [f"database: {db.hidden} (--db)"], proc.stderr
    got = f"exit {proc.returncode}\n{document_text(case, proc.stdout, db)}"
    if shape == "audited":
        got = normalize_audit(got, {})
    got += "" if got.endswith("\n") else "\n"
    golden = GOLDEN / case
    if WRITE:
        golden.write_text(got)
    assert got == golden.read_text()
