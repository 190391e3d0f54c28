"""Env config files rendered from ``templates/*.j2``.

The same templates are rendered by Ansible's ``template`` module in ``playbooks/setup.yml`` (so a
re-run reports no change) and by :func:`render_all` here (tests, ``inv envs --render``). Both get
the same variables, :func:`template_vars`: ``ops_env`` (the env as plain data, defaults filled in)
and ``state_dir``. Templates use only Jinja2 built-ins plus ``to_json``, which both sides define
as ``json.dumps``.

Files per kind (paths relative to the env's state dir):

- gke: ``skaffold.yaml``, ``values.yaml`` (the 2021 ``local-dev`` templates),
  ``servers/<testrunner.server>.json``, ``suites/<testrunner.suite>.json``
- local: ``sandbox.json`` (the sandbox's settings), plus the TestRunner files when the env has a
  ``testrunner`` section.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from opskit import paths
from opskit.envs import Env


@dataclass(frozen=True)
class TemplateFile:
    """One file to render: template name under ``templates/`` and path under the state dir."""

    template: str
    dest: str

    @property
    def src(self) -> Path:
        return paths.TEMPLATES_DIR / self.template


def template_files(env: Env) -> list[TemplateFile]:
    files: list[TemplateFile] = []
    if env.kind == "gke":
        files += [
            TemplateFile("skaffold.yaml.j2", "skaffold.yaml"),
            TemplateFile("values.yaml.j2", "values.yaml"),
        ]
    else:
        files.append(TemplateFile("sandbox.json.j2", "sandbox.json"))
    if env.testrunner is not None:
        files += [
            TemplateFile("testrunner-server.json.j2", f"servers/{env.testrunner.server}.json"),
            TemplateFile("testrunner-suite.json.j2", f"suites/{env.testrunner.suite}.json"),
        ]
    return files


def normalized(env: Env) -> dict[str, Any]:
    """``env.to_dict()`` with computed defaults filled in (kube context, paths expanded)."""
    data = env.to_dict()
    data["state_dir"] = str(env.state_path)
    if env.gke is not None:
        data["gke"]["kube_context"] = env.gke.context
        data["gke"]["kubeconfig"] = str(Path(env.gke.kubeconfig).expanduser())
    if env.service.checkout:
        data["service"]["checkout"] = str(env.service.checkout_path)
    data["service"]["pod_name_filter"] = env.service.pod_filter
    cloud_sql = env.stairway.db.cloud_sql if env.stairway.db is not None else None
    if cloud_sql is not None and env.gke is not None:
        data["stairway"]["db"]["cloud_sql"]["project"] = cloud_sql.project or env.gke.project
    if env.delay_hook is not None:
        data["delay_hook"]["seconds"] = env.delay_hook.duration.total_seconds()
    if env.kind == "local":
        data["sandbox_state_dir"] = str(paths.sandbox_state_dir())
        data["kubeconfig"] = str(paths.sandbox_state_dir() / "kubeconfig")
    return data


def template_vars(env: Env) -> dict[str, Any]:
    """The variables every template (and every playbook) gets."""
    return {"ops_env": normalized(env), "state_dir": str(env.state_path)}


def _to_json(value: Any) -> str:
    return json.dumps(value)


def jinja_env() -> jinja2.Environment:
    """Jinja2 set up like Ansible's ``template`` module (trim_blocks, trailing newline kept)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(paths.TEMPLATES_DIR)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["to_json"] = _to_json
    return env


def render(env: Env, template: str) -> str:
    return jinja_env().get_template(template).render(**template_vars(env))


def render_all(env: Env, dest_dir: Path | None = None) -> list[Path]:
    """Render every file of ``env`` into ``dest_dir`` (default: the env's state dir).

    Files whose content is unchanged are not rewritten. Returns the paths written or kept.
    """
    base = dest_dir or env.state_path
    out: list[Path] = []
    for f in template_files(env):
        text = render(env, f.template)
        dest = base / f.dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists() or dest.read_text() != text:
            dest.write_text(text)
        out.append(dest)
    return out
