"""A local Stairway-compatible service to rehearse pod kills and recovery on (the `local` env).

    import sandbox
    h = sandbox.up(sandbox.SandboxConfig(replicas=2, engine_version="0.0.60",
                                         delay=sandbox.DelayHookConfig(seconds=5)))
    ...  # h.core_v1(), h.kubeconfig, h.logging_client(), h.engine(), h.request(...)
    sandbox.status()   # what runs in the state dir
    sandbox.down()     # stop everything (files stay for a post-mortem)
    sandbox.destroy()  # stop everything and delete the state (database, logs)

See `sandbox.lifecycle` for what `up` starts and `sandbox.config.SandboxConfig` for the knobs.
"""

from sandbox.config import DelayHookConfig, SandboxConfig, default_state_dir
from sandbox.lifecycle import (
    SandboxError,
    SandboxHandle,
    SandboxStatus,
    destroy,
    down,
    status,
    up,
)

__all__ = [
    "DelayHookConfig",
    "SandboxConfig",
    "SandboxError",
    "SandboxHandle",
    "SandboxStatus",
    "default_state_dir",
    "destroy",
    "down",
    "status",
    "up",
]
