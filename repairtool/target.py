"""`--env NAME`: where an environment's Stairway database, pods and work queue are.

repairtool does not know how environments are described; a resolver registered under the
`repairtool.targets` entry-point group does (opskit registers one for `envs/<name>.yaml`, which
also knows where the local sandbox is). This keeps the dependency one way: opskit → repairtool.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from repairtool.errors import UsageError

if TYPE_CHECKING:
    # the resolver builds the settings; read commands take only its URL (no SQLAlchemy import)
    from repairtool.stairway.dburl import DbSettings

GROUP = "repairtool.targets"
#: the entry-point group of the default-environment chooser (`$STAIRWAY_OPS_ENV`, Invoke config)
CHOICE_GROUP = "repairtool.env_choice"
#: the variable that selects the environment for `repairtool` and `inv` alike
ENV_VAR = "STAIRWAY_OPS_ENV"


@dataclass(frozen=True)
class Target:
    """An environment as the repair tool needs it. The password lives only in `db.url`.

    `label_selector` selects the service's pods (each one a Stairway instance; `pod_filter`, a
    pod-name substring, narrows further); `catalog` is the service's FlightMap type catalog (a
    built-in name or a file); `close` releases what resolving started (a Cloud SQL proxy) and
    is called once the command is done.
    """

    name: str
    db: DbSettings = field(repr=False)
    namespace: str | None = None
    pod_filter: str | None = None
    kubeconfig: str | None = None
    context: str | None = None
    queue_project: str | None = None
    cluster_name: str | None = None
    pubsub_emulator_host: str | None = None
    work_queue: bool = True  # False: the service runs without a queue (resumes inline)
    reader: str | None = None
    label_selector: str | None = None
    catalog: str | None = None
    close: Callable[[], None] = field(default=lambda: None, repr=False, compare=False)


Resolver = Callable[[str], Target]


def split_envs(value: str) -> list[str]:
    """`--env a,b,c` → `["a", "b", "c"]` (empty parts refused, duplicates dropped)."""
    names = [n.strip() for n in value.split(",")]
    if not all(names):
        raise UsageError(f"--env {value!r}: empty environment name; give NAME or NAME,NAME,…")
    return list(dict.fromkeys(names))


def resolve(name: str) -> Target:
    """Resolve `--env NAME` through the registered resolver."""
    found = list(entry_points(group=GROUP))
    if not found:
        raise UsageError(
            f"--env {name}: no environment resolver installed (pip install -e . in the"
            " stairway-ops checkout); pass --db URL instead"
        )
    resolver: Resolver = found[0].load()
    return resolver(name)


@dataclass(frozen=True)
class DefaultEnv:
    """What the ops layer says when no `--env`/`--db` was given: the environment chosen by
    `$STAIRWAY_OPS_ENV` or Invoke's configuration (None: nothing chosen), and how many
    environment files exist (more than one: a command that changes something must not guess)."""

    name: str | None
    source: str
    env_files: int


def default_env() -> DefaultEnv:
    """`$STAIRWAY_OPS_ENV`, else the registered chooser (Invoke's `stairway_ops.env`)."""
    found = list(entry_points(group=CHOICE_GROUP))
    if found:
        chooser: Callable[[], DefaultEnv] = found[0].load()
        return chooser()
    name = os.environ.get(ENV_VAR, "").strip() or None
    return DefaultEnv(name, f"${ENV_VAR}", 0)
