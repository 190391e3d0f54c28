"""Which Stairway instances are alive: the evidence detection relies on, and how much to trust it.

The engine has no heartbeat: an instance is alive when its pod exists. Sources, strongest first:
- `--kube`: the service's pods, listed with the official kubernetes client — the pods its label
  selector matches (`-l`; an env file's profile gives it), narrowed by a pod-name substring
  where one is given (what TCL's `KubeService.getPodSet()` does with its name filter); inside a
  pod without a kubeconfig, the pod's own service account (kubectl's rule);
- `--live-instances`: pod names given by the operator (offline use, tests);
- neither: the `stairwayinstance` table — registered and not yet recovered, which includes every
  dead pod nobody recovered, so "dead owner" cannot be told from "alive" with it.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from repairtool.errors import PlatformUnreachable, UsageError


class Confidence(enum.StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


@dataclass(frozen=True)
class Liveness:
    """The set of live instance names, where it came from, and how far to trust it."""

    live: frozenset[str] | None  # None: unknown (only stairwayinstance was available)
    source: str
    confidence: Confidence
    note: str
    terminating: frozenset[str] = frozenset()

    def is_live(self, name: str) -> bool | None:
        if self.live is None:
            return None
        return name in self.live


def from_names(names: Iterable[str]) -> Liveness:
    live = frozenset(n.strip() for n in names if n.strip())
    if not live:
        raise UsageError("--live-instances is empty; give pod names separated by commas")
    return Liveness(
        live,
        "--live-instances",
        Confidence.MEDIUM,
        "live instances as given on the command line; not checked against the cluster",
    )


def from_registry() -> Liveness:
    return Liveness(
        None,
        "stairwayinstance",
        Confidence.LOW,
        "no pod list: only the stairwayinstance table was used; it lists every instance that was"
        " never recovered, live or dead, so dead owners and stale instances cannot be found;"
        " pass --kube or --live-instances",
    )


class KubeUnavailable(PlatformUnreachable):
    """The Kubernetes API did not answer the pod list."""


def in_cluster(kubeconfig: str | Path | None) -> bool:
    """Use the pod's service account: inside a pod (`KUBERNETES_SERVICE_HOST`) with no
    kubeconfig file to use instead (kubectl's rule)."""
    if not os.environ.get("KUBERNETES_SERVICE_HOST"):
        return False
    if kubeconfig is not None:
        return not Path(kubeconfig).expanduser().is_file()
    return not os.environ.get("KUBECONFIG") and not (Path.home() / ".kube" / "config").is_file()


def from_kube(
    namespace: str,
    pod_filter: str,
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    label_selector: str | None = None,
) -> Liveness:
    """List the namespace's pods that `label_selector` selects and whose name contains
    `pod_filter` (either may be empty) with the kubernetes client."""
    try:
        from kubernetes import client, config
        from kubernetes.client.rest import ApiException
        from kubernetes.config.config_exception import ConfigException
    except ImportError as error:  # pragma: no cover - declared dependency
        raise KubeUnavailable(f"the kubernetes client is not installed: {error}") from None
    try:
        if in_cluster(kubeconfig):
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            api_client = client.ApiClient(configuration)
        else:
            api_client = config.new_client_from_config(config_file=kubeconfig, context=context)
    except (ConfigException, OSError) as error:
        where = kubeconfig or "$KUBECONFIG or ~/.kube/config"
        problem = str(error).rstrip(".")
        raise UsageError(
            f"kubeconfig {where}{f' (context {context})' if context else ''}: {problem}; fetch the"
            " cluster credentials (`inv setup --env NAME` or `gcloud container clusters"
            " get-credentials`) or give the pods with --live-instances"
        ) from None
    try:
        pods = client.CoreV1Api(api_client).list_namespaced_pod(
            namespace, _request_timeout=30, label_selector=label_selector or None
        )
    except ApiException as error:
        raise KubeUnavailable(
            f"listing pods in {namespace} failed: {error.status} {error.reason}"
        ) from None
    except Exception as error:  # urllib3 connection errors
        raise KubeUnavailable(f"Kubernetes API unreachable: {type(error).__name__}") from None
    live: set[str] = set()
    terminating: set[str] = set()
    for pod in pods.items:
        meta, status = pod.metadata, pod.status
        name = str(meta.name) if meta is not None and meta.name else ""
        if pod_filter not in name or meta is None:
            continue
        if meta.deletion_timestamp is not None:
            terminating.add(name)
        elif status is not None and (status.phase or "") in ("Running", "Pending"):
            live.add(name)
    which = " and ".join(
        x for x in (f"-l {label_selector}" if label_selector else "", pod_filter) if x
    )
    return Liveness(
        frozenset(live),
        f"kube:{namespace}",
        Confidence.HIGH,
        f"{len(live)} pods of {which or 'the namespace'} in namespace {namespace} listed with"
        " the kubernetes client"
        + (f"; terminating: {', '.join(sorted(terminating))}" if terminating else ""),
        frozenset(terminating),
    )
