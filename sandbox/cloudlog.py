"""Cloud Logging for the sandbox: a writer of GKE-shaped entries and a loopback `entries:list`.

Each pod writes JSON lines, one Cloud Logging `LogEntry` per line (`resource.type="k8s_container"`
with the GKE resource labels, the pod's labels as `labels."k8s-pod/…"`, `severity`,
`jsonPayload.message`, RFC 3339 `timestamp` with `Z`, `logName`, `insertId`, `httpRequest` for API
requests), to `<logs>/<pod>.jsonl`. `EntriesServer` serves `POST /v2/entries:list` over those
files with a subset of the Logging query language, so the same `google-cloud-logging` code reads
the sandbox and GKE:

    client = google.cloud.logging.Client(project=P, credentials=AnonymousCredentials(),
        _use_grpc=False, client_options=ClientOptions(api_endpoint="http://127.0.0.1:PORT"))

Filter subset: comparisons `path OP value` with OP in `= != : > >= < <= =~ !~` (paths may quote a
segment: `labels."k8s-pod/pod-template-hash"`), `path:*` (field present), bare values (global
substring search), negation (`-term`, `NOT term`), `AND`, implicit AND (space or newline), `OR`
(binds tighter than AND, as in Cloud Logging) and parentheses. `severity` compares by level,
`timestamp` as time, numbers as numbers. `orderBy` `timestamp asc|desc`; `pageSize`/`pageToken`.

Secrets never reach the files: registered values (the user's token, DB passwords) and any
`Bearer …` credential are replaced with `[REDACTED]` in every line before it is written.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import secrets as _secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox.httpserve import LoopbackServer, QuietHandler

Entry = dict[str, Any]

SEVERITIES = (
    "DEFAULT",
    "DEBUG",
    "INFO",
    "NOTICE",
    "WARNING",
    "ERROR",
    "CRITICAL",
    "ALERT",
    "EMERGENCY",
)
SEVERITY_RANK = {name: i * 100 for i, name in enumerate(SEVERITIES)}
REDACTED = "[REDACTED]"
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{6,}")


def rfc3339(ts: float) -> str:
    """`2021-04-05T14:03:19.046123Z` (UTC, microseconds, Z) from a POSIX time."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> datetime:
    v = value.strip()
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    # Python < 3.11 would need trimming of >6 fractional digits; 3.11 handles it
    m = re.match(r"^(.*?\.\d{6})\d+(.*)$", v)
    if m:
        v = m.group(1) + m.group(2)
    dt = datetime.fromisoformat(v)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


# -- writing -------------------------------------------------------------------------------------


