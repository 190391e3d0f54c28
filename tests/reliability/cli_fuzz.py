"""Fuzzing the CLI: hypothesis makes command lines, files, environments and database contents;
`repairtool` runs each one as a user would.

A case is one command line of a random subcommand with random options — good values, edge values
(0, -1, 2³¹, 1e400, nan, inf, empty, whitespace, control characters, undecodable bytes, 300
characters), database URLs with planted passwords in every position, abbreviations, `--opt=value`
forms, repeated and unknown options — plus what it reads: a database (one of a pool of schemas
of three engine generations, intact or broken, whose rows hypothesis refills now and then with
fuzz.py's flights: odd statuses, owners, ids, timestamps, values nested 1,500 deep, tokens), dotenv
files (`--env-file`, `$STAIRWAY_OPS_ENV_FILE`), environment files (`envs/NAME.yaml` through
`$STAIRWAY_OPS_ENVS_DIR`: the real ones mutated, duplicate keys, wrong types, non-UTF-8),
catalogs (`--catalog`: random YAML, deep, looping anchors, duplicate keys), kubeconfigs, the dry
run documents `recover --expect-from` reads, and `$STAIRWAY_DB_URL`.

Most cases run in this process (`clirun.run_cli`, with the parser built once: parsing does not
change it); one in `PROCESS_EVERY` runs as a real `python -m repairtool` process. Hypothesis
draws `BATCH` cases per example. Invariants:
- `no_traceback`: nothing escapes `main` and no process prints a traceback;
- `documented_exit_code`: the code is in the one table, and not 70 (an unclassified exception);
- `one_line`: an error is exactly one `repairtool: error:` line, the last on stderr, printable;
- `dry_run_changes_nothing`: a command line without `--fix` leaves the database as it was;
- `no_password_echoed`: no planted password (nor the database's own) is in any output.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import shutil
import string
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from repairtool.stairway.audit import ensure_audit_table
from repairtool.stairway.schema import create_schema
from tests.reliability import fuzz
from tests.reliability.clirun import CliRun, clean_env, problems, run_cli, run_process
from tests.reliability.harness import insert_flight, register, with_app
from tests.reliability.soak import Soak, SoakEnv, SoakResult, Tally
from tests.reliability.soak import register as register_soak

INVARIANTS = (
    "no_traceback",
    "documented_exit_code",
    "one_line",
    "dry_run_changes_nothing",
    "no_password_echoed",
)
PROCESS_EVERY = 400  # one case in this many runs as a real process
BATCH = 10  # cases per hypothesis example (its per-example overhead is paid once for them)
LIVE = "workspacemanager-deployment-68f9b944d5-9kgzp"
DEAD = "workspacemanager-deployment-68f9b944d5-5gwdm"
KNOWN = ("7028cce9-5017-48dc-9c17-ce8b23517459", "7348bc13-2255-4a50-85b5-fcb5534674cb")
ROOT = Path(__file__).resolve().parents[2]
STATUSES = ("RUNNING", "SUCCESS", "ERROR", "FATAL", "WAITING", "READY", "QUEUED")

# -- values --------------------------------------------------------------------------------------

ODD = st.sampled_from(
    [
        "", " ", "-", "--", "-1", "0", "1", "2147483647", "2147483648", "99999999999999999999",
        "1e400", "-1e400", "nan", "inf", "-inf", "1.5", "0x10", " 5", "٣", "1_000", "\t",
        "a\nb", "\x1b[31mred", "x" * 300, "caf\udce9", "\udcff\udcfe", "ünïcødé", "%s%n", "'", '"',
        "${HOME}", "$(id)", "../../etc/passwd", "/", ".", "null", "true", "[]", "{}",
        "ya29.a0AfH6SMBxTokenTokenToken",
    ]
)  # fmt: skip
#: letters, digits, punctuation, whitespace and control characters, some non-ASCII (a fixed
#: alphabet: hypothesis draws from it several times faster than from all of Unicode)
ALPHABET = (
    string.ascii_letters
    + string.digits
    + string.punctuation
    + " \t\n\r\x0b\x0c\x01\x1b\x7f"
    + "éüßøλЖ中文😀\u200b\u2028\ufeff"
)
TEXT = st.text(alphabet=ALPHABET, max_size=40)
COUNT = st.one_of(st.integers(0, 60).map(str), ODD)
DURATION = st.one_of(
    st.sampled_from(
        ["0s", "1s", "10m", "1h30m", "3d", "500ms", "90", "0.5", "3650d", "3651d", "-5m", "1h1h",
         "m", "10x", "1e9", "99999999999999999999s", "1d2h3m4s5ms"]
    ),
    ODD,
)  # fmt: skip
TIME = st.one_of(
    st.sampled_from(
        ["2021-04-05", "2021-04-05T14:03:19Z", "0001-01-01T00:00:00+05:00", "9999-12-31",
         "10m", "3d", "garbage", "2021-13-01", "2021-04-05T14:03:19+99:00"]
    ),
    ODD,
)  # fmt: skip
NAME = st.one_of(
    st.sampled_from([LIVE, DEAD, f"{LIVE},{DEAD}", ",", " , ", "%", "_", "*", "bio.terra.*"]),
    TEXT,
    ODD,
)
FLIGHT = st.one_of(st.sampled_from(KNOWN), st.uuids().map(str), NAME)
CLASS = st.one_of(
    st.sampled_from([fuzz.WSM, "bio.terra.*", "*", "a.b.TokenFlight", "%"]), TEXT, ODD
)
READER = st.one_of(
    st.sampled_from(["0.0.60", "0.0.61", "legacy", "typed", "1.1.14", "latest"]), ODD
)
PASSWORD = st.text(alphabet=string.ascii_letters + string.digits, min_size=10, max_size=14).map(
    lambda s: "pw-" + s
)


@dataclass
class Case:
    """One command line and what it reads; `planted`: the passwords that must not be shown."""

    argv: list[str]
    files: dict[str, bytes] = field(default_factory=dict)  # name → content (written per case)
    dirs: list[str] = field(default_factory=list)  # names made as directories
    env: dict[str, str] = field(default_factory=dict)
    schema: int = 0
    refill: list[fuzz.FlightRow] | None = None
    planted: list[str] = field(default_factory=list)
    fix: bool = False


# -- the pieces a case is drawn from -------------------------------------------------------------


@functools.cache
def _yaml_tree() -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), TEXT, ODD)
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.one_of(TEXT, ODD), inner, max_size=4)
        ),
        max_leaves=20,
    )


@functools.cache
def _catalog() -> st.SearchStrategy[bytes]:
    builtin = (ROOT / "repairtool" / "catalogs" / "workspace-manager.yaml").read_text()
    type_spec = st.one_of(
        st.sampled_from(["string", "uuid", "int", "long", "bool", "any", "instant", "bogus"]),
        st.fixed_dictionaries(
            {"type": st.sampled_from(["enum", "pojo", "list", "map", "string", "x"])},
            optional={
                "class": CLASS,
                "values": st.lists(TEXT, max_size=3),
                "of": st.sampled_from(["string", "uuid", {"type": "list", "of": "int"}]),
            },
        ),
    )
    generated = st.fixed_dictionaries(
        {
            "version": st.sampled_from([1, 1, 1, 2, "1", None]),
            "flights": st.dictionaries(
                CLASS,
                st.fixed_dictionaries(
                    {
                        "input": st.dictionaries(
                            st.one_of(TEXT, st.just("workspaceStage")), type_spec, max_size=4
                        )
                    },
                    optional={"working": st.dictionaries(TEXT, type_spec, max_size=2)},
                ),
                max_size=3,
            ),
        }
    ).map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode())
    return st.one_of(
        st.just(builtin.encode()),
        generated,
        _yaml_tree().map(lambda t: yaml.safe_dump(t, allow_unicode=True).encode()),
        st.sampled_from(
            [
                b"",
                b"\xff\xfe\x00",
                b"flights: " + b"[" * 3000 + b"]" * 3000,
                b"flights:\n  a.B:\n    input:\n      k: &t {type: list, of: *t}\n",
                b"version: 1\nflights:\n  a.b.C:\n    input:\n      k: string\n      k: int\n",
                b"a: &a [*a, *a]\n",
                b"version: 1\nflights: {}\nflights: {}\n",
                builtin.replace("version: 1", "version: 1\nversion: 1").encode(),
                b"!!python/object/apply:os.system ['true']",
            ]
        ),
        st.binary(max_size=200),
    )


@functools.cache
def _env_yaml() -> st.SearchStrategy[bytes]:
    local = yaml.safe_load((ROOT / "envs" / "local.yaml").read_text())
    gke = yaml.safe_load((ROOT / "envs" / "jcarlton.yaml").read_text())

    @st.composite
    def mutated(draw: st.DrawFn) -> bytes:
        doc = json.loads(json.dumps(draw(st.sampled_from([local, gke]))))
        for _ in range(draw(st.integers(0, 3))):
            path = []
            node = doc
            while isinstance(node, dict) and node and draw(st.booleans()):
                key = draw(st.sampled_from(sorted(node)))
                path.append(key)
                if isinstance(node[key], dict):
                    node = node[key]
                else:
                    break
            if isinstance(node, dict) and node:
                key = draw(st.sampled_from(sorted(node)))
                op = draw(st.sampled_from(["drop", "set", "add"]))
                if op == "drop":
                    del node[key]
                elif op == "set":
                    node[key] = draw(
                        st.one_of(st.none(), st.integers(-(2**40), 2**40), TEXT, ODD, DURATION)
                    )
                else:
                    node[draw(TEXT)] = draw(TEXT)
        name = draw(
            st.sampled_from(["fz", "fz", doc.get("name", "x") if isinstance(doc, dict) else "x"])
        )
        if isinstance(doc, dict) and draw(st.booleans()):
            doc["name"] = name
        return yaml.safe_dump(doc, allow_unicode=True).encode()

    return st.one_of(
        mutated(),
        st.sampled_from(
            [b"", b"\xff\xfe", b"name: fz\nname: fz\n", b"- a\n- b\n", b"name: [" * 500]
        ),
    )


URL_KINDS = (
    "good",
    "good",
    "good",
    "password",
    "query",
    "wrong-password",
    "bad-port",
    "mysql",
    "odd",
)
URL_PARTS = st.tuples(st.sampled_from(URL_KINDS), PASSWORD, ODD)
#: against the pool: mostly its own URL, so that most cases reach a database
URL_PARTS_DB = st.tuples(st.sampled_from(URL_KINDS[:1] * 9 + URL_KINDS), PASSWORD, ODD)
DOTENV_LINES = st.lists(
    st.tuples(
        st.sampled_from(
            ["STAIRWAY_DB_URL={url}", "export STAIRWAY_DB_URL='{url}'", "{junk}", "# c", "KEY"]
        ),
        TEXT.map(lambda t: t.replace("{", "").replace("}", "")),
    ),
    max_size=4,
)


def _url(kind: str, pw: str, odd: str, p: Pieces, schema: int) -> tuple[str, list[str]]:
    """A database URL of one kind, and the password it plants (that must never be shown)."""
    if kind == "good":
        return p.good_url(schema), []
    if kind == "odd":
        return odd, []
    return {
        "password": f"postgresql://u:{pw}@127.0.0.1:1/x",
        "query": f"postgresql://u@127.0.0.1:1/x?password={pw}",
        "wrong-password": f"postgres://postgres:{pw}@127.0.0.1:{p.port}/x",
        "bad-port": f"postgresql://u:{pw}@@:99999/x",
        "mysql": f"mysql://u:{pw}@h/x",
    }[kind], [pw]


@functools.cache
def _kubeconfig() -> st.SearchStrategy[bytes]:
    good = (
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:1'}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\nusers: [{name: u, user: {}}]\n"
    )
    return st.one_of(
        st.just(good.encode()),
        _yaml_tree().map(lambda t: yaml.safe_dump(t).encode()),
        st.binary(max_size=100),
    )


@functools.cache
def _expect_doc() -> st.SearchStrategy[bytes]:
    good = {
        "schema": "repairtool.recover/1",
        "action": "disown",
        "target": KNOWN[0],
        "dry_run": True,
        "expect": {"status": "RUNNING", "owner": DEAD, "version": "1"},
    }
    mutated = st.fixed_dictionaries(
        {k: st.one_of(st.just(v), _yaml_tree()) for k, v in good.items()}
    ).map(lambda d: json.dumps(d).encode())
    return st.one_of(
        mutated,
        st.just(json.dumps(good).encode()),
        st.sampled_from([b"", b"{", b"[" * 5000 + b"]" * 5000, b"\xff", b"null"]),
    )


# -- command lines ---------------------------------------------------------------------------------


@dataclass
class Pieces:
    """What the strategies need to know about the soak's world."""

    good_url: Callable[[int], str]  # schema index → its URL (with the real password)
    schemas: int
    queue: bool
    port: int  # the database server's port (a wrong password against a real server)
    reachable: bool = False


