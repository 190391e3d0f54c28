"""Kubernetes objects of one namespace and the Deployment/ReplicaSet controller that keeps its pods.

`ObjectStore` holds pods, events, the deployment and its replica sets with resource versions and
watch fan-out (the API server's job). `Cluster` is the controller (the ReplicaSet and Deployment
controllers plus the kubelet's view of the containers): it creates pods named
`<deployment>-<template-hash>-<5 chars>`, moves them Pending → Running → Ready as their container
(a `PodRuntime`) starts and passes its readiness probe, restarts crashed containers in place
(CrashLoopBackOff), deletes pods by killing the container first (SIGKILL: no grace, as the 2021
WSM had no shutdown hook), replaces deleted pods (unless the replacement switch is off), scales
and rolls out a new template one pod at a time (maxSurge 0, maxUnavailable 1, like the chart).
"""

from __future__ import annotations

import copy
import json
import queue
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Protocol

Obj = dict[str, Any]

#: k8s.io/apimachinery/pkg/util/rand: the alphabet of generated names and template hashes
ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"

KINDS = ("pods", "events", "deployments", "replicasets")


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _fnv1a32(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def template_hash(template: Obj) -> str:
    """The pod-template-hash the Deployment controller would compute: FNV-32a of the template,
    printed in decimal, each digit mapped through `SafeEncodeString`. Salted (like the
    controller's collisionCount) until the decimal has 10 digits, so the hash is 10 characters."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    salt = 0
    while True:
        digits = str(_fnv1a32(data + (str(salt).encode() if salt else b"")))
        if len(digits) == 10:
            return "".join(ALPHANUMS[ord(c) % len(ALPHANUMS)] for c in digits)
        salt += 1


def random_suffix(n: int = 5) -> str:
    return "".join(secrets.choice(ALPHANUMS) for _ in range(n))


def cloud_logging_label(key: str) -> str:
    """GKE copies pod labels into Cloud Logging as `k8s-pod/<key with . replaced by _>`."""
    return "k8s-pod/" + key.replace(".", "_")


# -- selectors --------------------------------------------------------------------------------


def parse_label_selector(text: str | None) -> Callable[[dict[str, str]], bool]:
    """`a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, comma-separated (AND)."""
    if not text:
        return lambda labels: True
    clauses: list[Callable[[dict[str, str]], bool]] = []
    parts: list[str] = []
    depth = 0
    current = ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    for raw in (p.strip() for p in parts):
        if not raw:
            continue
        clauses.append(_label_clause(raw))
    return lambda labels: all(c(labels) for c in clauses)


def _label_clause(raw: str) -> Callable[[dict[str, str]], bool]:
    for op in (" notin ", " in "):
        if op in raw:
            key, _, rest = raw.partition(op)
            values = {v.strip() for v in rest.strip().strip("()").split(",") if v.strip()}
            key = key.strip()
            if op == " in ":
                return lambda labels: labels.get(key, "\0") in values
            return lambda labels: labels.get(key, "\0") not in values
    if "!=" in raw:
        key, _, value = raw.partition("!=")
        k, v = key.strip(), value.strip()
        return lambda labels: labels.get(k) != v
    if "=" in raw:
        key, _, value = raw.partition("=")
        k, v = key.strip(), value.strip().lstrip("=").strip()
        return lambda labels: labels.get(k) == v
    if raw.startswith("!"):
        k = raw[1:].strip()
        return lambda labels: k not in labels
    k = raw.strip()
    return lambda labels: k in labels


def _field_value(obj: Obj, path: str) -> str | None:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return None if cur is None else str(cur)


def parse_field_selector(text: str | None) -> Callable[[Obj], bool]:
    """`metadata.name=x`, `metadata.namespace!=y`, `status.phase=Running`, comma-separated."""
    if not text:
        return lambda obj: True
    clauses: list[tuple[str, str, bool]] = []  # (path, value, equal?)
    for raw in (p.strip() for p in text.split(",")):
        if not raw:
            continue
        if "!=" in raw:
            path, _, value = raw.partition("!=")
            clauses.append((path.strip(), value.strip(), False))
        else:
            path, _, value = raw.partition("=")
            clauses.append((path.strip(), value.lstrip("=").strip(), True))

    def match(obj: Obj) -> bool:
        return all((_field_value(obj, p) == v) == eq for p, v, eq in clauses)

    return match


# -- the store --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED / MODIFIED / DELETED
    kind: str
    obj: Obj
    rv: int


class Gone(Exception):
    """The requested resourceVersion is older than the kept history (HTTP 410)."""


ABORT = object()


class Watcher:
    """One open watch: a queue of events for one kind in one namespace (or all)."""

    def __init__(self, kind: str, namespace: str | None, match: Callable[[Obj], bool]) -> None:
        self.kind = kind
        self.namespace = namespace
        self.match = match
        self.events: queue.Queue[Any] = queue.Queue()
        #: opened by a pod (its service-account token), not by an operator's client
        self.from_pod = False

    def wants(self, ev: WatchEvent) -> bool:
        if ev.kind != self.kind:
            return False
        ns = ev.obj.get("metadata", {}).get("namespace")
        return (self.namespace is None or ns == self.namespace) and self.match(ev.obj)

    def abort(self) -> None:
        """End this watch abruptly (the client sees a broken connection)."""
        self.events.put(ABORT)


class ObjectStore:
    """Thread-safe objects keyed by (kind, namespace, name) with resourceVersions and watches."""

    def __init__(self, history: int = 5000) -> None:
        self.lock = threading.RLock()
        self._rv = 0
        self._objects: dict[tuple[str, str, str], Obj] = {}
        self._history: deque[WatchEvent] = deque(maxlen=history)
        self._watchers: list[Watcher] = []

    @property
    def resource_version(self) -> int:
        return self._rv

    def _emit(self, event_type: str, kind: str, obj: Obj) -> Obj:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        stored = copy.deepcopy(obj)
        ev = WatchEvent(event_type, kind, stored, self._rv)
        self._history.append(ev)
        for w in list(self._watchers):
            if w.wants(ev):
                w.events.put(ev)
        return copy.deepcopy(stored)

    @staticmethod
    def _key(kind: str, obj: Obj) -> tuple[str, str, str]:
        meta = obj["metadata"]
        return kind, meta.get("namespace", ""), meta["name"]

    def create(self, kind: str, obj: Obj) -> Obj:
        with self.lock:
            key = self._key(kind, obj)
            if key in self._objects:
                raise KeyError(f"{kind} {key[2]} already exists")
            meta = obj["metadata"]
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now_rfc3339())
            out = self._emit("ADDED", kind, obj)
            self._objects[key] = copy.deepcopy(out)
            return out

    def mutate(self, kind: str, namespace: str, name: str, fn: Callable[[Obj], None]) -> Obj | None:
        """Apply `fn` to a copy of the object and store it as MODIFIED (no event if unchanged)."""
        with self.lock:
            key = (kind, namespace, name)
            current = self._objects.get(key)
            if current is None:
                return None
            updated = copy.deepcopy(current)
            fn(updated)
            if updated == current:
                return copy.deepcopy(current)
            out = self._emit("MODIFIED", kind, updated)
            self._objects[key] = copy.deepcopy(out)
            return out

    def delete(self, kind: str, namespace: str, name: str) -> Obj | None:
        with self.lock:
            current = self._objects.pop((kind, namespace, name), None)
            if current is None:
                return None
            return self._emit("DELETED", kind, copy.deepcopy(current))

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        with self.lock:
            obj = self._objects.get((kind, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(
        self, kind: str, namespace: str | None, match: Callable[[Obj], bool] = lambda o: True
    ) -> tuple[list[Obj], int]:
        with self.lock:
            items = [
                copy.deepcopy(o)
                for (k, ns, _), o in sorted(self._objects.items(), key=lambda kv: kv[0])
                if k == kind and (namespace is None or ns == namespace) and match(o)
            ]
            return items, self._rv

    def watch(
        self,
        kind: str,
        namespace: str | None,
        match: Callable[[Obj], bool],
        resource_version: str | None,
    ) -> Watcher:
        """Open a watch. Without a resourceVersion (or "0") the current objects come first as
        ADDED events, as the API server does; with one, the kept history after it is replayed."""
        w = Watcher(kind, namespace, match)
        with self.lock:
            if resource_version in (None, "", "0"):
                items, _ = self.list(kind, namespace, match)
                for obj in items:
                    w.events.put(
                        WatchEvent("ADDED", kind, obj, int(obj["metadata"]["resourceVersion"]))
                    )
            else:
                since = int(resource_version)
                oldest = self._history[0].rv if self._history else self._rv + 1
                if since < oldest - 1 and since < self._rv:
                    raise Gone(f"too old resource version: {since} ({oldest - 1})")
                for ev in self._history:
                    if ev.rv > since and w.wants(ev):
                        w.events.put(ev)
            self._watchers.append(w)
        return w

    def unwatch(self, w: Watcher) -> None:
        with self.lock:
            if w in self._watchers:
                self._watchers.remove(w)

    def abort_watchers(self, kind: str, only: Callable[[Watcher], bool] | None = None) -> int:
        with self.lock:
            victims = [w for w in self._watchers if w.kind == kind and (only is None or only(w))]
        for w in victims:
            w.abort()
        return len(victims)


# -- containers -------------------------------------------------------------------------------


@dataclass
class ContainerState:
    """What the kubelet knows of one pod's container."""

    running: bool = False
    ready: bool = False
    exit_code: int | None = None
    pid: int | None = None
    port: int | None = None


@dataclass(frozen=True)
class PodLaunch:
    """What a runtime needs to start a pod's container."""

    name: str
    template_hash: str
    restart_count: int
    env: dict[str, str]


class PodRuntime(Protocol):
    """Starts, probes and kills the container of a pod (a worker process, or a fake)."""

    def start(self, launch: PodLaunch) -> None: ...

    def state(self, name: str) -> ContainerState: ...

    def kill(self, name: str) -> int | None: ...


class FakeRuntime:
    """A runtime with no processes: containers run and are ready at once. For unit tests."""

    def __init__(self) -> None:
        self.states: dict[str, ContainerState] = {}
        self.launches: list[PodLaunch] = []

    def start(self, launch: PodLaunch) -> None:
        self.launches.append(launch)
        self.states[launch.name] = ContainerState(True, True, None, 1000 + len(self.launches))

    def state(self, name: str) -> ContainerState:
        return self.states.get(name, ContainerState())

    def kill(self, name: str) -> int | None:
        st = self.states.pop(name, None)
        return 137 if st is not None else None


# -- the controller ---------------------------------------------------------------------------


@dataclass
class _Pod:
    name: str
    hash: str
    created: float
    env: dict[str, str]
    restart_count: int = 0
    running: bool = False
    ready: bool = False
    terminating: bool = False
    backoff_until: float | None = None
    last_exit: int | None = None


@dataclass
class Switches:
    """Run-time switches of the sandbox (faults an experiment turns on and off).

    - ``replace_deleted_pods``: the ReplicaSet replaces a deleted pod (off: it does not, as when
      the node pool has no room);
    - ``pod_watch_dropped``: every pod watch is cut and new ones fail (TCL's listener gives up);
    - ``work_queue_detached``: the work-queue subscription is deleted; messages published
      meanwhile are lost for good (it is created again, empty, when the switch goes off);
    - ``hold_queue_messages``: a pod that receives READY messages neither processes nor acks
      them, like a pod that took a batch and died: Pub/Sub redelivers after the ack deadline.
    """

    replace_deleted_pods: bool = True
    pod_watch_dropped: bool = False
    work_queue_detached: bool = False
    hold_queue_messages: bool = False

    def as_dict(self) -> dict[str, bool]:
        return {f.name: bool(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


@dataclass
class ClusterSpec:
    namespace: str
    deployment_name: str
    container_name: str
    replicas: int
    image: str = "gcr.io/terra-kernel-k8s/terra-workspace-manager:sandbox"
    node_name: str = "gke-sandbox-default-pool-7a1c2e3f-x9k2"
    chart: str = "workspacemanager-0.28.0"
    env: dict[str, str] = field(default_factory=dict)
    crash_backoff_seconds: float = 2.0
    max_backoff_seconds: float = 60.0


class Cluster:
    """The Deployment + ReplicaSet controllers and the kubelet for one namespace."""

    def __init__(
        self,
        spec: ClusterSpec,
        runtime: PodRuntime,
        store: ObjectStore | None = None,
        switches: Switches | None = None,
        tick: float = 0.1,
    ) -> None:
        self.spec = spec
        self.runtime = runtime
        self.store = store or ObjectStore()
        self.switches = switches or Switches()
        self.tick = tick
        self.lock = threading.RLock()
        self._pods: dict[str, _Pod] = {}
        self._held = 0  # deleted pods not replaced while replace_deleted_pods is off
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._event_seq = 0

    # -- names and templates ----------------------------------------------------------------
    @property
    def ns(self) -> str:
        return self.spec.namespace

    def pod_labels(self) -> dict[str, str]:
        c = self.spec.container_name
        return {
            "app.kubernetes.io/component": c,
            "app.kubernetes.io/instance": c,
            "app.kubernetes.io/managed-by": "Helm",
            "app.kubernetes.io/name": c,
            "app.kubernetes.io/part-of": "terra",
            "deployment": self.spec.deployment_name,
            "helm.sh/chart": self.spec.chart,
        }

    def _template(self) -> Obj:
        env = [
            {
                "name": "TERRA_COMMON_KUBERNETES_POD_NAME",
                "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
            },
            {"name": "TERRA_COMMON_KUBERNETES_POD_NAME_FILTER", "value": self.spec.deployment_name},
            {"name": "TERRA_COMMON_KUBERNETES_IN_KUBERNETES", "value": "true"},
        ] + [{"name": k, "value": v} for k, v in sorted(self.spec.env.items())]
        return {
            "metadata": {"labels": self.pod_labels()},
            "spec": {
                "containers": [
                    {
                        "name": self.spec.container_name,
                        "image": self.spec.image,
                        "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
                        "env": env,
                        "readinessProbe": {"httpGet": {"path": "/status", "port": 8080}},
                        "livenessProbe": {"httpGet": {"path": "/version", "port": 8080}},
                    }
                ],
                "restartPolicy": "Always",
                "serviceAccountName": "workspacemanager-service-sa",
            },
        }

    def current_hash(self) -> str:
        dep = self.store.get("deployments", self.ns, self.spec.deployment_name)
        assert dep is not None
        return template_hash(dep["spec"]["template"])

    def _template_env(self) -> dict[str, str]:
        dep = self.store.get("deployments", self.ns, self.spec.deployment_name)
        assert dep is not None
        out: dict[str, str] = {}
        for c in dep["spec"]["template"]["spec"].get("containers", [])[:1]:
            for e in c.get("env", []) or []:
                if "value" in e:
                    out[str(e["name"])] = str(e["value"])
        return out

    def rs_name(self, h: str) -> str:
        return f"{self.spec.deployment_name}-{h}"

    # -- events -----------------------------------------------------------------------------
    def event(
        self,
        kind: str,
        name: str,
        reason: str,
        message: str,
        *,
        type_: str = "Normal",
        component: str = "kubelet",
        api_version: str = "v1",
        uid: str | None = None,
    ) -> None:
        with self.lock:
            self._event_seq += 1
            ts = now_rfc3339()
            ev_name = f"{name}.{int(time.time() * 1e6):x}{self._event_seq:04x}"
            self.store.create(
                "events",
                {
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {"name": ev_name, "namespace": self.ns},
                    "involvedObject": {
                        "apiVersion": api_version,
                        "kind": kind,
                        "name": name,
                        "namespace": self.ns,
                        **({"uid": uid} if uid else {}),
                    },
                    "reason": reason,
                    "message": message,
                    "type": type_,
                    "count": 1,
                    "firstTimestamp": ts,
                    "lastTimestamp": ts,
                    "source": {
                        "component": component,
                        **({"host": self.spec.node_name} if component == "kubelet" else {}),
                    },
                    "reportingComponent": component,
                    "reportingInstance": self.spec.node_name if component == "kubelet" else "",
                },
            )

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Create the Deployment and its first ReplicaSet, then run the control loop."""
        now = now_rfc3339()
        template = self._template()
        dep = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": self.spec.deployment_name,
                "namespace": self.ns,
                "generation": 1,
                "labels": {
                    "app.kubernetes.io/managed-by": "Helm",
                    "deployment": self.spec.deployment_name,
                },
                "annotations": {
                    "deployment.kubernetes.io/revision": "1",
                    "meta.helm.sh/release-name": self.spec.container_name,
                },
                "creationTimestamp": now,
            },
            "spec": {
                "replicas": self.spec.replicas,
                "selector": {"matchLabels": {"deployment": self.spec.deployment_name}},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
                },
                "template": template,
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
            },
            "status": {
                "observedGeneration": 1,
                "replicas": 0,
                "updatedReplicas": 0,
                "readyReplicas": 0,
                "availableReplicas": 0,
                "unavailableReplicas": self.spec.replicas,
                "conditions": [],
            },
        }
        self.store.create("deployments", dep)
        self._ensure_rs(template_hash(template), revision=1)
        self.reconcile()
        self._thread = threading.Thread(target=self._loop, name="cluster-controller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the control loop and kill every container (no API events)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self.lock:
            names = list(self._pods)
        for name in names:
            self.runtime.kill(name)

    def _loop(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                self.reconcile()
            except Exception:  # the controller must survive a bad tick
                import logging

                logging.getLogger("sandbox.cluster").exception("reconcile failed")

    # -- replica sets -----------------------------------------------------------------------
    def _ensure_rs(self, h: str, revision: int) -> None:
        name = self.rs_name(h)
        if self.store.get("replicasets", self.ns, name) is not None:
            return
        dep = self.store.get("deployments", self.ns, self.spec.deployment_name)
        assert dep is not None
        template = copy.deepcopy(dep["spec"]["template"])
        template["metadata"]["labels"]["pod-template-hash"] = h
        self.store.create(
            "replicasets",
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": name,
                    "namespace": self.ns,
                    "labels": {**template["metadata"]["labels"]},
                    "annotations": {"deployment.kubernetes.io/revision": str(revision)},
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "name": self.spec.deployment_name,
                            "uid": dep["metadata"]["uid"],
                            "controller": True,
                        }
                    ],
                },
                "spec": {
                    "replicas": 0,
                    "selector": {
                        "matchLabels": {
                            "deployment": self.spec.deployment_name,
                            "pod-template-hash": h,
                        }
                    },
                    "template": template,
                },
                "status": {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0},
            },
        )

    # -- pods -------------------------------------------------------------------------------
    def _create_pod(self, h: str) -> str:
        name = f"{self.spec.deployment_name}-{h}-{random_suffix()}"
        while name in self._pods:
            name = f"{self.spec.deployment_name}-{h}-{random_suffix()}"
        rs = self.store.get("replicasets", self.ns, self.rs_name(h))
        assert rs is not None
        labels = {**self.pod_labels(), "pod-template-hash": h}
        container = copy.deepcopy(rs["spec"]["template"]["spec"]["containers"][0])
        env = {**self._template_env()}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "generateName": f"{self.spec.deployment_name}-{h}-",
                "namespace": self.ns,
                "labels": labels,
                "annotations": {},
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": self.rs_name(h),
                        "uid": rs["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {
                "containers": [container],
                "restartPolicy": "Always",
                "serviceAccountName": "workspacemanager-service-sa",
                "terminationGracePeriodSeconds": 30,
            },
            "status": {"phase": "Pending", "qosClass": "Guaranteed"},
        }
        self._pods[name] = _Pod(name, h, time.time(), env)
        self.store.create("pods", pod)
        self.event(
            "ReplicaSet",
            self.rs_name(h),
            "SuccessfulCreate",
            f"Created pod: {name}",
            component="replicaset-controller",
            api_version="apps/v1",
        )

        # the scheduler binds it
        def schedule(p: Obj) -> None:
            p["spec"]["nodeName"] = self.spec.node_name
            p["status"]["conditions"] = [_cond("PodScheduled", "True")]

        self.store.mutate("pods", self.ns, name, schedule)
        self.event(
            "Pod",
            name,
            "Scheduled",
            f"Successfully assigned {self.ns}/{name} to {self.spec.node_name}",
            component="default-scheduler",
        )

        # the kubelet creates the container
        def creating(p: Obj) -> None:
            p["status"]["hostIP"] = "127.0.0.1"
            p["status"]["podIP"] = "127.0.0.1"
            p["status"]["podIPs"] = [{"ip": "127.0.0.1"}]
            p["status"]["startTime"] = now_rfc3339()
            p["status"]["conditions"] = [
                _cond("Initialized", "True"),
                _cond("Ready", "False", "ContainersNotReady"),
                _cond("ContainersReady", "False", "ContainersNotReady"),
                _cond("PodScheduled", "True"),
            ]
            p["status"]["containerStatuses"] = [
                _container_status(
                    self.spec, running=False, ready=False, restarts=0, waiting="ContainerCreating"
                )
            ]

        self.store.mutate("pods", self.ns, name, creating)
        self.event(
            "Pod", name, "Pulled", f'Container image "{self.spec.image}" already present on machine'
        )
        self.event("Pod", name, "Created", f"Created container {self.spec.container_name}")
        self.runtime.start(PodLaunch(name, h, 0, env))
        return name

    def _observe(self, rec: _Pod) -> None:
        """Bring the pod object in line with its container (the kubelet's status sync)."""
        st = self.runtime.state(rec.name)
        now = time.time()
        if rec.backoff_until is not None:
            if now < rec.backoff_until:
                return
            rec.backoff_until = None
            rec.running = False
            self.runtime.start(PodLaunch(rec.name, rec.hash, rec.restart_count, rec.env))
            return
        if st.exit_code is not None:
            # the container exited by itself: restart it in place after a back-off
            rec.running = False
            rec.ready = False
            rec.last_exit = st.exit_code
            rec.restart_count += 1
            delay = min(
                self.spec.crash_backoff_seconds * 2 ** (rec.restart_count - 1),
                self.spec.max_backoff_seconds,
            )
            rec.backoff_until = now + delay
            self._sync_pod(rec, waiting="CrashLoopBackOff")
            self.event(
                "Pod", rec.name, "BackOff", "Back-off restarting failed container", type_="Warning"
            )
            return
        changed = False
        if st.running and not rec.running:
            rec.running = True
            changed = True
            self.event("Pod", rec.name, "Started", f"Started container {self.spec.container_name}")
        if st.running and st.ready != rec.ready:
            rec.ready = st.ready
            changed = True
        if changed:
            self._sync_pod(rec, port=st.port, pid=st.pid)

    def _sync_pod(
        self,
        rec: _Pod,
        *,
        waiting: str | None = None,
        port: int | None = None,
        pid: int | None = None,
    ) -> None:
        def update(p: Obj) -> None:
            ready = "True" if rec.ready else "False"
            reason = None if rec.ready else "ContainersNotReady"
            p["status"]["phase"] = "Running" if (rec.running or rec.restart_count) else "Pending"
            p["status"]["conditions"] = [
                _cond("Initialized", "True"),
                _cond("Ready", ready, reason),
                _cond("ContainersReady", ready, reason),
                _cond("PodScheduled", "True"),
            ]
            cs = _container_status(
                self.spec,
                running=rec.running,
                ready=rec.ready,
                restarts=rec.restart_count,
                waiting=waiting,
                last_exit=rec.last_exit,
                pid=pid,
            )
            p["status"]["containerStatuses"] = [cs]
            if port is not None:
                p["metadata"]["annotations"]["sandbox.stairway-ops/http-port"] = str(port)
                p["spec"]["containers"][0]["ports"] = [
                    {"containerPort": port, "name": "http", "protocol": "TCP"}
                ]
            if pid is not None:
                p["metadata"]["annotations"]["sandbox.stairway-ops/pid"] = str(pid)

        self.store.mutate("pods", self.ns, rec.name, update)

    def delete_pod(self, name: str, *, reason: str = "api") -> Obj | None:
        """Delete a pod the way the API server + kubelet do, with the container SIGKILLed:
        MODIFIED (deletionTimestamp) → replacement ADDED → container killed → MODIFIED → DELETED."""
        with self.lock:
            rec = self._pods.get(name)
            if rec is None or rec.terminating:
                return self.store.get("pods", self.ns, name) if rec else None
            rec.terminating = True
            rec.ready = False

            def mark(p: Obj) -> None:
                p["metadata"]["deletionTimestamp"] = now_rfc3339()
                p["metadata"]["deletionGracePeriodSeconds"] = 0
                for c in p["status"].get("conditions", []):
                    if c["type"] in ("Ready", "ContainersReady"):
                        c["status"] = "False"

            self.store.mutate("pods", self.ns, name, mark)
            self.event("Pod", name, "Killing", f"Stopping container {self.spec.container_name}")
            if reason == "api":
                # the ReplicaSet no longer counts a terminating pod: it creates the replacement now
                if not self.switches.replace_deleted_pods:
                    self._held += 1
                self._reconcile_replicas()
            exit_code = self.runtime.kill(name)

            def terminated(p: Obj) -> None:
                p["status"]["phase"] = "Failed" if exit_code not in (None, 0) else "Succeeded"
                p["status"]["containerStatuses"] = [
                    _container_status(
                        self.spec,
                        running=False,
                        ready=False,
                        restarts=rec.restart_count,
                        terminated=137 if exit_code is None else exit_code,
                    )
                ]

            self.store.mutate("pods", self.ns, name, terminated)
            final = self.store.delete("pods", self.ns, name)
            self._pods.pop(name, None)
            self._update_status()
            return final

    # -- reconcile --------------------------------------------------------------------------
    def reconcile(self) -> None:
        with self.lock:
            for rec in list(self._pods.values()):
                if not rec.terminating:
                    self._observe(rec)
            self._reconcile_replicas()
            self._update_status()

    def _desired(self) -> int:
        dep = self.store.get("deployments", self.ns, self.spec.deployment_name)
        assert dep is not None
        if self.switches.replace_deleted_pods:
            self._held = 0
        return max(int(dep["spec"].get("replicas", 0)) - self._held, 0)

    def _reconcile_replicas(self) -> None:
        desired = self._desired()
        h = self.current_hash()
        active = [p for p in self._pods.values() if not p.terminating]
        new = [p for p in active if p.hash == h]
        old = [p for p in active if p.hash != h]
        if len(active) > desired:
            # scale down: old template first, then the newest pods
            victims = sorted(old, key=lambda p: -p.created) + sorted(new, key=lambda p: -p.created)
            for p in victims[: len(active) - desired]:
                self.event(
                    "ReplicaSet",
                    self.rs_name(p.hash),
                    "SuccessfulDelete",
                    f"Deleted pod: {p.name}",
                    component="replicaset-controller",
                    api_version="apps/v1",
                )
                self.delete_pod(p.name, reason="scale")
            return
        if len(active) < desired:
            for _ in range(desired - len(active)):
                self._create_pod(h)
            return
        if old and all(p.ready for p in new):
            # rolling update, maxSurge 0 / maxUnavailable 1: replace one old pod at a time
            victim = sorted(old, key=lambda p: p.created)[0]
            self.event(
                "Deployment",
                self.spec.deployment_name,
                "ScalingReplicaSet",
                f"Scaled down replica set {self.rs_name(victim.hash)} to {len(old) - 1}",
                component="deployment-controller",
                api_version="apps/v1",
            )
            self.event(
                "ReplicaSet",
                self.rs_name(victim.hash),
                "SuccessfulDelete",
                f"Deleted pod: {victim.name}",
                component="replicaset-controller",
                api_version="apps/v1",
            )
            self.delete_pod(victim.name, reason="rollout")
            self.event(
                "Deployment",
                self.spec.deployment_name,
                "ScalingReplicaSet",
                f"Scaled up replica set {self.rs_name(h)} to {len(new) + 1}",
                component="deployment-controller",
                api_version="apps/v1",
            )

    def _update_status(self) -> None:
        h = self.current_hash()
        active = [p for p in self._pods.values() if not p.terminating]
        ready = [p for p in active if p.ready]
        updated = [p for p in active if p.hash == h]
        dep = self.store.get("deployments", self.ns, self.spec.deployment_name)
        assert dep is not None
        spec_replicas = int(dep["spec"].get("replicas", 0))
        complete = (
            len(updated) == spec_replicas
            and len(active) == spec_replicas
            and len([p for p in updated if p.ready]) == spec_replicas
        )

        def status(d: Obj) -> None:
            d["status"] = {
                "observedGeneration": d["metadata"].get("generation", 1),
                "replicas": len(active),
                "updatedReplicas": len(updated),
                "readyReplicas": len(ready),
                "availableReplicas": len(ready),
                "unavailableReplicas": max(spec_replicas - len(ready), 0),
                "conditions": [
                    {
                        "type": "Available",
                        "status": "True" if len(ready) >= max(spec_replicas - 1, 0) else "False",
                        "reason": "MinimumReplicasAvailable",
                    },
                    {
                        "type": "Progressing",
                        "status": "True",
                        "reason": "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                        "message": f'ReplicaSet "{self.rs_name(h)}" '
                        + ("has successfully progressed." if complete else "is progressing."),
                    },
                ],
            }

        self.store.mutate("deployments", self.ns, self.spec.deployment_name, status)
        rs_items, _ = self.store.list("replicasets", self.ns)
        for rs in rs_items:
            rh = rs["metadata"]["labels"].get("pod-template-hash")
            mine = [p for p in active if p.hash == rh]
            want = spec_replicas if rh == h else len(mine)

            def rs_status(r: Obj, mine: list[_Pod] = mine, want: int = want) -> None:
                r["spec"]["replicas"] = want
                r["status"] = {
                    "replicas": len(mine),
                    "readyReplicas": len([p for p in mine if p.ready]),
                    "availableReplicas": len([p for p in mine if p.ready]),
                    "observedGeneration": 1,
                }

            self.store.mutate("replicasets", self.ns, rs["metadata"]["name"], rs_status)

    # -- API-facing operations ---------------------------------------------------------------
    def patch_deployment(self, fn: Callable[[Obj], None]) -> Obj | None:
        """Apply a change to the Deployment; a changed template starts a rollout."""
        with self.lock:
            before = self.store.get("deployments", self.ns, self.spec.deployment_name)
            assert before is not None

            def apply(d: Obj) -> None:
                fn(d)
                if d["spec"] != before["spec"]:
                    d["metadata"]["generation"] = int(d["metadata"].get("generation", 1)) + 1

            after = self.store.mutate("deployments", self.ns, self.spec.deployment_name, apply)
            assert after is not None
            if after["spec"]["template"] != before["spec"]["template"]:
                revision = (
                    int(
                        before["metadata"]["annotations"].get(
                            "deployment.kubernetes.io/revision", "1"
                        )
                    )
                    + 1
                )

                def bump(d: Obj) -> None:
                    d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = str(
                        revision
                    )

                self.store.mutate("deployments", self.ns, self.spec.deployment_name, bump)
                self._ensure_rs(template_hash(after["spec"]["template"]), revision)
                # a new ReplicaSet scales to spec.replicas: the pods the old one did not
                # replace (replace_deleted_pods off) are scheduled again by the rollout
                self._held = 0
            if after["spec"].get("replicas") != before["spec"].get("replicas"):
                self.event(
                    "Deployment",
                    self.spec.deployment_name,
                    "ScalingReplicaSet",
                    f"Scaled replica set {self.rs_name(self.current_hash())} to "
                    f"{after['spec'].get('replicas')}",
                    component="deployment-controller",
                    api_version="apps/v1",
                )
            self.reconcile()
            return self.store.get("deployments", self.ns, self.spec.deployment_name)

    def set_switches(self, **changes: bool | None) -> Switches:
        """Set the named switches (None: leave as is); an unknown name is a ValueError."""
        unknown = sorted(set(changes) - set(Switches.names()))
        if unknown:
            raise ValueError(
                f"unknown switch {unknown[0]!r} (known: {', '.join(Switches.names())})"
            )
        with self.lock:
            for name, value in changes.items():
                if value is not None:
                    setattr(self.switches, name, bool(value))
        if changes.get("pod_watch_dropped"):
            self.store.abort_watchers("pods", lambda w: w.from_pod)
        return self.switches

    def pod_names(self) -> list[str]:
        with self.lock:
            return [p.name for p in self._pods.values() if not p.terminating]

    def pods_summary(self) -> list[dict[str, Any]]:
        with self.lock:
            out = []
            for p in sorted(self._pods.values(), key=lambda p: p.created):
                st = self.runtime.state(p.name)
                out.append(
                    {
                        "name": p.name,
                        "template_hash": p.hash,
                        "ready": p.ready,
                        "running": p.running,
                        "terminating": p.terminating,
                        "restart_count": p.restart_count,
                        "pid": st.pid,
                        "port": st.port,
                    }
                )
            return out


def _cond(type_: str, status: str, reason: str | None = None) -> Obj:
    out: Obj = {
        "type": type_,
        "status": status,
        "lastTransitionTime": now_rfc3339(),
        "lastProbeTime": None,
    }
    if reason:
        out["reason"] = reason
    return out


def _container_status(
    spec: ClusterSpec,
    *,
    running: bool,
    ready: bool,
    restarts: int,
    waiting: str | None = None,
    terminated: int | None = None,
    last_exit: int | None = None,
    pid: int | None = None,
) -> Obj:
    state: Obj
    if terminated is not None:
        state = {
            "terminated": {
                "exitCode": terminated,
                "reason": "Error" if terminated else "Completed",
                "finishedAt": now_rfc3339(),
            }
        }
    elif running:
        state = {"running": {"startedAt": now_rfc3339()}}
    else:
        state = {"waiting": {"reason": waiting or "ContainerCreating"}}
    out: Obj = {
        "name": spec.container_name,
        "image": spec.image,
        "imageID": "sandbox://" + spec.image,
        "ready": ready,
        "started": running,
        "restartCount": restarts,
        "state": state,
        "lastState": {},
    }
    if last_exit is not None:
        out["lastState"] = {"terminated": {"exitCode": last_exit, "reason": "Error"}}
    if pid is not None:
        out["containerID"] = f"sandbox://{pid}"
    return out


def human_age(created: str, now: float | None = None) -> str:
    """kubectl's HumanDuration of an age."""
    seconds = int((now or time.time()) - parse_rfc3339(created).timestamp())
    seconds = max(seconds, 0)
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    return f"{hours // 24}d"


def pod_display_status(pod: Obj) -> str:
    """The STATUS column of `kubectl get pods`."""
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    for cs in pod.get("status", {}).get("containerStatuses", []) or []:
        waiting = cs.get("state", {}).get("waiting")
        if waiting:
            return str(waiting.get("reason", "Waiting"))
        term = cs.get("state", {}).get("terminated")
        if term:
            return str(term.get("reason", "Terminated"))
    return str(pod.get("status", {}).get("phase", "Unknown"))


def iter_names(objs: Iterable[Obj]) -> list[str]:
    return [o["metadata"]["name"] for o in objs]
