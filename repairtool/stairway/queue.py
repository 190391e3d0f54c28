"""The engine's work queue: publishing the v1 READY message to `<cluster>-workqueue` on Pub/Sub.

`google-cloud-pubsub` honours `PUBSUB_EMULATOR_HOST` by itself (no credentials needed then).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from repairtool.errors import PlatformUnreachable, UsageError


def ready_message(flight_id: str) -> str:
    """The exact JSON the engine publishes (`QueueMessageReady`, format version "1")."""
    return json.dumps(
        {"type": {"version": "1", "messageEnum": "QUEUE_MESSAGE_READY"}, "flightId": flight_id},
        separators=(",", ":"),
    )


def topic_id(cluster_name: str) -> str:
    return f"{cluster_name}-workqueue"


def subscription_id(cluster_name: str) -> str:
    return f"{cluster_name}-workqueue-sub"


class QueueError(PlatformUnreachable):
    """The work queue (Pub/Sub) could not take the message."""


@dataclass
class WorkQueue:
    """The Pub/Sub topic of one Stairway cluster (TCL: `<namespace>-<cluster-name-suffix>`)."""

    project: str
    cluster_name: str
    _publisher: Any = field(default=None, repr=False)

    @classmethod
    def from_env(cls, cluster_name: str, project: str | None = None) -> WorkQueue:
        project = (
            project or os.environ.get("PUBSUB_PROJECT_ID") or os.environ.get("GOOGLE_CLOUD_PROJECT")
        )
        if not project:
            raise UsageError(
                "no Pub/Sub project: pass --project or set PUBSUB_PROJECT_ID/GOOGLE_CLOUD_PROJECT"
            )
        return cls(project, cluster_name)

    @property
    def topic_path(self) -> str:
        return f"projects/{self.project}/topics/{topic_id(self.cluster_name)}"

    @property
    def subscription_path(self) -> str:
        return f"projects/{self.project}/subscriptions/{subscription_id(self.cluster_name)}"

    def ack_deadline(self, timeout: float = 10.0) -> int:
        """The subscription's ack deadline in seconds, read with the Pub/Sub API (a message no
        pod acked is redelivered after it); :class:`QueueError` when it cannot be read."""
        try:
            from google.api_core import exceptions as gexc
            from google.auth import exceptions as auth_exc
            from google.cloud import pubsub_v1  # type: ignore[attr-defined,unused-ignore]
        except ImportError as error:  # pragma: no cover - dependency is declared
            raise QueueError(f"google-cloud-pubsub is not installed: {error}") from None
        try:
            with pubsub_v1.SubscriberClient() as client:
                sub = client.get_subscription(
                    request={"subscription": self.subscription_path}, timeout=timeout
                )
        except auth_exc.DefaultCredentialsError:
            raise QueueError("no Google credentials for Pub/Sub") from None
        except gexc.NotFound:
            raise QueueError(f"subscription not found: {self.subscription_path}") from None
        except gexc.GoogleAPIError as error:
            first = (str(error).splitlines() or [type(error).__name__])[0]
            raise QueueError(f"reading {self.subscription_path} failed: {first}") from None
        return int(sub.ack_deadline_seconds)

    def publish(self, message: str, timeout: float = 30.0) -> str:
        """Publish one message; returns the server's message id."""
        try:
            from google.api_core import exceptions as gexc
            from google.auth import exceptions as auth_exc
            from google.cloud import pubsub_v1  # type: ignore[attr-defined,unused-ignore]
        except ImportError as error:  # pragma: no cover - dependency is declared
            raise QueueError(f"google-cloud-pubsub is not installed: {error}") from None
        try:
            if self._publisher is None:
                self._publisher = pubsub_v1.PublisherClient()
            future = self._publisher.publish(self.topic_path, message.encode())
            return str(future.result(timeout=timeout))
        except auth_exc.DefaultCredentialsError:
            raise QueueError(
                "no Google credentials for Pub/Sub: run `gcloud auth application-default login`"
                " or set PUBSUB_EMULATOR_HOST for the emulator"
            ) from None
        except gexc.NotFound:
            raise QueueError(f"work-queue topic not found: {self.topic_path}") from None
        except gexc.GoogleAPIError as error:
            raise QueueError(f"publishing to {self.topic_path} failed: {error}") from None
