"""The Stairway database from this machine: Cloud SQL proxy (GKE) and the psql line.

GKE: ``cloud-sql-proxy --port 5435 terra-kernel-k8s:us-central1:workspace-db-jcarlton-…`` is
started through Invoke's ``Context.run(asynchronous=True)``, we wait until the port accepts
connections, and stop it on exit. The 2021 psql line (one line) is::

    psql "host=127.0.0.1 port=5435 sslmode=disable
          dbname=workspace-stairway user=workspace-stairway"

The password is never printed or put in a command line: psql and psycopg get it from
``PGPASSWORD`` (set only in the child's environment) or from ``~/.pgpass``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opskit.envs import Env, SecretRef
from opskit.errors import CommandFailed, OpsTimeout
from opskit.events import Reporter, silent

if TYPE_CHECKING:
    from sqlalchemy.engine import URL


@dataclass(frozen=True)
class DbTarget:
    """Where the Stairway database answers on this machine. ``repr`` never shows a password."""

    host: str
    port: int
    name: str
    user: str
    password: SecretRef = field(default_factory=SecretRef)
    url_override: str = field(default="", repr=False)
    #: the password already read from a cluster store (Kubernetes Secret, Secret Manager)
    secret: str | None = field(default=None, repr=False)

    def psql_line(self) -> str:
        """The psql command a person types (no password in it)."""
        return (
            f'psql "host={self.host} port={self.port} sslmode=disable dbname={self.name}'
            f' user={self.user}"'
        )

    def child_env(self) -> dict[str, str]:
        """Environment for psql: PGPASSWORD only when the env names a source that has it."""
        value = self.secret or self.password.resolve()
        return {"PGPASSWORD": value} if value else {}

    def sqlalchemy_url(self) -> URL:
        """A SQLAlchemy URL (password, when known, inside the URL object — hidden in reprs)."""
        # lazy: the proxy is also started for `repairtool --env`, whose reads do not use SQLAlchemy
        from sqlalchemy.engine import URL, make_url

        if self.url_override:
            return make_url(self.url_override).set(drivername="postgresql+psycopg")
        return URL.create(
            "postgresql+psycopg",
            username=self.user,
            password=self.secret or self.password.resolve(),
            host=self.host,
            port=self.port,
            database=self.name,
        )


def target_for(env: Env) -> DbTarget:
    db = env.require_db()
    return DbTarget(host=db.host, port=db.port, name=db.name, user=db.user, password=db.password)


def instance_connection_name(env: Env) -> str:
    """``project:region:instance`` of the env's Cloud SQL instance."""
    gke = env.require_gke()
    cs = env.require_db().cloud_sql
    assert cs is not None  # validated for kind gke
    return f"{cs.project or gke.project}:{cs.region}:{cs.instance}"


def proxy_command(env: Env) -> str:
    """``cloud-sql-proxy --port <port> <project:region:instance>`` (Cloud SQL Auth Proxy v2)."""
    return f"cloud-sql-proxy --port {env.require_db().port} {instance_connection_name(env)}"


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(
    host: str,
    port: int,
    timeout: float,
    *,
    alive: Callable[[], bool] = lambda: True,
    interval: float = 0.1,
) -> None:
    """Wait until ``host:port`` accepts TCP connections; give up when ``alive()`` turns False."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        if not alive():
            raise CommandFailed(f"the proxy exited before {host}:{port} accepted connections")
        time.sleep(interval)
    raise OpsTimeout(f"{host}:{port} did not accept connections within {timeout:g}s")


@contextlib.contextmanager
def cloud_sql_proxy(
    c: Any,
    env: Env,
    *,
    reporter: Reporter | None = None,
    timeout: float = 30.0,
    log_path: Path | None = None,
) -> Iterator[DbTarget]:
    """Run the Cloud SQL proxy for the env while the ``with`` block runs.

    ``c`` is an Invoke ``Context`` (a ``MockContext`` in tests). If the port already accepts
    connections (a proxy started elsewhere), it is used as is and left running.
    """
    rep = reporter or silent()
    target = target_for(env)
    if port_open(target.host, target.port):
        rep.emit(
            "proxy.reused",
            f"{target.host}:{target.port} already accepts connections; using it",
            port=target.port,
        )
        yield target
        return
    cmd = proxy_command(env)
    rep.emit("proxy.starting", f"proxying to {instance_connection_name(env)}", command=cmd)
    out: Any = None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out = log_path.open("w")
    try:
        kwargs: dict[str, Any] = {
            "asynchronous": True,
            "warn": True,
            "hide": out is None,
            "in_stream": False,
        }
        if out is not None:
            kwargs.update(out_stream=out, err_stream=out)
        handle = c.run(cmd, **kwargs)
        runner = getattr(handle, "runner", None)

        def alive() -> bool:
            return runner is not None and not runner.process_is_finished

        try:
            wait_for_port(target.host, target.port, timeout, alive=alive)
        except CommandFailed:
            code = getattr(_join_quietly(handle), "exited", None)
            raise CommandFailed(
                f"cloud-sql-proxy exited (code {code}) before port {target.port} accepted"
                " connections" + (f"; see {log_path}" if log_path else "")
            ) from None
        rep.emit("proxy.ready", f"listening on {target.host}:{target.port}", port=target.port)
        try:
            yield target
        finally:
            _stop(handle)
            rep.emit("proxy.stopped", "Cloud SQL proxy stopped", port=target.port)
    finally:
        if out is not None:
            out.close()


def _join_quietly(handle: Any) -> Any:
    join = getattr(handle, "join", None)
    if join is None:
        return handle  # a finished Result (MockContext)
    try:
        return join()
    except Exception:
        return None


def _stop(handle: Any, grace: float = 5.0) -> None:
    runner = getattr(handle, "runner", None)
    if runner is None:
        return
    if not runner.process_is_finished:
        with contextlib.suppress(ProcessLookupError):
            os.kill(runner.get_pid(), signal.SIGTERM)
        deadline = time.monotonic() + grace
        while not runner.process_is_finished and time.monotonic() < deadline:
            time.sleep(0.05)
        if not runner.process_is_finished:
            runner.kill()
    _join_quietly(handle)
