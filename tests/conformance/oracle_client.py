"""Start and talk to the Jackson oracle (``tests/conformance/oracle/``): one JVM per test session.

The Java sources are compiled at test time with ``javac`` against jars of the local Maven
repository (never downloaded), into a build directory outside the source tree that is keyed by
a hash of the sources and the class path, so an unchanged oracle is compiled once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ORACLE_DIR = Path(__file__).parent / "oracle"
SOURCES = ORACLE_DIR / "src"

#: One consistent Jackson family (2.17) and what it needs. jackson-datatype-jsr310 2.17.1 is the
#: only 2.17 release of it in the local repository; it works with databind 2.17.2.
JARS: tuple[tuple[str, str, str], ...] = (
    ("com.fasterxml.jackson.core", "jackson-databind", "2.17.2"),
    ("com.fasterxml.jackson.core", "jackson-core", "2.17.2"),
    ("com.fasterxml.jackson.core", "jackson-annotations", "2.17.2"),
    ("com.fasterxml.jackson.datatype", "jackson-datatype-jdk8", "2.17.2"),
    ("com.fasterxml.jackson.datatype", "jackson-datatype-jsr310", "2.17.1"),
    ("com.fasterxml.jackson.datatype", "jackson-datatype-guava", "2.17.2"),
    ("com.fasterxml.jackson.module", "jackson-module-parameter-names", "2.17.2"),
    ("com.google.guava", "guava", "33.2.1-jre"),
    ("com.google.guava", "failureaccess", "1.0.2"),
)


class OracleError(RuntimeError):
    """The oracle could not be built or started, or answered with an error."""


def maven_repository() -> Path:
    """``$M2_REPO``, else ``-Dmaven.repo.local`` in ``$MAVEN_OPTS``, else ``<localRepository>``
    in ``~/.m2/settings.xml``, else ``~/.m2/repository``."""
    if os.environ.get("M2_REPO"):
        return Path(os.environ["M2_REPO"]).expanduser()
    opts = re.search(r"-Dmaven\.repo\.local=(\S+)", os.environ.get("MAVEN_OPTS", ""))
    if opts:
        return Path(opts.group(1)).expanduser()
    settings = Path.home() / ".m2" / "settings.xml"
    if settings.is_file():
        found = re.search(
            r"<localRepository>\s*([^<\s]+)\s*</localRepository>", settings.read_text()
        )
        if found:
            return Path(found.group(1).replace("${user.home}", str(Path.home()))).expanduser()
    return Path.home() / ".m2" / "repository"


def jar_path(repo: Path, group: str, artifact: str, version: str) -> Path:
    return repo / group.replace(".", "/") / artifact / version / f"{artifact}-{version}.jar"


def missing_prerequisite() -> str | None:
    """One line naming what is missing to build and run the oracle, or None when all is there."""
    for tool in ("javac", "java"):
        if shutil.which(tool) is None:
            return f"no `{tool}` on PATH (the Jackson oracle is compiled and run at test time)"
    repo = maven_repository()
    for group, artifact, version in JARS:
        if not jar_path(repo, group, artifact, version).is_file():
            return f"{group}:{artifact}:{version} is not in the local Maven repository {repo}"
    return None


def class_path() -> list[Path]:
    repo = maven_repository()
    return [jar_path(repo, *coordinates) for coordinates in JARS]


def _sources() -> list[Path]:
    return sorted(SOURCES.rglob("*.java"))


def build(cache_root: Path) -> Path:
    """Compile the oracle into ``cache_root/<hash>/classes`` (once per source/class-path hash)."""
    digest = hashlib.sha256()
    for path in _sources():
        digest.update(str(path.relative_to(SOURCES)).encode())
        digest.update(path.read_bytes())
    for jar in class_path():
        digest.update(jar.name.encode())
    out = cache_root / digest.hexdigest()[:16]
    classes = out / "classes"
    if (out / "ok").is_file():
        return classes
    # compiled in a directory of this process and renamed into place, so that sessions or
    # pytest-xdist workers building at the same time never see (or delete) a half-built tree
    scratch = cache_root / f"{out.name}.{os.getpid()}.tmp"
    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / "classes").mkdir(parents=True)
    cp = os.pathsep.join(str(p) for p in class_path())
    result = subprocess.run(
        ["javac", "-parameters", "-nowarn", "-encoding", "UTF-8", "-d", str(scratch / "classes")]
        + ["-cp", cp]
        + [str(p) for p in _sources()],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        raise OracleError(f"javac failed: {result.stderr.strip()[:2000]}")
    (scratch / "ok").write_text("compiled\n")
    if not (out / "ok").is_file():
        shutil.rmtree(out, ignore_errors=True)  # a build interrupted before the ok file
    try:
        scratch.rename(out)
    except OSError:  # another process put its build in place first: use that one
        shutil.rmtree(scratch, ignore_errors=True)
    if not (out / "ok").is_file():
        raise OracleError(f"the oracle build in {out} is incomplete; delete it and run again")
    return classes


@dataclass(frozen=True)
class Verdict:
    """What a reader does with one value: ``ok`` and the runtime class, or where it fails."""

    ok: bool
    cls: str | None = None
    stage: str = ""  # rebuild | get | use
    exc: str = ""
    msg: str = ""

    @classmethod
    def of(cls, data: dict[str, Any]) -> Verdict:
        return cls(
            bool(data["ok"]),
            data.get("cls"),
            data.get("stage", ""),
            data.get("exc", ""),
            data.get("msg", ""),
        )


class Oracle:
    """A running oracle JVM. Requests are sent in batches; responses come back in order."""

    def __init__(self, classes: Path) -> None:
        cp = os.pathsep.join([str(classes), *(str(p) for p in class_path())])
        self._proc = subprocess.Popen(
            ["java", "-Xss8m", "-XX:+UseSerialGC", "-cp", cp, "conformance.oracle.Oracle"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1 << 16,
        )
        assert self._proc.stdout is not None
        hello = self._proc.stdout.readline()
        if not hello:
            raise OracleError(f"the oracle did not start: {self._stderr()}")
        self.info: dict[str, Any] = json.loads(hello)
        self._next = 0
        self._lock = threading.Lock()

    def _stderr(self) -> str:
        if self._proc.poll() is None:
            return ""
        assert self._proc.stderr is not None
        return self._proc.stderr.read()[-2000:]

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def batch(self, requests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send requests, return their responses in order (an error response raises)."""
        if not requests:
            return []
        with self._lock:
            first = self._next
            self._next += len(requests)
            lines = [
                json.dumps({**req, "id": first + i}, ensure_ascii=False) + "\n"
                for i, req in enumerate(requests)
            ]
            assert self._proc.stdin is not None and self._proc.stdout is not None
            stdin = self._proc.stdin

            def feed() -> None:
                try:
                    stdin.write("".join(lines))
                    stdin.flush()
                except BrokenPipeError:
                    pass

            writer = threading.Thread(target=feed, daemon=True)
            writer.start()
            out: list[dict[str, Any]] = []
            for _ in requests:  # read the whole batch, even past an error
                line = self._proc.stdout.readline()
                if not line:
                    raise OracleError(f"the oracle exited: {self._stderr()}")
                out.append(json.loads(line))
            writer.join()
        for i, resp in enumerate(out):
            if resp.get("id") != first + i:
                raise OracleError(f"out-of-order response {resp.get('id')} for {first + i}")
            if "error" in resp:
                raise OracleError(f"{resp['error']} (request {requests[i]!r:.500})")
        return out

    # --- convenience wrappers -------------------------------------------------------------

    def write(self, values: Sequence[Any], gen: str = "modern") -> list[str]:
        """Per-key ``writeValueAsString(value)`` of described values."""
        resps = self.batch([{"op": "write", "gen": gen, "value": v} for v in values])
        return [r["text"] for r in resps]

    def write_map(
        self, maps: Sequence[Sequence[tuple[str, Any]]], gen: str = "legacy"
    ) -> list[str]:
        """Whole-map ``writeValueAsString(HashMap<String,Object>)`` (puts in the given order)."""
        resps = self.batch(
            [{"op": "write_map", "gen": gen, "entries": [list(e) for e in m]} for m in maps]
        )
        return [r["text"] for r in resps]

    def get(self, items: Sequence[tuple[str, str, dict[str, Any]]]) -> list[Verdict]:
        """``FlightMap.get`` of one per-key text: (reader, text, requested type) each."""
        resps = self.batch(
            [{"op": "get", "reader": r, "text": t, "type": ty} for r, t, ty in items]
        )
        return [Verdict.of(r) for r in resps]

    def read_maps(self, requests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """How a reader rebuilds input/working maps and gets keys from them (see README)."""
        return self.batch([{"op": "map", **req} for req in requests])


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
