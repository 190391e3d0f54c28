"""Service profiles: an env file names its service and leaves out what the service fixes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from opskit.envs import load_env_file
from opskit.errors import EnvError
from opskit.profile import load_profile, profile_names

GKE = {
    "kind": "gke",
    "description": "x",
    "gke": {"project": "p", "cluster": "c", "zone": "us-central1-a", "region": "us-central1"},
    "testrunner": {
        "server": "s", "suite": "k", "description": "d", "sam_uri": "u", "datarepo_uri": "u",
        "service_account_file": "f", "suite_name": "n", "suite_description": "d",
        "test_configurations": ["a.json"],
    },
}  # fmt: skip


def _write(tmp_path: Path, name: str, data: dict[str, Any]) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **data}, sort_keys=False))
    return path


def test_the_shipped_profiles_load() -> None:
    assert profile_names() == ["custom", "data-repo", "resource-buffer", "workspace-manager"]
    for name in profile_names():
        assert load_profile(name).description


def test_a_resource_buffer_env_needs_only_what_differs_per_environment(tmp_path: Path) -> None:
    env = load_env_file(
        _write(
            tmp_path,
            "rbs-dev",
            {
                **GKE,
                "service": {"profile": "resource-buffer", "namespace": "terra-dev",
                            "url": "https://buffer", "checkout": "/src/rbs"},
                "stairway": {"db": {"name": "buffer-stairway", "user": "buffer",
                                    "cloud_sql": {"instance": "i", "region": "r"}}},
            },
        )
    )  # fmt: skip
    assert (env.service.deployment, env.service.container) == ("buffer-deployment", "buffer")
    assert env.service.label_selector == "app.kubernetes.io/component=buffer"
    assert env.stairway.cluster_name == "terra-dev-buffer-stairwaycluster"
    assert env.stairway.db is not None
    assert env.stairway.db.password.k8s_secret == "buffer-stairway-db-creds"
    assert env.service.catalog == ""  # no built-in catalog: `catalog draft --env` writes one


def test_data_repo_keeps_its_secret_key_when_the_env_names_the_secret(tmp_path: Path) -> None:
    env = load_env_file(
        _write(
            tmp_path,
            "tdr",
            {
                **GKE,
                "service": {"profile": "data-repo", "namespace": "terra-dev",
                            "deployment": "dev-datarepo-api", "url": "u", "checkout": "/s"},
                "stairway": {"db": {"password": {"k8s_secret": "dev-datarepo-api"},
                                    "cloud_sql": {"instance": "i", "region": "r"}}},
            },
        )
    )  # fmt: skip
    db = env.stairway.db
    assert db is not None and (db.name, db.user) == ("stairway", "drmanager")
    assert (db.password.k8s_secret, db.password.k8s_key) == (
        "dev-datarepo-api",
        "stairway-password",
    )
    assert env.stairway.cluster_name == "terra-dev-stairwaycluster"
    assert env.service.label_selector == (
        "app.kubernetes.io/name=datarepo-api,app.kubernetes.io/component=api"
    )


def test_what_a_profile_cannot_know_is_still_required(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "tdr",
        {**GKE, "service": {"profile": "data-repo", "namespace": "n", "url": "u", "checkout": "/s"},
         "stairway": {"db": {"cloud_sql": {"instance": "i", "region": "r"}}}},
    )  # fmt: skip
    with pytest.raises(EnvError, match=r"tdr.yaml: missing key 'service.deployment'"):
        load_env_file(path)
    custom = _write(
        tmp_path,
        "mine",
        {"kind": "local", "description": "d", "sandbox": {},
         "service": {"profile": "custom", "namespace": "n", "deployment": "d", "container": "c"}},
    )  # fmt: skip
    with pytest.raises(EnvError, match=r"missing key 'stairway.cluster_name'"):
        load_env_file(custom)


def test_an_unknown_profile_is_one_line_naming_the_known_ones(tmp_path: Path) -> None:
    path = _write(tmp_path, "x", {**GKE, "service": {"profile": "wsm", "namespace": "n"}})
    with pytest.raises(EnvError) as info:
        load_env_file(path)
    assert str(info.value) == (
        f"{path}: key 'service.profile' must be one of"
        " custom|data-repo|resource-buffer|workspace-manager, not 'wsm'"
    )
