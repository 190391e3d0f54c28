"""Start, inspect and stop a sandbox: `up(config) -> SandboxHandle`, `status()`, `down()`.

`up` starts, in the state directory: the project's local Postgres (`repairtool.localpg`) with two
databases — `stairway` (the engine's schema at `engine_version`, created by
`repairtool.stairway.create_schema`) and `wsm` (the service's own tables) — the Pub/Sub emulator
with the work-queue topic and subscription (when installed and `queue` allows it), and the
supervisor process, which starts the pods. Every process is started in a process group of its
own and recorded in `sandbox.json`; `down` stops them all (SIGTERM, then SIGKILL), and Postgres
with `pg_ctl stop`. Files (logs, database, pod configs) stay until the next `up(fresh=True)`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url

from repairtool.localpg import LocalPostgres, create_database
from repairtool.stairway import create_schema
from sandbox.cloudlog import Entry, logging_client, read_entries
from sandbox.config import SandboxConfig, default_state_dir
from sandbox.flights.workspace import WSM_SCHEMA
from sandbox.procs import alive, group_alive, kill_group, wait_until
from sandbox.pubsub_emulator import PubSubEmulator, find_launcher

STATE_FILE = "sandbox.json"
STAIRWAY_DB = "stairway"
WSM_DB = "wsm"

#: children started by this process (so `down` can reap them: no zombies, no ResourceWarning)
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class SandboxError(RuntimeError):
    """The sandbox could not be started, or is not running."""


# -- the handle ---------------------------------------------------------------------------------


@dataclass
class SandboxHandle:
    """A running (or stopped) sandbox, as recorded in `<state_dir>/sandbox.json`."""

    state_dir: Path
    config: SandboxConfig
    stairway_db_url: str
    wsm_db_url: str
    kube_url: str
    logging_url: str
    service_url: str
    admin_url: str
    kubeconfig: Path
    supervisor_pid: int
    postgres_port: int
    emulator_pid: int | None = None
    emulator_host: str | None = None
    started: float = 0.0
    startup_seconds: float = 0.0
    #: seconds spent in each start-up phase (postgres, emulator, supervisor, pods)
    phases: dict[str, float] = field(default_factory=dict)
    _engines: dict[str, Engine] = field(default_factory=dict, repr=False)

    # -- persistence ---------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "state": "running",
            "config": self.config.to_json(),
            "stairway_db_url": self.stairway_db_url,
            "wsm_db_url": self.wsm_db_url,
            "kube_url": self.kube_url,
            "logging_url": self.logging_url,
            "service_url": self.service_url,
            "admin_url": self.admin_url,
            "kubeconfig": str(self.kubeconfig),
            "supervisor_pid": self.supervisor_pid,
            "postgres_port": self.postgres_port,
            "emulator_pid": self.emulator_pid,
            "emulator_host": self.emulator_host,
            "started": self.started,
            "startup_seconds": self.startup_seconds,
            "phases": self.phases,
            "topic_path": self.topic_path,
            "subscription_path": self.subscription_path,
        }

    @classmethod
    def load(cls, state_dir: Path | None = None) -> SandboxHandle:
        sd = (state_dir or default_state_dir()).absolute()
        path = sd / STATE_FILE
        if not path.exists():
            raise SandboxError(f"no sandbox in {sd} (no {STATE_FILE}); start one with up()")
        data = json.loads(path.read_text())
        return cls(
            state_dir=sd,
            config=SandboxConfig.from_json(data["config"]),
            stairway_db_url=data["stairway_db_url"],
            wsm_db_url=data["wsm_db_url"],
            kube_url=data["kube_url"],
            logging_url=data["logging_url"],
            service_url=data["service_url"],
            admin_url=data["admin_url"],
            kubeconfig=Path(data["kubeconfig"]),
            supervisor_pid=int(data["supervisor_pid"]),
            postgres_port=int(data["postgres_port"]),
            emulator_pid=data.get("emulator_pid"),
            emulator_host=data.get("emulator_host"),
            started=float(data.get("started", 0.0)),
            startup_seconds=float(data.get("startup_seconds", 0.0)),
            phases=dict(data.get("phases") or {}),
        )

    # -- names -----------------------------------------------------------------------------------
    @property
    def namespace(self) -> str:
        return self.config.namespace

    @property
    def project_id(self) -> str:
        return self.config.project_id

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def queue_enabled(self) -> bool:
        return self.emulator_host is not None

    @property
    def topic_path(self) -> str:
        return f"projects/{self.config.project_id}/topics/{self.config.topic_id}"

    @property
    def subscription_path(self) -> str:
        return f"projects/{self.config.project_id}/subscriptions/{self.config.subscription_id}"

    # -- the supervisor ----------------------------------------------------------------------------
    def _admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.admin_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def pods(self) -> list[dict[str, Any]]:
        """The pods the supervisor runs: name, template_hash, ready, terminating, pid, port…"""
        return list(self._admin("GET", "/sandbox/v1/state")["pods"])

    def ready_pods(self) -> list[str]:
        return [p["name"] for p in self.pods() if p["ready"] and not p["terminating"]]

    def pod_url(self, pod: str) -> str:
        for p in self.pods():
            if p["name"] == pod and p["port"]:
                return f"http://127.0.0.1:{p['port']}"
        raise SandboxError(f"pod {pod} is not running")

    def set_switches(self, **switches: bool | None) -> dict[str, bool]:
        """Set run-time switches (``sandbox.cluster.Switches``; None leaves one as is):
        `replace_deleted_pods=False`: the ReplicaSet does not replace deleted pods;
        `pod_watch_dropped=True`: every pod watch is cut, and new ones fail, until reset;
        `work_queue_detached=True`: the subscription is deleted (messages published meanwhile
        are lost); `hold_queue_messages=True`: pods receive READY messages but neither process
        nor ack them (redelivered after the ack deadline). Returns every switch's value."""
        body = {k: v for k, v in switches.items() if v is not None}
        try:
            out: dict[str, bool] = self._admin("POST", "/sandbox/v1/switches", body)
        except urllib.error.HTTPError as error:
            message = json.loads(error.read() or b"{}").get("message", str(error))
            raise SandboxError(f"switches: {message}") from None
        return out

    def switches(self) -> dict[str, bool]:
        """Every switch's value."""
        return dict(self._admin("GET", "/sandbox/v1/state")["switches"])

    def wait_ready(self, replicas: int | None = None, timeout: float = 60.0) -> list[str]:
        want = self.config.replicas if replicas is None else replicas
        names: list[str] = []

        def ok() -> bool:
            nonlocal names
            names = self.ready_pods()
            return len(names) >= want

        if not wait_until(ok, timeout, 0.1):
            raise SandboxError(f"only {len(names)} of {want} pods ready after {timeout:.0f}s")
        return names

    # -- clients -----------------------------------------------------------------------------------
    def core_v1(self) -> Any:
        """An official `kubernetes.client.CoreV1Api` on the sandbox's API server."""
        from kubernetes import client, config

        api_client = config.new_client_from_config(config_file=str(self.kubeconfig))
        return client.CoreV1Api(api_client)

    def apps_v1(self) -> Any:
        from kubernetes import client, config

        return client.AppsV1Api(config.new_client_from_config(config_file=str(self.kubeconfig)))

    def logging_client(self) -> Any:
        """A `google.cloud.logging.Client` on the sandbox's `entries:list` endpoint."""
        return logging_client(self.config.project_id, self.logging_url)

    def engine(self, which: str = STAIRWAY_DB) -> Engine:
        """A SQLAlchemy engine on the Stairway database (or `"wsm"`), over the unix socket."""
        if which not in self._engines:
            url = self.stairway_db_url if which == STAIRWAY_DB else self.wsm_db_url
            self._engines[which] = create_engine(
                url, pool_size=2, max_overflow=2, pool_pre_ping=True
            )
        return self._engines[which]

    def stairway_tcp_url(self) -> URL:
        """The Stairway database over loopback TCP, with the password (never log it)."""
        password = (LocalPostgres(self.state_dir).home / "password").read_text().strip()
        return URL.create(
            "postgresql+psycopg", "postgres", password, "127.0.0.1", self.postgres_port, STAIRWAY_DB
        )

    def flight(self, flight_id: str) -> dict[str, Any] | None:
        """The `flight` row (status, stairway_id, …) or None."""
        with self.engine().connect() as conn:
            row = (
                conn.execute(text("SELECT * FROM flight WHERE flightid = :f"), {"f": flight_id})
                .mappings()
                .first()
            )
        return dict(row) if row else None

    def flight_log(self, flight_id: str) -> list[dict[str, Any]]:
        with self.engine().connect() as conn:
            return [
                dict(r)
                for r in conn.execute(
                    text("SELECT * FROM flightlog WHERE flightid = :f ORDER BY log_time"),
                    {"f": flight_id},
                ).mappings()
            ]

    def instances(self) -> list[str]:
        with self.engine().connect() as conn:
            return sorted(
                str(r[0]) for r in conn.execute(text("SELECT stairway_name FROM stairwayinstance"))
            )

    def wait_flight(
        self, flight_id: str, statuses: set[str], timeout: float = 60.0
    ) -> dict[str, Any]:
        row: dict[str, Any] | None = None

        def done() -> bool:
            nonlocal row
            row = self.flight(flight_id)
            return row is not None and str(row["status"]) in statuses

        if not wait_until(done, timeout, 0.2):
            raise SandboxError(
                f"flight {flight_id} not in {sorted(statuses)} after "
                f"{timeout:.0f}s: {row and row['status']}"
            )
        assert row is not None
        return row

    # -- logs --------------------------------------------------------------------------------------
    def log_entries(self, pod: str | None = None) -> list[Entry]:
        """Every entry written so far (one pod, or all), in file order per pod."""
        entries = read_entries(self.logs_dir)
        if pod is not None:
            entries = [e for e in entries if e["resource"]["labels"]["pod_name"] == pod]
        return sorted(entries, key=lambda e: e["timestamp"])

    def messages(self, pod: str | None = None, contains: str | None = None) -> list[str]:
        out = [str(e["jsonPayload"].get("message", "")) for e in self.log_entries(pod)]
        return [m for m in out if contains is None or contains in m]

    def wait_for_log(
        self, contains: str, *, pod: str | None = None, timeout: float = 30.0
    ) -> Entry:
        found: list[Entry] = []

        def seen() -> bool:
            found[:] = [
                e
                for e in self.log_entries(pod)
                if contains in str(e["jsonPayload"].get("message", ""))
            ]
            return bool(found)

        if not wait_until(seen, timeout, 0.1):
            raise SandboxError(f"no log line containing {contains!r} within {timeout:.0f}s")
        return found[0]

    # -- the service -------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        pod: str | None = None,
        token: str = "sandbox-test-token",
        timeout: float = 120.0,
    ) -> tuple[int, Any]:
        """Call the service through the front port (or one pod's port)."""
        import urllib.error

        base = self.pod_url(pod) if pod else self.service_url
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            base + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                return error.code, json.loads(raw) if raw else None
            except ValueError:
                return error.code, raw.decode(errors="replace")

    def down(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()
        down(self.state_dir)


@dataclass
class SandboxStatus:
    state_dir: Path
    running: bool
    supervisor: bool
    postgres: bool
    emulator: bool | None
    pods: list[dict[str, Any]]
    urls: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "state_dir": str(self.state_dir),
            "running": self.running,
            "supervisor": self.supervisor,
            "postgres": self.postgres,
            "emulator": self.emulator,
            "pods": self.pods,
            "urls": self.urls,
        }


