"""`queued_overdue`: QUEUED/READY flights unowned longer than the work queue's ack deadline plus a
margin are reported as information (no action, no effect on the exit code), apart from
`unqueued`; the deadline is read from the subscription when a queue is configured."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import Engine

from repairtool.cli.orphans import ack_deadline_of
from repairtool.detect import AGE_MEASURED_FROM, ENGINE_ACK_DEADLINE_SOURCE, Kind, Options, detect
from repairtool.liveness import from_names
from repairtool.repair import build_plan
from repairtool.seed import load_flights
from repairtool.stairway.queue import WorkQueue
from tests.conftest import FIXTURES
from tests.repair.test_cli import run

LIVE = ["workspacemanager-deployment-68f9b944d5-9kgzp"]
LATE_QUEUED = "0c1d2e3f-0000-4000-8000-0000000late1"
LATE_READY = "0c1d2e3f-0000-4000-8000-0000000late2"
EXPIRED = "0c1d2e3f-0000-4000-8000-00000expired"


def _load(engine: Engine) -> None:
    load_flights(engine, json.loads((FIXTURES / "overdue-flights.json").read_text()))


def test_overdue_is_told_apart_from_unqueued_and_from_normal(stairway_db: Engine) -> None:
    _load(stairway_db)
    detection = detect(stairway_db, from_names(LIVE), Options())
    kinds = {f.flight_id: f.kind for f in detection.findings}
    # the 20 s old QUEUED flight is normal; the 4-day one lost its message (unqueued)
    assert kinds == {
        LATE_QUEUED: Kind.QUEUED_OVERDUE,
        LATE_READY: Kind.QUEUED_OVERDUE,
        EXPIRED: Kind.UNQUEUED,
    }
    late = next(f for f in detection.findings if f.flight_id == LATE_QUEUED)
    ev = late.evidence
    assert late.informational and late.proposed_action.value == "none"
    assert ev["ack_deadline"] == "100s" and ev["ack_deadline_source"] == ENGINE_ACK_DEADLINE_SOURCE
    assert ev["measured_from"] == AGE_MEASURED_FROM
    assert "keeps no status-change time" in ev["measured_from"]
    # measured from the newest flight-log row (3 minutes ago), not from the submit time (5)
    assert 170 <= ev["age_seconds"] < 290
    assert "redelivers it only after the deadline" in ev["why"]
    # never planned: a delay is not repaired automatically
    plan = build_plan(detection)
    assert [c.finding.flight_id for c in plan.changes] == []
    assert LATE_QUEUED not in {f.flight_id for f in plan.report_only}


def test_the_threshold_is_the_ack_deadline_plus_the_margin(stairway_db: Engine) -> None:
    _load(stairway_db)
    wide = Options(ack_deadline=dt.timedelta(minutes=10))
    assert Kind.QUEUED_OVERDUE not in {
        f.kind for f in detect(stairway_db, from_names(LIVE), wide).findings
    }
    short = Options(ack_deadline=dt.timedelta(seconds=10), overdue_margin=dt.timedelta(seconds=5))
    overdue = {
        f.flight_id
        for f in detect(stairway_db, from_names(LIVE), short).findings
        if f.kind is Kind.QUEUED_OVERDUE
    }
    assert overdue == {LATE_QUEUED, LATE_READY, "0c1d2e3f-0000-4000-8000-0000000fresh"}


def test_the_ack_deadline_is_read_from_the_subscription(work_queue: WorkQueue) -> None:
    deadline, source = ack_deadline_of(work_queue)
    assert deadline == dt.timedelta(seconds=10)  # the test subscription's, not the default 100 s
    assert work_queue.subscription_path in source and "Pub/Sub API" in source
    missing = WorkQueue(work_queue.project, "no-such-cluster")
    deadline, source = ack_deadline_of(missing)
    assert deadline == dt.timedelta(seconds=100)
    assert "could not be read" in source and "subscription not found" in source
    assert ack_deadline_of(None) == (dt.timedelta(seconds=100), ENGINE_ACK_DEADLINE_SOURCE)


def test_cli_reports_overdue_in_json_and_keeps_the_exit_code(
    stairway_db: Engine, work_queue: WorkQueue, pubsub_emulator: Any
) -> None:
    _load(stairway_db)
    url = stairway_db.url.render_as_string(hide_password=False)
    queue_args = ("--cluster", work_queue.cluster_name, "--project", work_queue.project)
    env = {"PUBSUB_EMULATOR_HOST": pubsub_emulator.host}
    live = ("--live-instances", ",".join(LIVE))
    only_overdue = ("--flight", LATE_QUEUED, "--flight", LATE_READY)
    proc = run("orphans", "--db", url, *live, *queue_args, *only_overdue, "--json", env=env)
    assert proc.returncode == 0, proc.stderr  # informational findings only: exit code unchanged
    doc = json.loads(proc.stdout)
    assert {f["kind"] for f in doc["findings"]} == {"queued_overdue"}
    assert doc["plan"] == [] and doc["refused"] == []
    ev = doc["findings"][0]["evidence"]
    assert ev["ack_deadline"] == "10s"  # read from the emulator's subscription
    assert work_queue.subscription_path in ev["ack_deadline_source"]
    table = run("orphans", "--db", url, *live, *queue_args, *only_overdue, env=env)
    assert table.returncode == 0
    assert "Informational: 2 queued_overdue" in table.stdout
    # with a real finding next to them, the exit code is the findings' one
    everything = run("orphans", "--db", url, *live, *queue_args, "--json", env=env)
    assert everything.returncode == 1
    kinds = sorted(f["kind"] for f in json.loads(everything.stdout)["findings"])
    assert kinds == ["queued_overdue", "queued_overdue", "unqueued"]
