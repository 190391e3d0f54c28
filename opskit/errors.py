"""Errors of the ops layer. Each class carries one code of the shared table
(:class:`repairtool.exitcodes.ExitCode`, re-exported here): the same number means the same thing
for ``inv`` and ``repairtool``. Every error is one line (``str(err)``).
"""

from __future__ import annotations

from repairtool.errors import RepairToolError
from repairtool.exitcodes import ExitCode

__all__ = [
    "CommandFailed",
    "EnvError",
    "ExitCode",
    "NotFound",
    "OperationFailed",
    "OpsError",
    "OpsTimeout",
    "Refused",
    "ToolMissing",
    "Unavailable",
    "UnknownEnv",
    "UsageError",
]


class OpsError(RepairToolError):
    """Base of all ops-layer errors: a one-line message (whitespace runs collapsed).

    The base itself has no meaning of its own: raising it directly is a bug (``INTERNAL``).
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))

    @property
    def message(self) -> str:
        return str(self)


class OperationFailed(OpsError):
    """The operation ran, but its outcome is bad (test failed, flight left stuck, …)."""

    exit_code = ExitCode.FINDINGS


class UsageError(OpsError):
    """Bad options or input."""

    exit_code = ExitCode.USAGE


class EnvError(UsageError):
    """An environment file that does not validate (names the file and the key)."""


class ToolMissing(OpsError):
    """A command-line tool or the service checkout is missing."""

    exit_code = ExitCode.TOOL_MISSING


class NotFound(OpsError):
    """The flight, pod, environment or experiment does not exist."""

    exit_code = ExitCode.NOT_FOUND


class UnknownEnv(NotFound):
    """No ``envs/<name>.yaml``."""


class Refused(OpsError):
    """Refused for safety (a namespace not in the env file, no confirmation, ``--dry``)."""

    exit_code = ExitCode.REFUSED


class CommandFailed(OpsError):
    """An external command (skaffold, gradlew, the proxy, a playbook) failed."""

    exit_code = ExitCode.COMMAND_FAILED


class OpsTimeout(OpsError):
    """Waited too long (rollout, replacement pod, proxy port, …)."""

    exit_code = ExitCode.TIMEOUT


class Unavailable(OpsError):
    """The platform cannot be reached (sandbox down, Kubernetes API, Cloud Logging)."""

    exit_code = ExitCode.PLATFORM_UNREACHABLE
