"""The guard rails every command that changes something shares (``repairtool --fix``,
``repairtool recover``, ``inv kill-pod`` on a GKE env): a reason for the audit trail and a y/N
question on a terminal (pgcli's ``confirm_destructive_query``: ask only on a TTY; without one,
refuse unless ``--yes``)."""

from __future__ import annotations

import sys
from typing import TextIO

from repairtool.errors import RefusedError


def confirm(
    question: str, *, yes: bool, stdin: TextIO | None = None, stderr: TextIO | None = None
) -> None:
    """Ask y/N on a terminal. ``yes`` skips the question; no terminal and no ``yes`` refuses."""
    if yes:
        return
    stdin = stdin or sys.stdin
    stderr = stderr or sys.stderr
    if not stdin.isatty():
        raise RefusedError(
            "refusing to change anything without a terminal to confirm on; re-run with --yes"
        )
    stderr.write(f"{question} [y/N] ")
    stderr.flush()
    answer = stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise RefusedError("not confirmed; nothing was changed")


def require_reason(reason: str | None) -> str:
    """The ``--reason`` text (it goes into the audit trail); refused when empty."""
    if not reason or not reason.strip():
        raise RefusedError("changing flights requires --reason TEXT (it goes into the audit trail)")
    return reason.strip()
