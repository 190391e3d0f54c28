"""Service logs through ``google-cloud-logging`` (``entries:list``), with an explicit time bound.

The base filter is the 2021 team's starting query (EXPERIMENTS.md "Logs")::

    resource.labels.project_id="terra-kernel-k8s"
    resource.labels.cluster_name="terra-integration"
    resource.labels.namespace_name="terra-jcarlton"
    resource.labels.location="us-central1-a"
    resource.labels.container_name="workspacemanager"
    -httpRequest.requestUrl="/status"
    -httpRequest.requestUrl="/version"

Every query adds ``timestamp>="…"`` itself: without a timestamp term the v3 client silently
appends a 24-hour bound, so older failures would quietly vanish.

The same code reads GKE's Cloud Logging and the sandbox's loopback ``entries:list`` server;
``endpoint`` selects the server (``CLOUDSDK_API_ENDPOINT_OVERRIDES_LOGGING`` is honoured like
gcloud does), and a plain-http loopback endpoint gets anonymous credentials.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from opskit.engine_events import LogLine
from opskit.errors import Unavailable, UsageError
from repairtool.clock import parse_rfc3339, rfc3339, utcnow
from repairtool.durations import InvalidDuration, parse_duration

ENDPOINT_OVERRIDE = "CLOUDSDK_API_ENDPOINT_OVERRIDES_LOGGING"

#: phrases of the engine's log lines (stairway-engine.md §3) used to pre-filter flight timelines
ENGINE_PHRASES = (
    "Disowned ",
    "Found ready flights",
    "Queued message",
    "Received message",
    "taking ownership of flight",
    "Launching flight",
    "resume flight",
    "flight to resume",
    "resumed flight",
    "Unexpected exception dispatching messages",
    "Unexpected stairway error",
    "Delaying flight",
    "Resuming flight",
    "Attempting clean up of deleted stairway instance",
    "Added api pod",
    "Deleted api pod",
    "failed to recover",
    "MODIFIED : ",
    "ADDED : ",
    "DELETED : ",
    "KubePodListener caught exception",
    "obsoleteStairways",
    "Recovering stairway",
    "changed status to",
    "Submitting flight to queue",
    "Flight interrupted",
    "DISMAL FAILURE",
    "Caught SQL",
    "Database operation failed",
)


@dataclass(frozen=True)
class LogScope:
    """Which log entries belong to the service (the ``resource.labels`` of its containers)."""

    project: str
    cluster: str
    location: str
    namespace: str
    container: str


def quote(value: str) -> str:
    """A Cloud Logging string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def base_filter(scope: LogScope) -> list[str]:
    """The 2021 starting query, one term per line."""
    return [
        f"resource.labels.project_id={quote(scope.project)}",
        f"resource.labels.cluster_name={quote(scope.cluster)}",
        f"resource.labels.namespace_name={quote(scope.namespace)}",
        f"resource.labels.location={quote(scope.location)}",
        f"resource.labels.container_name={quote(scope.container)}",
        '-httpRequest.requestUrl="/status"',
        '-httpRequest.requestUrl="/version"',
    ]


def build_filter(
    scope: LogScope,
    *,
    since: dt.datetime,
    until: dt.datetime | None = None,
    pod: str | None = None,
    contains: Sequence[str] = (),
) -> str:
    """The full filter: base terms, pod, any-of message phrases, and the explicit time bound."""
    terms = base_filter(scope)
    if pod:
        terms.append(f"resource.labels.pod_name={quote(pod)}")
    if contains:
        alts = " OR ".join(
            f"jsonPayload.message:{quote(c)} OR textPayload:{quote(c)}" for c in contains
        )
        terms.append(f"({alts})")
    terms.append(f"timestamp>={quote(rfc3339(since, 'microseconds'))}")
    if until is not None:
        terms.append(f"timestamp<={quote(rfc3339(until, 'microseconds'))}")
    return "\n".join(terms)


def parse_since(value: str, flag: str = "--since", now: dt.datetime | None = None) -> dt.datetime:
    """A log window's bound: a duration back from now (``1h``, ``3d``, ``2h30m``) or an RFC 3339
    time (``2021-04-05T14:00:00Z``)."""
    text = value.strip()
    if re.match(r"^\d{4}-\d{2}-\d{2}", text):
        try:
            return parse_rfc3339(text)
        except ValueError:
            raise UsageError(f"{flag} {value!r}: not an RFC 3339 time") from None
    try:
        return (now or utcnow()) - parse_duration(text)
    except InvalidDuration as exc:
        raise UsageError(f"{flag} {value!r}: {exc}") from None


def _is_loopback_http(endpoint: str) -> bool:
    u = urlparse(endpoint)
    return u.scheme == "http" and (u.hostname or "") in ("127.0.0.1", "localhost", "::1")


class CloudLogs:
    """A google-cloud-logging client for one project (HTTP transport, explicit endpoint)."""

    def __init__(self, project: str, endpoint: str = "") -> None:
        # lazy: google-cloud-logging takes ~0.4 s to import; only a log query needs it
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import logging as gcl

        self.project = project
        self.endpoint = endpoint or os.environ.get(ENDPOINT_OVERRIDE, "")
        kwargs: dict[str, Any] = {"project": project, "_use_grpc": False}
        if self.endpoint:
            kwargs["client_options"] = ClientOptions(api_endpoint=self.endpoint.rstrip("/"))
        if self.endpoint and _is_loopback_http(self.endpoint):
            kwargs["credentials"] = AnonymousCredentials()
        try:
            self._client = gcl.Client(**kwargs)
        except Exception as exc:  # google.auth.exceptions.DefaultCredentialsError and friends
            raise Unavailable(
                f"Cloud Logging: no credentials ({type(exc).__name__}); run "
                "`gcloud auth application-default login`"
            ) from None

    def entries(
        self, filter_: str, *, limit: int | None = None, newest_first: bool = False
    ) -> Iterator[LogLine]:
        """Entries matching ``filter_`` (which must carry its own ``timestamp>=`` term)."""
        from google.cloud import logging as gcl  # lazy: see __init__ (loaded there already)

        if "timestamp>=" not in filter_:
            raise ValueError("filter without an explicit timestamp>= bound")
        try:
            it = self._client.list_entries(
                resource_names=[f"projects/{self.project}"],
                filter_=filter_,
                order_by=gcl.DESCENDING if newest_first else gcl.ASCENDING,
                max_results=limit,
                page_size=min(limit, 1000) if limit else 1000,
            )
            for entry in it:
                yield to_log_line(entry)
        except Exception as exc:
            if isinstance(exc, ValueError | Unavailable):
                raise
            where = self.endpoint or "logging.googleapis.com"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise Unavailable(
                f"Cloud Logging at {where}: {type(exc).__name__} {first[:160]}".strip()
            ) from None


def to_log_line(entry: Any) -> LogLine:
    """A google-cloud-logging entry → :class:`LogLine` (``jsonPayload.message`` or text)."""
    payload = entry.payload
    if isinstance(payload, dict):
        message = str(payload.get("message", ""))
    else:
        message = "" if payload is None else str(payload)
    labels = (entry.resource.labels or {}) if entry.resource is not None else {}
    ts = entry.timestamp or utcnow()
    return LogLine(
        timestamp=ts,
        pod=str(labels.get("pod_name", "")),
        message=message,
        severity=str(entry.severity or "DEFAULT"),
    )
