"""Resume latency from what an attempt recorded (pure): the owner's deletion by `inv kill-pod`,
then the first RUNNING on another pod and SUCCESS from the engine's own lines."""

from __future__ import annotations

import datetime as dt

from opskit.engine_events import TimelineItem, classify
from opskit.experiment.latency import recovery_of
from opskit.journal import TimelineEntry

T0 = dt.datetime(2026, 12, 1, 17, 0, 0, tzinfo=dt.UTC)
FLIGHT = "490b8ff3-8b95-4a20-b884-ca43b4458fb4"
DEAD, NEW = "wsm-5fbb79fb96-d769l", "wsm-5fbb79fb96-tsxg9"


def _line(seconds: float, pod: str, message: str) -> TimelineItem:
    event = classify(message)
    assert event is not None, message
    return TimelineItem(T0 + dt.timedelta(seconds=seconds), pod, event, message)


def _kill(seconds: float) -> TimelineEntry:
    at = (T0 + dt.timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
    return TimelineEntry(at=at, source="kube", event="kill", detail="deleted pod", pod=DEAD)


def test_running_again_on_another_pod_and_success_are_measured_from_the_kill() -> None:
    events = [
        _line(0.0, DEAD, f"Flight ID {FLIGHT} changed status to RUNNING."),
        _line(4.5, NEW, f"Flight ID {FLIGHT} changed status to READY."),
        _line(14.75, NEW, f"Stairway {NEW} taking ownership of flight {FLIGHT}"),
        _line(14.8, NEW, f"Flight ID {FLIGHT} changed status to RUNNING."),
        _line(19.9, NEW, f"Flight ID {FLIGHT} changed status to SUCCESS."),
    ]
    rec = recovery_of(DEAD, [_kill(3.0)], events, None, "emulator")
    assert rec is not None
    assert (rec.running_pod, rec.to_running_s, rec.to_success_s) == (NEW, 11.75, 16.9)
    assert rec.owner == DEAD and rec.queue == "emulator"


def test_no_kill_recorded_no_latency_and_the_row_completes_it() -> None:
    assert recovery_of(DEAD, [], [], None) is None
    rec = recovery_of(DEAD, [_kill(1.0)], [], "2026-12-01 17:00:31.500000", "none", "SUCCESS")
    assert rec is not None and rec.running_again is None and rec.to_running_s is None
    assert rec.to_success_s == 30.5  # from the flight row's completed_time
    # a flight that ended FATAL (forced, say) has a completed_time but no time to SUCCESS
    failed = recovery_of(DEAD, [_kill(1.0)], [], "2026-12-01 17:00:31.500000", "none", "FATAL")
    assert failed is not None and failed.to_success_s is None and failed.finished is None
