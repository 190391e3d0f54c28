"""A loopback Kubernetes API server for the sandbox namespace (stdlib `http.server`).

Serves what `kubectl --kubeconfig …` and the official `kubernetes` client use against one
namespace: discovery (`/version`, `/api`, `/api/v1`, `/apis`, `/apis/apps/v1`), pods
(list/get/delete/watch with label and field selectors, `pods/log`), secrets (get, by name: the
objects put in the store's `secrets`), events (list/watch),
deployments (get/list/watch/patch, `deployments/scale`) and replica sets (get/list). Lists are
returned as server-side Tables when the client asks for them (`kubectl get`). Watches are chunked
JSON lines, honour `resourceVersion` and `timeoutSeconds`, and start with ADDED for the current
objects when no resourceVersion is given. While the `pod_watch_dropped` switch is on, the pods'
own pod watches (their service-account token, `sandbox.podlistener.POD_TOKEN`) are cut without
the closing chunk (the client sees a broken stream, as TCL's listener did: "IO Exception during
hasNext method."); an operator's watch (`kubectl`, `inv kill-pod`) goes on.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from sandbox.cluster import (
    ABORT,
    Cluster,
    Gone,
    Obj,
    WatchEvent,
    human_age,
    parse_field_selector,
    parse_label_selector,
    pod_display_status,
)
from sandbox.httpserve import LoopbackServer, QuietHandler
from sandbox.podlistener import POD_TOKEN

SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.4-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-04-22T00:00:00Z",
    "goVersion": "go1.23.6",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def _res(
    name: str,
    kind: str,
    singular: str,
    verbs: list[str],
    short: list[str] | None = None,
    namespaced: bool = True,
) -> Obj:
    out: Obj = {
        "name": name,
        "singularName": singular,
        "namespaced": namespaced,
        "kind": kind,
        "verbs": verbs,
    }
    if short:
        out["shortNames"] = short
    return out


CORE_RESOURCES = {
    "kind": "APIResourceList",
    "groupVersion": "v1",
    "resources": [
        _res("namespaces", "Namespace", "namespace", ["get", "list"], ["ns"], namespaced=False),
        _res("pods", "Pod", "pod", ["delete", "get", "list", "watch"], ["po"]),
        _res("pods/log", "Pod", "", ["get"]),
        _res("events", "Event", "event", ["get", "list", "watch"], ["ev"]),
        _res("secrets", "Secret", "secret", ["get"]),
    ],
}
APPS_RESOURCES = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": "apps/v1",
    "resources": [
        _res(
            "deployments", "Deployment", "deployment", ["get", "list", "patch", "watch"], ["deploy"]
        ),
        _res("deployments/scale", "Scale", "", ["get", "patch", "update"]),
        _res("deployments/status", "Deployment", "", ["get"]),
        _res("replicasets", "ReplicaSet", "replicaset", ["get", "list", "watch"], ["rs"]),
    ],
}
APPS_GROUP = {
    "name": "apps",
    "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
    "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (also used for strategic-merge patches: lists are replaced)."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def json_patch(target: Any, ops: list[Obj]) -> Any:
    """RFC 6902 JSON patch: add / replace / remove (enough for scale and env edits)."""
    import copy as _copy

    doc = _copy.deepcopy(target)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent: Any = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent.setdefault(p, {})
        last = parts[-1]
        kind = op["op"]
        if isinstance(parent, list):
            idx = len(parent) if last == "-" else int(last)
            if kind == "add":
                parent.insert(idx, op["value"])
            elif kind == "replace":
                parent[idx] = op["value"]
            elif kind == "remove":
                parent.pop(idx)
        elif kind in ("add", "replace"):
            parent[last] = op["value"]
        elif kind == "remove":
            parent.pop(last, None)
        else:
            raise ValueError(f"unsupported JSON patch op {kind}")
    return doc


# -- tables -------------------------------------------------------------------------------------


def _col(name: str, type_: str = "string", fmt: str = "", priority: int = 0) -> Obj:
    return {"name": name, "type": type_, "format": fmt, "description": name, "priority": priority}


def _pod_cells(p: Obj) -> list[Any]:
    statuses = p.get("status", {}).get("containerStatuses", []) or []
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in statuses)
    return [
        p["metadata"]["name"],
        f"{ready}/{len(p['spec'].get('containers', []))}",
        pod_display_status(p),
        restarts,
        human_age(p["metadata"]["creationTimestamp"]),
        p.get("status", {}).get("podIP", "<none>"),
        p["spec"].get("nodeName", "<none>"),
    ]


def _deploy_cells(d: Obj) -> list[Any]:
    st = d.get("status", {})
    return [
        d["metadata"]["name"],
        f"{st.get('readyReplicas', 0)}/{d['spec'].get('replicas', 0)}",
        st.get("updatedReplicas", 0),
        st.get("availableReplicas", 0),
        human_age(d["metadata"]["creationTimestamp"]),
    ]


def _rs_cells(r: Obj) -> list[Any]:
    st = r.get("status", {})
    return [
        r["metadata"]["name"],
        r["spec"].get("replicas", 0),
        st.get("replicas", 0),
        st.get("readyReplicas", 0),
        human_age(r["metadata"]["creationTimestamp"]),
    ]


def _event_cells(e: Obj) -> list[Any]:
    inv = e.get("involvedObject", {})
    return [
        human_age(e.get("lastTimestamp") or e["metadata"]["creationTimestamp"]),
        e.get("type", ""),
        e.get("reason", ""),
        f"{str(inv.get('kind', '')).lower()}/{inv.get('name', '')}",
        e.get("message", ""),
    ]


TABLES: dict[str, tuple[list[Obj], Callable[[Obj], list[Any]]]] = {
    "pods": (
        [
            _col("Name", fmt="name"),
            _col("Ready"),
            _col("Status"),
            _col("Restarts", "integer"),
            _col("Age"),
            _col("IP", priority=1),
            _col("Node", priority=1),
        ],
        _pod_cells,
    ),
    "deployments": (
        [
            _col("Name", fmt="name"),
            _col("Ready"),
            _col("Up-to-date", "integer"),
            _col("Available", "integer"),
            _col("Age"),
        ],
        _deploy_cells,
    ),
    "replicasets": (
        [
            _col("Name", fmt="name"),
            _col("Desired", "integer"),
            _col("Current", "integer"),
            _col("Ready", "integer"),
            _col("Age"),
        ],
        _rs_cells,
    ),
    "events": (
        [_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"), _col("Message")],
        _event_cells,
    ),
}


def as_table(kind: str, items: list[Obj], rv: int, include_object: str) -> Obj:
    columns, cells = TABLES[kind]
    rows = []
    for obj in items:
        if include_object == "Object":
            row_obj = obj
        elif include_object == "None":
            row_obj = None
        else:
            row_obj = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
        row: Obj = {"cells": cells(obj)}
        if row_obj is not None:
            row["object"] = row_obj
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": str(rv)},
        "columnDefinitions": columns,
        "rows": rows,
    }


LIST_KINDS = {
    "pods": ("PodList", "v1"),
    "events": ("EventList", "v1"),
    "deployments": ("DeploymentList", "apps/v1"),
    "replicasets": ("ReplicaSetList", "apps/v1"),
}


# -- the server ---------------------------------------------------------------------------------


class KubeApiServer(LoopbackServer):
    """The HTTP front of a `Cluster`. `port=0` picks a free loopback port."""

    def __init__(
        self,
        cluster: Cluster,
        *,
        port: int = 0,
        logs_dir: Path | None = None,
        watch_timeout: float = 1800.0,
    ) -> None:
        self.cluster = cluster
        self.logs_dir = logs_dir
        self.watch_timeout = watch_timeout
        super().__init__(type("KubeApiHandler", (_Handler,), {"api": self}), port)
        self._closing = threading.Event()

    thread_name = "kube-api"

    def stop(self) -> None:
        self._closing.set()
        for kind in ("pods", "events", "deployments", "replicasets"):
            self.cluster.store.abort_watchers(kind)
        super().stop()


class _Handler(QuietHandler):
    api: KubeApiServer
    server_version = "sandbox-kube-apiserver/1.32"

    # -- responses ------------------------------------------------------------------------
    def _send(self, code: int, obj: Any, content_type: str = "application/json") -> None:
        body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.write(body)

    def _status(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        out: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }
        if details:
            out["details"] = details
        self._send(code, out)

    def _not_found(self, kind: str, name: str) -> None:
        group = "apps" if kind in ("deployments", "replicasets") else ""
        resource = f"{kind}.{group}" if group else kind
        self._status(
            404,
            "NotFound",
            f'{resource} "{name}" not found',
            {"name": name, "group": group, "kind": kind},
        )

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    # -- routing ---------------------------------------------------------------------------
    def _route(
        self,
    ) -> tuple[str, dict[str, list[str]], str | None, str | None, str | None, str | None, bool]:
        """(path, query, group, namespace, resource, name, watch-path) plus a subresource in
        `self._sub`."""
        u = urlparse(self.path)
        q = parse_qs(u.query)
        parts = [p for p in u.path.split("/") if p]
        self._sub: str | None = None
        watch_path = False
        group: str | None = None
        if parts[:2] == ["api", "v1"]:
            rest = parts[2:]
            group = ""
        elif parts[:3] == ["apis", "apps", "v1"]:
            rest = parts[3:]
            group = "apps"
        else:
            return u.path, q, None, None, None, None, False
        if rest[:1] == ["watch"]:
            watch_path = True
            rest = rest[1:]
        ns: str | None = None
        if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) > 2:
            ns, rest = rest[1], rest[2:]
        elif rest[:1] == ["namespaces"]:
            return u.path, q, group, None, "namespaces", rest[1] if len(rest) > 1 else None, False
        res = rest[0] if rest else None
        name = rest[1] if len(rest) > 1 else None
        if len(rest) > 2:
            self._sub = rest[2]
        return u.path, q, group, ns, res, name, watch_path

    def _known(self, group: str | None, res: str | None) -> bool:
        if group == "":
            return res in ("pods", "events", "secrets")
        if group == "apps":
            return res in ("deployments", "replicasets")
        return False

    def _wants_table(self) -> bool:
        return "as=Table" in (self.headers.get("Accept") or "")

    # -- verbs -----------------------------------------------------------------------------
    def do_GET(self) -> None:
        path, q, group, ns, res, name, watch_path = self._route()
        api = self.api
        c = api.cluster
        plain = path.rstrip("/") or "/"
        if plain == "/version":
            return self._send(200, SERVER_VERSION)
        if plain in ("/healthz", "/livez", "/readyz"):
            return self._send(200, b"ok", "text/plain")
        if plain == "/api":
            return self._send(
                200,
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{api.port}"}
                    ],
                },
            )
        if plain == "/apis":
            return self._send(
                200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [APPS_GROUP]}
            )
        if plain == "/apis/apps":
            return self._send(200, {"kind": "APIGroup", "apiVersion": "v1", **APPS_GROUP})
        if plain == "/api/v1":
            return self._send(200, CORE_RESOURCES)
        if plain == "/apis/apps/v1":
            return self._send(200, APPS_RESOURCES)
        if res == "namespaces":
            nsobj = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": c.ns, "uid": "sandbox-namespace"},
                "status": {"phase": "Active"},
            }
            if name is None:
                return self._send(
                    200,
                    {"kind": "NamespaceList", "apiVersion": "v1", "metadata": {}, "items": [nsobj]},
                )
            if name == c.ns:
                return self._send(200, nsobj)
            return self._not_found("namespaces", name)
        if not self._known(group, res):
            return self._status(
                404, "NotFound", f"the server could not find the requested resource ({path})"
            )
        assert res is not None
        if ns is not None and ns != c.ns and name is not None:
            return self._not_found(res, name)
        if res == "secrets" and (name is None or self._sub is not None or watch_path):
            return self._status(405, "MethodNotAllowed", "secrets can only be read by name here")
        label_match = parse_label_selector(_q(q, "labelSelector"))
        field_match = parse_field_selector(_q(q, "fieldSelector"))

        def match(obj: Obj) -> bool:
            return label_match(obj["metadata"].get("labels") or {}) and field_match(obj)

        if name is not None and self._sub is None and not watch_path:
            obj = c.store.get(res, c.ns, name) if ns in (None, c.ns) else None
            if obj is None:
                return self._not_found(res, name)
            return self._send(200, obj)
        if name is not None and self._sub == "log" and res == "pods":
            return self._pod_log(name, q)
        if name is not None and self._sub == "scale" and res == "deployments":
            dep = c.store.get(res, c.ns, name)
            if dep is None:
                return self._not_found(res, name)
            return self._send(200, _scale(dep))
        if name is not None and self._sub == "status":
            obj = c.store.get(res, c.ns, name)
            return self._send(200, obj) if obj else self._not_found(res, name)
        if watch_path and name is not None:
            name_match = match

            def match(obj: Obj) -> bool:
                return obj["metadata"]["name"] == name and name_match(obj)

        if watch_path or _q(q, "watch") in ("true", "1"):
            return self._watch(res, ns, match, q)
        if ns is not None and ns != c.ns:
            items: list[Obj] = []
            rv = c.store.resource_version
        else:
            items, rv = c.store.list(res, c.ns, match)
        if self._wants_table():
            return self._send(
                200,
                as_table(res, items, rv, _q(q, "includeObject") or "Metadata"),
                "application/json;as=Table;v=v1;g=meta.k8s.io",
            )
        kind, api_version = LIST_KINDS[res]
        return self._send(
            200,
            {
                "kind": kind,
                "apiVersion": api_version,
                "metadata": {"resourceVersion": str(rv)},
                "items": items,
            },
        )

    def do_DELETE(self) -> None:
        self._read_body()  # DeleteOptions: kubectl hangs if it is left unread
        _, _, group, ns, res, name, _ = self._route()
        c = self.api.cluster
        if group != "" or res != "pods" or name is None:
            return self._status(405, "MethodNotAllowed", "only pods can be deleted here")
        if ns not in (None, c.ns) or c.store.get("pods", c.ns, name) is None:
            return self._not_found("pods", name)
        final = c.delete_pod(name)
        if final is None:
            return self._not_found("pods", name)
        self._send(200, final)

    def do_PATCH(self) -> None:
        body = self._read_body()
        _, _, group, _ns, res, name, _ = self._route()
        c = self.api.cluster
        if group != "apps" or res != "deployments" or name != c.spec.deployment_name:
            return self._status(405, "MethodNotAllowed", "only the deployment can be patched")
        try:
            patch = json.loads(body or b"{}")
        except json.JSONDecodeError as error:
            return self._status(400, "BadRequest", f"invalid patch: {error}")
        ctype = self.headers.get("Content-Type", "")
        sub = self._sub

        def apply(dep: Obj) -> None:
            if sub == "scale":
                scale = _scale(dep)
                if isinstance(patch, list):
                    scale = json_patch(scale, patch)
                else:
                    scale = merge_patch(scale, patch)
                dep["spec"]["replicas"] = int(scale["spec"]["replicas"])
                return
            if isinstance(patch, list) and "json-patch" in ctype:
                new = json_patch(dep, patch)
            else:
                new = merge_patch(dep, patch)
            dep.clear()
            dep.update(new)

        try:
            out = c.patch_deployment(apply)
        except (KeyError, ValueError, IndexError, TypeError) as error:
            return self._status(422, "Invalid", f"patch failed: {error}")
        assert out is not None
        self._send(200, _scale(out) if sub == "scale" else out)

    def do_PUT(self) -> None:
        body = self._read_body()
        _, _, group, _ns, res, _name, _ = self._route()
        c = self.api.cluster
        if group != "apps" or res != "deployments" or self._sub != "scale":
            return self._status(405, "MethodNotAllowed", "only deployments/scale can be replaced")
        scale = json.loads(body or b"{}")
        replicas = int(scale.get("spec", {}).get("replicas", 0))

        def apply(dep: Obj) -> None:
            dep["spec"]["replicas"] = replicas

        out = c.patch_deployment(apply)
        assert out is not None
        self._send(200, _scale(out))

    # -- streaming -------------------------------------------------------------------------
    def _watch(
        self, res: str, ns: str | None, match: Callable[[Obj], bool], q: dict[str, list[str]]
    ) -> None:
        api = self.api
        c = api.cluster
        timeout = float(_q(q, "timeoutSeconds") or api.watch_timeout)
        try:
            w = c.store.watch(
                res, c.ns if ns is None or ns == c.ns else "\0", match, _q(q, "resourceVersion")
            )
        except Gone as error:
            return self._status(410, "Expired", str(error))
        w.from_pod = self.headers.get("Authorization", "") == f"Bearer {POD_TOKEN}"
        table = self._wants_table()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        dropped = res == "pods" and c.switches.pod_watch_dropped and w.from_pod
        try:
            end = time.monotonic() + timeout
            while not dropped and not api._closing.is_set():
                left = end - time.monotonic()
                if left <= 0:
                    break
                try:
                    ev = w.events.get(timeout=min(left, 0.5))
                except queue.Empty:
                    continue
                if ev is ABORT:
                    dropped = True
                    break
                assert isinstance(ev, WatchEvent)
                obj = ev.obj
                if table:
                    obj = as_table(res, [obj], ev.rv, "Object")
                self._chunk(json.dumps({"type": ev.type, "object": obj}).encode() + b"\n")
            if dropped or api._closing.is_set():
                self._cut()
                return
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            c.store.unwatch(w)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _cut(self) -> None:
        """Break the connection mid-stream (no closing chunk)."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _pod_log(self, name: str, q: dict[str, list[str]]) -> None:
        logs_dir = self.api.logs_dir
        if self.api.cluster.store.get("pods", self.api.cluster.ns, name) is None:
            return self._not_found("pods", name)
        path = logs_dir / f"{name}.jsonl" if logs_dir else None
        data = path.read_bytes() if path and path.exists() else b""
        tail = _q(q, "tailLines")
        if tail:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-int(tail) :])
        self._send(200, data, "text/plain")


def _q(q: dict[str, list[str]], key: str) -> str | None:
    values = q.get(key)
    return values[0] if values else None


def _scale(dep: Obj) -> Obj:
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": dep["metadata"]["name"],
            "namespace": dep["metadata"]["namespace"],
            "resourceVersion": dep["metadata"].get("resourceVersion"),
            "uid": dep["metadata"].get("uid"),
        },
        "spec": {"replicas": dep["spec"].get("replicas", 0)},
        "status": {
            "replicas": dep.get("status", {}).get("replicas", 0),
            "selector": f"deployment={dep['metadata']['name']}",
        },
    }


def write_kubeconfig(
    path: Path, server_url: str, namespace: str, context: str = "stairway-ops-sandbox"
) -> Path:
    """A kubeconfig for the sandbox API server (plain HTTP on loopback; the token is a dummy)."""
    import yaml

    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": server_url}}],
        "users": [{"name": context, "user": {"token": "sandbox"}}],
        "contexts": [
            {
                "name": context,
                "context": {"cluster": context, "user": context, "namespace": namespace},
            }
        ],
        "current-context": context,
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    path.chmod(0o600)
    return path
