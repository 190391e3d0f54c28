"""Markdown runbooks rendered from experiment journals, and only from them.

:func:`render_runbooks` writes, into one directory:

- ``experiment-<name>.md`` per experiment, from its newest journal, in the layout of the 2021
  ``EXPERIMENTS.md`` (code changes, deployment, environment, invocation, database, running the
  test, logs, one section per attempt with a Mermaid timeline, notes, provenance footer);
- the operational runbooks of :data:`RUNBOOKS` (title + trigger, meaning, impact, diagnosis,
  mitigation, verification, rollback, escalation, provenance);
- ``README.md``, an index with the provenance of each file.

Rendering never reads live state or the clock: the same journals give byte-identical Markdown.
Templates (``templates/runbooks/*.md.j2``) quote commands only through ``cmd(id)`` and SQL only
through ``sql(name)``: both look the text up in the journals (``commands[]`` and
``attempts[].sql_evidence[]``) and raise :class:`RunbookError` when no run executed it, so a
runbook cannot quote a command nobody ran. An operational runbook whose ``requires`` are not in
the given journals is not rendered; the index says which ids were missing.

Regenerate (also the golden files of ``tests/runbooks/expected``)::

    python -m opskit.runbooks --journal tests/runbooks/fixtures --out tests/runbooks/expected
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from opskit import paths
from opskit.errors import ExitCode, OpsError
from opskit.flightstory import alive, gantt, pod_lives, short_pod, state_diagram
from opskit.journal import (
    Attempt,
    CommandRecord,
    Journal,
    JournalError,
    LogExcerpt,
    RepairRecord,
    RepairStepRecord,
    load,
    parse_time,
)
from opskit.production import (
    ProductionForm,
    pods_in,
    production_form,
    sql_production_form,
)
from repairtool.clock import rfc3339

TEMPLATES_DIR = paths.TEMPLATES_DIR / "runbooks"


class RunbookError(OpsError):
    """A template asked for something no journal holds (a command, a SQL query)."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class OperationalRunbook:
    """One operational runbook: its file, template, and what it needs from the journals."""

    name: str
    title: str
    #: experiments whose journals are searched first, in this order (then all others)
    experiments: tuple[str, ...]
    requires: tuple[str, ...]
    requires_sql: tuple[str, ...] = ()
    #: experiments whose runs the template quotes by name (``run_of``): all must have a journal
    requires_runs: tuple[str, ...] = ()

    @property
    def filename(self) -> str:
        return f"{self.name}.md"

    @property
    def template(self) -> str:
        return f"{self.name}.md.j2"


RUNBOOKS: tuple[OperationalRunbook, ...] = (
    OperationalRunbook(
        "orphaned-running-flights",
        "Orphaned RUNNING flights",
        ("dead-owner-resume", "dead-owner-no-queue", "stale-instance", "decode-failure-fail"),
        ("flights-nonterminal", "instances", "logs", "orphans-dry-run", "audit"),
        ("non-terminal-flights",),
        ("dead-owner-resume", "dead-owner-no-queue", "stale-instance", "decode-failure-fail"),
    ),
    OperationalRunbook(
        "flightmap-decode-failure",
        "FlightMap decode failure",
        ("decode-failure-on-resume", "decode-failure-fail"),
        ("decode", "flight-show", "logs", "orphans-dry-run", "orphans-fix-reencode", "audit"),
        ("flight-log",),
        ("decode-failure-on-resume", "decode-failure-fail"),
    ),
    OperationalRunbook(
        "stuck-ready-or-queued-flights",
        "Stuck READY or QUEUED flights",
        (
            "lost-queue-message",
            "queued-past-ack-deadline",
            "dead-owner-no-queue",
            "decode-failure-fail",
        ),
        ("flights-unowned", "instances", "orphans-dry-run", "audit"),
        ("unowned-ready-queued",),
        (
            "lost-queue-message",
            "queued-past-ack-deadline",
            "dead-owner-no-queue",
            "decode-failure-fail",
        ),
    ),
    OperationalRunbook(
        "fatal-after-dependency-outage",
        "FATAL flights after a dependency outage",
        ("dismal-failure-force-ready",),
        ("flights-fatal", "logs", "recover-force-ready", "recover-enqueue", "audit"),
        ("flight-log",),
        ("dismal-failure-force-ready",),
    ),
)