def _values(good: int) -> dict[str, st.SearchStrategy[str]]:
    """The value strategies of the options: a good value `good` times in `good + 1`, else an odd
    one (the database soak wants most command lines to reach the database)."""

    # hypothesis favours the first choice and small integers: the odd branch comes last
    which = st.sampled_from([True] * good + [False])

    def mix(*values: str) -> st.SearchStrategy[str]:
        return st.tuples(which, st.sampled_from(values), ODD).map(lambda t: t[1] if t[0] else t[2])

    def mix_s(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.tuples(which, values, ODD).map(lambda t: t[1] if t[0] else t[2])

    return {
        "reason": mix("fuzz", "2021 orphans"),
        "output": mix("table", "wide", "json", "markdown"),
        "env": st.sampled_from(["fz", "fz", "local", "nosuch", "jcarlton"]),
        "env-leaf": st.sampled_from(["orphans", "flights list", "recover disown", "decode"]),
        "pg-bin": st.sampled_from(["/nonexistent", "@state", "/dev/null"]),
        "engine-version": mix("0.0.60", "1.1.14", "9.9.9"),
        "seed": mix("2021", "none"),
        "shell": mix("bash", "zsh", "fish"),
        "count": mix_s(st.integers(0, 60).map(str)),
        "rate": mix("1000", "0.001", "50"),
        "duration": mix("0s", "1s", "10m", "1h30m", "3d", "500ms", "90", "3650d", "-5m", "1h1h"),
        "time": mix_s(TIME),
        "name": mix_s(NAME),
        "flight": mix_s(FLIGHT),
        "class": mix_s(CLASS),
        "reader": mix("0.0.60", "0.0.61", "legacy", "typed", "1.1.14", "latest"),
        "orphans-action": mix("resume", "fail", "reencode"),
        "decode-action": mix("fail", "reencode"),
        "cluster": st.sampled_from(["terra-soak-workspace-stairway", "nope", "c"]),
        "project": st.sampled_from(["soak-project", ""]),
        "out": st.sampled_from(["@out.yaml", "@state", "/dev/full", "@missing/x.yaml"]),
        "status": mix(*STATUSES),
        "owner": mix_s(st.one_of(st.sampled_from(["none", "any", LIVE, DEAD]), NAME)),
        "order": mix("submitted-asc", "submitted-desc"),
        "expect-owner": mix_s(st.one_of(st.sampled_from([DEAD, LIVE, "none"]), NAME)),
        "version": mix_s(st.integers(0, 10**6).map(str)),
        "noise": st.sampled_from(["url", "--bogus", "-x", "--", "extra", "--help"]),
    }


LEAVES = st.sampled_from(
    ["orphans"] * 6 + ["decode"] * 3 + ["catalog draft", "catalog show"] + ["flights list"] * 3
    + ["flights count", "flights show", "flights instances", "flights audit", "flights generation"]
    + ["recover disown", "recover force-ready", "recover force-fatal"] * 2
    + ["recover enqueue", "recover instance"] * 2
    + ["local status", "local down", "local destroy", "local up", "completion", "env"]
)  # fmt: skip
FILE_KIND = st.sampled_from(["file", "file", "file", "dir", "missing"])
FILE_KIND_DB = st.sampled_from(["file"] * 8 + ["dir", "missing"])
DB_HOW = st.sampled_from(["db", "db", "db", "db", "env-file", "variable", "none"])
V_ARGS = _values(3)
V_DB = _values(12)


@functools.cache
def rare(n: int) -> st.SearchStrategy[bool]:
    """True about once in `n` (a `sampled_from` whose favoured first choice is False: hypothesis
    draws small integers, 0 above all, far more often than uniformly)."""
    return st.sampled_from([False] * (n - 1) + [True])


#: per leaf: (option, value kind or "" for a flag, or "@file:kind" for a file)
OPTIONS: dict[str, list[tuple[str, str]]] = {
    "orphans": [
        ("--catalog", "@catalog"), ("--reader", "reader"), ("--flight", "flight"),
        ("--flight", "flight"), ("--live-instances", "name"), ("--live-instances", "name"),
        ("--kube", ""), ("--kubeconfig", "@kubeconfig"), ("-n", "name"), ("--pod-filter", "name"),
        ("--stalled-after", "duration"), ("--unqueued-after", "duration"),
        ("--queue-retention", "duration"), ("--class", "class"), ("--no-decode", ""),
        ("--action", "orphans-action"), ("--limit", "count"), ("--rate", "rate"),
        ("--force", ""),
    ],
    "decode": [
        ("--catalog", "@catalog"), ("--reader", "reader"), ("--flight", "flight"),
        ("--flight", "flight"), ("--all", ""), ("--action", "decode-action"),
    ],
    "catalog draft": [("--class", "class"), ("--limit", "count"), ("--out", "out")],
    "flights list": [
        ("--status", "status"), ("--status", "status"), ("--class", "class"), ("--owner", "owner"),
        ("--submitted-after", "time"), ("--submitted-before", "time"), ("--limit", "count"),
        ("--offset", "count"), ("--order", "order"),
    ],
    "flights count": [
        ("--status", "status"), ("--class", "class"), ("--owner", "owner"),
        ("--submitted-after", "time"), ("--submitted-before", "time"),
    ],
    "flights show": [("--raw", "")],
    "flights instances": [],
    "flights audit": [("--flight", "flight"), ("--limit", "count")],
    "flights generation": [],
    "recover": [
        ("--live-instances", "name"), ("--force", ""), ("--expect-status", "status"),
        ("--expect-owner", "expect-owner"), ("--expect-version", "version"),
        ("--expect-from", "@expect"),
    ],
    "recover enqueue": [
        ("--cluster", "cluster"), ("--project", "project"), ("--expect-status", "status"),
        ("--expect-owner", "expect-owner"), ("--expect-version", "version"),
        ("--expect-from", "@expect"),
    ],
    "recover instance": [
        ("--live-instances", "name"), ("--force", ""), ("--expect-version", "version"),
        ("--expect-from", "@expect"),
    ],
    "local up": [("--engine-version", "engine-version"), ("--seed", "seed")],
    "fix": [("--fix", ""), ("--reason", "reason"), ("-y", ""), ("--yes", "")],
    "output": [("-o", "output"), ("--json", "")],
}  # fmt: skip
FILES = {
    "@catalog": ("catalog.yaml", _catalog),
    "@kubeconfig": ("kubeconfig", _kubeconfig),
    "@expect": ("dry-run.json", _expect_doc),
}


def _command(p: Pieces) -> st.SearchStrategy[Case]:
    V = V_DB if p.reachable else V_ARGS
    file_kind = FILE_KIND_DB if p.reachable else FILE_KIND
    noise_odds = 20 if p.reachable else 5

    @st.composite
    def case(draw: st.DrawFn) -> Case:
        c = Case([])
        c.schema = draw(st.integers(0, p.schemas - 1))

        def url() -> tuple[str, list[str]]:
            kind, pw, odd = draw(URL_PARTS_DB if p.reachable else URL_PARTS)
            return _url(kind, pw, odd, p, c.schema)

        def file(name: str, content: st.SearchStrategy[bytes] | bytes) -> str:
            if name in c.files or name in c.dirs:  # named twice: the first one stands
                return f"@{name}"
            kind = draw(file_kind)
            if kind == "file":
                c.files[name] = content if isinstance(content, bytes) else draw(content)
            elif kind == "dir":
                c.dirs.append(name)
            return f"@{name}"

        def db() -> list[str]:
            how = draw(DB_HOW)
            if how == "db":
                value, planted = url()
                c.planted += planted
                return ["--db", value]
            if how == "env-file":
                lines = []
                for form, junk in draw(DOTENV_LINES):
                    value, planted = url()
                    c.planted += planted
                    lines.append(form.format(url=value, junk=junk))
                content = "\n".join(lines).encode("utf-8", "surrogateescape")
                if draw(rare(10)):
                    content = draw(st.sampled_from([b"\xff\xfe", b"STAIRWAY_DB_URL=\xff\n", b""]))
                return ["--env-file", file("db.env", content)]
            if how == "variable":
                value, planted = url()
                c.planted += planted
                c.env["STAIRWAY_DB_URL"] = value
            return []

        leaf = draw(LEAVES)
        groups: list[str] = []
        if leaf == "env":  # an environment file, used by `--env NAME`
            c.files["envs/fz.yaml"] = draw(_env_yaml())
            c.env["STAIRWAY_OPS_ENVS_DIR"] = "@envs"
            leaf = draw(V["env-leaf"])
            head = leaf.split() + (["x"] if leaf == "recover disown" else [])
            c.argv = [*head, "--env", draw(V["env"])]
            if draw(rare(4)):
                c.argv += ["--db", "postgresql://u@h/x"]
        elif leaf.startswith("local"):
            sub = "@state" if draw(st.booleans()) else file("state-file", st.binary(max_size=20))
            c.argv = [*leaf.split(), "--state-dir", sub]
            if leaf == "local up":
                c.argv += ["--pg-bin", draw(V["pg-bin"])]
                groups = ["local up"]
        elif leaf == "completion":
            c.argv = ["completion", draw(V["shell"])]
        elif leaf == "catalog show":
            c.argv = ["catalog", "show"]
        else:
            c.argv = leaf.split()
            if leaf.startswith("recover"):
                c.argv.append(draw(V["name"] if leaf == "recover instance" else V["flight"]))
            elif leaf == "flights show":
                c.argv.append(draw(V["flight"]))
            c.argv += db()
            if leaf.startswith("recover"):
                groups = [leaf if leaf in OPTIONS else "recover", "fix", "output"]
                if leaf == "recover enqueue" and "--cluster" not in c.argv:
                    c.argv += ["--cluster", draw(V["cluster"])]
            elif leaf in ("orphans", "decode"):
                groups = [leaf, "fix", "output"]
                if leaf == "orphans" and p.queue and draw(st.booleans()):
                    c.argv += ["--cluster", draw(V["cluster"]), "--project", "soak-project"]
            elif leaf.startswith("flights"):
                groups = [leaf, "output"]
            else:
                groups = [leaf]
        options = [o for g in groups for o in OPTIONS.get(g, [])]
        for _ in range(draw(st.integers(0, 7)) if options else 0):
            name, kind = options[draw(st.integers(0, len(options) - 1))]
            if not kind:
                parts = [name]
            elif kind.startswith("@"):
                fname, content = FILES[kind]
                parts = [name, file(fname, content())]
            else:
                parts = [name, draw(V[kind])]
            if len(parts) == 2 and draw(rare(10)):
                parts = [f"{parts[0]}={parts[1]}"]
            if draw(rare(20)) and parts[0].startswith("--") and len(parts[0]) > 5:
                parts[0] = parts[0][: draw(st.integers(3, len(parts[0]) - 1))]  # abbreviated
            c.argv += parts
        if draw(rare(noise_odds)):  # noise: a stray word, an unknown option, a URL
            noise = draw(V["noise"])
            if noise == "url":
                noise, planted = url()
                c.planted += planted
            c.argv.insert(draw(st.integers(0, len(c.argv))), noise)
        c.fix = any(a in ("--fix", "--fi") or a.startswith("--fix=") for a in c.argv)
        if draw(rare(40)):
            c.refill = draw(REFILL)
        return c

    return case()


REFILL = st.lists(fuzz.flights(), max_size=4)


# -- the world the cases run in ------------------------------------------------------------------


@dataclass
class Pool:
    """A database with one schema per intact engine generation and a few broken ones."""

    url: URL
    admin: Engine
    schemas: list[str]
    password: str

    def good_url(self, n: int) -> str:
        return self.url.update_query_dict(
            {"options": f"-csearch_path={self.schemas[n]}"}
        ).render_as_string(hide_password=False)

    def checksum(self, n: int) -> str:
        with self.admin.connect() as conn:
            return fuzz._checksum(conn, self.schemas[n])

    def refill(self, n: int, rows: list[fuzz.FlightRow]) -> None:
        ex = fuzz.Example("1.1.14", [], rows, [(LIVE, LIVE), (DEAD, DEAD)], False, None, False,
                          fuzz.ReaderVersion.TYPED, None)  # fmt: skip
        with self.admin.begin() as conn:
            conn.execute(text(f'SET LOCAL search_path TO "{self.schemas[n]}"'))
            present = [
                t
                for t in (*fuzz.ENGINE_TABLES, "stairwayinstance")
                if conn.execute(text("SELECT to_regclass(:t)"), {"t": t}).scalar() is not None
            ]
            conn.execute(text(f"TRUNCATE {', '.join(present)}"))
            _seed_known(conn)
            fuzz._fill(conn, ex)


AUTH = json.dumps(
    ["bio.terra.workspace.service.iam.AuthenticatedUserRequest",
     {"email": "u@x", "subjectId": None, "token": "ya29.a0AfH6SMBxPLANTEDtokenFUZZ", "reqId": None}]
)  # fmt: skip


def _seed_known(conn: Any) -> None:
    """The two 2021 orphans (a dead pod's, and the make-flight failure on a live pod), always
    present so that `--flight` and `recover` find something."""
    with contextlib.suppress(Exception), conn.begin_nested():
        register(conn, LIVE, DEAD)
    for n, fid in enumerate(KNOWN):
        with contextlib.suppress(Exception), conn.begin_nested():
            insert_flight(
                conn, fid, status="RUNNING", owner=DEAD if n == 0 else LIVE,
                inputs={"workspaceStage": '"MC_WORKSPACE"', "description": '"d"',
                        "auth_user_info": AUTH},
            )  # fmt: skip


def _pool(env: SoakEnv) -> Pool:
    url = env.new_database("clifuzz")
    admin = with_app(url, "soak-admin")
    schemas = []
    shapes: list[tuple[str, list[tuple[str, ...]]]] = [
        ("0.0.43", []),
        ("0.0.60", []),
        ("1.1.14", []),
        ("1.1.14", []),
        ("0.0.60", [("rename", "flight", "stairway_id")]),
        ("1.1.14", [("drop_table", "stairwayinstance")]),
        ("1.1.14", [("timestamptz",), ("nullable",)]),
        ("0.0.60", [("drop_table", "flightinput")]),
    ]
    for n, (version, mutations) in enumerate(shapes):
        schema = f"cf_{n}"
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            conn.execute(text(f'SET LOCAL search_path TO "{schema}"'))
            create_schema(conn, version)
            _seed_known(conn)
            for m in mutations:
                fuzz._mutate(conn, m)
        schemas.append(schema)
    ensure_audit_table(admin)
    return Pool(url, admin, schemas, str(url.password or ""))


@contextlib.contextmanager
def _cached_parser() -> Iterator[None]:
    """Parse with one parser for the whole soak: building it is ~20 ms, parsing leaves it as it
    was (every case still goes through `main`, its handler and the command)."""
    import repairtool.cli as cli

    real = cli.build_parser
    cli.build_parser = functools.lru_cache(maxsize=1)(real)  # type: ignore[method-assign]
    try:
        yield
    finally:
        cli.build_parser = real  # type: ignore[method-assign]


class Workspace:
    """Where a case's files live: `state/` and `envs/` always, the case's own files and
    directories made before it runs and removed after (no tree walk per case: the file system
    here takes milliseconds per directory)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: list[Path] = []

    def prepare(self, c: Case) -> tuple[list[str], dict[str, str]]:
        """Write the case's files; replace `@name` in its argv and env by their paths."""
        for base in (self.root / "state", self.root / "envs"):
            if base.is_file():
                base.unlink()
            base.mkdir(exist_ok=True)
        for name, content in c.files.items():
            path = self.root / name
            if path.parent != self.root and not path.parent.exists():
                path.parent.mkdir(parents=True)
                self.made.append(path.parent)
            path.write_bytes(content)
            self.made.append(path)
        for name in c.dirs:
            path = self.root / name
            if not path.exists():
                path.mkdir(parents=True)
                self.made.append(path)

        def real(value: str) -> str:
            return value.replace("@", f"{self.root}/", 1) if value.startswith("@") else value

        argv = []
        for a in c.argv:
            if a.startswith("--") and "=@" in a:
                name, _, value = a.partition("=")
                a = f"{name}={real(value)}"
            argv.append(a if a.startswith("--") else real(a))
        return argv, {k: real(v) for k, v in c.env.items()}

    def clean(self) -> None:
        """Remove what the case made — and whatever the command made (`local up` makes its
        state directory): everything but an empty `state/` and `envs/`."""
        self.made.clear()
        for base in (self.root, self.root / "state", self.root / "envs"):
            if not base.is_dir():
                continue
            for entry in os.scandir(base):
                if base == self.root and entry.name in ("state", "envs"):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)


