"""Where the Stairway database is: URLs, env files, and what psycopg needs to connect.

No SQLAlchemy here: read commands resolve `--db`/`$STAIRWAY_DB_URL`/the env file and connect
with psycopg 3 directly (`repairtool.stairway.pgread`); `repairtool.stairway.db` wraps the same
parsed URL into SQLAlchemy's for the engine that mutations use. Messages never repeat a URL (it
may hold the password).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, quote_plus, unquote

from repairtool.errors import UsageError

ENV_URL = "STAIRWAY_DB_URL"
ENV_FILE = "STAIRWAY_OPS_ENV_FILE"
APPLICATION_NAME = "repairtool"
# query parameters of a URL that can hold a secret: never shown, and `password` becomes the
# URL's password so every rendering hides it
_SECRET_QUERY = ("password", "sslpassword")


class UrlLike(Protocol):
    """A parsed database URL: :class:`DbUrl`, or SQLAlchemy's `URL` (an `--env` target's)."""

    @property
    def username(self) -> str | None: ...
    @property
    def password(self) -> Any: ...
    @property
    def host(self) -> str | None: ...
    @property
    def port(self) -> int | None: ...
    @property
    def database(self) -> str | None: ...
    @property
    def query(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class DbUrl:
    """A parsed `postgresql://` URL. The password never appears in `repr`."""

    username: str | None
    password: str | None = field(repr=False)
    host: str | None
    port: int | None
    database: str | None
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DbSettings:
    """Where the Stairway database is: a parsed URL (:class:`DbUrl`, or SQLAlchemy's `URL`) and
    where it came from. The password never appears in `repr` or `str`. Reads open it with
    psycopg (`pgread.ReadDb(settings.url)`); `db.make_engine` makes a SQLAlchemy engine of it
    for changes (so an `--env` target is resolved without importing SQLAlchemy)."""

    url: UrlLike = field(repr=False)
    source: str = "--db"

    @property
    def safe_url(self) -> str:
        return describe_url(self.url)

    def __repr__(self) -> str:
        return f"DbSettings(url={self.safe_url!r}, source={self.source!r})"

    __str__ = __repr__


def describe_url(url: UrlLike) -> str:
    """`postgresql://USER@HOST:PORT/DB` for messages: no password, no query parameters."""
    user = f"{url.username}@" if url.username else ""
    host = url.host or str(url.query.get("host") or "")
    port = f":{url.port}" if url.port else (f":{url.query['port']}" if "port" in url.query else "")
    return f"postgresql://{user}{host}{port}/{url.database or ''}"


def render_hidden(url: UrlLike) -> str:
    """`url` as SQLAlchemy's `URL.render_as_string(hide_password=True)` writes it under the
    `postgresql` driver name (the password as `***`): the line naming the database is the same
    whichever layer opened it."""
    s = "postgresql://"
    if url.username is not None:
        s += quote(url.username, safe=" +")
        if url.password is not None:
            s += ":***"
        s += "@"
    if url.host is not None:
        s += f"[{url.host}]" if ":" in url.host else url.host
    if url.port is not None:
        s += f":{url.port}"
    if url.database is not None:
        s += "/" + quote(url.database, safe=" +/")
    if url.query:
        s += "?" + "&".join(
            f"{quote_plus(k)}={quote_plus(v)}"
            for k in sorted(url.query)
            for v in (url.query[k] if isinstance(url.query[k], tuple | list) else [url.query[k]])
        )
    return s


def connect_kwargs(url: UrlLike) -> dict[str, Any]:
    """psycopg's connection keywords for `url`, as SQLAlchemy's psycopg dialect makes them (the
    URL's parts, then its query parameters)."""
    out: dict[str, Any] = {}
    password = url.password
    for key, value in (
        ("host", url.host),
        ("port", url.port),
        ("user", url.username),
        ("password", password if password is None else str(password)),
        ("dbname", url.database),
    ):
        if value is not None:
            out[key] = value
    out.update(url.query)
    return out


_SCHEMES = ("postgresql", "postgres")


def parse_db_url(raw: str, source: str) -> DbUrl:
    """Parse a postgres URL (postgresql://, postgres://, postgresql+DRIVER://).

    The user info ends at the *last* `@` before the host, so a password may contain `@`, `/` or
    `:` unencoded (`user:p@ss@host/db`); percent-encoding works as well. `?password=` moves into
    the URL's password. Messages never repeat the URL (it may hold the password).
    """
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes from the environment or a file name
        raise UsageError(f"{source}: the database URL is not valid UTF-8 text") from None
    text_ = raw.strip()
    scheme, sep, rest = text_.partition("://")
    if not sep or not scheme or "@" in scheme or "/" in scheme:
        raise UsageError(
            f"{source}: not a database URL; expected postgresql://USER@HOST:PORT/DBNAME"
        )
    if scheme.split("+", 1)[0].lower() not in _SCHEMES:
        raise UsageError(f"{source}: only postgresql URLs are supported, got {scheme[:30]!r}")
    # The user info ends at the last '@' when a path (/DB) follows it — then the password may
    # hold '@', '/', ':' and even '?' — else at the last '@' before the query ('@' in a query
    # value). A host part that is no host name is refused, never sent to the resolver.
    at = rest.rfind("@")
    if at >= 0 and "/" not in rest[at + 1 :]:
        at = rest.rfind("@", 0, rest.find("?") if "?" in rest else len(rest))
    userinfo, hostpart = (rest[:at], rest[at + 1 :]) if at >= 0 else ("", rest)
    hostpath, _, query_text = hostpart.partition("?")
    hostport, _, database = hostpath.partition("/")
    user, _, password = userinfo.partition(":")
    host, port = _split_host_port(hostport, source)
    query: dict[str, str] = {}
    try:
        pairs = parse_qsl(query_text, keep_blank_values=True, strict_parsing=False)
    except ValueError:
        raise UsageError(f"{source}: the URL's query part cannot be parsed") from None
    for k, v in pairs:
        query[k] = v
    secret = {k: query.pop(k) for k in _SECRET_QUERY if k in query}
    if "password" in secret:
        password = secret.pop("password")
    elif password:
        password = unquote(password)
    if secret:
        raise UsageError(
            f"{source}: sslpassword in the URL is not supported; use a key without a passphrase"
        )
    if not user and "user" in query:
        user = query.pop("user")
    return DbUrl(
        username=unquote(user) or None,
        password=password or None,
        host=host or None,
        port=port,
        database=unquote(database) or None,
        query=query,
    )


_HOST = re.compile(r"[A-Za-z0-9._%~-]*|[0-9A-Fa-f:.%]+")


def _split_host_port(hostport: str, source: str) -> tuple[str, int | None]:
    host, port_text = hostport, ""
    if hostport.startswith("["):  # [IPv6]:port
        end = hostport.find("]")
        if end < 0:
            raise UsageError(f"{source}: unbalanced [ in the URL's host")
        host, rest = hostport[1:end], hostport[end + 1 :]
        port_text = rest[1:] if rest.startswith(":") else ""
    elif ":" in hostport:
        host, _, port_text = hostport.rpartition(":")
    if not _HOST.fullmatch(host):
        raise UsageError(
            f"{source}: the URL's host is not a host name; percent-encode @ / ? # in a password"
        )
    if not port_text:
        return unquote(host), None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"{source}: the URL's port is not a number between 1 and 65535")
    return unquote(host), int(port_text)


def read_env_file(path: Path) -> dict[str, str]:
    """Read a dotenv-style file (KEY=VALUE lines, # comments, optional quotes)."""
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not an env file") from None
    except OSError as error:
        why = error.strerror or type(error).__name__
        raise UsageError(f"{path}: cannot read ({why})") from None
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(f"{path}: not UTF-8 text (byte {error.start})") from None
    out: dict[str, str] = {}
    for n, line in enumerate(content.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :]
        key, sep, value = line.partition("=")
        if not sep:
            raise UsageError(f"{path}:{n}: expected KEY=VALUE")
        out[key.strip()] = value.strip().strip("'\"")
    return out


def resolve_url(
    db: str | None = None, env_file: Path | None = None, *, default_env_file: Path | None = None
) -> tuple[DbUrl, str]:
    """Find the database URL: `--db`, then `$STAIRWAY_DB_URL`, then an environment file.
    Returns it and where it came from (for messages)."""
    if db:
        return parse_db_url(db, "--db"), "--db"
    if os.environ.get(ENV_URL):
        source = f"${ENV_URL}"
        return parse_db_url(os.environ[ENV_URL], source), source
    candidates: list[Path] = []
    if env_file is not None:
        candidates.append(env_file)
    elif os.environ.get(ENV_FILE):
        candidates.append(Path(os.environ[ENV_FILE]))
    elif default_env_file is not None:
        candidates.append(default_env_file)
    for path in candidates:
        if not path.exists():
            if env_file is not None:
                raise UsageError(f"--env-file {path}: no such file")
            continue
        values = read_env_file(path)
        if ENV_URL not in values:
            raise UsageError(f"{path}: no {ENV_URL}=… line")
        return parse_db_url(values[ENV_URL], str(path)), str(path)
    raise UsageError(
        f"no database given: pass --db URL, set ${ENV_URL}, or start the local one with "
        "`repairtool local up`"
    )
