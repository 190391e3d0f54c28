"""The incident note: a real repair's findings, changes and audit ids as Markdown, from
`repairtool orphans --fix -o markdown` and from `inv runbook --incident FILE`; no secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from invoke import MockContext
from invoke.exceptions import Exit
from sqlalchemy import Engine

from opskit import tasks
from opskit.errors import ExitCode
from repairtool.errors import UsageError
from repairtool.incident import incident_markdown
from repairtool.seed import seed_2021
from tests.repair.test_cli import ATTEMPT_1, ATTEMPT_4, LIVE, TOKEN, run

FIX = ("--live-instances", LIVE, "--fix", "--action", "fail", "--yes")


@pytest.fixture
def url(stairway_db: Engine) -> str:
    seed_2021(stairway_db)
    return stairway_db.url.render_as_string(hide_password=False)


def test_a_repair_in_markdown_is_the_incident_note(url: str) -> None:
    proc = run(
        "orphans", "--db", url, *FIX, "--reason", "INC-42: the 2021 orphans", "-o", "markdown"
    )
    assert proc.returncode == 0, proc.stderr
    note = proc.stdout
    assert note.startswith("**Stairway repair: 3 changes applied, 0 skipped** (")
    assert "Reason: INC-42: the 2021 orphans" in note
    assert "| Action | Target | Steps | Result | Audit ids |" in note
    assert f"| fail | {ATTEMPT_4} | force_fatal | applied: RUNNING/" in note
    assert "→ FATAL/- | " in note
    assert f"`repairtool flights audit --flight {ATTEMPT_1}`" in note
    assert TOKEN not in note and "password" not in note.lower()
    assert ":" + "***" not in note  # the database line names no password


def test_inv_runbook_renders_the_note_from_a_saved_document(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proc = run(
        "orphans", "--db", url, *FIX, "--reason", "INC-43 ya29.a0AfB_not-a-real-token", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    saved = tmp_path / "repair.json"
    saved.write_text(proc.stdout)
    doc = json.loads(proc.stdout)
    assert doc["reason"].startswith("INC-43") and doc["environment"].endswith("(--db)")
    tasks.runbook(MockContext(), incident=str(saved))
    note = capsys.readouterr().out
    assert note == incident_markdown(doc)
    assert "3 changes applied" in note and "ya29." not in note and "<<MASKED>>" in note
    # audit ids: one per change, as the document's results have them
    audit_ids = [r["audit_id"] for a in doc["applied"] for r in a["results"]]
    for aid in audit_ids:
        assert f"| {aid} |" in note


def test_a_dry_run_document_says_nothing_changed() -> None:
    doc = {
        "schema": "repairtool.orphans/1",
        "liveness": {"source": "--live-instances", "confidence": "high"},
        "scanned": 1,
        "findings": [
            {
                "kind": "dead_owner",
                "flight_id": "f1",
                "status": "RUNNING",
                "owner": "p",
                "proposed_action": "resume",
                "evidence": {"why": "gone"},
            }
        ],
        "plan": [{"action": "resume", "flight_id": "f1", "steps": ["disown", "enqueue"]}],
        "refused": [],
        "deferred": [],
    }
    note = incident_markdown(doc)
    assert "dry run (nothing changed)" in note and "Plan (not applied):" in note
    assert "disown → enqueue" in note


def test_not_a_repairtool_document_is_one_usage_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a repairtool document"):
        incident_markdown({"schema": "stairway-ops.journal/1"})
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(Exit) as info:
        tasks.runbook(MockContext(), incident=str(bad))
    assert info.value.code == ExitCode.USAGE and "not JSON" in str(info.value.message)
    with pytest.raises(Exit) as info:
        tasks.runbook(MockContext(), incident=str(tmp_path / "missing.json"))
    assert info.value.code == ExitCode.NOT_FOUND
