"""A GKE environment in one command: `repairtool orphans --env <gke>` starts the Cloud SQL proxy
(the stand-in executable, forwarding to the test's Postgres), reads the Stairway password from
where the service keeps it — a Kubernetes Secret on the loopback Kubernetes API, or Google
Secret Manager on a loopback server speaking its REST protocol — lists the service's pods by
label selector, and no output contains the password. Real processes, real clients."""

from __future__ import annotations

import base64
import itertools
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from opskit import secrets as ops_secrets
from opskit.envs import Env
from opskit.errors import NotFound, Refused
from repairtool.localpg import PgServer, create_database
from repairtool.stairway.schema import create_schema
from sandbox.secretmanager import SecretManagerServer
from tests.cliprocess import clean_env, probe

FIX = Path(__file__).parent / "fixtures"
SECRET_NAME = "workspacemanager-stairway-db-creds"
DEAD = "workspacemanager-deployment-68f9b944d5-9kgzp"
_n = itertools.count(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class StairwayInstance:
    """A 'Cloud SQL instance': a database and a login role with a password nobody types."""

    db: str
    user: str
    password: str
    port: int


@pytest.fixture
def instance(pg_server: PgServer) -> StairwayInstance:
    n = next(_n)
    db, user = f"workspace-stairway-{n}", f"workspace-stairway-{n}"
    password = "pw-" + secrets.token_urlsafe(18)
    url = create_database(pg_server, db)
    engine = create_engine(url)
    try:
        with engine.begin() as c:
            create_schema(c, "0.0.60")
            c.execute(text(f"CREATE ROLE \"{user}\" LOGIN PASSWORD '{password}'"))
            c.execute(text(f'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{user}"'))
            c.execute(
                text(
                    "INSERT INTO flight (flightid, submit_time, class_name, status, stairway_id)"
                    " VALUES ('f-orphan', LOCALTIMESTAMP,"
                    " 'bio.terra.workspace.service.workspace.flight.WorkspaceCreateFlight',"
                    " 'RUNNING', :o)"
                ),
                {"o": DEAD},
            )
            c.execute(
                text(
                    "INSERT INTO flightinput (flightid, key, value) VALUES"
                    " ('f-orphan', 'workspaceStage', '\"MC_WORKSPACE\"')"
                )
            )
    finally:
        engine.dispose()
    return StairwayInstance(db, user, password, pg_server.port)


@pytest.fixture
def tools(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    shutil.copy(FIX / "fake-tools" / "cloud-sql-proxy", bin_dir / "cloud-sql-proxy")
    (bin_dir / "cloud-sql-proxy").chmod(0o755)
    return bin_dir


@pytest.fixture
def secret_manager() -> Iterator[SecretManagerServer]:
    server = SecretManagerServer().start()
    try:
        yield server
    finally:
        server.stop()


def _put_k8s_secret(fake_gke: Any, name: str, data: dict[str, str]) -> None:
    fake_gke.cluster.store.create(
        "secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": name, "namespace": "terra-jcarlton"},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        },
    )


def _env_file(make_gke_env: Any, fake_gke: Any, inst: StairwayInstance, **over: Any) -> Env:
    env: Env = make_gke_env(
        **{
            "gke.kubeconfig": str(fake_gke.kubeconfig),
            "stairway.db.port": _free_port(),
            "stairway.db.name": inst.db,
            "stairway.db.user": inst.user,
            "stairway.db.password": {"k8s_secret": SECRET_NAME},
            **over,
        }
    )
    return env


def _repairtool(
    tools: Path, env: Env, inst: StairwayInstance, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "repairtool", *args],
        capture_output=True,
        text=True,
        env=_gke_env(tools, env, inst),
        timeout=120,
    )


def _gke_env(tools: Path, env: Env, inst: StairwayInstance) -> dict[str, str]:
    """The environment of a repairtool process on the env: its envs dir and state, the fake
    tools (gcloud, cloud-sql-proxy) first on PATH, the proxy's upstream."""
    path = os.pathsep.join([str(tools), os.path.dirname(sys.executable), os.environ["PATH"]])
    return clean_env(
        PATH=path,
        STAIRWAY_OPS_ENVS_DIR=str(env.path.parent),
        STAIRWAY_OPS_STATE_DIR=str(env.path.parent.parent / "state-root"),
        FAKE_CLOUDSQL_UPSTREAM=f"127.0.0.1:{inst.port}",
    )


