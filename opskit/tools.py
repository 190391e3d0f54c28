"""Tool preflight: which command-line tools an environment needs, and how to get the missing ones.

GKE environments drive the same tools the 2021 team used by hand: ``gcloud`` (credentials),
``kubectl`` (kubeconfig checks), ``gke-gcloud-auth-plugin`` (the exec credential plugin the
kubeconfig names since GKE 1.26; kubectl, the Python client and kubernetes.core call it),
``skaffold`` + ``helm`` (build and deploy), ``cloud-sql-proxy`` (the Stairway database).
The local environment needs none of them.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from opskit.envs import Env
from opskit.errors import ToolMissing
from opskit.events import Reporter, silent


@dataclass(frozen=True)
class Tool:
    """A command-line tool: the command name and a one-line install hint."""

    name: str
    purpose: str
    install: str


TOOLS: Mapping[str, Tool] = {
    t.name: t
    for t in (
        Tool(
            "gcloud",
            "cluster credentials, Cloud SQL",
            "install the Google Cloud CLI: https://cloud.google.com/sdk/docs/install",
        ),
        Tool(
            "kubectl",
            "kubeconfig contexts",
            "gcloud components install kubectl (or apt-get install kubectl)",
        ),
        Tool(
            "gke-gcloud-auth-plugin",
            "credentials for kubectl and the kubernetes client on GKE (the kubeconfig's exec"
            " plugin since GKE 1.26)",
            "gcloud components install gke-gcloud-auth-plugin (or apt-get install"
            " google-cloud-cli-gke-gcloud-auth-plugin)",
        ),
        Tool(
            "skaffold",
            "build (jib) and deploy (helm) the service",
            "gcloud components install skaffold, or https://skaffold.dev/docs/install/ "
            "(>= 1.4.0 for Helm 3)",
        ),
        Tool(
            "helm",
            "the workspacemanager chart (used by skaffold)",
            "https://helm.sh/docs/intro/install/ (Helm 3)",
        ),
        Tool(
            "cloud-sql-proxy",
            "local port to the Stairway Cloud SQL instance",
            "gcloud components install cloud-sql-proxy, or "
            "https://cloud.google.com/sql/docs/postgres/sql-proxy#install (v2)",
        ),
    )
}

GKE_TOOLS = ("gcloud", "kubectl", "gke-gcloud-auth-plugin", "skaffold", "helm", "cloud-sql-proxy")


def required_tools(env: Env) -> tuple[str, ...]:
    """The tools ``env`` needs (empty for ``local``: the sandbox is all Python)."""
    return GKE_TOOLS if env.kind == "gke" else ()


@dataclass(frozen=True)
class ToolStatus:
    tool: Tool
    path: str | None

    @property
    def found(self) -> bool:
        return self.path is not None

    def line(self) -> str:
        if self.path:
            return f"{self.tool.name}: {self.path}"
        return f"{self.tool.name}: missing ({self.tool.purpose}) - {self.tool.install}"


def check_tools(names: Iterable[str], path: str | None = None) -> list[ToolStatus]:
    """Look each tool up on PATH (or ``path``)."""
    search = path if path is not None else os.environ.get("PATH", "")
    return [ToolStatus(TOOLS[n], shutil.which(n, path=search)) for n in names]


def preflight(
    env: Env, reporter: Reporter | None = None, path: str | None = None
) -> list[ToolStatus]:
    """Check the env's tools; report each one; raise :class:`ToolMissing` if any is missing."""
    rep = reporter or silent()
    statuses = check_tools(required_tools(env), path)
    for st in statuses:
        if st.found:
            rep.emit("tool.found", st.line(), tool=st.tool.name, path=st.path)
        else:
            rep.emit(
                "tool.missing", st.line(), level="error", tool=st.tool.name, install=st.tool.install
            )
    missing = [st.tool.name for st in statuses if not st.found]
    if missing:
        raise ToolMissing(
            f"env {env.name!r} needs {len(missing)} missing tool(s): {', '.join(missing)}"
            " (install hints above); nothing was changed"
        )
    return statuses


def python_command(*args: str) -> str:
    """``<this python> args...`` quoted for the playbook's ``command`` module."""
    return " ".join(shlex.quote(a) for a in (sys.executable, *args))
