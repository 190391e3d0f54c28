"""An incident note: a repair's findings, plan and audited changes as short Markdown, ready to
paste into an incident channel or ticket (pure: from a ``repairtool.orphans/1`` or
``repairtool.recover/1`` document, as ``repairtool … -o json`` prints it).

``repairtool orphans --fix -o markdown`` prints it after a repair; ``inv runbook --incident
FILE`` renders it from a saved document. Stored values never reach the document (findings carry
descriptions only); every string is masked again for tokens and URL passwords on the way out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from repairtool.errors import UsageError
from repairtool.flightmap.secrets import MASK, SECRET_VALUE

SCHEMAS = ("repairtool.orphans/1", "repairtool.recover/1")
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s/]+@", re.I)


def _clean(value: Any) -> str:
    text = "-" if value is None or value == "" else str(value)
    text = SECRET_VALUE.sub(MASK, text)
    text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK + "@", text)
    return " ".join(text.replace("\\", "\\\\").replace("|", "\\|").split())


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_clean(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _state(value: Any) -> str:
    if not isinstance(value, dict):
        return "-"
    return f"{value.get('status') or '-'}/{value.get('stairway_id') or '-'}"


def _target(item: dict[str, Any]) -> str:
    return str(item.get("flight_id") or f"instance {item.get('instance')}")


def _changes(items: Sequence[dict[str, Any]], outcome: str) -> list[list[Any]]:
    rows = []
    for a in items:
        results = a.get("results") or []
        states = [_state(results[0].get("before"))] if results else []
        states += [_state(r.get("after")) for r in results]
        audit = ", ".join(str(r["audit_id"]) for r in results if r.get("audit_id") is not None)
        why = f" ({a['why']})" if a.get("why") else ""
        rows.append(
            [
                a.get("action"),
                _target(a),
                " → ".join(a.get("steps") or []),
                f"{outcome}{why}: " + " → ".join(states) if states else outcome + why,
                audit or "-",
            ]
        )
    return rows


def incident_markdown(doc: Any) -> str:
    """The incident note for a ``repairtool`` JSON document (see the module docstring)."""
    if not isinstance(doc, dict) or doc.get("schema") not in SCHEMAS:
        got = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise UsageError(
            f"not a repairtool document (schema {got!r}); expected one of {', '.join(SCHEMAS)}:"
            " save `repairtool orphans … --fix -o json` (or `recover … --json`) to a file"
        )
    if doc["schema"] == "repairtool.recover/1":
        return _recover_note(doc)
    where = ", ".join(
        x for x in (_clean(doc.get("environment")), _clean(doc.get("at"))) if x != "-"
    )
    applied = list(doc.get("applied") or [])
    skipped = list(doc.get("skipped") or [])
    fixed = "applied" in doc
    title = (
        f"**Stairway repair: {len(applied)} change{'s' if len(applied) != 1 else ''} applied,"
        f" {len(skipped)} skipped**"
        if fixed
        else f"**Stairway flights: {len(doc.get('findings') or [])} findings, dry run (nothing"
        " changed)**"
    )
    live = doc.get("liveness") or {}
    parts = [title + (f" ({where})" if where else "")]
    if doc.get("reason"):
        parts.append(f"Reason: {_clean(doc['reason'])}")
    findings = list(doc.get("findings") or [])
    parts.append(
        f"Findings: {len(findings)} (liveness `{_clean(live.get('source'))}`,"
        f" {_clean(live.get('confidence'))} confidence; {doc.get('scanned', 0)} non-terminal"
        " flights scanned)"
    )
    if findings:
        parts.append(
            _table(
                ["Kind", "Flight or instance", "Status", "Owner", "Proposed", "Why"],
                [
                    [
                        f.get("kind"),
                        _target(f),
                        f.get("status"),
                        f.get("owner"),
                        f.get("proposed_action"),
                        (f.get("evidence") or {}).get("pattern")
                        or (f.get("evidence") or {}).get("why"),
                    ]
                    for f in findings
                ],
            )
        )
    if fixed and (applied or skipped):
        parts.append("Changes (each one compare-and-set and audited):")
        parts.append(
            _table(
                ["Action", "Target", "Steps", "Result", "Audit ids"],
                _changes(applied, "applied") + _changes(skipped, "skipped"),
            )
        )
    elif doc.get("plan"):
        parts.append("Plan (not applied):")
        parts.append(
            _table(
                ["Action", "Target", "Steps"],
                [
                    [c.get("action"), _target(c), " → ".join(c.get("steps") or [])]
                    for c in doc["plan"]
                ],
            )
        )
    for key, label in (("refused", "Refused"), ("deferred", "Deferred by --limit")):
        items = doc.get(key) or []
        if items:
            parts.append(
                f"{label}: "
                + "; ".join(
                    f"{_target(x)} ({_clean(x.get('why') or x.get('action'))})" for x in items
                )
            )
    flights = sorted({str(a["flight_id"]) for a in applied if a.get("flight_id")})
    if flights:
        parts.append(
            "Audit trail: " + ", ".join(f"`repairtool flights audit --flight {f}`" for f in flights)
        )
    return "\n\n".join(parts) + "\n"


def _recover_note(doc: dict[str, Any]) -> str:
    results = list(doc.get("results") or [])
    head = (
        f"**Stairway repair: `recover {_clean(doc.get('action'))}` on"
        f" {_clean(doc.get('target'))}"
        + (" (dry run, nothing changed)**" if doc.get("dry_run") else "**")
    )
    parts = [head, _clean(doc.get("plan"))]
    if results:
        parts.append(
            _table(
                ["Action", "Flight", "Outcome", "Before", "After", "Audit id"],
                [
                    [
                        r.get("action"),
                        r.get("flight_id"),
                        r.get("outcome"),
                        _state(r.get("before")),
                        _state(r.get("after")),
                        r.get("audit_id"),
                    ]
                    for r in results
                ],
            )
        )
    return "\n\n".join(parts) + "\n"
