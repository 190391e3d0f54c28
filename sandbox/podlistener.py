"""TCL's `KubeService` (pod set for the obsolete-instance computation) and `KubePodListener`
(watch → `recoverStairway` on DELETED), on the official `kubernetes` client, with TCL's log lines
and retry loop (10 consecutive retries, 5 s doubling to 30 s)."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

WATCH_RETRIES = 10
WATCH_INITIAL_WAIT = 5
WATCH_MAX_WAIT = 30
#: what the Java client's Watch iterator throws when the stream breaks
JAVA_WATCH_IO_ERROR = "java.lang.RuntimeException: IO Exception during hasNext method."
#: the pods' own credential (their service account's token), unlike an operator's kubeconfig:
#: the `pod_watch_dropped` switch cuts the pods' watches only, as a broken listener would
POD_TOKEN = "sandbox-pod-serviceaccount"


@functools.lru_cache(maxsize=4)
def core_api(server_url: str) -> Any:
    """One CoreV1Api per server (building it costs ~1 s of CPU with the v37 client)."""
    from kubernetes import client

    cfg = client.Configuration()
    cfg.host = server_url
    cfg.api_key = {"authorization": f"Bearer {POD_TOKEN}"}
    return client.CoreV1Api(client.ApiClient(cfg))


class KubeService:
    """`bio.terra.common.kubernetes.KubeService`: the pods of the namespace whose names contain
    the filter (the Stairway instances that are alive)."""

    def __init__(
        self,
        server_url: str,
        namespace: str,
        pod_name: str,
        pod_name_filter: str,
        *,
        retries: int = 10,
        retry_wait: float = 5.0,
    ) -> None:
        self.server_url = server_url
        self.namespace = namespace
        self.pod_name = pod_name
        self.pod_name_filter = pod_name_filter
        self.retries = retries
        self.retry_wait = retry_wait
        self.log = logging.getLogger("bio.terra.common.kubernetes.KubeService")
        self.shutdown = threading.Event()
        self.listener: KubePodListener | None = None

    def get_pod_set(self) -> set[str]:
        api = core_api(self.server_url)
        last: Exception | None = None
        for attempt in range(self.retries):
            try:
                pods = api.list_namespaced_pod(self.namespace, _request_timeout=10)
                return {
                    p.metadata.name
                    for p in pods.items
                    if self.pod_name_filter in (p.metadata.name or "")
                }
            except Exception as error:
                last = error
                self.log.info("Retrying getPodSet after error: %s (attempt %s)", error, attempt + 1)
                if self.shutdown.wait(self.retry_wait):
                    break
        raise RuntimeError(f"Failed to get the pod set: {last}")

    def start_pod_listener(self, recover: Callable[[str], None]) -> KubePodListener:
        self.listener = KubePodListener(self, recover)
        self.listener.start()
        return self.listener


class KubePodListener(threading.Thread):
    def __init__(self, kube: KubeService, recover: Callable[[str], None]) -> None:
        super().__init__(name="KubePodListener", daemon=True)
        self.kube = kube
        self.recover = recover
        self.log = logging.getLogger("bio.terra.common.kubernetes.KubePodListener")
        self.pod_map: dict[str, str] = {}
        self.exception: BaseException | None = None
        self._watch: Any = None

    def run(self) -> None:
        from kubernetes import watch

        self.log.info("KubePodListener starting")
        consecutive = 0
        retry_wait = WATCH_INITIAL_WAIT
        while True:
            try:
                api = core_api(self.kube.server_url)
                self._watch = watch.Watch()
                for item in self._watch.stream(
                    api.list_namespaced_pod, self.kube.namespace, limit=5
                ):
                    if self.kube.shutdown.is_set():
                        self.log.info("Kubernetes service is shutting down. Exiting.")
                        return
                    consecutive = 0
                    retry_wait = WATCH_INITIAL_WAIT
                    operation = item["type"]
                    pod_name = item["object"].metadata.name or ""
                    self.log.info("%s : %s", operation, pod_name)
                    if self.kube.pod_name_filter in pod_name:
                        if operation == "ADDED":
                            self.log.info("Added api pod: %s", pod_name)
                            self.pod_map[pod_name] = "RUNNING"
                        elif operation == "DELETED":
                            self._deleted(pod_name)
                if self.kube.shutdown.is_set():
                    return
            except Exception as error:
                self.exception = error
                self.log.info("KubePodListener caught exception: %s", _java_view(error))
            if consecutive >= WATCH_RETRIES:
                self.log.error("KubePodListener exiting - exceeded max consecutive retries")
                return
            consecutive += 1
            self.log.info("KubePodListener retry wait seconds: %s", retry_wait)
            if self.kube.shutdown.wait(retry_wait):
                self.log.info("KubePodListener exiting - interrupted while retrying")
                return
            retry_wait = min(retry_wait + retry_wait, WATCH_MAX_WAIT)
            self.log.info("KubePodListener consecutive retry: %s", consecutive)

    def _deleted(self, pod_name: str) -> None:
        try:
            self.log.info("Attempting clean up of deleted stairway instance: %s", pod_name)
            self.recover(pod_name)
            if self.pod_map.get(pod_name) == "RUNNING":
                self.log.info("Deleted api pod: %s", pod_name)
                self.pod_map[pod_name] = "DELETED"
        except Exception as error:
            trace = getattr(error, "trace", None)
            self.log.error(
                "Stairway recoverStairway failed to recover pod: %s",
                pod_name,
                extra={"java_trace": trace() if callable(trace) else str(error)},
            )

    def active_pod_count(self) -> int:
        count = sum(1 for v in self.pod_map.values() if v == "RUNNING")
        self.log.info(
            "KubePodListener ActivePodCount: %s of %s pods active", count, len(self.pod_map)
        )
        return count


def _java_view(error: BaseException) -> str:
    """How the Java listener printed the exception (a broken stream is an IO exception)."""
    name = type(error).__name__
    if name in (
        "ProtocolError",
        "IncompleteRead",
        "InvalidChunkLength",
        "ReadTimeoutError",
        "ConnectionResetError",
        "RemoteDisconnected",
        "ChunkedEncodingError",
    ) or "Connection broken" in str(error):
        return JAVA_WATCH_IO_ERROR
    if name in ("MaxRetryError", "NewConnectionError", "ConnectionRefusedError"):
        return f"java.net.ConnectException: Failed to connect to /127.0.0.1 ({error})"
    if name == "ApiException":
        return f"io.kubernetes.client.openapi.ApiException: {error}"
    return f"java.lang.RuntimeException: {name}: {error}"


def wait_until(cond: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False