# -- lifecycle ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def child_env() -> dict[str, str]:
    """The environment of the processes the sandbox starts: this project first on the path (so
    `sandbox` imports as the package even under a stale editable install)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def _spawn(
    argv: list[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    env = env if env is not None else child_env()
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=str(cwd) if cwd else None,
        )
    _CHILDREN[proc.pid] = proc
    return proc


def _reap(pid: int | None) -> None:
    if pid is None:
        return
    proc = _CHILDREN.pop(pid, None)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def _use_queue(config: SandboxConfig) -> bool:
    if config.queue == "none":
        return False
    if find_launcher() is None:
        if config.queue == "emulator":
            raise SandboxError("queue='emulator' but the Pub/Sub emulator is not installed")
        return False
    return True


@dataclass(frozen=True)
class PostgresReady:
    """The sandbox's Postgres, started, with its databases and the engine schema in place."""

    server: Any
    stairway_url: str
    wsm_url: str
    #: what starting it created (empty when everything was there already)
    created: tuple[str, ...]


def start_postgres(state_dir: Path, fresh: bool, engine_version: str) -> PostgresReady:
    """Start (first time: initdb) the sandbox's Postgres; create the Stairway and WSM databases
    and the engine schema of ``engine_version`` when missing. Idempotent."""
    local = LocalPostgres(state_dir)
    if fresh:
        local.destroy()
    created: list[str] = (
        [] if local.status().initialized else [f"initialized Postgres in {state_dir}"]
    )
    server = local.start()
    existing: set[str] = set()
    admin = create_engine(server.url("postgres", tcp=False), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            existing = {str(r[0]) for r in conn.execute(text("SELECT datname FROM pg_database"))}
    finally:
        admin.dispose()
    for name in (STAIRWAY_DB, WSM_DB):
        if name not in existing:
            create_database(server, name)
            created.append(f"created database {name}")
    stairway_url = server.url(STAIRWAY_DB, tcp=False)
    wsm_url = server.url(WSM_DB, tcp=False)
    eng = create_engine(stairway_url)
    try:
        with eng.begin() as conn:
            has_flight = conn.execute(text("SELECT to_regclass('flight') IS NOT NULL")).scalar()
            if not has_flight:
                create_schema(conn, engine_version)
                created.append(f"created the Stairway {engine_version} schema")
    finally:
        eng.dispose()
    eng = create_engine(wsm_url)
    try:
        with eng.begin() as conn:
            for stmt in WSM_SCHEMA:
                conn.execute(text(stmt))
    finally:
        eng.dispose()
    return PostgresReady(
        server,
        stairway_url.render_as_string(hide_password=False),
        wsm_url.render_as_string(hide_password=False),
        tuple(created),
    )


def prepare(config: SandboxConfig) -> list[str]:
    """``inv setup`` for a local env: Postgres, its databases and the engine schema, and
    ``config.json``; idempotent. Returns what changed (empty on a re-run). A Postgres that was
    not running is stopped again."""
    if config.queue == "emulator" and find_launcher() is None:
        raise SandboxError("sandbox.queue is 'emulator' but the Pub/Sub emulator is not installed")
    state_dir = config.resolved_state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    local = LocalPostgres(state_dir)
    was_running = local.status().running
    try:
        changes = list(start_postgres(state_dir, False, config.engine_version).created)
    finally:
        if not was_running:
            local.stop()
    config_file = state_dir / "config.json"
    text_now = config.dumps()
    if not config_file.exists() or config_file.read_text() != text_now:
        config_file.write_text(text_now)
        changes.append(f"wrote {config_file}")
    return changes


def up(config: SandboxConfig | None = None, *, fresh: bool = True) -> SandboxHandle:
    """Start a sandbox and wait until all its pods are Ready. `fresh` (default) wipes the state
    directory's previous database, logs and pod files first. Raises `SandboxError` (after
    stopping whatever it had started) when something does not come up."""
    config = config or SandboxConfig()
    state_dir = config.resolved_state_dir
    t0 = time.monotonic()
    with _locked(state_dir):
        if (state_dir / STATE_FILE).exists():
            st = status(state_dir)
            if st.supervisor or st.emulator:
                raise SandboxError(f"a sandbox is already running in {state_dir}; down() first")
        if fresh:
            for name in ("logs", "pods"):
                shutil.rmtree(state_dir / name, ignore_errors=True)
            for name in (
                STATE_FILE,
                "supervisor.json",
                "runtime.json",
                "kubeconfig",
                "supervisor.log",
                "emulator.log",
            ):
                (state_dir / name).unlink(missing_ok=True)
        (state_dir / "logs").mkdir(parents=True, exist_ok=True)
        config = config.with_(state_dir=state_dir)
        (state_dir / "config.json").write_text(config.dumps())
        emulator: PubSubEmulator | None = None
        emulator_error: list[BaseException] = []
        use_queue = _use_queue(config)

        phases: dict[str, float] = {}

        def start_emulator() -> None:
            nonlocal emulator
            t = time.monotonic()
            try:
                emulator = PubSubEmulator.start(state_dir / "emulator.log")
                phases["emulator"] = time.monotonic() - t
                _CHILDREN[emulator.pid] = emulator._proc  # type: ignore[assignment]
            except BaseException as error:
                emulator_error.append(error)

        thread = threading.Thread(target=start_emulator) if use_queue else None
        if thread:
            thread.start()
        supervisor: subprocess.Popen[bytes] | None = None
        try:
            t = time.monotonic()
            try:
                pg = start_postgres(state_dir, fresh, config.engine_version)
                server, stairway_url, wsm_url = pg.server, pg.stairway_url, pg.wsm_url
                phases["postgres"] = time.monotonic() - t
            finally:
                if thread:
                    thread.join()
            if emulator_error:
                raise SandboxError(f"Pub/Sub emulator: {emulator_error[0]}")
            if emulator is not None:
                emulator.create_work_queue(
                    config.project_id,
                    config.topic_id,
                    config.subscription_id,
                    config.ack_deadline_seconds,
                )
            runtime = {
                "stairway_db_url": stairway_url,
                "wsm_db_url": wsm_url,
                "emulator_host": emulator.host if emulator else None,
            }
            path = state_dir / "runtime.json"
            path.write_text(json.dumps(runtime, indent=2))
            path.chmod(0o600)
            t = time.monotonic()
            supervisor = _spawn(
                [sys.executable, "-m", "sandbox.supervisor", str(state_dir)],
                state_dir / "supervisor.log",
                cwd=state_dir,
            )
            info = _wait_supervisor(state_dir, supervisor, timeout=config.startup_timeout_seconds)
            phases["supervisor"] = time.monotonic() - t
            t = time.monotonic()
            handle = SandboxHandle(
                state_dir=state_dir,
                config=config,
                stairway_db_url=stairway_url,
                wsm_db_url=wsm_url,
                kube_url=f"http://127.0.0.1:{info['kube_port']}",
                logging_url=f"http://127.0.0.1:{info['logging_port']}",
                service_url=f"http://127.0.0.1:{info['front_port']}",
                admin_url=f"http://127.0.0.1:{info['admin_port']}",
                kubeconfig=state_dir / "kubeconfig",
                supervisor_pid=supervisor.pid,
                postgres_port=server.port,
                emulator_pid=emulator.pid if emulator else None,
                emulator_host=emulator.host if emulator else None,
                started=time.time(),
                phases=phases,
            )
            _write_state(state_dir, handle.to_json())
            remaining = config.startup_timeout_seconds - (time.monotonic() - t0)
            try:
                handle.wait_ready(timeout=max(remaining, 5.0))
            except SandboxError as error:
                raise SandboxError(
                    f"{error}; see {state_dir / 'pods'}/*.stderr and {state_dir / 'logs'}"
                ) from None
            phases["pods"] = time.monotonic() - t
            handle.startup_seconds = time.monotonic() - t0
            _write_state(state_dir, handle.to_json())
            return handle
        except BaseException:
            _stop_all(
                state_dir,
                supervisor.pid if supervisor else None,
                emulator.pid if emulator else None,
            )
            raise


def _write_state(state_dir: Path, data: dict[str, Any]) -> None:
    tmp = state_dir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(state_dir / STATE_FILE)


def _wait_supervisor(
    state_dir: Path, proc: subprocess.Popen[bytes], timeout: float
) -> dict[str, Any]:
    path = state_dir / "supervisor.json"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists():
            data: dict[str, Any] = json.loads(path.read_text())
            if data.get("pid") == proc.pid:
                return data
        if proc.poll() is not None:
            tail = (state_dir / "supervisor.log").read_text()[-2000:]
            raise SandboxError(f"the supervisor exited ({proc.returncode}):\n{tail}")
        time.sleep(0.05)
    raise SandboxError(f"the supervisor did not start within {timeout:.0f}s")


def _stop_all(state_dir: Path, supervisor_pid: int | None, emulator_pid: int | None) -> None:
    if supervisor_pid:
        kill_group(supervisor_pid, term_timeout=5.0)
        _reap(supervisor_pid)
    if emulator_pid:
        kill_group(emulator_pid, term_timeout=3.0)
        _reap(emulator_pid)
    with contextlib.suppress(Exception):
        LocalPostgres(state_dir).stop()


def down(target: SandboxHandle | Path | str | None = None) -> bool:
    """Stop every process of the sandbox (supervisor and pods, emulator, Postgres). Returns
    whether anything was running. Safe to call twice or on a half-started sandbox."""
    if isinstance(target, SandboxHandle):
        state_dir = target.state_dir
    else:
        state_dir = Path(target).absolute() if target else default_state_dir()
    with _locked(state_dir):
        path = state_dir / STATE_FILE
        data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        sup_pid = data.get("supervisor_pid")
        sup_file = state_dir / "supervisor.json"
        if sup_pid is None and sup_file.exists():
            sup_pid = json.loads(sup_file.read_text()).get("pid")
        emu_pid = data.get("emulator_pid")
        was = bool(
            group_alive(sup_pid)
            or group_alive(emu_pid)
            or LocalPostgres(state_dir).status().running
        )
        _stop_all(state_dir, sup_pid, emu_pid)
        if data:
            data["state"] = "stopped"
            _write_state(state_dir, data)
        return was


def destroy(target: SandboxHandle | Path | str | None = None) -> None:
    """`down()`, then delete everything the sandbox kept: the Postgres data (also when it lives in
    a private /tmp directory), logs, pod files and `sandbox.json`. The state directory stays."""
    if isinstance(target, SandboxHandle):
        state_dir = target.state_dir
    else:
        state_dir = Path(target).absolute() if target else default_state_dir()
    down(state_dir)
    with _locked(state_dir):
        LocalPostgres(state_dir).destroy()
        for name in ("logs", "pods"):
            shutil.rmtree(state_dir / name, ignore_errors=True)
        for name in (
            STATE_FILE,
            "supervisor.json",
            "runtime.json",
            "kubeconfig",
            "config.json",
            "supervisor.log",
            "emulator.log",
        ):
            (state_dir / name).unlink(missing_ok=True)


def status(state_dir: Path | str | None = None) -> SandboxStatus:
    """What runs in the state directory (no side effects)."""
    sd = Path(state_dir).absolute() if state_dir else default_state_dir()
    path = sd / STATE_FILE
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    sup = alive(data.get("supervisor_pid"))
    emu_pid = data.get("emulator_pid")
    emulator = alive(emu_pid) if emu_pid else None
    pg = LocalPostgres(sd).status().running if (sd / "pg").exists() else False
    pods: list[dict[str, Any]] = []
    if sup and data.get("admin_url"):
        url = data["admin_url"] + "/sandbox/v1/state"
        with contextlib.suppress(OSError, ValueError), urllib.request.urlopen(url, timeout=5) as r:
            pods = json.loads(r.read())["pods"]
    urls: dict[str, str] = {
        k: str(data[k])
        for k in ("service_url", "kube_url", "logging_url", "admin_url")
        if k in data
    }
    if data.get("kubeconfig"):
        urls["kubeconfig"] = data["kubeconfig"]
    return SandboxStatus(sd, bool(sup and pg), sup, pg, emulator, pods, urls)


def stairway_url_for_people(handle: SandboxHandle) -> str:
    """The Stairway DB URL with the password hidden (for printing)."""
    return make_url(handle.stairway_db_url).render_as_string(hide_password=True)


def pid_is_ours(pid: int) -> bool:
    return pid in _CHILDREN or os.getpid() == pid
