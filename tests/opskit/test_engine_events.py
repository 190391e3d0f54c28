"""The engine-event classifier (table-driven) and flight timelines from the 2021 log lines."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from opskit.engine_events import Kind, LogLine, classify, flight_timeline, root_cause

FIX = Path(__file__).parent / "fixtures"
CASES: list[dict[str, Any]] = json.loads((FIX / "engine-lines.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["message"][:60] or "empty" for c in CASES])
def test_classify(case: dict[str, Any]) -> None:
    ev = classify(case["message"])
    if case["kind"] is None:
        assert ev is None
        return
    assert ev is not None
    assert ev.kind == Kind(case["kind"])
    for key in ("flight_id", "stairway", "count", "detail"):
        if key in case:
            assert getattr(ev, key) == case[key], key


def test_root_cause_is_the_innermost_caused_by() -> None:
    msg = next(c["message"] for c in CASES if c["kind"] == "dispatch_error")
    assert root_cause(msg).startswith("java.lang.ClassCastException: Found value 'MC_WORKSPACE'")
    assert root_cause("no exception here") == ""


def _lines() -> list[LogLine]:
    out = []
    for path in sorted((FIX / "logs-2021").glob("*.jsonl")):
        for raw in path.read_text().splitlines():
            e = json.loads(raw)
            ts = dt.datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00"))
            out.append(
                LogLine(ts, e["resource"]["labels"]["pod_name"], e["jsonPayload"]["message"])
            )
    return out


def test_flight_timeline_of_attempt_1() -> None:
    items = flight_timeline(_lines(), "7348bc13-2255-4a50-85b5-fcb5534674cb")
    kinds = [i.event.kind.value for i in items]
    # noise.jsonl (another namespace) is not filtered here: that is the query's job
    assert kinds[:2] == ["disowned", "ready_found"]
    assert kinds[-6:] == [
        "queued",
        "received",
        "taking_ownership",
        "dispatch_error",
        "received",
        "not_resumed",
    ]
    disowned = items[0]
    assert disowned.event.stairway == "workspacemanager-deployment-5ffc97854c-9vbt4"
    assert "MC_WORKSPACE" in items[kinds.index("dispatch_error")].summary()
    assert all(i.pod != "workspacemanager-deployment-68f9b944d5-5gwdm" for i in items)


def test_flight_timeline_without_mentions_is_empty() -> None:
    assert flight_timeline(_lines(), "00000000-0000-0000-0000-000000000000") == []