class Redactor:
    """Replaces registered secrets and bearer credentials in text."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = {v for v in values if v and len(v) >= 4}
        self._lock = threading.Lock()

    def add(self, value: str | None) -> None:
        if value and len(value) >= 4:
            with self._lock:
                self._values.add(value)

    def __call__(self, text: str) -> str:
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for v in values:
            if v in text:
                text = text.replace(v, REDACTED)
        return _BEARER.sub(lambda m: m.group(1) + REDACTED, text)


@dataclass(frozen=True)
class PodLogContext:
    """The constant part of every entry a pod writes."""

    project_id: str
    cluster_name: str
    location: str
    namespace: str
    pod_name: str
    container_name: str
    pod_labels: dict[str, str] = field(default_factory=dict)
    node_name: str = "gke-sandbox-default-pool-7a1c2e3f-x9k2"
    service_version: str = "sandbox"

    def resource(self) -> Entry:
        return {
            "type": "k8s_container",
            "labels": {
                "project_id": self.project_id,
                "cluster_name": self.cluster_name,
                "location": self.location,
                "namespace_name": self.namespace,
                "pod_name": self.pod_name,
                "container_name": self.container_name,
            },
        }

    def labels(self) -> dict[str, str]:
        out = {"compute.googleapis.com/resource_name": self.node_name}
        for k, v in sorted(self.pod_labels.items()):
            out["k8s-pod/" + k.replace(".", "_")] = v
        return out


class EntryWriter:
    """Appends entries to one JSON-lines file; each line is written with a single `write(2)` on an
    O_APPEND descriptor, so a SIGKILL never leaves a half line and readers see whole entries."""

    def __init__(self, path: Path, ctx: PodLogContext, redactor: Redactor | None = None) -> None:
        self.path = path
        self.ctx = ctx
        self.redactor = redactor or Redactor()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._lock = threading.Lock()
        self._seq = 0
        self._prefix = _secrets.token_hex(4)
        self._resource = ctx.resource()
        self._labels = ctx.labels()
        self._log_name = f"projects/{ctx.project_id}/logs/stdout"

    def write(
        self,
        severity: str,
        payload: dict[str, Any],
        *,
        created: float | None = None,
        http_request: dict[str, Any] | None = None,
        trace: str | None = None,
    ) -> Entry:
        import time as _time

        ts = created if created is not None else _time.time()
        with self._lock:
            self._seq += 1
            insert_id = f"{self._prefix}{self._seq:010d}"
            entry: Entry = {
                "insertId": insert_id,
                "jsonPayload": payload,
                "resource": self._resource,
                "timestamp": rfc3339(ts),
                "severity": severity,
                "labels": self._labels,
                "logName": self._log_name,
                "receiveTimestamp": rfc3339(_time.time()),
            }
            if http_request:
                entry["httpRequest"] = http_request
            if trace:
                entry["trace"] = trace
            line = self.redactor(json.dumps(entry, separators=(",", ":"), default=str)) + "\n"
            os.write(self._fd, line.encode())
        return entry

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


_LEVELS = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}


class CloudLogHandler(logging.Handler):
    """A `logging.Handler` that writes records as Cloud Logging entries, TCL GoogleJsonLayout
    style: `jsonPayload.{message, logger, thread, serviceContext}` plus MDC-like `extra` fields
    given as `record.mdc` (dict) and `record.http_request` (dict)."""

    def __init__(self, writer: EntryWriter, service: str = "workspacemanager") -> None:
        super().__init__()
        self.writer = writer
        self.service = service

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            trace_text = getattr(record, "java_trace", None)
            if trace_text:
                message = f"{message}\n{trace_text}"
            elif record.exc_info and record.exc_info[1] is not None:
                message = f"{message}\n{self.format_exception(record)}"
            payload: dict[str, Any] = {
                "message": message,
                "logger": record.name,
                "thread": record.threadName,
                "serviceContext": {
                    "service": self.service,
                    "version": self.writer.ctx.service_version,
                },
            }
            mdc = getattr(record, "mdc", None)
            if isinstance(mdc, dict):
                payload.update({k: v for k, v in mdc.items() if k not in payload})
            severity = _LEVELS.get(record.levelno, "DEFAULT")
            self.writer.write(
                severity,
                payload,
                created=record.created,
                http_request=getattr(record, "http_request", None),
            )
        except Exception:  # a logging failure must never break the service
            self.handleError(record)

    def format_exception(self, record: logging.LogRecord) -> str:
        import traceback

        assert record.exc_info is not None
        return "".join(traceback.format_exception(*record.exc_info)).rstrip()


# -- reading -------------------------------------------------------------------------------------


def read_entries(logs_dir: Path) -> list[Entry]:
    """All entries of all pods, in file order (a torn last line is skipped)."""
    out: list[Entry] = []
    if not logs_dir.exists():
        return out
    for path in sorted(logs_dir.glob("*.jsonl")):
        with path.open("rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    break
                try:
                    out.append(json.loads(raw))
                except json.JSONDecodeError:
                    continue
    return out


# -- the filter language -------------------------------------------------------------------------


class FilterError(ValueError):
    pass


_SEG = r'"(?:[^"\\]|\\.)*"|[^\s()"=:<>!~.]+'
_TOKEN = re.compile(
    rf"""(?P<lp>\()
      | (?P<rp>\))
      | (?P<op>>=|<=|!=|=~|!~|=|:|>|<)
      | (?P<word>(?:{_SEG})(?:\.(?:{_SEG}))*)
    """,
    re.VERBOSE,
)


@dataclass
class _Tok:
    kind: str  # lp, rp, op, word, str
    text: str
    segments: list[str] = field(default_factory=list)


def _segments(text: str) -> list[str]:
    return [json.loads(seg) if seg.startswith('"') else seg for seg in re.findall(rf"{_SEG}", text)]


def _tokenize(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        if text[pos] in " \t\r\n":
            pos += 1
            continue
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise FilterError(f"unexpected character at {pos}: {text[pos : pos + 10]!r}")
        kind = m.lastgroup or "word"
        raw = m.group(kind)
        if kind == "word":
            segs = _segments(raw)
            if raw.startswith('"') and len(segs) == 1:
                out.append(_Tok("str", raw, segs))
            else:
                out.append(_Tok("word", raw, segs))
        else:
            out.append(_Tok(kind, raw))
        pos = m.end()
    return out


Pred = Callable[[Entry], bool]
_MISSING = object()


def _get_path(entry: Entry, path: list[str]) -> Any:
    cur: Any = entry
    for part in path:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return _MISSING
    return cur


def _leaves(value: Any) -> Iterable[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    elif value is not None:
        yield str(value)


def _unquote(tok: _Tok) -> str:
    if tok.kind == "str":
        return str(json.loads(tok.text))
    return tok.text


def _compare(path: list[str], op: str, raw: str) -> Pred:
    last = path[-1] if path else ""

    def pred(entry: Entry) -> bool:
        value = _get_path(entry, path)
        if op == ":" and raw == "*":
            return value is not _MISSING and value is not None
        if value is _MISSING or value is None:
            return False
        if isinstance(value, (dict, list)):
            leaves = list(_leaves(value))
            if op == ":":
                return any(raw.lower() in v.lower() for v in leaves)
            if op == "=":
                return raw in leaves
            return False
        if last == "severity" and len(path) == 1:
            left = SEVERITY_RANK.get(str(value).upper(), 0)
            right = SEVERITY_RANK.get(raw.upper(), int(raw) if raw.isdigit() else 0)
            return _ordered(op, left, right)
        if last in ("timestamp", "receiveTimestamp") and op in ("=", "!=", ">", ">=", "<", "<="):
            try:
                return _ordered(op, parse_time(str(value)), parse_time(raw))
            except ValueError:
                return False
        if isinstance(value, bool):
            return _ordered(op, str(value).lower(), raw.lower())
        if isinstance(value, (int, float)) and op not in (":", "=~", "!~"):
            try:
                return _ordered(op, float(value), float(raw))
            except ValueError:
                return False
        text = str(value)
        if op == ":":
            return raw.lower() in text.lower()
        if op in ("=~", "!~"):
            found = re.search(raw, text) is not None
            return found if op == "=~" else not found
        return _ordered(op, text, raw)

    return pred


def _ordered(op: str, left: Any, right: Any) -> bool:
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op == ">":
        return bool(left > right)
    if op == ">=":
        return bool(left >= right)
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ":":
        return str(right).lower() in str(left).lower()
    raise FilterError(f"operator {op} not supported here")


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise FilterError("unexpected end of filter")
        self.i += 1
        return tok

    def parse(self) -> Pred:
        if not self.toks:
            return lambda e: True
        pred = self.and_expr()
        if self.peek() is not None:
            raise FilterError(f"unexpected {self.peek().text!r}")  # type: ignore[union-attr]
        return pred

    def and_expr(self) -> Pred:
        parts = [self.or_expr()]
        while True:
            tok = self.peek()
            if tok is None or tok.kind == "rp":
                break
            if tok.kind == "word" and tok.text == "AND":
                self.take()
            parts.append(self.or_expr())
        return (lambda e: all(p(e) for p in parts)) if len(parts) > 1 else parts[0]

    def or_expr(self) -> Pred:
        parts = [self.unary()]
        while (tok := self.peek()) is not None and tok.kind == "word" and tok.text == "OR":
            self.take()
            parts.append(self.unary())
        return (lambda e: any(p(e) for p in parts)) if len(parts) > 1 else parts[0]

    def unary(self) -> Pred:
        tok = self.peek()
        if tok is not None and tok.kind == "word" and tok.text == "NOT":
            self.take()
            inner = self.unary()
            return lambda e: not inner(e)
        if (
            tok is not None
            and tok.kind == "word"
            and tok.text.startswith("-")
            and len(tok.text) > 1
        ):
            # `-field="x"`: negate the term that starts after the dash
            rest = tok.text[1:]
            self.toks[self.i] = (
                _Tok("str", rest, _segments(rest))
                if rest.startswith('"') and len(_segments(rest)) == 1
                else _Tok("word", rest, _segments(rest))
            )
            inner = self.unary()
            return lambda e: not inner(e)
        if tok is not None and tok.kind == "word" and tok.text == "-":
            self.take()
            inner = self.unary()
            return lambda e: not inner(e)
        return self.primary()

    def primary(self) -> Pred:
        tok = self.take()
        if tok.kind == "lp":
            inner = self.and_expr()
            if self.take().kind != "rp":
                raise FilterError("missing )")
            return inner
        if tok.kind in ("word", "str"):
            nxt = self.peek()
            path = self._path(tok)
            if nxt is not None and nxt.kind == "op":
                op = self.take().text
                value_tok = self.take()
                if value_tok.kind == "lp":
                    # `field = (a OR b)`
                    values: list[str] = []
                    while (t := self.take()).kind != "rp":
                        if not (t.kind == "word" and t.text == "OR"):
                            values.append(_unquote(t))
                    preds = [_compare(path, op, v) for v in values]
                    return lambda e: any(p(e) for p in preds)
                if value_tok.kind == "word" and value_tok.text == "*" and op == ":":
                    return _compare(path, ":", "*")
                return _compare(path, op, _unquote(value_tok))
            needle = _unquote(tok).lower()
            return lambda e: any(needle in leaf.lower() for leaf in _leaves(e))
        raise FilterError(f"unexpected {tok.text!r}")

    @staticmethod
    def _path(tok: _Tok) -> list[str]:
        return tok.segments or [_unquote(tok)]


def compile_filter(text: str | None) -> Pred:
    """Compile a Cloud Logging filter (the subset above) into a predicate on entries."""
    if not text or not text.strip():
        return lambda e: True
    return _Parser(text).parse()


# -- the entries:list server ---------------------------------------------------------------------


def _page_token(offset: int, key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset, "k": key}).encode()).decode()


def _read_token(token: str) -> tuple[int, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["o"]), str(data["k"])
    except (ValueError, KeyError, TypeError) as error:
        raise FilterError(f"invalid page token: {error}") from None


def list_entries(logs_dir: Path, body: dict[str, Any]) -> dict[str, Any]:
    """The `entries:list` operation over the sandbox's log files."""
    filter_text = body.get("filter") or ""
    order = (body.get("orderBy") or "timestamp asc").strip().lower()
    page_size = int(body.get("pageSize") or 50)
    page_size = max(1, min(page_size, 1000))
    projects = {
        rn.split("/", 1)[1] for rn in body.get("resourceNames") or [] if rn.startswith("projects/")
    }
    pred = compile_filter(filter_text)
    key = f"{filter_text}|{order}|{sorted(projects)}"
    offset = 0
    if body.get("pageToken"):
        offset, token_key = _read_token(body["pageToken"])
        if token_key != key:
            raise FilterError("page token does not match the query")
    entries = read_entries(logs_dir)
    selected = [
        (i, e)
        for i, e in enumerate(entries)
        if (not projects or e.get("resource", {}).get("labels", {}).get("project_id") in projects)
        and pred(e)
    ]
    selected.sort(
        key=lambda ie: (ie[1].get("timestamp", ""), ie[0]), reverse=order.endswith("desc")
    )
    page = [e for _, e in selected[offset : offset + page_size]]
    out: dict[str, Any] = {"entries": page}
    if offset + page_size < len(selected):
        out["nextPageToken"] = _page_token(offset + page_size, key)
    return out


