"""The Pub/Sub emulator manager: start, work queue with the engine's settings, stop for sure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox.procs import group_alive
from sandbox.pubsub_emulator import PubSubEmulator, find_launcher

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_launcher() is None, reason="Pub/Sub emulator not installed"),
]


def test_emulator_work_queue_roundtrip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    emu = PubSubEmulator.start(tmp_path / "emulator.log")
    try:
        emu.create_work_queue("p-test", "ns-x-workqueue", "ns-x-workqueue-sub", 10)
        sub = emu.subscription("p-test", "ns-x-workqueue-sub")
        assert sub["ackDeadlineSeconds"] == 10
        assert sub["topic"] == "projects/p-test/topics/ns-x-workqueue"

        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emu.host)
        from google.cloud import pubsub_v1

        publisher = pubsub_v1.PublisherClient()
        subscriber = pubsub_v1.SubscriberClient()
        msg = b'{"type":{"version":"1","messageEnum":"QUEUE_MESSAGE_READY"},"flightId":"f-1"}'
        publisher.publish("projects/p-test/topics/ns-x-workqueue", msg).result(timeout=10)
        got = subscriber.pull(
            request={
                "subscription": "projects/p-test/subscriptions/ns-x-workqueue-sub",
                "max_messages": 2,
            },
            timeout=10,
        )
        assert [m.message.data for m in got.received_messages] == [msg]
        subscriber.close()
    finally:
        emu.stop()
    assert not group_alive(emu.pid)
    with pytest.raises(ProcessLookupError):
        os.kill(emu.pid, 0)