def _fuzz_soak(name: str, reachable: bool, full: int, ci: int, what: str) -> Soak:
    def run(env: SoakEnv, trials: int, rng: random.Random) -> SoakResult:
        return _run(name, reachable, env, trials, rng)

    return Soak(name, "cli", what, INVARIANTS, run, full=full, ci=ci)


def _run(name: str, reachable: bool, env: SoakEnv, trials: int, rng: random.Random) -> SoakResult:
    started = time.monotonic()
    t = Tally(INVARIANTS)
    pool = _pool(env) if reachable else None
    tmp = Path(tempfile.mkdtemp(prefix="cli-fuzz-"))
    work = Workspace(tmp)
    base_env = clean_env(state_dir=str(tmp / "state"))
    if env.queue is not None:
        base_env["PUBSUB_EMULATOR_HOST"] = os.environ.get("PUBSUB_EMULATOR_HOST", "")
    if pool is not None:
        pieces = Pieces(
            pool.good_url, len(pool.schemas), env.queue is not None, pool.url.port or 0, True
        )
        current = {n: pool.checksum(n) for n in range(len(pool.schemas))}
    else:
        pieces = Pieces(lambda n: "postgresql://postgres@127.0.0.1:1/stairway", 1, False, 1)
        current = {}
    count = 0
    slow: list[str] = []

    @seed(rng.randrange(2**32))
    @settings(
        max_examples=-(-trials // BATCH),
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(_command(pieces), min_size=BATCH, max_size=BATCH))
    def batch(cases: list[Case]) -> None:
        for c in cases[: trials - count]:
            one(c)

    def one(c: Case) -> None:
        nonlocal count
        count += 1
        if c.refill is not None and pool is not None:
            pool.refill(c.schema, c.refill)
            current[c.schema] = pool.checksum(c.schema)
            t.stats["database refills"] += 1
        argv, extra = work.prepare(c)
        real = count % PROCESS_EVERY == 0
        began = time.monotonic()
        run: CliRun
        try:
            if real:
                run = run_process(argv, env={**base_env, **extra})
                t.stats["real processes"] += 1
            else:
                run = run_cli(argv, env={**base_env, **extra})
        finally:
            work.clean()
        spent = time.monotonic() - began
        if spent > 10:
            slow.append(f"{spent:.0f}s: {run.describe()[:200]}")
        t.stats[f"exit {run.code}"] += 1
        t.stats[f"ms in exit {run.code}"] += int(spent * 1000)
        if run.engines:
            t.stats["made an engine"] += 1
        p = problems(run)
        t.check("no_traceback", not p.traceback, lambda: p.traceback[0])
        t.check("documented_exit_code", not p.exit_code, lambda: p.exit_code[0])
        t.check("one_line", not p.one_line, lambda: p.one_line[0])
        if pool is not None and (run.engines or real):  # no engine: no database touched
            before, after = current[c.schema], pool.checksum(c.schema)
            current[c.schema] = after
            refused = run.code in (2, 9) or "terminal" in "".join(run.error_lines)
            t.check(
                "dry_run_changes_nothing",
                before == after or (c.fix and not refused),
                lambda: f"changed by {run.describe()}",
            )
        shown = run.stdout + run.stderr
        secrets = [*c.planted, pool.password if pool else ""]
        leaked = [pw for pw in secrets if pw and pw in shown]
        t.check("no_password_echoed", not leaked, lambda: f"{leaked[0][:6]}… in {run.describe()}")

    with _cached_parser():
        try:
            batch()
        finally:
            if pool is not None:
                pool.admin.dispose()
            shutil.rmtree(tmp, ignore_errors=True)
    notes = [f"slow cases: {slow[:3]}"] if slow else []
    return t.result(name, "cli", count, started, notes)


register_soak(
    _fuzz_soak(
        "cli.fuzz.args",
        False,
        full=88_000,
        ci=1_200,
        what="hypothesis command lines with the files they name (dotenv, env YAML, kubeconfig,"
        " catalogs, dry-run JSON) and environment variables, no database reachable",
    )
)
register_soak(
    _fuzz_soak(
        "cli.fuzz.db",
        True,
        full=12_000,
        ci=150,
        what="the same against a pool of Stairway schemas (three generations, intact and"
        " broken) whose rows hypothesis refills with fuzz.py's flights",
    )
)