def _port_closed(port: int, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return True
        time.sleep(0.05)
    return False


def test_orphans_on_a_gke_env_in_one_command_password_from_the_kubernetes_secret(
    fake_gke: Any, make_gke_env: Any, instance: StairwayInstance, tools: Path
) -> None:
    _put_k8s_secret(
        fake_gke, SECRET_NAME, {"db": instance.db, "username": instance.user,
                                "password": instance.password},
    )  # fmt: skip
    env = _env_file(make_gke_env, fake_gke, instance)
    assert env.stairway.db is not None
    port = env.stairway.db.port
    proc = _repairtool(tools, env, instance, "orphans", "--env", "jcarlton", "--json")
    assert proc.returncode == 1, proc.stderr  # findings: the orphan (dry run)
    doc = json.loads(proc.stdout)
    assert doc["liveness"]["source"] == "kube:terra-jcarlton"
    assert "-l app.kubernetes.io/component=workspacemanager" in doc["liveness"]["note"]
    assert sorted(doc["liveness"]["live"]) == sorted(fake_gke.pods())
    assert [(f["kind"], f["flight_id"]) for f in doc["findings"]] == [("dead_owner", "f-orphan")]
    assert "started" in proc.stderr and "cloud-sql-proxy" in proc.stderr
    assert instance.password not in proc.stdout + proc.stderr
    assert _port_closed(port), "the proxy the command started must stop with it"
    for f in (env.path.parent.parent).rglob("*"):
        if f.is_file():
            assert instance.password not in f.read_text(errors="replace"), f


def test_orphans_on_a_gke_env_password_from_secret_manager(
    fake_gke: Any,
    make_gke_env: Any,
    instance: StairwayInstance,
    tools: Path,
    secret_manager: SecretManagerServer,
) -> None:
    secret_manager.add_version("terra-kernel-k8s", "wsm-stairway-db", "an old password")
    secret_manager.add_version("terra-kernel-k8s", "wsm-stairway-db", instance.password)
    env = _env_file(
        make_gke_env, fake_gke, instance,
        **{"stairway.db.password": {"secret_manager": "wsm-stairway-db"},
           "gke.secret_manager_endpoint": secret_manager.url},
    )  # fmt: skip
    proc = _repairtool(tools, env, instance, "orphans", "--env", "jcarlton", "-o", "wide")
    assert proc.returncode == 1, proc.stderr
    assert "dead_owner" in proc.stdout and "f-orphan" in proc.stdout
    assert instance.password not in proc.stdout + proc.stderr
    (req,) = secret_manager.requests
    assert (
        req.path == "/v1/projects/terra-kernel-k8s/secrets/wsm-stairway-db/versions/latest:access"
    )


def test_several_envs_in_one_table_with_an_env_column(
    fake_gke: Any,
    make_gke_env: Any,
    instance: StairwayInstance,
    tools: Path,
    tmp_path: Path,
) -> None:
    _put_k8s_secret(fake_gke, SECRET_NAME, {"password": instance.password})
    env = _env_file(make_gke_env, fake_gke, instance)
    # a second environment file: same cluster, its own proxy port, a wrong Secret name
    data = env.path.read_text().replace("name: jcarlton", "name: other", 1)
    other = env.path.parent / "other.yaml"
    other.write_text(data.replace(SECRET_NAME, "no-such-secret").replace(
        f"port: {env.stairway.db.port}", f"port: {_free_port()}"))  # type: ignore[union-attr]  # fmt: skip
    proc = _repairtool(tools, env, instance, "orphans", "--env", "jcarlton,other", "--json")
    doc = json.loads(proc.stdout)
    assert doc["schema"] == "repairtool.orphans.envs/1"
    ok, failed = doc["envs"]
    assert (ok["env"], ok["ok"]) == ("jcarlton", True)
    assert [f["flight_id"] for f in ok["findings"]] == ["f-orphan"]
    assert (failed["env"], failed["ok"], failed["error"]["name"]) == ("other", False, "NOT_FOUND")
    assert "Secret no-such-secret" in failed["error"]["message"]
    assert proc.returncode == 9  # the first error's code
    table = _repairtool(tools, env, instance, "orphans", "--env", "jcarlton,other")
    header = next(line for line in table.stdout.splitlines() if line.startswith("Env"))
    assert header.split()[:3] == ["Env", "Kind", "Flight"]
    assert any(line.startswith("jcarlton") and "f-orphan" in line
               for line in table.stdout.splitlines())  # fmt: skip
    assert instance.password not in proc.stdout + proc.stderr + table.stdout + table.stderr
    fix = _repairtool(tools, env, instance, "orphans", "--env", "jcarlton,other", "--fix")
    assert fix.returncode == 2 and "one environment at a time" in fix.stderr


# -- the secret sources one by one ---------------------------------------------------------------


def test_kubernetes_secret_errors_name_the_secret_never_a_value(
    fake_gke: Any, gke_env: Env
) -> None:
    from opskit.platform import GkePlatform

    kube = GkePlatform(gke_env).kube()
    _put_k8s_secret(fake_gke, "creds", {"username": "u", "password": "hunter2-xyz"})
    assert kube.read_secret("creds", "password") == "hunter2-xyz"
    with pytest.raises(NotFound, match=r"has no key 'pw' \(its keys: password, username\)"):
        kube.read_secret("creds", "pw")
    with pytest.raises(NotFound, match="Secret nope: not found in namespace terra-jcarlton"):
        kube.read_secret("nope", "password")


def test_secret_sources_in_order_env_file_kubernetes(
    fake_gke: Any, make_gke_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opskit.platform import GkePlatform

    _put_k8s_secret(fake_gke, SECRET_NAME, {"password": "from-kube"})
    pw_file = tmp_path / "pw.txt"
    env = make_gke_env(
        **{
            "gke.kubeconfig": str(fake_gke.kubeconfig),
            "stairway.db.password": {
                "env": "T_PW",
                "file": str(pw_file),
                "k8s_secret": SECRET_NAME,
            },
        }
    )
    kube = GkePlatform(env).kube()
    monkeypatch.delenv("T_PW", raising=False)
    got = ops_secrets.db_password(env, kube)
    assert got is not None and (got.value, got.source) == (
        "from-kube", f"Kubernetes Secret terra-jcarlton/{SECRET_NAME}"
    )  # fmt: skip
    assert "from-kube" not in repr(got)
    pw_file.write_text("from-file\n")
    assert ops_secrets.db_password(env, kube).value == "from-file"  # type: ignore[union-attr]
    monkeypatch.setenv("T_PW", "from-env")
    assert ops_secrets.db_password(env, kube).source == "$T_PW"  # type: ignore[union-attr]


def test_secret_manager_crc_mismatch_and_missing_versions(
    secret_manager: SecretManagerServer,
) -> None:
    secret_manager.add_version("p", "db", "s3cret")
    name = ops_secrets.secret_manager_name("db", "p")
    assert name == "projects/p/secrets/db/versions/latest"
    assert ops_secrets.access_secret_manager(name, endpoint=secret_manager.url) == "s3cret"
    secret_manager.corrupt = True
    with pytest.raises(ops_secrets.SecretCorrupted, match="does not match its CRC32C") as info:
        ops_secrets.access_secret_manager(name, endpoint=secret_manager.url)
    assert "s3cret" not in str(info.value)
    with pytest.raises(NotFound, match="versions/7: not found"):
        ops_secrets.access_secret_manager(
            "projects/p/secrets/db/versions/7", endpoint=secret_manager.url
        )
    with pytest.raises(Refused, match="expected SECRET or projects/"):
        ops_secrets.secret_manager_name("projects/p/db", "p")


def test_inv_connect_db_starts_the_proxy_and_gives_psql_the_password_from_the_secret(
    fake_gke: Any, make_gke_env: Any, instance: StairwayInstance, tools: Path
) -> None:
    """`inv connect-db --env <gke>`: the real psql logs in with the Secret's password (the server
    wants scram and nothing else gives psql a password: no PGPASSWORD, no .pgpass), reads an
    empty stdin and exits 0; the password is never shown."""
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed")
    _put_k8s_secret(fake_gke, SECRET_NAME, {"password": instance.password})
    env = _env_file(make_gke_env, fake_gke, instance)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("STAIRWAY_", "PG"))}
    base.update(
        PATH=os.pathsep.join([str(tools), os.path.dirname(sys.executable), base["PATH"]]),
        STAIRWAY_OPS_ENVS_DIR=str(env.path.parent),
        STAIRWAY_OPS_STATE_DIR=str(env.path.parent.parent / "state-root"),
        FAKE_CLOUDSQL_UPSTREAM=f"127.0.0.1:{instance.port}",
        PGPASSFILE=str(env.path.parent / "no-such-pgpass"),  # no ~/.pgpass either
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "-r", str(root), "connect-db", "--env", "jcarlton"],
        capture_output=True, text=True, env=base, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"dbname={instance.db} user={instance.user}" in proc.stdout
    assert f"password from Kubernetes Secret terra-jcarlton/{SECRET_NAME}" in proc.stdout
    assert instance.password not in proc.stdout + proc.stderr


