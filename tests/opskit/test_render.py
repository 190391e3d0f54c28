"""Rendered env files compared with the 2021 files (fixtures under fixtures/2021/)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from opskit.envs import load_env
from opskit.render import render, render_all, template_files

FIX = Path(__file__).parent / "fixtures" / "2021"


def _shape(name: str) -> dict[str, object]:
    data = json.loads((FIX / name).read_text())
    data.pop("_source", None)
    return dict(data)


def test_server_spec_is_byte_identical_to_the_2021_file() -> None:
    text = render(load_env("jcarlton"), "testrunner-server.json.j2")
    assert text == (FIX / "workspace-jcarlton.json").read_text()


def test_suite_is_byte_identical_to_the_2021_file() -> None:
    text = render(load_env("jcarlton"), "testrunner-suite.json.j2")
    assert text == (FIX / "kill-pod-jcarlton.json").read_text()
    assert list(json.loads(text)) == [
        "name",
        "description",
        "serverSpecificationFile",
        "testConfigurationFiles",
    ]


def test_skaffold_config_has_the_v2alpha4_shape_of_the_2021_template() -> None:
    data = yaml.safe_load(render(load_env("jcarlton"), "skaffold.yaml.j2"))
    assert data == _shape("skaffold-jcarlton.json")


def test_helm_values_have_pull_policy_env_replicas_and_the_gotcha_note() -> None:
    text = render(load_env("jcarlton"), "values.yaml.j2")
    assert yaml.safe_load(text) == _shape("values-jcarlton.json")
    assert "TERRA_COMMON_KUBERNETES_IN_KUBERNETES" in text
    assert "buffer.enabled" in text


def test_render_all_writes_the_gke_files_and_keeps_unchanged_ones(tmp_path: Path) -> None:
    env = load_env("jcarlton")
    written = render_all(env, tmp_path)
    rel = sorted(str(p.relative_to(tmp_path)) for p in written)
    assert rel == [
        "servers/workspace-jcarlton.json",
        "skaffold.yaml",
        "suites/kill-pod-jcarlton.json",
        "values.yaml",
    ]
    mtimes = {p: p.stat().st_mtime_ns for p in written}
    render_all(env, tmp_path)
    assert {p: p.stat().st_mtime_ns for p in written} == mtimes


def test_local_env_renders_the_sandbox_settings() -> None:
    files = [f.dest for f in template_files(load_env("local"))]
    assert "sandbox.json" in files
