"""The service's pods and deployment through the official ``kubernetes`` client.

One :class:`Kube` is bound to one namespace — the env's. It never takes a namespace argument,
so it cannot touch another namespace; :func:`check_namespace` refuses any other one up front.
The same code serves GKE (kubeconfig context from the env), the sandbox (its kubeconfig) and a
pod in the cluster (the in-cluster service account, as kubectl does when there is no kubeconfig).
The service's pods are the ones its label selector matches (and, for services whose pods are
told apart by name, whose name contains the pod-name filter).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from urllib3.exceptions import HTTPError, ProtocolError

from opskit.errors import NotFound, OpsTimeout, Refused, Unavailable
from opskit.events import Reporter, silent
from repairtool.clock import rfc3339, utcnow
from repairtool.liveness import in_cluster


@dataclass(frozen=True)
class Pod:
    """What we need to know about one pod."""

    name: str
    namespace: str
    phase: str
    ready: bool
    deleting: bool = False
    created: dt.datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)
    uid: str = ""

    @property
    def template_hash(self) -> str:
        return self.labels.get("pod-template-hash", "")


@dataclass(frozen=True)
class PodEvent:
    """One watch event: ``ADDED``, ``MODIFIED`` or ``DELETED``."""

    type: str
    pod: Pod
    at: dt.datetime
    #: the object's resourceVersion (watch again from here to miss nothing)
    resource_version: str = ""


@dataclass(frozen=True)
class DeploymentStatus:
    """``kubectl rollout status`` inputs for one deployment."""

    name: str
    namespace: str
    generation: int
    observed_generation: int
    replicas: int  # spec.replicas
    current: int  # status.replicas (old + new pods)
    updated: int
    ready: int
    available: int
    container_env: dict[str, list[str]] = field(default_factory=dict)

    @property
    def stable(self) -> bool:
        return (
            self.observed_generation >= self.generation
            and self.updated == self.replicas
            and self.current == self.replicas
            and self.available == self.replicas
            and self.ready == self.replicas
        )

    def progress(self) -> str:
        """The message kubectl/skaffold print while waiting."""
        if self.observed_generation < self.generation:
            return "waiting for deployment spec update to be observed..."
        if self.updated < self.replicas:
            return (
                f"waiting for rollout to finish: {self.updated} out of {self.replicas} new replicas"
                " have been updated..."
            )
        if self.current > self.updated:
            return (
                f"waiting for rollout to finish: {self.current - self.updated} old replicas are"
                " pending termination..."
            )
        return (
            f"waiting for rollout to finish: {self.available} of {self.updated} updated replicas"
            " are available..."
        )


def check_namespace(requested: str | None, allowed: str) -> None:
    """Refuse any namespace other than the env's."""
    if requested and requested != allowed:
        raise Refused(
            f"namespace {requested!r} is not the env's namespace {allowed!r}; refusing to touch it"
        )


def split_pod_arg(value: str, allowed_namespace: str) -> str:
    """``NAME`` or ``NAMESPACE/NAME`` → NAME, refusing other namespaces."""
    if "/" in value:
        ns, _, name = value.partition("/")
        check_namespace(ns, allowed_namespace)
        return name
    return value


def humanize_seconds(seconds: float) -> str:
    """Skaffold's duration format: ``1 minute 24.928 seconds``, ``3.5 seconds``."""
    minutes, secs = divmod(seconds, 60)
    parts = []
    if minutes >= 1:
        m = int(minutes)
        parts.append(f"{m} minute{'s' if m != 1 else ''}")
    parts.append(f"{secs:.3f}".rstrip("0").rstrip(".") + " seconds")
    return " ".join(parts)


def _pod_from(obj: Any) -> Pod:
    md = obj.metadata
    status = obj.status
    conditions = (status.conditions if status else None) or []
    ready_conds = [c for c in conditions if c.type == "Ready"]
    phase = (status.phase if status else None) or "Unknown"
    ready = bool(ready_conds) and ready_conds[0].status == "True"
    return Pod(
        name=md.name,
        namespace=md.namespace or "",
        phase=phase,
        ready=ready and md.deletion_timestamp is None,
        deleting=md.deletion_timestamp is not None,
        created=md.creation_timestamp,
        labels=dict(md.labels or {}),
        uid=md.uid or "",
    )