def test_catalog_draft_for_a_new_service_writes_its_catalog_file_once(
    fake_gke: Any, make_gke_env: Any, instance: StairwayInstance, tools: Path, tmp_path: Path
) -> None:
    _put_k8s_secret(fake_gke, SECRET_NAME, {"password": instance.password})
    catalog = tmp_path / "catalogs" / "my-service.yaml"
    env = _env_file(make_gke_env, fake_gke, instance, **{"service.catalog": str(catalog)})
    first = _repairtool(tools, env, instance, "catalog", "draft", "--env", "jcarlton")
    assert first.returncode == 0, first.stderr
    assert first.stdout == "" and f"wrote {catalog}" in first.stderr
    text_ = catalog.read_text()
    assert "WorkspaceCreateFlight" in text_ and "workspaceStage" in text_
    again = _repairtool(tools, env, instance, "catalog", "draft", "--env", "jcarlton")
    assert again.returncode == 3 and "pass --force" in again.stderr
    assert catalog.read_text() == text_


def test_a_proxy_already_listening_is_reused_and_left_running_and_n_overrides_the_namespace(
    fake_gke: Any, make_gke_env: Any, instance: StairwayInstance, tools: Path
) -> None:
    _put_k8s_secret(fake_gke, SECRET_NAME, {"password": instance.password})
    env = _env_file(make_gke_env, fake_gke, instance)
    assert env.stairway.db is not None
    port = env.stairway.db.port
    proxy = subprocess.Popen(
        [str(tools / "cloud-sql-proxy"), "--port", str(port), "p:r:i"],
        stdout=subprocess.DEVNULL,
        env={**os.environ, "FAKE_CLOUDSQL_UPSTREAM": f"127.0.0.1:{instance.port}"},
    )
    try:
        end = time.monotonic() + 10
        while _port_closed(port, 0.1) and time.monotonic() < end:
            pass
        proc = _repairtool(
            tools, env, instance, "orphans", "--env", "jcarlton", "-n", "terra-other", "--json"
        )
        assert proc.returncode == 1, proc.stderr
        assert "already accepts connections; using it" in proc.stderr
        doc = json.loads(proc.stdout)
        assert doc["liveness"]["source"] == "kube:terra-other" and doc["liveness"]["live"] == []
        assert proxy.poll() is None, "a proxy the command did not start is left running"
    finally:
        proxy.terminate()
        proxy.wait(10)


