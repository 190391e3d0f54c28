"""``inv setup``: preflight, then ``playbooks/setup.yml`` through ansible-runner.

Everything that can fail before anything is written is checked first, in Python: the tools the
env needs (each missing one reported with its install hint) and, for GKE, the service checkout.
Only then does the playbook render and install files, so a failed preflight leaves nothing
half-written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opskit import ansible, local, paths
from opskit.envs import Env
from opskit.errors import CommandFailed, ToolMissing
from opskit.events import Reporter, silent
from opskit.render import template_files, template_vars
from opskit.tools import preflight, required_tools


@dataclass(frozen=True)
class SetupResult:
    """What ``inv setup`` did."""

    env: str
    changed: tuple[str, ...]  # changed playbook tasks (item-qualified)
    rendered: tuple[str, ...]  # rendered files that changed (relative to the state dir)
    installed: tuple[str, ...]  # files copied into the service checkout that changed
    credentials_fetched: bool
    prepared: tuple[str, ...]  # local: what preparing Postgres/schema/config changed
    state_dir: Path
    playbook: ansible.PlaybookResult

    @property
    def changed_anything(self) -> bool:
        return bool(self.changed)


def setup_vars(env: Env) -> dict[str, Any]:
    """The playbook's extravars (also printed by ``inv envs NAME --vars``)."""
    v = template_vars(env)
    v["render_files"] = [{"template": f.template, "dest": f.dest} for f in template_files(env)]
    v["templates_dir"] = str(paths.TEMPLATES_DIR)
    v["required_tools"] = list(required_tools(env))
    if env.kind == "local":
        v["sandbox_prepare"] = local.prepare_command(env)
    return v


def setup(
    env: Env,
    run_dir: Path,
    *,
    reporter: Reporter | None = None,
    tool_path: str | None = None,
    extra_vars: dict[str, Any] | None = None,
) -> SetupResult:
    """Preflight, then run ``setup.yml``. Raises :class:`ToolMissing` before writing anything."""
    rep = reporter or silent()
    preflight(env, rep, path=tool_path)
    if env.kind == "gke" and not env.service.checkout_path.is_dir():
        raise ToolMissing(
            f"service checkout {env.service.checkout_path} does not exist: clone "
            "https://github.com/DataBiosphere/terra-workspace-manager there or fix service.checkout"
            f" in {env.path.name}; nothing was changed"
        )
    extravars = setup_vars(env)
    extravars.update(extra_vars or {})
    rep.emit("setup.start", f"setup {env.name}: playbooks/setup.yml (artifacts in {run_dir})")
    result = ansible.run_playbook(
        "setup.yml", extravars, run_dir, on_event=ansible.reporter_callback(rep)
    )
    if not result.ok:
        raise CommandFailed(f"setup.yml failed: {result.first_failure()}")
    stats = result.stats
    return SetupResult(
        env=env.name,
        changed=result.changed,
        rendered=tuple(str(x) for x in stats.get("rendered", [])),
        installed=tuple(str(x) for x in stats.get("installed", [])),
        credentials_fetched=_truthy(stats.get("credentials_fetched")),
        prepared=tuple(str(x) for x in stats.get("prepared") or ()),
        state_dir=env.state_path,
        playbook=result,
    )


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1")
    return bool(value)
