"""`repairtool decode --all` reads on psycopg and streams: findings come while the scan still
runs, progress is reported in chunks against the planner's estimate, a dry run never imports
SQLAlchemy, and what the spool writes after the scan is what the command printed before
(`View.render`; the JSON document is held byte for byte by test_golden_documents)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from bench.benchdb import Spec, generate
from repairtool.cli.common import View
from repairtool.cli.spool import COLUMNS, WIDE_COLUMNS, Spool
from repairtool.decodescan import CHUNK, DecodeStream, scan
from repairtool.detect import Action, Finding, Kind
from repairtool.events import Event
from repairtool.flightmap import ReaderVersion, load_builtin_catalog
from repairtool.localpg import PgServer, create_database, drop_database
from repairtool.stairway.dburl import parse_db_url
from repairtool.stairway.pgread import ReadDb
from tests.cliprocess import on_a_terminal, probe

# more than two chunks of flights; one in 7 with inputs no reader reads
SPEC = Spec(flights=2500, running=20, waiting=10, mixed_every=7)
CATALOG = load_builtin_catalog("workspace-manager")


@pytest.fixture(scope="module")
def db_url(pg_server: PgServer) -> Iterator[str]:
    url = create_database(pg_server, "decode_stream").set(drivername="postgresql")
    conninfo = url.render_as_string(hide_password=False)
    generate(conninfo, SPEC)
    yield conninfo
    drop_database(pg_server, "decode_stream")


def test_findings_come_while_the_scan_still_runs(db_url: str) -> None:
    db = ReadDb(parse_db_url(db_url, "test"))
    stream = DecodeStream(db, CATALOG, ReaderVersion.TYPED, all_flights=True)
    flights_read_at: list[int] = [stream.flights for _ in stream]
    assert len(flights_read_at) > 100
    assert flights_read_at[0] < 50  # the first finding before the 50th flight was read
    assert flights_read_at == sorted(flights_read_at)
    assert stream.flights == SPEC.flights
    assert stream.values == SPEC.flights * SPEC.inputs
    collected = scan(db, CATALOG, ReaderVersion.TYPED, all_flights=True)
    assert collected.flights == stream.flights and len(collected.findings) == len(flights_read_at)


def test_the_scan_reports_progress_in_chunks_against_the_planners_estimate(db_url: str) -> None:
    events: list[Event] = []
    db = ReadDb(parse_db_url(db_url, "test"))
    stream = DecodeStream(
        db, CATALOG, ReaderVersion.LEGACY, all_flights=True, on_event=events.append
    )
    for _ in stream:
        pass
    kinds = [e.kind for e in events]
    assert kinds == ["scan.start"] + ["scan.progress"] * (SPEC.flights // CHUNK) + ["scan.done"]
    assert events[0].data["total"] > 0 and events[0].data["estimated"]
    assert [e.data["done"] for e in events[1:-1]] == [CHUNK * (i + 1) for i in range(2)]
    assert events[-1].data["done"] == stream.flights == SPEC.flights


@pytest.mark.parametrize("output", ["json", "table"])
def test_decode_all_dry_run_never_imports_sqlalchemy_or_pydantic(db_url: str, output: str) -> None:
    run = probe(["decode", "--all", "--db", db_url, "-o", output])
    assert run.code == 1, run.stderr  # findings
    assert not run.heavy


def test_decode_all_on_a_terminal_draws_progress_on_stderr(db_url: str) -> None:
    code, stdout, stderr = on_a_terminal(["decode", "--all", "--db", db_url])
    assert code == 1, stderr
    assert f"scanning {CHUNK:,}/~" in stderr and "flights" in stderr
    assert stderr.endswith("\r\x1b[K")  # cleared before the table is printed
    assert stdout.startswith(b"Reader: ")


# --- the spool renders what View rendered -------------------------------------------------------


def _finding(fid: str, status: str | None, failures: list[dict[str, object]]) -> Finding:
    evidence = {"decode_failures": failures}
    return Finding(Kind.UNDECODABLE, fid, "a.b.C", status, None, Action.NONE, evidence)  # type: ignore[arg-type]


def _failure(key: str, found: str, reencodable: bool) -> dict[str, object]:
    return {
        "source": "input",
        "key": key,
        "expected": "uuid",
        "found": found,
        "reencodable": reencodable,
        "reader": "legacy",
        "reason": "why | with a pipe",
        "engine_exception": "java.lang.ClassCastException",
    }


FINDINGS = [
    _finding("f1", "RUNNING", [_failure("a", "plain JSON string (36 chars)", True)]),
    _finding(
        "flight-two-longer",
        None,
        [_failure("longer key", "x", False), _failure("b", "wrapper […]", True)],
    ),
]


def _view(findings: list[Finding], after: list[str]) -> View:
    """What `repairtool decode` showed before the spool (its rows, from the findings)."""
    rows, wide = [], []
    for f in findings:
        for x in f.evidence["decode_failures"]:
            reencodable = "yes" if x["reencodable"] else "no"
            row = [f.flight_id, f.status, x["source"], x["key"], x["expected"], x["found"]]
            rows.append([*row, reencodable])
            wide.append([*row, reencodable, x["reader"], x["reason"], x["engine_exception"]])
    return View(
        doc={},
        columns=list(COLUMNS),
        rows=rows,
        wide_columns=list(WIDE_COLUMNS),
        wide_rows=wide,
        title="repairtool decode: title",
        before=["Reader: head"],
        after=after,
    )


@pytest.mark.parametrize("output", ["table", "wide", "markdown"])
@pytest.mark.parametrize("findings", [FINDINGS, []], ids=["findings", "none"])
@pytest.mark.parametrize("after", [[], ["  plan: reencode f1", "dry run: nothing changed"]])
def test_the_spool_prints_what_the_view_printed(
    output: str, findings: list[Finding], after: list[str]
) -> None:
    want = _view(findings, after).render(output).rstrip("\n") + "\n"
    out = io.StringIO()
    with Spool(as_rows=True) as spool:
        for f in findings:
            spool.add(f)
        spool.render(
            out, output, before=["Reader: head"], after=after, title="repairtool decode: title"
        )
    assert out.getvalue() == want
