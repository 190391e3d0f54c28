"""The `repairtool.targets` resolver: `repairtool … --env NAME` reads `envs/NAME.yaml`.

For a `local` env the database, the kubeconfig and the Pub/Sub emulator are the running
sandbox's. For a `gke` env everything comes from the env file, in one command: the Cloud SQL
proxy is started on the env's port for as long as the command runs (or one already listening
there is used and left alone), and the password is read from where the service keeps it — a
Kubernetes Secret in its namespace or Google Secret Manager (:mod:`opskit.secrets`); it goes
into the database URL object only (hidden in every repr), never to output or disk.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from opskit.envchoice import ENV_VAR, configured_env
from opskit.envs import Env, list_envs, load_env
from opskit.events import Event, Reporter
from repairtool.errors import UsageError
from repairtool.stairway.dburl import DbSettings, DbUrl, parse_db_url
from repairtool.target import DefaultEnv, Target


def default_env() -> DefaultEnv:
    """`repairtool`'s default environment: `$STAIRWAY_OPS_ENV`, else Invoke's
    `stairway_ops.env` (invoke.yaml), else none; and how many env files exist."""
    count = len(list_envs())
    name = os.environ.get(ENV_VAR, "").strip()
    if name:
        return DefaultEnv(name, f"${ENV_VAR}", count)
    configured = configured_env()
    if configured:
        return DefaultEnv(configured, "Invoke config stairway_ops.env", count)
    return DefaultEnv(None, "", count)


def resolve(name: str) -> Target:
    env = load_env(name)  # an OpsError is a RepairToolError: its own code (NOT_FOUND, USAGE)
    if env.kind == "local":
        return _local(env)
    return _gke(env)


def _common(env: Env) -> dict[str, object]:
    return {
        "name": env.name,
        "namespace": env.service.namespace,
        "pod_filter": env.service.pod_name_filter or env.service.deployment,
        "label_selector": env.service.label_selector or None,
        "catalog": env.service.catalog or None,
        "cluster_name": env.stairway.cluster_name,
    }


def _local(env: Env) -> Target:
    # lazy: the sandbox's modules (SQLAlchemy, jinja2, the kubernetes client) only for a local env
    from opskit.local import LocalPlatform

    platform = LocalPlatform(env)
    handle = platform.handle()  # Unavailable (PLATFORM_UNREACHABLE) when not running
    url = handle.stairway_tcp_url().render_as_string(hide_password=False)
    return Target(
        db=DbSettings(parse_db_url(url, f"--env {env.name}"), f"--env {env.name}"),
        kubeconfig=str(handle.kubeconfig),
        queue_project=handle.config.project_id,
        pubsub_emulator_host=handle.emulator_host,
        work_queue=handle.emulator_host is not None and env.stairway.work_queue,
        reader=(env.sandbox.reader_version if env.sandbox else "") or env.stairway.version,
        **{**_common(env), "cluster_name": handle.config.stairway_cluster_name},  # type: ignore[arg-type]
    )


def _stderr_note(event: Event) -> None:
    """One line on stderr when the proxy starts (stdout stays the command's output)."""
    if event.kind == "proxy.ready":
        print(
            f"repairtool: started cloud-sql-proxy ({event.message}); it stops with this command",
            file=sys.stderr,
        )
    elif event.kind == "proxy.reused" or event.level != "info":
        print(f"repairtool: cloud-sql-proxy: {event.message}", file=sys.stderr)


def _gke(env: Env) -> Target:
    # lazy: Invoke, the proxy and the kubernetes client only for a GKE env (a repairtool read
    # command with --env prod then starts in the time its reads need)
    from invoke import Context

    from opskit.dbproxy import cloud_sql_proxy
    from opskit.platform import GkePlatform
    from opskit.secrets import db_password
    from repairtool.liveness import in_cluster

    db = env.stairway.db
    if db is None:
        raise UsageError(f"{env.path}: no stairway.db section; pass --db URL")
    gke = env.require_gke()
    stack = contextlib.ExitStack()
    try:
        # the proxy for as long as the command runs (an open port is reused and left running)
        target = stack.enter_context(
            cloud_sql_proxy(
                Context(),
                env,
                reporter=Reporter([_stderr_note]),
                log_path=env.state_path / "cloud-sql-proxy.log",
            )
        )
        # the Kubernetes API only when the local sources ($VAR, file) do not give the password
        ref = db.password
        kube = GkePlatform(env).kube() if ref.k8s_secret and not ref.resolve() else None
        password = db_password(env, kube)
    except BaseException:
        stack.close()
        raise
    url = DbUrl(
        username=db.user,
        password=password.value if password is not None else None,  # None: libpq's ~/.pgpass
        host=target.host,
        port=target.port,
        database=db.name,
    )
    kubeconfig = Path(gke.kubeconfig).expanduser()
    cluster = in_cluster(kubeconfig)
    return Target(
        db=DbSettings(url, f"--env {env.name}"),
        kubeconfig=None if cluster else str(kubeconfig),
        context=None if cluster else gke.context,
        queue_project=gke.project,
        work_queue=env.stairway.work_queue,
        reader=env.stairway.version,
        close=stack.close,
        **_common(env),  # type: ignore[arg-type]
    )
