"""The one exit-code table of `repairtool` and `inv`: the same number means the same thing.

Every error class of `repairtool` and `opskit` carries exactly one of these codes
(`exit_code`); :func:`exit_code_of` maps any exception to its code (an exception nobody
classified is :attr:`ExitCode.INTERNAL`: a bug, reported as one line, never a traceback).
`repairtool --help`, `inv --help TASK` and the README print the table from here
(:func:`help_text`, :func:`markdown_table`).
"""

from __future__ import annotations

import sys
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes shared by `repairtool` and `inv`; each member has a one-line meaning."""

    meaning: str

    def __new__(cls, value: int, meaning: str) -> ExitCode:
        member = int.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member

    OK = 0, "success: nothing found, or everything done"
    FINDINGS = 1, "findings left, or the outcome deviated (verdict, test, stuck flight)"
    USAGE = 2, "bad option or input, or a bad data file (env, experiment, journal)"
    REFUSED = 3, "refused by a safety rule (no --reason, not confirmed, --dry)"
    DB_UNREACHABLE = 4, "the Stairway database cannot be reached"
    DB_LOGIN_REFUSED = 5, "the database refused the login"
    NOT_STAIRWAY_DB = 6, "the database holds no Stairway tables"
    LOCAL_POSTGRES = 7, "the project's local Postgres failed to start"
    PLATFORM_UNREACHABLE = 8, "Kubernetes API, work queue, Cloud Logging or sandbox unreachable"
    NOT_FOUND = 9, "no such flight, pod, environment or experiment"
    TOOL_MISSING = 10, "a required command-line tool or checkout is missing"
    TIMEOUT = 11, "waited too long (rollout, replacement pod, proxy port)"
    COMMAND_FAILED = 12, "an external command failed (skaffold, gradlew, proxy, playbook)"
    INTERNAL = 70, "internal error (a bug), reported as one line without a traceback"
    INTERRUPTED = 130, "interrupted (Ctrl-C)"


#: error classes outside the repairtool/opskit tree, by qualified name (their module is
#: consulted only when already imported: an instance of it cannot exist otherwise)
FOREIGN: dict[str, ExitCode] = {
    "repairtool.flightmap.errors.FlightMapError": ExitCode.USAGE,
}


def by_value(value: int) -> ExitCode:
    """The member for a process exit status (ValueError when it is not in the table)."""
    for code in ExitCode:
        if code.value == value:
            return code
    raise ValueError(f"{value} is not in the exit-code table")


def code_of_class(cls: type[BaseException]) -> ExitCode:
    """The exit code of an exception class (its own or inherited ``exit_code``)."""
    if issubclass(cls, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    for klass in cls.__mro__:
        code = klass.__dict__.get("exit_code")
        if isinstance(code, ExitCode):
            return code
        foreign = FOREIGN.get(f"{klass.__module__}.{klass.__qualname__}")
        if foreign is not None:
            return foreign
    return ExitCode.INTERNAL


def exit_code_of(error: BaseException) -> ExitCode:
    """The exit code for ``error`` (unclassified exceptions are :attr:`ExitCode.INTERNAL`)."""
    return code_of_class(type(error))


def one_line(error: BaseException) -> str:
    """The error as one line; an unclassified one names its type (it is a bug)."""
    text = " ".join(str(error).split())
    if exit_code_of(error) is ExitCode.INTERNAL:
        return f"internal error ({type(error).__name__}): {text or 'no message'}"
    return text or type(error).__name__


def help_text() -> str:
    """The table as it ends every ``--help``."""
    lines = ["exit codes:"]
    lines += [f"  {c.value:>3}  {c.name:<20} {c.meaning}" for c in ExitCode]
    return "\n".join(lines) + "\n"


def markdown_table() -> str:
    """The table as the README shows it."""
    rows = ["| code | name | meaning |", "|---:|---|---|"]
    rows += [f"| {c.value} | `{c.name}` | {c.meaning} |" for c in ExitCode]
    return "\n".join(rows) + "\n"


def main() -> int:
    """``python -m repairtool.exitcodes [--markdown]``: print the table."""
    sys.stdout.write(markdown_table() if "--markdown" in sys.argv[1:] else help_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