# --------------------------------------------------------------------------------------------
# what templates quote


@dataclass(frozen=True)
class Source:
    """The run a quote comes from."""

    run_id: str
    experiment: str
    env: str
    started: str
    verdict: str
    tool_version: str

    @classmethod
    def of(cls, journal: Journal) -> Source:
        return cls(
            journal.run_id,
            journal.experiment.name,
            journal.env.name,
            journal.started,
            journal.verdict,
            journal.tool_version,
        )


@dataclass(frozen=True)
class CommandQuote:
    """What ``cmd(id)`` returns: the command as it ran, with its output tail and its run."""

    id: str
    command: str
    output_tail: tuple[str, ...]
    rc: int | None
    at: str
    duration_s: float
    source: Source
    kind: str = "command"

    @property
    def text(self) -> str:
        return self.command


@dataclass(frozen=True)
class SqlQuote:
    """What ``sql(name)`` returns: a query from some attempt's SQL evidence, with its rows."""

    id: str
    query: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    at: str
    attempt: int
    source: Source
    kind: str = "sql"

    @property
    def text(self) -> str:
        return self.query


@dataclass
class Quotes:
    """The journals one template may quote from, searched in order, and what it quoted."""

    template: str
    journals: Sequence[Journal]
    used: list[CommandQuote | SqlQuote] = field(default_factory=list)

    def _note(self, quote: CommandQuote | SqlQuote) -> None:
        key = (quote.kind, quote.id, quote.source.run_id, quote.at)
        if all((q.kind, q.id, q.source.run_id, q.at) != key for q in self.used):
            self.used.append(quote)

    def _find_cmd(
        self, command_id: str, attempt: Attempt | None, journal: Journal | None
    ) -> CommandQuote | None:
        for j in [journal] if journal is not None else self.journals:
            records: Iterable[CommandRecord] = j.commands_with(command_id)
            if attempt is not None:
                lo, hi = parse_time(attempt.started), parse_time(attempt.ended)
                records = [r for r in records if lo <= parse_time(r.at) <= hi]
            found = list(records)
            if found:
                r = found[-1]
                return CommandQuote(
                    r.id, r.command, r.output_tail, r.rc, r.at, r.duration_s, Source.of(j)
                )
        return None

    def has_cmd(
        self, command_id: str, attempt: Attempt | None = None, journal: Journal | None = None
    ) -> bool:
        return self._find_cmd(command_id, attempt, journal) is not None

    def cmd(
        self, command_id: str, attempt: Attempt | None = None, journal: Journal | None = None
    ) -> CommandQuote:
        """The command with this id as the preferred run executed it (the last one)."""
        found = self._find_cmd(command_id, attempt, journal)
        if found is None:
            where = f" in attempt {attempt.number}" if attempt is not None else ""
            raise RunbookError(
                f"{self.template}: quotes command {command_id!r}{where}, which no journal ran"
                f" (runs: {', '.join(j.run_id for j in self.journals) or 'none'})"
            )
        self._note(found)
        return found

    def _find_sql(self, name: str, journal: Journal | None) -> SqlQuote | None:
        for j in [journal] if journal is not None else self.journals:
            for attempt, ev in j.sql_evidence():
                if ev.name == name:
                    return SqlQuote(
                        ev.name,
                        ev.query,
                        ev.columns,
                        ev.rows,
                        attempt.started,
                        attempt.number,
                        Source.of(j),
                    )
        return None

    def has_sql(self, name: str, journal: Journal | None = None) -> bool:
        return self._find_sql(name, journal) is not None

    def sql(self, name: str, journal: Journal | None = None) -> SqlQuote:
        """A query some attempt ran as SQL evidence (the first one in search order)."""
        found = self._find_sql(name, journal)
        if found is None:
            raise RunbookError(
                f"{self.template}: quotes SQL {name!r}, which no journal's sql_evidence holds"
            )
        self._note(found)
        return found

    def attempt_of(self, quote: CommandQuote) -> Attempt | None:
        """The attempt of the quote's run whose time window holds the command."""
        for j in self.journals:
            if j.run_id != quote.source.run_id:
                continue
            at = parse_time(quote.at)
            for a in j.attempts:
                if parse_time(a.started) <= at <= parse_time(a.ended):
                    return a
        return None

    def journal_with(self, command_id: str) -> Journal | None:
        """The journal ``cmd(command_id)`` would quote from (nothing is recorded as quoted)."""
        found = self._find_cmd(command_id, None, None)
        return self.journal_of(found) if found is not None else None

    def journal_of(self, quote: CommandQuote | SqlQuote) -> Journal:
        """The journal a quote came from."""
        return next(j for j in self.journals if j.run_id == quote.source.run_id)

    def repair_of(self, quote: CommandQuote) -> RepairRecord | None:
        """The repair record of the attempt the command ran in (its --json documents, audit)."""
        attempt = self.attempt_of(quote)
        return attempt.repair if attempt is not None else None

    def provenance(self) -> list[CommandQuote | SqlQuote]:
        """Everything quoted so far in this render, in order of first use."""
        return list(self.used)

    def run_of(self, experiment: str) -> Journal | None:
        """The newest journal of ``experiment`` among this render's journals."""
        return next((j for j in self.journals if j.experiment.name == experiment), None)

    def step_of(self, quote: CommandQuote) -> RepairStepRecord | None:
        """The repair step record of a quoted repair command (its document, the status)."""
        attempt = self.attempt_of(quote)
        if attempt is None or attempt.repair is None or not attempt.repair.steps:
            return None
        at = parse_time(quote.at)
        steps = [s for s in attempt.repair.steps if s.command_id == quote.id]
        return min(steps, key=lambda s: abs(parse_time(s.at) - at), default=None)

    def production(self, quote: CommandQuote) -> ProductionForm:
        """The production form of a quoted command (:mod:`opskit.production`)."""
        j = self.journal_of(quote)
        flights = [a.flight_id for a in j.attempts if a.flight_id]
        pods = pods_in([c.command for c in j.commands]) | {
            p
            for a in j.attempts
            for p in (a.pods.receiver, a.pods.owner, a.pods.killed, a.pods.replacement)
            if p
        }
        return production_form(quote.command, flight_ids=flights, pods=pods)

    def sql_production(self, quote: SqlQuote) -> str:
        """A quoted query with the rehearsal's flight ids as ``<FLIGHT_ID>``."""
        j = self.journal_of(quote)
        return sql_production_form(
            quote.query, flight_ids=[a.flight_id for a in j.attempts if a.flight_id]
        )


