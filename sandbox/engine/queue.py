"""The engine's Pub/Sub work queue: publish READY messages, and the listener thread that pulls
(synchronous pull, 2 messages at a time, as the engine does), dispatches and acks.

Messages are acked only when processing returns true; an exception while processing a batch
(e.g. `MakeFlightException` from `resume`) is logged as "Unexpected exception dispatching messages -
continuing" and the whole batch stays unacked, so Pub/Sub redelivers it after the ack deadline.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sandbox.engine.exceptions import JavaException

MAX_MESSAGES_PER_PULL = 2
NO_PULL_SLEEP_SECONDS = 5.0


def ready_message(
    flight_id: str, *, with_context: bool = False, context: dict[str, str] | None = None
) -> str:
    """`{"type":{"version":"1","messageEnum":"QUEUE_MESSAGE_READY"},"flightId":"<id>"}`
    (1.1.10+ appends `callingThreadContext`)."""
    msg: dict[str, Any] = {
        "type": {"version": "1", "messageEnum": "QUEUE_MESSAGE_READY"},
        "flightId": flight_id,
    }
    if with_context:
        msg["callingThreadContext"] = context
    return json.dumps(msg, separators=(",", ":"))


class WorkQueue:
    """Topic `<cluster>-workqueue`, subscription `<cluster>-workqueue-sub` (PUBSUB_EMULATOR_HOST
    must be set in the environment for the emulator)."""

    def __init__(self, project: str, topic: str, subscription: str, logger_name: str) -> None:
        from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

        self.topic_path = f"projects/{project}/topics/{topic}"
        self.subscription_path = f"projects/{project}/subscriptions/{subscription}"
        self.publisher = PublisherClient()
        self.subscriber = SubscriberClient()
        self.log = logging.getLogger(logger_name)
        #: the sandbox's `hold_queue_messages` switch: while true, received messages are neither
        #: processed nor acked (a pod that took the batch and died): redelivered after the deadline
        self.held: Callable[[], bool] = lambda: False

    def publish(self, message: str) -> str:
        message_id = str(self.publisher.publish(self.topic_path, message.encode()).result(30))
        self.log.info("Queued message. Id: %s; Msg: %s", message_id, message)
        return message_id

    def pull(self, max_messages: int, timeout: float) -> list[tuple[str, str]]:
        from google.api_core import exceptions as gexc

        try:
            resp = self.subscriber.pull(
                request={"subscription": self.subscription_path, "max_messages": max_messages},
                timeout=timeout,
            )
        except gexc.DeadlineExceeded:
            self.log.info("Deadline exceeded on pull request")
            return []
        return [(m.ack_id, m.message.data.decode()) for m in resp.received_messages]

    def ack(self, ack_ids: list[str]) -> None:
        if ack_ids:
            self.subscriber.acknowledge(
                request={"subscription": self.subscription_path, "ack_ids": ack_ids}
            )


class WorkQueueListener(threading.Thread):
    """Pulls and dispatches while the local pool has room."""

    def __init__(
        self,
        queue: WorkQueue,
        process: Callable[[str], bool],
        pool_has_room: Callable[[], bool],
        logger_name: str,
        stop: threading.Event,
    ) -> None:
        super().__init__(name="WorkQueueListener", daemon=True)
        self.queue = queue
        self.process = process
        self.pool_has_room = pool_has_room
        self.log = logging.getLogger(logger_name)
        self.stop_event = stop

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                if not self.pool_has_room():
                    self.stop_event.wait(NO_PULL_SLEEP_SECONDS)
                    continue
                messages = self.queue.pull(MAX_MESSAGES_PER_PULL, timeout=10.0)
            except Exception:
                self.log.warning("Unexpected exception on pull request - continuing", exc_info=True)
                self.stop_event.wait(1.0)
                continue
            if messages:
                self.dispatch(messages)
        self.log.info("WorkQueueListener interrupted - exiting")

    def dispatch(self, messages: list[tuple[str, str]]) -> None:
        ack_ids: list[str] = []
        try:
            for ack_id, data in messages:
                self.log.info("Received message: %s", data)
                if self.queue.held():
                    continue  # the hold switch: not processed, not acked (redelivered later)
                if self.process(data):
                    ack_ids.append(ack_id)
        except JavaException as error:
            self.log.warning(
                "Unexpected exception dispatching messages - continuing",
                extra={"java_trace": error.trace()},
            )
            return
        except Exception:
            self.log.warning(
                "Unexpected exception dispatching messages - continuing", exc_info=True
            )
            return
        try:
            self.queue.ack(ack_ids)
        except Exception:
            self.log.warning(
                "Unexpected exception dispatching messages - continuing", exc_info=True
            )
            time.sleep(0.1)
