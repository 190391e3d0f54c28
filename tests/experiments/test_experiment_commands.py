"""Commands an experiment runs are real processes, recorded exactly and masked."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from opskit.events import Collector, Reporter
from opskit.experiment.commands import CommandLog
from opskit.journal import parse_time

SECRET = "s3cr3t-pass-word"


def make_log(tmp_path: Path) -> tuple[CommandLog, Collector]:
    collector = Collector()
    log = CommandLog(
        cwd=tmp_path,
        env=dict(os.environ),
        reporter=Reporter([collector]),
        log_dir=tmp_path / "commands",
        secrets=[SECRET],
    )
    return log, collector


def test_a_command_is_recorded_with_its_exact_text_rc_and_masked_tail(tmp_path: Path) -> None:
    log, events = make_log(tmp_path)
    command = "echo 'hello'; echo \"pw=$PW\" >&2; echo '{\"a\": 1}'; exit 3"
    result = log.run("probe", command, extra_env={"PW": SECRET})
    rec = result.record
    assert (rec.id, rec.command, rec.rc) == ("probe", command, 3)
    assert "pw=<<MASKED>>" in rec.output_tail and SECRET not in "".join(rec.output_tail)
    assert result.stdout.splitlines() == ["hello", '{"a": 1}']  # stdout alone, for --json
    assert parse_time(rec.at).tzinfo is not None and rec.duration_s >= 0
    text = (tmp_path / "commands" / "01-probe.log").read_text()
    assert text.startswith(f"$ {command}\n") and SECRET not in text and "# rc=3" in text
    assert events.events[0].kind == "command.start"
    assert "command.done" in events.kinds()
    assert all(SECRET not in e.message for e in events.events)
    assert log.records == (rec,)


def test_a_secret_never_enters_a_command_line(tmp_path: Path) -> None:
    log, _ = make_log(tmp_path)
    with pytest.raises(ValueError, match="would carry a secret"):
        log.run("leak", f"echo {SECRET}")
    with pytest.raises(ValueError, match="would carry a secret"):
        log.run("url", "psql postgresql://postgres:hunter2@127.0.0.1/stairway")


def test_a_background_command_is_stopped_at_its_deadline_and_recorded(tmp_path: Path) -> None:
    log, _ = make_log(tmp_path)
    started = time.monotonic()
    running = log.start("client", "echo waiting; sleep 30")
    fast = log.run("fast", "echo done")
    result = running.wait(0.5)
    assert time.monotonic() - started < 10
    assert result.rc is None and result.timed_out
    assert result.record.output_tail[-1].startswith("(stopped after")
    assert running.proc.poll() is not None  # the whole process group is gone
    # records are in start order; log files are numbered in start order
    assert [r.id for r in log.records] == ["client", "fast"] and fast.ok
    assert sorted(p.name for p in (tmp_path / "commands").iterdir()) == [
        "01-client.log",
        "02-fast.log",
    ]


def test_duration_is_until_exit_not_until_someone_waits(tmp_path: Path) -> None:
    log, _ = make_log(tmp_path)
    running = log.start("quick", "true")
    time.sleep(1.0)
    assert running.wait(5).record.duration_s < 0.8
