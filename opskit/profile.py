"""Service profiles: what an env file may leave out because the kind of service fixes it.

``opskit/profiles/<name>.yaml`` holds, for Workspace Manager, Data Repo, Resource Buffer (and
``custom``: nothing), the deployment and container, the label selector of its pods, the type
catalog, the work-queue naming (``<namespace>-<cluster_name_suffix>``, as terra-common-lib names
the Stairway cluster), and — for GKE envs — the Stairway database name, user and where the
service keeps the password. :func:`apply_profile` fills these into an env file's data before it
is validated; a value in the env file always wins.
"""

from __future__ import annotations

import copy
from dataclasses import field
from pathlib import Path
from typing import Any

from pydantic.dataclasses import dataclass

from opskit.errors import EnvError
from repairtool.datafile import STRICT, Bool, load_yaml, validate

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
DEFAULT_PROFILE = "workspace-manager"


@dataclass(frozen=True, config=STRICT)
class ProfileService:
    deployment: str = ""
    container: str = ""
    label_selector: str = ""
    pod_name_filter: str = ""
    catalog: str = ""


@dataclass(frozen=True, config=STRICT)
class ProfilePassword:
    k8s_secret: str = ""
    k8s_key: str = "password"
    secret_manager: str = ""


@dataclass(frozen=True, config=STRICT)
class ProfileDb:
    name: str = ""
    user: str = ""
    password: ProfilePassword | None = None


@dataclass(frozen=True, config=STRICT)
class ProfileStairway:
    cluster_name_suffix: str = ""
    work_queue: Bool = True
    db: ProfileDb | None = None


@dataclass(frozen=True, config=STRICT)
class Profile:
    """One kind of Stairway service (the file's name is the profile's name)."""

    description: str
    service: ProfileService = field(default_factory=ProfileService)
    stairway: ProfileStairway = field(default_factory=ProfileStairway)


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def load_profile(name: str) -> Profile:
    """The profile ``name`` (:class:`EnvError` naming the known ones when there is none)."""
    path = PROFILES_DIR / f"{name}.yaml"
    if "/" in name or not path.is_file():
        raise EnvError(f"unknown service profile {name!r} (known: {', '.join(profile_names())})")
    shown = f"opskit/profiles/{name}.yaml"
    return validate(Profile, load_yaml(path, shown, EnvError), shown=shown, error=EnvError)


def apply_profile(data: Any, shown: str) -> Any:
    """The env file's data with its profile's defaults filled in (the env file wins).

    Data that is not shaped like an env file is returned unchanged: validation reports it.
    """
    if not isinstance(data, dict) or not isinstance(data.get("service"), dict):
        return data
    name = data["service"].get("profile", DEFAULT_PROFILE)
    if not isinstance(name, str):
        return data
    if name not in profile_names():
        raise EnvError(
            f"{shown}: key 'service.profile' must be one of {'|'.join(profile_names())},"
            f" not {name!r}"
        )
    profile = load_profile(name)
    out = copy.deepcopy(data)
    service: dict[str, Any] = out["service"]
    for key in ("deployment", "container", "label_selector", "pod_name_filter", "catalog"):
        value = getattr(profile.service, key)
        if value:
            service.setdefault(key, value)
    stairway = out.setdefault("stairway", {})
    if not isinstance(stairway, dict):
        return out
    suffix = profile.stairway.cluster_name_suffix
    if suffix and "cluster_name" not in stairway and isinstance(service.get("namespace"), str):
        stairway["cluster_name"] = f"{service['namespace']}-{suffix}"
    stairway.setdefault("work_queue", profile.stairway.work_queue)
    pdb = profile.stairway.db
    if out.get("kind") == "gke" and pdb is not None:
        db = stairway.setdefault("db", {})
        if isinstance(db, dict):
            for key in ("name", "user"):
                if getattr(pdb, key):
                    db.setdefault(key, getattr(pdb, key))
            password = db.setdefault("password", {})
            if pdb.password is not None and isinstance(password, dict):
                # `password: {env: X}` keeps the service's own store as the fallback; an env
                # file that names a store (k8s_secret or secret_manager, even "") decides alone
                if "k8s_secret" not in password and "secret_manager" not in password:
                    for key in ("k8s_secret", "secret_manager"):
                        if getattr(pdb.password, key):
                            password[key] = getattr(pdb.password, key)
                password.setdefault("k8s_key", pdb.password.k8s_key)
    return out
