"""The repairtool CLI run as a process, the two ways the tests need it:

* :func:`probe` runs it in a fresh interpreter that then reports which heavy libraries the
  command imported (a read command must start without SQLAlchemy or pydantic);
* :func:`on_a_terminal` runs it with stderr on a pseudo-terminal, as a user's shell has it (the
  progress line is drawn only there), stdout on a pipe.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: the libraries no read command may import
HEAVY = ("sqlalchemy", "pydantic")

_PROBE = f"""
import sys
from repairtool.cli import main
code = main(sys.argv[1:])
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & {set(HEAVY)!r})
print("HEAVY " + ",".join(heavy) if heavy else "CLEAN")
print("EXIT", code)
"""


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any `STAIRWAY_*` or `PG*` setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STAIRWAY_", "PG"))}
    return env | extra


@dataclass(frozen=True)
class Probed:
    heavy: frozenset[str]  # the HEAVY libraries the command imported
    code: int  # its exit code
    out: str  # what the command printed on stdout
    stderr: str


def probe(args: Sequence[str], env: Mapping[str, str] | None = None) -> Probed:
    """Run `repairtool ARGS` in a fresh interpreter; what it imported, its exit code and output."""
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else clean_env(),
        timeout=120,
    )
    *body, verdict, code = proc.stdout.rstrip("\n").split("\n")
    assert verdict.startswith(("HEAVY", "CLEAN")) and code.startswith("EXIT "), proc
    heavy = frozenset(verdict.split()[1].split(",")) if verdict != "CLEAN" else frozenset()
    return Probed(heavy, int(code.split()[1]), "\n".join(body), proc.stderr)


def on_a_terminal(
    args: Sequence[str], env: Mapping[str, str] | None = None
) -> tuple[int, bytes, str]:
    """Run `repairtool ARGS` with stderr on a pseudo-terminal: (exit code, stdout, stderr)."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "repairtool", *args],
        stdout=subprocess.PIPE,
        stderr=secondary,
        env=dict(env) if env is not None else clean_env(),
    )
    os.close(secondary)
    stdout, _ = proc.communicate(timeout=120)
    stderr = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        stderr += chunk
    os.close(primary)
    return proc.returncode, stdout, stderr.decode()
