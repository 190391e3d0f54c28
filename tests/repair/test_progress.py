"""Progress of a scan: on a terminal one line redrawn in place (n/N, rate, ETA) on stderr; on a
pipe or with `-o json` nothing (the golden-document test holds pipes to an empty stderr)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from bench.benchdb import LIVE, Spec, generate
from repairtool.cli.progress import TtyProgress, progress_sink
from repairtool.detect import Options, detect
from repairtool.events import Event, discard
from repairtool.liveness import from_names
from repairtool.localpg import PgServer, create_database, drop_database
from repairtool.stairway.dburl import parse_db_url
from repairtool.stairway.pgread import ReadDb
from tests.cliprocess import on_a_terminal

# 640 non-terminal flights: more than one chunk of the streamed scan (500)
SPEC = Spec(flights=3000, running=40, waiting=600)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def db_url(pg_server: PgServer) -> Iterator[str]:
    url = create_database(pg_server, "progress").set(drivername="postgresql")
    conninfo = url.render_as_string(hide_password=False)
    generate(conninfo, SPEC)
    yield conninfo
    drop_database(pg_server, "progress")


def test_the_line_shows_done_of_the_estimate_the_rate_and_the_time_left() -> None:
    tty = Tty()
    progress = TtyProgress(tty)
    progress(Event("scan.start", "", {"total": 1000, "estimated": True}))
    progress.start -= 2.0  # two seconds ago
    progress(Event("scan.progress", "", {"done": 500, "total": 1000, "estimated": True}))
    line = tty.getvalue().split("\r\x1b[K")[-1]
    assert line.startswith("scanning 500/~1,000 flights")
    assert " 250/s" in line
    assert line.endswith("ETA 2s")
    progress(Event("scan.done", "", {"done": 1000}))
    assert tty.getvalue().endswith("\r\x1b[K")  # the line is cleared when the scan is done


def test_applying_counts_changes_and_keeps_the_messages_as_lines() -> None:
    tty = Tty()
    progress = TtyProgress(tty, echo=True)
    progress(Event("apply.start", "applying 2 changes", {"total": 2}))
    progress(Event("change.start", "resume f1"))
    progress(Event("change.done", "resume f1: applied"))
    out = tty.getvalue()
    assert "  applying 2 changes\n" in out and "  resume f1: applied\n" in out
    assert "applying 1/2 changes" in out


def test_no_progress_on_a_pipe_or_for_a_json_document() -> None:
    assert progress_sink("table", io.StringIO()) is discard
    assert progress_sink("json", Tty()) is discard
    assert isinstance(progress_sink("table", Tty()), TtyProgress)


def test_detection_reports_its_scan_in_chunks_against_the_planners_estimate(db_url: str) -> None:
    events: list[Event] = []
    db = ReadDb(parse_db_url(db_url, "test"))
    detection = detect(db, from_names(LIVE), Options(), on_event=events.append)
    kinds = [e.kind for e in events]
    assert kinds == ["scan.start", "scan.progress", "scan.done"]
    assert events[0].data["total"] > 0 and events[0].data["estimated"]
    assert events[1].data["done"] == 500
    assert events[2].data["done"] == detection.scanned == SPEC.non_terminal


def test_orphans_on_a_terminal_draws_progress_on_stderr(db_url: str) -> None:
    """The real command with its stderr on a pseudo-terminal (stdout a pipe: the table)."""
    code, stdout, text = on_a_terminal(
        ["orphans", "--db", db_url, "--reader", "0.0.61", "--live-instances", ",".join(LIVE)]
    )
    assert code == 1, text  # findings
    assert "scanning 500/~" in text and "flights" in text
    assert text.endswith("\r\x1b[K")  # cleared: the table below is not overwritten
    assert b"dead_owner" in stdout