class EntriesServer(LoopbackServer):
    """Loopback `POST /v2/entries:list` (and `GET /` → ok) over a directory of pod log files."""

    thread_name = "entries-list"

    def __init__(self, logs_dir: Path, *, port: int = 0) -> None:
        self.logs_dir = logs_dir
        server = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                self._send(200, {"ok": True})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                path = self.path.split("?", 1)[0]
                if path != "/v2/entries:list":
                    return self._send(
                        404,
                        {
                            "error": {
                                "code": 404,
                                "status": "NOT_FOUND",
                                "message": f"no such method {path}",
                            }
                        },
                    )
                try:
                    body = json.loads(raw or b"{}")
                    self._send(200, list_entries(server.logs_dir, body))
                except (FilterError, ValueError) as error:
                    self._send(
                        400,
                        {
                            "error": {
                                "code": 400,
                                "status": "INVALID_ARGUMENT",
                                "message": str(error),
                            }
                        },
                    )

        super().__init__(Handler, port)


def logging_client(project: str, url: str) -> Any:
    """A `google.cloud.logging.Client` on the sandbox's entries:list endpoint (anonymous, HTTP)."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import logging as gcl

    return gcl.Client(
        project=project,
        credentials=AnonymousCredentials(),
        _use_grpc=False,
        client_options=ClientOptions(api_endpoint=url),
    )
