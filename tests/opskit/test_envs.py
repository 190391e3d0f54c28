"""Environments: the shipped files load; every kind of bad file is a one-line EnvError."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from opskit.envs import SecretRef, list_envs, load_env, load_env_file
from opskit.errors import EnvError, ExitCode, UnknownEnv

FIXTURES = Path(__file__).parent / "fixtures"
CASES = json.loads((FIXTURES / "envs" / "cases.json").read_text())


def test_shipped_envs_are_listed_and_local_is_default() -> None:
    assert {"local", "jcarlton"} <= set(list_envs())
    assert load_env().name == "local"
    assert load_env().kind == "local"


def test_jcarlton_has_the_2021_values() -> None:
    e = load_env("jcarlton")
    assert e.kind == "gke"
    assert e.gke is not None and e.stairway.db.cloud_sql is not None and e.delay_hook is not None
    assert (e.gke.project, e.gke.cluster, e.gke.zone, e.gke.region) == (
        "terra-kernel-k8s",
        "terra-integration",
        "us-central1-a",
        "us-central1",
    )
    assert e.gke.context == "gke_terra-kernel-k8s_us-central1-a_terra-integration"
    assert (e.namespace, e.service.deployment, e.service.container) == (
        "terra-jcarlton",
        "workspacemanager-deployment",
        "workspacemanager",
    )
    assert e.service.url == "https://workspace.jcarlton.integ.envs.broadinstitute.org/"
    db = e.stairway.db
    assert (db.name, db.user, db.port) == ("workspace-stairway", "workspace-stairway", 5435)
    assert db.cloud_sql is not None
    assert (db.cloud_sql.instance, db.cloud_sql.region) == (
        "workspace-db-jcarlton-5a65b1a9838a91cb",
        "us-central1",
    )
    assert e.stairway.cluster_name == "terra-jcarlton-workspace-stairway"
    assert e.delay_hook.flight_class.endswith(".flight.WorkspaceCreateFlight")
    assert (e.delay_hook.step, e.delay_hook.duration) == (1, timedelta(minutes=3))
    assert e.testrunner is not None
    assert (e.testrunner.server, e.testrunner.suite) == ("workspace-jcarlton", "kill-pod-jcarlton")


def test_env_holds_no_password_only_where_to_find_it() -> None:
    e = load_env("jcarlton")
    ref = e.stairway.db.password
    assert ref.env == "STAIRWAY_DB_PASSWORD"
    assert ref.file.endswith("config/stairway-db-password.txt")
    # …and, from the Workspace Manager profile, the Secret the service itself reads it from
    assert (ref.k8s_secret, ref.k8s_key) == ("workspacemanager-stairway-db-creds", "password")
    assert e.to_dict()["stairway"]["db"]["password"] == {
        "env": ref.env,
        "file": ref.file,
        "k8s_secret": "workspacemanager-stairway-db-creds",
        "k8s_key": "password",
        "secret_manager": "",
    }


def test_secret_ref_resolves_env_then_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "pw"
    f.write_text("from-file\n")
    ref = SecretRef(env="OPSKIT_TEST_PW", file=str(f))
    monkeypatch.delenv("OPSKIT_TEST_PW", raising=False)
    assert ref.resolve() == "from-file"
    monkeypatch.setenv("OPSKIT_TEST_PW", "from-env")
    assert ref.resolve() == "from-env"
    assert "from-env" not in repr(ref)
    assert SecretRef().resolve() is None


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_bad_env_file_is_one_line_error_naming_file_and_key(case: dict[str, str]) -> None:
    path = FIXTURES / "envs" / case["file"]
    with pytest.raises(EnvError) as info:
        load_env_file(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert case["file"] in msg
    assert case["error"] in msg
    assert info.value.exit_code == ExitCode.USAGE


def test_unknown_env_names_the_known_ones() -> None:
    with pytest.raises(UnknownEnv, match=r"unknown environment 'nope' \(known: .*jcarlton.*local"):
        load_env("nope")
    with pytest.raises(EnvError, match="invalid environment name"):
        load_env("../etc/passwd")
