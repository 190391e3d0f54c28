"""Tool preflight: each missing tool reported with its install hint; ToolMissing otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from opskit.envs import load_env
from opskit.errors import ExitCode, ToolMissing
from opskit.events import Collector, Reporter
from opskit.tools import GKE_TOOLS, TOOLS, preflight, required_tools


def _fake_tools(d: Path, names: list[str]) -> str:
    d.mkdir(parents=True, exist_ok=True)
    for n in names:
        p = d / n
        p.write_text("#!/bin/sh\nexit 0\n")
        p.chmod(0o755)
    return str(d)


def test_gke_needs_the_six_tools_local_needs_none() -> None:
    assert required_tools(load_env("jcarlton")) == GKE_TOOLS
    assert set(GKE_TOOLS) == {
        "gcloud", "kubectl", "gke-gcloud-auth-plugin", "skaffold", "helm", "cloud-sql-proxy"
    }  # fmt: skip
    assert required_tools(load_env("local")) == ()


def test_each_missing_tool_is_reported_with_how_to_install(tmp_path: Path) -> None:
    path = _fake_tools(tmp_path / "bin", ["gcloud", "kubectl"])
    got = Collector()
    with pytest.raises(ToolMissing) as info:
        preflight(load_env("jcarlton"), Reporter([got]), path=path)
    missing = got.of("tool.missing")
    assert [e.data["tool"] for e in missing] == [
        "gke-gcloud-auth-plugin", "skaffold", "helm", "cloud-sql-proxy"
    ]  # fmt: skip
    for e in missing:
        assert "\n" not in e.message
        assert TOOLS[e.data["tool"]].install in e.message
    assert "gke-gcloud-auth-plugin, skaffold, helm, cloud-sql-proxy" in str(info.value)
    assert info.value.exit_code == ExitCode.TOOL_MISSING


def test_all_tools_present(tmp_path: Path) -> None:
    path = _fake_tools(tmp_path / "bin", list(GKE_TOOLS))
    statuses = preflight(load_env("jcarlton"), path=path)
    assert all(s.found for s in statuses)
