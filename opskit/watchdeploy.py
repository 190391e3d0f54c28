"""``inv deploy-watch``: ``repairtool watch`` as a Deployment next to the service it watches.

:func:`render_manifests` renders ``templates/watch/*.yaml.j2`` (Jinja2) for an env: a
ServiceAccount; a Role that may only list pods in the namespace (and get the one Secret holding
the Stairway password, when the service keeps it there) and its RoleBinding; a ConfigMap with
the env file; the Deployment (the watcher, with the Cloud SQL proxy as a native sidecar,
metrics on a named port, auto-resume only when the env's ``watch.auto_resume`` says so); a
PrometheusRule (a finding older than ``watch.alert_after``; scans failing; the watcher absent)
and a PodMonitor. :func:`apply_manifests` sends them with server-side apply through the
official client (field manager ``stairway-ops``), so a re-run updates in place.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import yaml

from opskit import paths
from opskit.dbproxy import instance_connection_name
from opskit.envs import Env, Watch
from opskit.errors import Refused, UsageError
from repairtool.durations import format_duration

FIELD_MANAGER = "stairway-ops"
NAME = "stairway-ops-watch"
TEMPLATES = (
    "serviceaccount.yaml.j2",
    "role.yaml.j2",
    "rolebinding.yaml.j2",
    "configmap.yaml.j2",
    "deployment.yaml.j2",
    "prometheusrule.yaml.j2",
    "podmonitor.yaml.j2",
)
PROXY_HEALTH_PORT = 9801


def watch_settings(env: Env) -> Watch:
    return env.watch if env.watch is not None else Watch()


def watch_args(env: Env, w: Watch) -> list[str]:
    """The watcher's command line in the pod."""
    args = [
        "watch",
        "--env",
        env.name,
        "--interval",
        format_duration(w.interval),
        "--metrics-addr",
        f"0.0.0.0:{w.metrics_port}",
    ]
    if w.auto_resume:
        args += [
            "--auto-resume",
            "dead_owner",
            "--max-per-hour",
            str(w.max_per_hour),
            "--min-age",
            format_duration(w.min_age),
        ]
    return args


def proxy_args(env: Env) -> list[str]:
    """Cloud SQL Auth Proxy v2 on the env's port, with its health endpoints for the probes."""
    db = env.require_db()
    return [
        f"--port={db.port}",
        "--health-check",
        "--http-address=0.0.0.0",
        f"--http-port={PROXY_HEALTH_PORT}",
        "--structured-logs",
        instance_connection_name(env),
    ]


def _jinja() -> jinja2.Environment:
    j = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(paths.TEMPLATES_DIR / "watch")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    j.filters["to_json"] = json.dumps
    j.filters["combine"] = lambda a, b: {**a, **b}
    # alert annotations are Prometheus templates: `{{ $labels.kind }}` written without Jinja2
    j.globals["lbl"] = lambda name: "{{ $labels." + name + " }}"
    return j


def render_manifests(env: Env) -> list[dict[str, Any]]:
    """The watcher's manifests for ``env`` (a GKE env), as plain objects in apply order."""
    if env.kind != "gke":
        raise UsageError(
            f"env {env.name!r} is {env.kind}: `inv deploy-watch` is for GKE envs; the sandbox runs"
            " the same watcher with `inv sandbox.up --watch`"
        )
    w = watch_settings(env)
    env_file = env.path.read_text(encoding="utf-8")
    ns = env.namespace
    selector = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/instance": env.name}
    labels = {
        **selector,
        "app.kubernetes.io/part-of": "stairway-ops",
        "app.kubernetes.io/managed-by": FIELD_MANAGER,
    }
    db = env.require_db()
    grace = max(300, int(5 * w.interval.total_seconds()))
    context = {
        "env": env,
        "w": w,
        "ns": ns,
        "name": NAME,
        "labels": labels,
        "selector": selector,
        "secret": db.password.k8s_secret,
        "env_file": env_file,
        "env_checksum": hashlib.sha256(env_file.encode()).hexdigest()[:16],
        "watch_args": watch_args(env, w),
        "proxy_args": proxy_args(env),
        "alert_after": format_duration(w.alert_after),
        "alert_after_seconds": int(w.alert_after.total_seconds()),
        "scan_grace_seconds": grace,
    }
    j = _jinja()
    out: list[dict[str, Any]] = []
    for name in TEMPLATES:
        text = j.get_template(name).render(**context)
        docs = [d for d in yaml.safe_load_all(text) if d]
        out.extend(docs)
    for m in out:
        if m["metadata"].get("namespace") != ns:
            raise Refused(f"{m['kind']} {m['metadata']['name']} is not in the env's namespace {ns}")
    return out


def write_manifests(manifests: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """One YAML file per object (``<kind>.yaml``), for review or GitOps."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for m in manifests:
        p = out_dir / f"{m['kind'].lower()}.yaml"
        p.write_text(yaml.safe_dump(m, sort_keys=False))
        written.append(p)
    return written


@dataclass(frozen=True)
class Applied:
    kind: str
    name: str
    namespace: str
    created: bool  # False: updated in place

    def line(self) -> str:
        verb = "created" if self.created else "configured"
        return f"{self.kind.lower()}/{self.name} {verb} (server-side apply, {self.namespace})"


#: kind → (API class, method name, extra leading arguments) of the typed client
_APPLY: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "ServiceAccount": ("CoreV1Api", "patch_namespaced_service_account", ()),
    "ConfigMap": ("CoreV1Api", "patch_namespaced_config_map", ()),
    "Role": ("RbacAuthorizationV1Api", "patch_namespaced_role", ()),
    "RoleBinding": ("RbacAuthorizationV1Api", "patch_namespaced_role_binding", ()),
    "Deployment": ("AppsV1Api", "patch_namespaced_deployment", ()),
    "PrometheusRule": (
        "CustomObjectsApi",
        "patch_namespaced_custom_object",
        ("monitoring.coreos.com", "v1"),
    ),
    "PodMonitor": (
        "CustomObjectsApi",
        "patch_namespaced_custom_object",
        ("monitoring.coreos.com", "v1"),
    ),
}
_PLURALS = {"PrometheusRule": "prometheusrules", "PodMonitor": "podmonitors"}


def apply_manifests(
    api_client: Any,
    manifests: list[dict[str, Any]],
    *,
    on_applied: Callable[[Applied], None] = lambda a: None,
) -> list[Applied]:
    """Server-side apply of each object (``PATCH`` with ``application/apply-patch+yaml``,
    ``fieldManager=stairway-ops``, ``force=true``): created when missing, updated otherwise."""
    from kubernetes import client  # lazy: ~0.3 s, only when something is applied

    done: list[Applied] = []
    for m in manifests:
        kind, meta = m["kind"], m["metadata"]
        if kind not in _APPLY:
            raise UsageError(f"deploy-watch does not know how to apply a {kind}")
        cls, method, lead = _APPLY[kind]
        api = getattr(client, cls)(api_client)
        args: tuple[Any, ...]
        if kind in _PLURALS:
            args = (*lead, meta["namespace"], _PLURALS[kind], meta["name"], m)
        else:
            args = (meta["name"], meta["namespace"], m)
        response = getattr(api, method + "_with_http_info")(
            *args,
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type="application/apply-patch+yaml",
        )
        status = response.status_code if hasattr(response, "status_code") else response[1]
        applied = Applied(kind, meta["name"], meta["namespace"], created=int(status) == 201)
        on_applied(applied)
        done.append(applied)
    return done
