"""The Stairway database password, read from where the service keeps it.

Sources, in the order of :class:`~opskit.envs.SecretRef`: an environment variable, a file, a
Kubernetes Secret in the env's namespace (read with the official client, the very credentials
``--env`` uses for the pod list), Google Secret Manager (``google-cloud-secret-manager`` over its
REST transport; the payload's CRC32C is verified). None found: ``None``, and libpq falls back to
``~/.pgpass`` by itself.

The value is only ever held in a :class:`Password` (its ``repr`` hides it) and handed to the
database driver or a child's ``PGPASSWORD``; it is never printed, logged or written to disk.
Errors name the source, never the value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opskit.envs import Env, SecretRef
from opskit.errors import NotFound, Refused, Unavailable


@dataclass(frozen=True)
class Password:
    """A secret value and where it came from (``source`` is safe to print)."""

    value: str = field(repr=False)
    source: str


class SecretCorrupted(Unavailable):
    """Secret Manager's payload does not match its CRC32C (corrupted on the way)."""


def secret_manager_name(resource: str, project: str) -> str:
    """``S`` → ``projects/<project>/secrets/S/versions/latest``; full names gain ``latest``."""
    name = (
        resource if resource.startswith("projects/") else f"projects/{project}/secrets/{resource}"
    )
    parts = name.split("/")
    if len(parts) == 4 and parts[2] == "secrets":
        name += "/versions/latest"
    parts = name.split("/")
    if len(parts) != 6 or parts[0] != "projects" or parts[2] != "secrets" or parts[4] != "versions":
        raise Refused(
            f"Secret Manager name {resource!r}: expected SECRET or"
            " projects/PROJECT/secrets/SECRET[/versions/VERSION]"
        )
    return name


def access_secret_manager(name: str, *, endpoint: str = "", timeout: float = 30.0) -> str:
    """The payload of one secret version (``projects/P/secrets/S/versions/V``), CRC-checked.

    ``endpoint``: another API endpoint (``http://127.0.0.1:PORT`` for a loopback server, which
    is then called without credentials); default: Google's, with Application Default
    Credentials (Workload Identity in a pod).
    """
    # lazy: the Secret Manager client and its protobufs take ~0.5 s to import
    import google_crc32c
    from google.api_core import exceptions as gexc
    from google.api_core.client_options import ClientOptions
    from google.auth import exceptions as auth_exc
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import secretmanager

    options = ClientOptions(api_endpoint=endpoint) if endpoint else None
    creds = AnonymousCredentials() if endpoint.startswith("http://") else None
    try:
        client = secretmanager.SecretManagerServiceClient(
            credentials=creds, transport="rest", client_options=options
        )
        response = client.access_secret_version(request={"name": name}, timeout=timeout)
    except auth_exc.DefaultCredentialsError:
        raise Unavailable(
            f"Secret Manager {name}: no Google credentials (run `gcloud auth"
            " application-default login`, or Workload Identity in the cluster)"
        ) from None
    except gexc.NotFound:
        raise NotFound(f"Secret Manager {name}: not found") from None
    except (gexc.PermissionDenied, gexc.Unauthenticated) as exc:
        raise Refused(f"Secret Manager {name}: access refused ({exc.code})") from None
    except gexc.GoogleAPIError as exc:
        raise Unavailable(f"Secret Manager {name}: {type(exc).__name__}") from None
    except OSError as exc:  # requests' connection errors
        raise Unavailable(f"Secret Manager {name}: unreachable ({type(exc).__name__})") from None
    payload = response.payload
    data = bytes(payload.data)
    if "data_crc32c" in payload and google_crc32c.value(data) != payload.data_crc32c:
        raise SecretCorrupted(
            f"Secret Manager {response.name or name}: the payload does not match its CRC32C"
            " (corrupted on the way); try again"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise NotFound(f"Secret Manager {name}: the payload is not UTF-8 text") from None


KubeSecretReader = Callable[[str, str], str]


def resolve_secret(
    env: Env,
    ref: SecretRef,
    *,
    read_k8s_secret: KubeSecretReader | None = None,
    what: str = "stairway.db.password",
) -> Password | None:
    """The secret ``ref`` names, from the first source that has it; None: none configured has
    it (only for the local sources: a named Secret that is missing is an error)."""
    if ref.env:
        value = ref.resolve_env()
        if value:
            return Password(value, f"${ref.env}")
    if ref.file:
        value = ref.resolve_file()
        if value:
            return Password(value, ref.file)
    if ref.k8s_secret:
        if read_k8s_secret is None:
            raise Unavailable(f"{what}: no Kubernetes API to read Secret {ref.k8s_secret} from")
        try:
            value = read_k8s_secret(ref.k8s_secret, ref.k8s_key)
        except (NotFound, Refused, Unavailable) as exc:
            raise type(exc)(f"{exc} ({what}.k8s_secret in {env.path.name})") from None
        return Password(value, f"Kubernetes Secret {env.namespace}/{ref.k8s_secret}")
    if ref.secret_manager:
        project = env.gke.project if env.gke is not None else ""
        name = secret_manager_name(ref.secret_manager, project)
        endpoint = env.gke.secret_manager_endpoint if env.gke is not None else ""
        return Password(access_secret_manager(name, endpoint=endpoint), f"Secret Manager {name}")
    return None


def db_password(env: Env, kube: Any | None = None) -> Password | None:
    """The env's Stairway database password (``kube``: an :class:`opskit.kube.Kube` bound to the
    env's namespace, used only when the password lives in a Kubernetes Secret)."""
    ref = env.require_db().password
    reader = kube.read_secret if kube is not None else None
    return resolve_secret(env, ref, read_k8s_secret=reader)
