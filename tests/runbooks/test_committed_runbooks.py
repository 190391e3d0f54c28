"""The runbooks committed in runbooks/ are exactly what their committed journals render to."""

from __future__ import annotations

from pathlib import Path

from opskit.journal import load
from opskit.runbooks import render_runbooks

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "runbooks"


def test_committed_runbooks_regenerate_byte_for_byte(tmp_path: Path) -> None:
    journals = [load(p) for p in sorted((RUNBOOKS / "journals").glob("*.json"))]
    assert {j.experiment.name for j in journals} >= {
        "single-instance-pod-kill",
        "multi-instance-pod-kill",
        "decode-failure-on-resume",
    }
    written = render_runbooks(journals, tmp_path)
    names = sorted(p.name for p in written)
    committed = sorted(p.name for p in RUNBOOKS.glob("*.md"))
    assert names == committed, "regenerate with: inv runbook"
    for name in names:
        assert (tmp_path / name).read_bytes() == (RUNBOOKS / name).read_bytes(), (
            f"runbooks/{name} differs from what its journals render; regenerate with: inv runbook"
        )


def test_every_committed_journal_passed_and_holds_no_secret() -> None:
    for path in sorted((RUNBOOKS / "journals").glob("*.json")):
        journal = load(path)
        assert journal.verdict == "pass", path.name
        text = path.read_text()
        assert "PGPASSWORD=" not in text.replace("PGPASSWORD=<<MASKED>>", "")
        assert str(ROOT) not in text, f"{path.name} names this checkout's absolute path"
