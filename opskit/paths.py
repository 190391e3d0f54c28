"""Where things live: the project root, the state directory, per-run artifacts.

``STAIRWAY_OPS_STATE_DIR`` overrides the state directory (default ``<project>/.stairway-ops``),
``STAIRWAY_OPS_ARTIFACTS_DIR`` the artifacts directory (default ``<project>/artifacts``),
``STAIRWAY_OPS_ENVS_DIR`` the environments directory (default ``<project>/envs``).
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = PROJECT_ROOT / "templates"
PLAYBOOKS_DIR = PROJECT_ROOT / "playbooks"


def envs_dir() -> Path:
    return Path(os.environ.get("STAIRWAY_OPS_ENVS_DIR") or PROJECT_ROOT / "envs")


def state_dir() -> Path:
    return Path(os.environ.get("STAIRWAY_OPS_STATE_DIR") or PROJECT_ROOT / ".stairway-ops")


def sandbox_state_dir() -> Path:
    """Where the sandbox of a local env lives: ``<state>/sandbox`` (the sandbox's default)."""
    return state_dir().absolute() / "sandbox"


def artifacts_dir() -> Path:
    return Path(os.environ.get("STAIRWAY_OPS_ARTIFACTS_DIR") or PROJECT_ROOT / "artifacts")


def new_run_id(prefix: str) -> str:
    """A sortable, unique run id such as ``kill-pod-20260428T101420Z-3f9a``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"{prefix}-{stamp}-{secrets.token_hex(2)}"


def new_run_dir(prefix: str, base: Path | None = None) -> Path:
    """``<artifacts>/<run-id>/`` (a fresh name; created by whoever writes into it first)."""
    return (base or artifacts_dir()) / new_run_id(prefix)
