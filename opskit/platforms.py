"""Which :class:`~opskit.platform.Platform` serves an environment: one entry per env kind.

The registry sits above both implementations (``opskit.platform`` for GKE, ``opskit.local``
for the sandbox), so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from opskit.envs import Env, Kind
from opskit.local import LocalPlatform
from opskit.platform import GkePlatform, Platform

#: env kind → the platform implementation
PLATFORMS: Mapping[Kind, Callable[[Env], Platform]] = {
    "gke": GkePlatform,
    "local": LocalPlatform,
}


def platform_for(env: Env) -> Platform:
    """The platform implementation for the env's kind."""
    return PLATFORMS[env.kind](env)