# --------------------------------------------------------------------------------------------
# Markdown and Mermaid helpers (pure functions, exposed to templates as filters)


def fence(body: str | Sequence[str], lang: str = "") -> str:
    """A fenced code block that stays closed whatever the body holds."""
    text = body if isinstance(body, str) else "\n".join(body)
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{lang}\n{text}\n{ticks}"


def code(value: Any) -> str:
    """Inline code that survives backticks in the value."""
    text = str(value)
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def cell(value: Any) -> str:
    """A Markdown table cell: JSON-ish scalars, ``|`` escaped, one line."""
    if value is None:
        text = "NULL"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dict | list):
        text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    else:
        text = str(value)
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\n", " ").strip() or " "


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; an empty result says so."""
    head = "| " + " | ".join(cell(c) for c in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    if not rows:
        return f"{head}\n{rule}\n| " + " | ".join(["(no rows)"] + [" "] * (len(columns) - 1)) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join([head, rule, *body])


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def when(value: str) -> str:
    """``2026-11-29T01:30:00.123Z`` → ``2026-11-29T01:30:00Z`` (RFC 3339, whole seconds)."""
    return rfc3339(parse_time(value), "seconds")


def clock(value: str) -> str:
    """``…T01:30:00.123Z`` → ``01:30:00.123Z`` (RFC 3339 full-time: the diagrams' clock)."""
    return rfc3339(parse_time(value)).partition("T")[2]


def seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


_MERMAID_BAD = str.maketrans(
    {";": ",", "#": "no.", "<": "‹", ">": "›", "\n": " ", "\r": " ", "\t": " ", "%": " pct"}
)


def mermaid_text(value: str, limit: int = 90) -> str:
    """Text safe inside a Mermaid message or note (no ``;``, ``#``, ``%``, arrows, HTML, breaks)."""
    text = " ".join(value.replace("->", "→").translate(_MERMAID_BAD).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


_FENCE = re.compile(r"^(`{3,})")


def tidy(text: str) -> str:
    """Collapse runs of blank lines outside fenced blocks; end with exactly one newline."""
    out: list[str] = []
    fence_ticks = ""
    for line in text.split("\n"):
        m = _FENCE.match(line)
        if fence_ticks:
            if m and m[1] == fence_ticks and line.strip() == fence_ticks:
                fence_ticks = ""
        elif m:
            fence_ticks = m[1]
        elif not line.strip():
            if out and not out[-1].strip():
                continue
            line = ""
        out.append(line)
    return "\n".join(out).strip("\n") + "\n"


def _pod_label(name: str) -> str:
    """``workspacemanager-deployment-68f9b944d5-9kgzp`` → ``pod 68f9b944d5-9kgzp``."""
    return "pod " + short_pod(name)


_UUID_TEXT = re.compile(r"\b([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
#: a pod name (``<deployment>-<template hash, with a digit>-<5 chars>``), maybe after "pod "
_POD_TEXT = re.compile(
    r"\b(?:pod )?[a-z0-9][a-z0-9-]*-((?=[a-z]*[0-9])[a-z0-9]{6,10}-[a-z0-9]{5})\b"
)
_STATE_TEXT = re.compile(r"changed status to (\w+)")
#: the longest note or message of a sequence diagram (longer text is cut, state changes never)
SEQUENCE_TEXT_LIMIT = 110


def _compact(text: str) -> str:
    """Flight ids to their first 8 characters, pod names to their last two parts."""
    return _POD_TEXT.sub(r"pod \1", _UUID_TEXT.sub(r"\1…", text))


def _sequence_text(e: Any) -> str:
    """An entry as a diagram note; an engine state change always keeps its new status."""
    m = _STATE_TEXT.search(e.detail) if e.event == "state_change" else None
    if m:
        fid = _UUID_TEXT.search(e.detail)
        flight = f" (flight {fid[1]}…)" if fid else ""
        return mermaid_text(f"{clock(e.at)} → {m[1]}{flight}", limit=10_000)
    return mermaid_text(_compact(f"{clock(e.at)} {e.event}: {e.detail}"), SEQUENCE_TEXT_LIMIT)


def mermaid(attempt: Attempt) -> str:
    """A Mermaid ``sequenceDiagram`` of an attempt's timeline (renders on GitHub).

    Engine state changes are notes ``→ STATUS`` (never cut); an arrow starts at a pod only
    while that pod is alive (:func:`opskit.flightstory.pod_lives`), otherwise the entry is a
    note."""
    pods: list[str] = []
    p = attempt.pods
    for name in [p.receiver, p.owner, p.killed, p.replacement, *p.survivors]:
        if name and name not in pods:
            pods.append(name)
    for entry in attempt.timeline:
        if entry.pod and entry.pod not in pods:
            pods.append(entry.pod)
    lives = pod_lives(attempt)
    alias = {name: f"P{i}" for i, name in enumerate(pods, 1)}
    lines = [
        "sequenceDiagram",
        "    participant Op as operator and tools",
        "    participant K as Kubernetes",
    ]
    lines += [f"    participant {alias[n]} as {_pod_label(n)}" for n in pods]
    lines.append("    participant DB as Stairway database")
    for e in attempt.timeline:
        text = _sequence_text(e)
        target = alias.get(e.pod or "")
        if e.source == "tool":
            lines.append(f"    Op->>{target}: {text}" if target else f"    Note over Op: {text}")
        elif e.source == "kube":
            lines.append(f"    K->>{target}: {text}" if target else f"    Note over K: {text}")
        elif e.source == "db":
            live = target is not None and alive(lives, e.pod or "", parse_time(e.at))
            lines.append(f"    {target}->>DB: {text}" if live else f"    Note over DB: {text}")
        else:  # log
            lines.append(f"    Note over {target or 'K'}: {text}")
    return "\n".join(lines)


def log_lines(excerpts: Iterable[LogExcerpt]) -> list[str]:
    """Log excerpts in the 2021 layout: a time/severity/pod line, then the quoted message."""
    out: list[str] = []
    for x in excerpts:
        out.append(f"{rfc3339(parse_time(x.at))} {x.severity} {x.pod}")
        out.append(f'"{x.message}"')
    return out


def expected_log_lines(journal: Journal) -> list[str]:
    """The log excerpts of a run that show the lines its experiment expected (2021 layout):
    each expected line with the attempt's flight and pods filled in (a placeholder with no value
    matches on the text before it)."""
    out: list[LogExcerpt] = []
    for a in journal.attempts:
        values = {
            "flight": a.flight_id,
            "killed": a.pods.killed,
            "owner": a.pods.owner,
            "replacement": a.pods.replacement,
        }
        wanted = []
        for line in journal.experiment.expect.log_lines:
            try:
                wanted.append(line.format_map({k: v for k, v in values.items() if v}))
            except KeyError:
                wanted.append(line.split("{", 1)[0])
        out += [x for x in a.log_excerpts if any(w and w in x.message for w in wanted)]
    return log_lines(out)


def _state(value: Any) -> str:
    if not isinstance(value, dict):
        return "-" if value is None else str(value)
    if "status" in value:
        return f"{value.get('status')}/{value.get('stairway_id') or '-'}"
    return ", ".join(f"{k}={v}" for k, v in sorted(value.items()) if k != "value")


def finding_rows(doc: dict[str, Any] | None) -> list[list[Any]]:
    """Rows (kind, flight or instance, status, owner, proposed action, why) of a repairtool doc."""
    rows = []
    for f in (doc or {}).get("findings", []):
        ev = f.get("evidence") or {}
        target = f.get("flight_id") or f"instance {f.get('instance')}"
        why = ev.get("pattern") or ev.get("why") or ""
        rows.append(
            [f.get("kind"), target, f.get("status"), f.get("owner"), f.get("proposed_action"), why]
        )
    return rows


def decode_rows(doc: dict[str, Any] | None) -> list[list[Any]]:
    """Rows (flight, map, key, expected, found, engine exception) of the decode failures."""
    rows = []
    for f in (doc or {}).get("findings", []):
        for x in (f.get("evidence") or {}).get("decode_failures", []):
            rows.append(
                [
                    x.get("flight_id"),
                    x.get("source"),
                    x.get("key"),
                    x.get("expected"),
                    x.get("found"),
                    x.get("engine_exception"),
                ]
            )
    return rows


def plan_rows(doc: dict[str, Any] | None) -> list[list[Any]]:
    """Rows (action, target, steps) of a repairtool plan."""
    return [
        [
            c.get("action"),
            c.get("flight_id") or f"instance {c.get('instance')}",
            " → ".join(c.get("steps") or []),
        ]
        for c in (doc or {}).get("plan", [])
    ]


def applied_rows(doc: dict[str, Any] | None) -> list[list[Any]]:
    """Rows (action, target, step, outcome, before, after, audit id) of ``applied`` results."""
    rows = []
    for a in (doc or {}).get("applied", []) + (doc or {}).get("skipped", []):
        target = a.get("flight_id") or f"instance {a.get('instance')}"
        for r in a.get("results") or [{}]:
            rows.append(
                [
                    a.get("action"),
                    target,
                    r.get("step"),
                    r.get("outcome"),
                    _state(r.get("before")),
                    _state(r.get("after")),
                    r.get("audit_id"),
                ]
            )
    return rows


def result_rows(doc: dict[str, Any] | None) -> list[list[Any]]:
    """Rows (action, flight, outcome, before, after, audit id) of a ``repairtool.recover/1``
    document's results."""
    return [
        [
            r.get("action"),
            r.get("flight_id"),
            r.get("outcome"),
            _state(r.get("before")),
            _state(r.get("after")),
            r.get("audit_id"),
        ]
        for r in (doc or {}).get("results", [])
    ]


def audit_rows(rows: Iterable[dict[str, Any]]) -> list[list[Any]]:
    """Rows (id, at, actor, action, flight, before, after, reason) of audit records."""
    return [
        [
            r.get("audit_id"),
            r.get("at"),
            r.get("actor"),
            r.get("action"),
            r.get("flight_id"),
            _state(r.get("before")),
            _state(r.get("after")),
            r.get("reason"),
        ]
        for r in rows
    ]


# --------------------------------------------------------------------------------------------
# rendering


def environment(templates: Path | None = None) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates or TEMPLATES_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters.update(
        fence=fence,
        code=code,
        cell=cell,
        pretty_json=pretty_json,
        when=when,
        clock=clock,
        seconds=seconds,
        mermaid_text=mermaid_text,
    )
    env.globals.update(
        table=table,
        mermaid=mermaid,
        state_diagram=state_diagram,
        gantt=gantt,
        result_rows=result_rows,
        log_lines=log_lines,
        expected_log_lines=expected_log_lines,
        finding_rows=finding_rows,
        decode_rows=decode_rows,
        plan_rows=plan_rows,
        applied_rows=applied_rows,
        audit_rows=audit_rows,
    )
    return env


def _order(journals: Iterable[Journal]) -> list[Journal]:
    """Newest first (by start time, then run id): independent of the order given."""
    return sorted(journals, key=lambda j: (parse_time(j.started), j.run_id), reverse=True)


def newest_per_experiment(journals: Iterable[Journal]) -> dict[str, Journal]:
    out: dict[str, Journal] = {}
    for j in _order(journals):
        out.setdefault(j.experiment.name, j)
    return dict(sorted(out.items()))


def search_order(journals: Sequence[Journal], experiments: Sequence[str]) -> list[Journal]:
    """The preferred experiments' journals (newest first, in the given order), then the rest."""
    ordered = _order(journals)
    rank = {name: i for i, name in enumerate(experiments)}
    return sorted(ordered, key=lambda j: rank.get(j.experiment.name, len(rank)))


@dataclass(frozen=True)
class Rendered:
    """One output file: its name, text and the quotes it is built from."""

    filename: str
    title: str
    text: str
    quotes: tuple[CommandQuote | SqlQuote, ...]
    sources: tuple[Source, ...]


@dataclass(frozen=True)
class Skipped:
    filename: str
    title: str
    missing: tuple[str, ...]


def _render(
    env: jinja2.Environment, template: str, quotes: Quotes, **context: Any
) -> tuple[str, tuple[CommandQuote | SqlQuote, ...]]:
    functions: dict[str, Callable[..., Any]] = {
        "cmd": quotes.cmd,
        "has_cmd": quotes.has_cmd,
        "sql": quotes.sql,
        "has_sql": quotes.has_sql,
        "provenance": quotes.provenance,
        "attempt_of": quotes.attempt_of,
        "repair_of": quotes.repair_of,
        "journal_of": quotes.journal_of,
        "journal_with": quotes.journal_with,
        "run_of": quotes.run_of,
        "step_of": quotes.step_of,
        "production": quotes.production,
        "sql_production": quotes.sql_production,
    }
    try:
        text = tidy(env.get_template(template).render(**functions, **context))
    except jinja2.TemplateError as error:
        raise RunbookError(f"{template}: {type(error).__name__}: {error}") from None
    return text, tuple(quotes.used)


def render_all(
    journals: Sequence[Journal], templates: Path | None = None
) -> tuple[list[Rendered], list[Skipped]]:
    """Render everything in memory: the experiment records, the runbooks, the index."""
    if not journals:
        raise RunbookError("no journals to render runbooks from")
    env = environment(templates)
    rendered: list[Rendered] = []
    skipped: list[Skipped] = []
    for name, journal in newest_per_experiment(journals).items():
        quotes = Quotes("experiment.md.j2", [journal])
        text, used = _render(env, "experiment.md.j2", quotes, journal=journal)
        rendered.append(
            Rendered(
                f"experiment-{name}.md",
                f"Experiment record: {journal.experiment.title}",
                text,
                used,
                (Source.of(journal),),
            )
        )
    for book in RUNBOOKS:
        order = search_order(journals, book.experiments)
        probe = Quotes(book.template, order)
        missing = tuple(
            [f"run:{x}" for x in book.requires_runs if probe.run_of(x) is None]
            + [c for c in book.requires if not probe.has_cmd(c)]
            + [f"sql:{s}" for s in book.requires_sql if not probe.has_sql(s)]
        )
        if missing:
            skipped.append(Skipped(book.filename, book.title, missing))
            continue
        quotes = Quotes(book.template, order)
        text, used = _render(env, book.template, quotes, book=book, journals=order)
        sources: list[Source] = []
        for q in used:
            if q.source not in sources:
                sources.append(q.source)
        rendered.append(Rendered(book.filename, book.title, text, used, tuple(sources)))
    index, _ = _render(
        env,
        "index.md.j2",
        Quotes("index.md.j2", []),
        rendered=rendered,
        skipped=skipped,
        journals=_order(journals),
    )
    rendered.append(Rendered("README.md", "Runbooks", index, (), ()))
    return rendered, skipped


def render_runbooks(
    journals: Sequence[Journal], out_dir: Path, *, templates: Path | None = None
) -> list[Path]:
    """Render the runbooks from ``journals`` into ``out_dir``; returns the files written.

    Files are written only when their text changed, so a re-run leaves mtimes alone.
    """
    rendered, _ = render_all(journals, templates)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for r in rendered:
        path = out_dir / r.filename
        data = r.text.encode("utf-8")
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
        written.append(path)
    return written


def journal_paths(inputs: Iterable[Path]) -> list[Path]:
    """Files as given; a directory gives its ``*.json`` and ``*/journal.json`` (sorted)."""
    out: list[Path] = []
    for p in inputs:
        if p.is_dir():
            out += sorted(p.glob("*.json")) + sorted(p.glob("*/journal.json"))
        else:
            out.append(p)
    return out


def load_journals(sources: Sequence[Path]) -> list[Journal]:
    """The journals in ``sources`` (files or directories); none found is a :class:`RunbookError`."""
    missing = [str(p) for p in sources if not p.exists()]
    files = journal_paths(p for p in sources if p.exists())
    if missing or not files:
        raise RunbookError(
            f"no journals in {', '.join(missing or map(str, sources))}"
            " (`inv experiment NAME` writes one)"
        )
    return [load(p) for p in files]


@dataclass(frozen=True)
class Published:
    """A verified run's journal kept next to the runbooks, and the runbooks rendered again."""

    kept: Path
    written: tuple[Path, ...]
    out_dir: Path


def publish(journal_file: Path, journal: Journal, out_dir: Path | None = None) -> Published:
    """After a verified experiment: keep its journal as ``<out>/journals/<name>-<env>.json``
    and re-render every runbook of ``out_dir`` (default ``runbooks/``) from the journals there.

    Runbooks quote verified runs only: a journal that deviated is refused.
    """
    if journal.deviated:
        raise RunbookError(f"{journal_file}: the run deviated; runbooks quote verified runs only")
    out = out_dir or paths.PROJECT_ROOT / "runbooks"
    kept = out / "journals" / f"{journal.experiment.name}-{journal.env.name}.json"
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(journal_file, kept)
    journals = [load(p) for p in journal_paths([kept.parent])]
    return Published(kept, tuple(render_runbooks(journals, out)), out)


def check(journals: Sequence[Journal], out_dir: Path) -> list[str]:
    """Files in ``out_dir`` that differ from what the journals render (missing counts)."""
    rendered, _ = render_all(journals)
    stale = []
    for r in rendered:
        path = out_dir / r.filename
        if not path.exists() or path.read_bytes() != r.text.encode("utf-8"):
            stale.append(str(path))
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m opskit.runbooks",
        description="Render Markdown runbooks from experiment journals (never from live state).",
    )
    parser.add_argument(
        "--journal",
        action="append",
        type=Path,
        required=True,
        metavar="PATH",
        help="a journal.json, or a directory of them (repeatable)",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when a file in --out differs from what would be rendered",
    )
    args = parser.parse_args(argv)
    try:
        files = journal_paths(args.journal)
        if not files:
            raise RunbookError(f"no journals found in {', '.join(map(str, args.journal))}")
        journals = [load(p) for p in files]
        if args.check:
            stale = check(journals, args.out)
            for name in stale:
                print(f"stale: {name}", file=sys.stderr)
            return int(ExitCode.FINDINGS) if stale else 0
        for path in render_runbooks(journals, args.out):
            print(path)
    except (JournalError, RunbookError) as error:
        print(f"error: {error}", file=sys.stderr)
        return int(error.exit_code)
    return 0


__all__ = [
    "RUNBOOKS",
    "CommandQuote",
    "OperationalRunbook",
    "Quotes",
    "RunbookError",
    "SqlQuote",
    "check",
    "mermaid",
    "render_all",
    "render_runbooks",
]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
