"""Errors of the ops layer and the exit codes the Invoke tasks map them to.

Every error is one line (``str(err)``) and carries a distinct exit code, so scripts can tell
an unknown environment from a missing tool from a flight that does not exist.

====  ===================  ==========================================================
code  name                 meaning
====  ===================  ==========================================================
0     OK                   done
1     FAILED               the operation ran but its outcome is bad (playbook failed,
                           test failed, flight left stuck after a pod kill)
2     USAGE                bad options (e.g. ``--flight`` and ``--pod`` together)
3     ENV                  unknown environment or invalid environment file
4     TOOL_MISSING         a required command-line tool is not on PATH
5     NOT_FOUND            the flight or pod does not exist
6     REFUSED              refused for safety (namespace not in the env file, ...)
7     COMMAND_FAILED       an external command (skaffold, gradlew, proxy, ...) failed
8     TIMEOUT              waited too long (rollout, replacement pod, proxy port, ...)
9     UNAVAILABLE          the platform cannot be reached (sandbox down, API/DB down)
====  ===================  ==========================================================
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of the ops tasks."""

    OK = 0
    FAILED = 1
    USAGE = 2
    ENV = 3
    TOOL_MISSING = 4
    NOT_FOUND = 5
    REFUSED = 6
    COMMAND_FAILED = 7
    TIMEOUT = 8
    UNAVAILABLE = 9


class OpsError(Exception):
    """Base of all ops-layer errors: a one-line message plus an exit code."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))

    @property
    def message(self) -> str:
        return str(self)


class OperationFailed(OpsError):
    exit_code = ExitCode.FAILED


class UsageError(OpsError):
    exit_code = ExitCode.USAGE


class EnvError(OpsError):
    exit_code = ExitCode.ENV


class ToolMissing(OpsError):
    exit_code = ExitCode.TOOL_MISSING


class NotFound(OpsError):
    exit_code = ExitCode.NOT_FOUND


class Refused(OpsError):
    exit_code = ExitCode.REFUSED


class CommandFailed(OpsError):
    exit_code = ExitCode.COMMAND_FAILED


class OpsTimeout(OpsError):
    exit_code = ExitCode.TIMEOUT


class Unavailable(OpsError):
    exit_code = ExitCode.UNAVAILABLE