class Kube:
    """Pods and one deployment in one namespace, through the official client."""

    def __init__(
        self,
        namespace: str,
        *,
        kubeconfig: Path | None = None,
        context: str | None = None,
        pod_filter: str = "",
        label_selector: str = "",
    ) -> None:
        # lazy: the kubernetes client takes ~0.3 s to import; only a cluster call needs it
        from kubernetes import client, config

        self.namespace = namespace
        self.pod_filter = pod_filter
        self.label_selector = label_selector
        self.context = context
        self._where = f"context {context}" if context else f"kubeconfig {kubeconfig}"
        try:
            if in_cluster(kubeconfig):
                cfg = client.Configuration()
                config.load_incluster_config(client_configuration=cfg)
                api = client.ApiClient(cfg)
            else:
                if kubeconfig is not None and not kubeconfig.is_file():
                    raise Unavailable(
                        f"kubeconfig {kubeconfig} does not exist (run `inv setup` first)"
                    )
                api = config.new_client_from_config(
                    config_file=str(kubeconfig) if kubeconfig else None,
                    context=context,
                    persist_config=False,
                )
        except config.ConfigException as exc:
            raise Unavailable(f"kubeconfig {kubeconfig}: {str(exc).splitlines()[0]}") from None
        api.configuration.retries = 1
        self.api_client = api
        self.host = api.configuration.host
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)

    # -- errors ---------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        from kubernetes.client.exceptions import ApiException  # lazy: see __init__

        try:
            return fn()
        except ApiException as exc:
            if exc.status == 404:
                raise NotFound(f"{what}: not found in namespace {self.namespace}") from None
            if exc.status in (401, 403):
                raise Refused(
                    f"{what}: the API server at {self.host} refused ({exc.status} {exc.reason})"
                ) from None
            raise Unavailable(f"{what}: API error {exc.status} {exc.reason}") from None
        except (HTTPError, OSError) as exc:
            raise Unavailable(
                f"{what}: kubernetes API at {self.host} unreachable ({type(exc).__name__})"
            ) from None

    # -- pods -----------------------------------------------------------------------------

    def matches(self, name: str) -> bool:
        """TCL's pod-name filter: the service's pods have the filter string in their name."""
        return not self.pod_filter or self.pod_filter in name

    def _selected(self) -> dict[str, Any]:
        """The list/watch arguments that select the service's pods on the server."""
        return {"label_selector": self.label_selector} if self.label_selector else {}

    def list_pods(self) -> list[Pod]:
        """The service's pods (label selector and name filter applied), sorted by name."""
        return self.list_pods_rv()[0]

    def list_pods_rv(self) -> tuple[list[Pod], str | None]:
        ret = self._call(
            f"list pods in {self.namespace}",
            lambda: self.core.list_namespaced_pod(self.namespace, **self._selected()),
        )
        pods = sorted((_pod_from(p) for p in ret.items), key=lambda p: p.name)
        return [p for p in pods if self.matches(p.name)], ret.metadata.resource_version

    def get_pod(self, name: str) -> Pod:
        obj = self._call(f"pod {name}", lambda: self.core.read_namespaced_pod(name, self.namespace))
        return _pod_from(obj)

    def read_secret(self, name: str, key: str) -> str:
        """One key of a Secret in the namespace, decoded. Never log the result."""
        obj = self._call(
            f"Secret {name}", lambda: self.core.read_namespaced_secret(name, self.namespace)
        )
        data = obj.data or {}
        if key not in data:
            keys = ", ".join(sorted(data)) or "none"
            raise NotFound(f"Secret {self.namespace}/{name} has no key {key!r} (its keys: {keys})")
        try:
            return base64.b64decode(data[key], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise NotFound(
                f"Secret {self.namespace}/{name} key {key!r} is not base64-encoded UTF-8 text"
            ) from None

    def delete_pod(self, name: str, grace_period_seconds: int | None = None) -> None:
        """Delete one pod of the service (``kubectl delete pod NAME --namespace=NS``)."""
        if not self.matches(name):
            raise Refused(f"pod {name!r} is not a pod of this service (filter {self.pod_filter!r})")
        if self.label_selector and name not in {p.name for p in self.list_pods()}:
            raise Refused(
                f"pod {name!r} is not a pod of this service (selector {self.label_selector!r})"
            )
        kwargs: dict[str, Any] = {}
        if grace_period_seconds is not None:
            kwargs["grace_period_seconds"] = grace_period_seconds
        self._call(
            f"pod {name}",
            lambda: self.core.delete_namespaced_pod(name, self.namespace, **kwargs),
        )

    def watch_pods(
        self, timeout_seconds: float, resource_version: str | None = None
    ) -> Iterator[PodEvent]:
        """Pod watch events of the service's pods until ``timeout_seconds`` pass.

        A dropped watch is re-established (from the last resource version) until the deadline.
        """
        from kubernetes import watch  # lazy: see __init__

        deadline = time.monotonic() + timeout_seconds
        rv = resource_version
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            w = watch.Watch()
            kwargs: dict[str, Any] = {"timeout_seconds": max(1, int(left + 0.999))}
            if rv:
                kwargs["resource_version"] = rv
            # the stream is lazy: transport errors surface while iterating (see _guarded)
            stream = w.stream(
                self.core.list_namespaced_pod, self.namespace, **kwargs, **self._selected()
            )
            try:
                for raw in _guarded(self, stream):
                    if raw is _EXPIRED:
                        rv = None  # 410 Gone: watch again from "now"
                        break
                    obj = raw["object"]
                    if raw["type"] not in ("ADDED", "MODIFIED", "DELETED"):
                        continue
                    rv = obj.metadata.resource_version or rv
                    pod = _pod_from(obj)
                    if self.matches(pod.name):
                        yield PodEvent(
                            type=raw["type"], pod=pod, at=utcnow(), resource_version=rv or ""
                        )
                    if time.monotonic() >= deadline:
                        return
            finally:
                w.stop()

    # -- deployment -----------------------------------------------------------------------

    def deployment_status(self, name: str) -> DeploymentStatus:
        d = self._call(
            f"deployment {name}",
            lambda: self.apps.read_namespaced_deployment(name, self.namespace),
        )
        st = d.status
        containers = (d.spec.template.spec.containers or []) if d.spec and d.spec.template else []
        return DeploymentStatus(
            name=d.metadata.name,
            namespace=d.metadata.namespace or self.namespace,
            generation=d.metadata.generation or 0,
            observed_generation=(st.observed_generation if st else 0) or 0,
            replicas=d.spec.replicas if d.spec.replicas is not None else 1,
            current=(st.replicas if st else 0) or 0,
            updated=(st.updated_replicas if st else 0) or 0,
            ready=(st.ready_replicas if st else 0) or 0,
            available=(st.available_replicas if st else 0) or 0,
            container_env={c.name: [e.name for e in (c.env or [])] for c in containers},
        )

    def restart_deployment(self, name: str) -> None:
        """``kubectl rollout restart``: stamp the pod template, so a new ReplicaSet rolls out."""
        stamp = rfc3339(utcnow(), "seconds")
        body = {
            "spec": {
                "template": {
                    "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}
                }
            }
        }
        self._call(
            f"deployment {name}",
            lambda: self.apps.patch_namespaced_deployment(name, self.namespace, body),
        )

    def wait_rollout(
        self,
        name: str,
        timeout_seconds: float,
        reporter: Reporter | None = None,
        *,
        poll_seconds: float = 0.5,
        started: float | None = None,
    ) -> float:
        """Wait until the deployment is stable; return seconds taken (from ``started``)."""
        rep = reporter or silent()
        t0 = started if started is not None else time.monotonic()
        deadline = time.monotonic() + timeout_seconds
        last = ""
        rep.emit("rollout.waiting", "Waiting for deployments to stabilize...", deployment=name)
        while True:
            status = self.deployment_status(name)
            if status.stable:
                rep.emit(
                    "rollout.ready",
                    f" - {self.namespace}:deployment/{name} is ready.",
                    deployment=name,
                    replicas=status.replicas,
                )
                return time.monotonic() - t0
            msg = f" - {self.namespace}:deployment/{name}: {status.progress()}"
            if msg != last:
                rep.emit(
                    "rollout.progress",
                    msg,
                    deployment=name,
                    updated=status.updated,
                    ready=status.ready,
                    available=status.available,
                    replicas=status.replicas,
                )
                last = msg
            if time.monotonic() >= deadline:
                raise OpsTimeout(
                    f"deployment/{name} in {self.namespace} not stable after {timeout_seconds:g}s:"
                    f" {status.progress()}"
                )
            time.sleep(poll_seconds)


_EXPIRED = object()


def _guarded(kube: Kube, stream: Iterator[Any]) -> Iterator[Any]:
    """Map transport errors raised while iterating a watch to one-line errors."""
    from kubernetes.client.exceptions import ApiException  # lazy: see Kube.__init__

    try:
        yield from stream
    except ProtocolError:
        return  # the server closed the watch; the caller re-watches
    except ApiException as exc:
        if exc.status == 410:
            yield _EXPIRED
            return
        raise Unavailable(f"watch pods in {kube.namespace}: API error {exc.status}") from None
    except (HTTPError, OSError) as exc:
        raise Unavailable(
            f"watch pods: kubernetes API at {kube.host} unreachable ({type(exc).__name__})"
        ) from None