def test_a_password_from_a_variable_needs_no_kubeconfig_for_a_read_command(
    fake_gke: Any, make_gke_env: Any, instance: StairwayInstance, tools: Path
) -> None:
    # the workspace-manager profile names a Kubernetes Secret; $VAR comes first and is given, so
    # the Kubernetes API (here: no kubeconfig at all) is not needed (found by the cli.secrets soak)
    env = _env_file(
        make_gke_env,
        fake_gke,
        instance,
        **{
            "gke.kubeconfig": "/nonexistent/kubeconfig",
            "stairway.db.password": {"env": "SCAN_DB_PASSWORD"},
        },
    )
    os.environ["SCAN_DB_PASSWORD"] = instance.password
    try:
        proc = _repairtool(tools, env, instance, "flights", "count", "--env", "jcarlton")
    finally:
        del os.environ["SCAN_DB_PASSWORD"]
    assert proc.returncode == 0, proc.stderr
    assert "kubeconfig" not in proc.stderr and instance.password not in proc.stdout + proc.stderr


def test_a_read_command_on_a_gke_env_never_imports_sqlalchemy(
    fake_gke: Any, make_gke_env: Any, instance: StairwayInstance, tools: Path
) -> None:
    # the env's resolver (proxy, Secret, URL) reads on psycopg like `--db` does: the production
    # path of an on-call `repairtool orphans --env prod` starts without SQLAlchemy's import
    _put_k8s_secret(fake_gke, SECRET_NAME, {"password": instance.password})
    env = _env_file(make_gke_env, fake_gke, instance)
    for args, code in ((("flights", "count"), 0), (("orphans", "--json"), 1)):
        run = probe([*args, "--env", "jcarlton"], _gke_env(tools, env, instance))
        assert run.code == code, run.stderr
        assert "sqlalchemy" not in run.heavy, args
