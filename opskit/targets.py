"""The `repairtool.targets` resolver: `repairtool … --env NAME` reads `envs/NAME.yaml`.

For a `local` env the database, the kubeconfig and the Pub/Sub emulator are the running
sandbox's; for a `gke` env they come from the env file (the database through the Cloud SQL proxy
on its local port — start it with `inv db-proxy --env NAME`).
"""

from __future__ import annotations

import os
from urllib.parse import quote

from opskit.envchoice import ENV_VAR, configured_env
from opskit.envs import list_envs, load_env
from opskit.local import LocalPlatform
from repairtool.errors import UsageError
from repairtool.stairway.db import parse_url
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
        platform = LocalPlatform(env)
        handle = platform.handle()  # Unavailable (PLATFORM_UNREACHABLE) when not running
        url = handle.stairway_tcp_url().render_as_string(hide_password=False)
        return Target(
            name=name,
            db=parse_url(url, f"--env {name}"),
            namespace=env.service.namespace,
            pod_filter=env.service.pod_name_filter or env.service.deployment,
            kubeconfig=str(handle.kubeconfig),
            queue_project=handle.config.project_id,
            cluster_name=handle.config.stairway_cluster_name,
            pubsub_emulator_host=handle.emulator_host,
            work_queue=handle.emulator_host is not None,
            reader=(env.sandbox.reader_version if env.sandbox else "") or env.stairway.version,
        )
    db = env.stairway.db
    if db is None:
        raise UsageError(f"{env.path}: no stairway.db section; pass --db URL")
    password = db.password.resolve() or os.environ.get("PGPASSWORD") or ""
    auth = quote(db.user, safe="") + (":" + quote(password, safe="") if password else "")
    url = f"postgresql://{auth}@{db.host}:{db.port}/{quote(db.name, safe='')}"
    gke = env.gke
    return Target(
        name=name,
        db=parse_url(url, f"--env {name}"),
        namespace=env.service.namespace,
        pod_filter=env.service.pod_name_filter or env.service.deployment,
        kubeconfig=os.path.expanduser(gke.kubeconfig) if gke else None,
        context=gke.context if gke else None,
        queue_project=gke.project if gke else None,
        cluster_name=env.stairway.cluster_name,
        reader=env.stairway.version,
    )
