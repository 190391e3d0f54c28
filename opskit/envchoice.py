"""Which environment a command acts on, and the rule for when nothing was chosen.

The choice, first match wins (``repairtool`` and ``inv`` alike):

1. ``--env NAME`` on the command line;
2. ``$STAIRWAY_OPS_ENV``;
3. Invoke's configuration: ``stairway_ops: {env: NAME}`` in ``invoke.yaml`` next to
   ``tasks.py`` (or ``~/.invoke.yaml``, ``/etc/invoke.yaml``: Invoke's own files and precedence);
4. the only file in ``envs/``, when there is exactly one.

With nothing chosen and more than one env file, a command that **changes** something refuses
(exit ``REFUSED``) rather than silently use ``local``; a command that only **reads**, and a
**rehearsal** (``inv experiment``: a sandbox of its own; ``inv sandbox.*``: the local sandbox),
falls back to ``local``. Every command names the environment it acts on, and how it was chosen,
on the first line of stderr (:meth:`EnvChoice.line`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from opskit import paths
from opskit.envs import DEFAULT_ENV, list_envs
from opskit.errors import Refused

#: the environment variable that selects the environment for ``repairtool`` and ``inv``
ENV_VAR = "STAIRWAY_OPS_ENV"
#: the key of Invoke's configuration that selects it (``stairway_ops.env``)
CONFIG_SECTION, CONFIG_KEY = "stairway_ops", "env"

#: what a command does to the environment it acts on
Use = Literal["reads", "changes", "rehearsal"]


class NoEnvChosen(Refused):
    """A command that changes something, no environment chosen, and more than one env file."""


@dataclass(frozen=True)
class EnvChoice:
    """The environment a command acts on and how it was chosen."""

    name: str
    source: str
    #: chosen by the operator (flag, variable, config, the only file), not a fallback
    chosen: bool = True

    def line(self) -> str:
        """The first line every command prints on stderr."""
        return f"environment: {self.name} ({self.source})"


def configured_env(config: Any = None) -> str | None:
    """``stairway_ops.env`` from Invoke's configuration: ``config`` (a task's ``c.config``) or,
    without one, the files Invoke would load for this project (system, user, project)."""
    if config is None:
        config = _invoke_files()
    try:
        section = config.get(CONFIG_SECTION) or {}
        value = section.get(CONFIG_KEY) if hasattr(section, "get") else None
    except (AttributeError, TypeError):
        return None
    return str(value) if value else None


def _invoke_files() -> Any:
    # lazy: Invoke is needed only when no task context supplied its configuration (repairtool)
    from invoke.config import Config

    config = Config(project_location=paths.PROJECT_ROOT)
    config.load_project()
    return config


def choose_env(
    given: str | None,
    *,
    use: Use,
    configured: str | None = None,
    directory: Path | None = None,
) -> EnvChoice:
    """The environment for a command that ``use``s it (see the module docstring)."""
    if given:
        return EnvChoice(given, "--env")
    from_var = os.environ.get(ENV_VAR, "").strip()
    if from_var:
        return EnvChoice(from_var, f"${ENV_VAR}")
    if configured:
        return EnvChoice(configured, f"Invoke config {CONFIG_SECTION}.{CONFIG_KEY}")
    names = list_envs(directory)
    if len(names) == 1:
        return EnvChoice(names[0], "the only file in envs/")
    if use == "changes":
        raise NoEnvChosen(
            f"no environment chosen and envs/ has {len(names)} ({', '.join(names)}): this"
            f" command changes something, so it does not fall back to {DEFAULT_ENV!r}; pass"
            f" --env NAME, or set {ENV_VAR}=NAME (or {CONFIG_SECTION}.{CONFIG_KEY} in invoke.yaml)"
        )
    why = "a rehearsal (on the local sandbox)" if use == "rehearsal" else "a read-only command"
    return EnvChoice(DEFAULT_ENV, f"default for {why}", chosen=False)


__all__ = [
    "CONFIG_KEY",
    "CONFIG_SECTION",
    "ENV_VAR",
    "EnvChoice",
    "NoEnvChosen",
    "Use",
    "choose_env",
    "configured_env",
]
