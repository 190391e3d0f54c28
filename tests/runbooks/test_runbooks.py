"""Runbooks rendered from journals only: byte-identical, golden files, provenance enforced.

The golden files in ``expected/`` are the runbooks the fixture journals give. After a deliberate
change to a template or to the fixtures, regenerate them and review the diff::

    .venv/bin/python -m opskit.runbooks --journal tests/runbooks/fixtures \\
        --out tests/runbooks/expected
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from opskit import runbooks
from opskit.journal import Journal, load
from opskit.runbooks import (
    RunbookError,
    cell,
    fence,
    main,
    mermaid_text,
    render_all,
    render_runbooks,
)

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"
EXPECTED = HERE / "expected"
REGENERATE = (
    ".venv/bin/python -m opskit.runbooks --journal tests/runbooks/fixtures"
    " --out tests/runbooks/expected"
)
TEMPLATES = runbooks.TEMPLATES_DIR


@pytest.fixture(scope="module")
def journals() -> list[Journal]:
    return [load(p) for p in sorted(FIXTURES.glob("*.json"))]


@pytest.fixture(scope="module")
def rendered(journals: list[Journal]) -> dict[str, str]:
    files, _ = render_all(journals)
    return {f.filename: f.text for f in files}


def fenced_blocks(text: str, *, production: bool = False) -> list[tuple[str, str]]:
    """(language, body) of every fenced block; without ``production``, not the production
    forms (``<!-- production -->`` blocks: tests/runbooks/test_production_forms.py checks them)."""
    blocks = []
    for m in re.finditer(r"^(`{3,})([\w-]*)\n(.*?)\n\1$", text, re.M | re.S):
        marked = (
            text[: m.start()].rstrip().endswith(("<!-- production -->", "<!-- production sql -->"))
        )
        if marked and not production:
            continue
        blocks.append((m[2], m[3]))
    return blocks


def test_rendering_twice_gives_identical_bytes(journals: list[Journal], tmp_path: Path) -> None:
    first = render_runbooks(journals, tmp_path / "a")
    second = render_runbooks(list(reversed(journals)), tmp_path / "b")
    assert [p.name for p in first] == [p.name for p in second]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_golden_files(rendered: dict[str, str]) -> None:
    expected = {p.name: p.read_text(encoding="utf-8") for p in EXPECTED.glob("*.md")}
    hint = f"the runbooks changed; if that is intended, regenerate them with `{REGENERATE}`"
    assert sorted(rendered) == sorted(expected), hint
    for name, text in rendered.items():
        assert text == expected[name], f"{name}: {hint}"


def test_check_mode_of_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--journal", str(FIXTURES), "--out", str(EXPECTED), "--check"]) == 0
    out = tmp_path / "out"
    assert main(["--journal", str(FIXTURES), "--out", str(out)]) == 0
    assert (out / "README.md").exists()
    (out / "README.md").write_text("edited\n", encoding="utf-8")
    assert main(["--journal", str(FIXTURES), "--out", str(out), "--check"]) == 1
    assert f"stale: {out / 'README.md'}" in capsys.readouterr().err


def test_cli_reports_a_bad_journal_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "journal.json"
    bad.write_text("{}", encoding="utf-8")
    assert main(["--journal", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {bad}: missing key 'run_id'\n"


def test_every_quoted_command_and_query_was_run(
    journals: list[Journal], rendered: dict[str, str]
) -> None:
    ran = {c.command for j in journals for c in j.commands}
    queries = {ev.query for j in journals for _, ev in j.sql_evidence()}
    for name, text in rendered.items():
        for lang, body in fenced_blocks(text):
            if lang == "bash":
                assert body in ran, f"{name} quotes a command no journal ran: {body}"
            elif lang == "sql":
                assert body in queries, f"{name} quotes SQL no journal ran: {body}"


def test_operational_runbooks_have_every_section_in_order(rendered: dict[str, str]) -> None:
    sections = [
        "## Meaning",
        "## Impact",
        "## Diagnosis",
        "## Mitigation",
        "## Verification",
        "## Rollback",
        "## Escalation",
        "## Provenance",
    ]
    for book in runbooks.RUNBOOKS:
        text = rendered[book.filename]
        assert text.startswith(f"# {book.title}\n\n**Trigger.**")
        positions = [text.index(f"\n{s}\n") for s in sections]
        assert positions == sorted(positions), book.filename
        rollback = text[text.index("## Rollback") : text.index("## Escalation")]
        assert "force fatal is final" in rollback
        assert "re-encoding is reversed by rewriting the audited old value" in rollback


def test_mitigation_goes_from_dry_run_to_fix(rendered: dict[str, str]) -> None:
    text = rendered["orphaned-running-flights.md"]
    mitigation = text[text.index("## Mitigation") : text.index("## Verification")]
    steps = re.findall(r"^### (\d)\. (.*)$", mitigation, re.M)
    assert [n for n, _ in steps] == ["1", "2", "3", "4", "5", "6"]
    assert steps[0][1] == "Dry run first"
    assert "--fix --action resume" in mitigation.split("### 2.")[1].split("### 3.")[0]
    assert "inv restart" in mitigation.split("### 3.")[1].split("### 4.")[0]
    assert "--fix --action fail" in mitigation.split("### 6.")[1]


def test_provenance_names_the_run_and_time_of_each_quote(rendered: dict[str, str]) -> None:
    text = rendered["flightmap-decode-failure.md"]
    provenance = text[text.index("## Provenance") :]
    assert re.search(
        r"^\| command `orphans-fix-fail` \| decode-failure-fail-local-\d{8}T\d{6}Z-\w{4} \|"
        r" decode-failure-fail on local \| \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \| pass \|$",
        provenance,
        re.M,
    ), provenance
    assert "| command `orphans-fix-reencode` | decode-failure-on-resume-local-" in provenance
    assert "| sql `flight-log` |" in provenance


def test_experiment_record_follows_the_2021_layout(
    journals: list[Journal], rendered: dict[str, str]
) -> None:
    for journal in runbooks.newest_per_experiment(journals).values():
        text = rendered[f"experiment-{journal.experiment.name}.md"]
        headings = re.findall(r"^#{1,3} .*$", text, re.M)
        layout = [
            "# Stairway Experiments",
            f"## 1. {journal.experiment.title}",
            "### Code Changes",
            "### Deployment",
            "### Environment",
            "### Invocation",
            "### Database",
            "### Running the test",
            "### Logs",
            *(f"## Test attempt {a.number}: {a.title}" for a in journal.attempts),
            "## Notes",
        ]
        positions = [headings.index(h) for h in layout]
        assert positions == sorted(positions), journal.experiment.name
        assert journal.setup.deployment.command in text
        assert journal.setup.database.connect_command in text
        assert journal.setup.logs_query in text
        assert f"run `{journal.run_id}`" in text.splitlines()[-3]  # provenance footer
        for attempt in journal.attempts:
            assert attempt.flight_id is not None and attempt.flight_id in text
            assert attempt.root_cause in text


def test_experiment_record_shows_what_repair_did(rendered: dict[str, str]) -> None:
    text = rendered["experiment-decode-failure-on-resume.md"]
    assert re.search(r"^\| reencode \| [0-9a-f-]{36} \| rewrite_input \| changed \|", text, re.M)
    assert re.search(r"^\| reencode \| [0-9a-f-]{36} \| enqueue_ready \| changed \|", text, re.M)
    assert "Flight state after the repair step: `SUCCESS`, no owner" in text
    assert "Found value 'MC_WORKSPACE' is not an instance of type" in text
    failed = rendered["experiment-decode-failure-fail.md"]
    assert re.search(r"^\| fail \| [0-9a-f-]{36} \| force_fatal \| changed \|", failed, re.M)


MERMAID_LINE = re.compile(
    r"^    (participant [A-Za-z0-9]+ as [A-Za-z0-9 ._-]+"
    r"|Note over [A-Za-z0-9]+: .+"
    r"|[A-Za-z0-9]+->>[A-Za-z0-9]+: .+)$"
)


def test_mermaid_blocks_are_plausible(journals: list[Journal], rendered: dict[str, str]) -> None:
    seen = 0
    for name, text in rendered.items():
        for lang, body in fenced_blocks(text):
            if lang != "mermaid" or not body.startswith("sequenceDiagram"):
                continue
            seen += 1
            first, *lines = body.split("\n")
            assert first == "sequenceDiagram", name
            assert lines, name
            declared = set()
            for line in lines:
                assert MERMAID_LINE.match(line), f"{name}: {line!r}"
                if line.startswith("    participant "):
                    declared.add(line.split()[1])
                    continue
                head, message = line.split(": ", 1)
                assert ";" not in message and "#" not in message, f"{name}: {line!r}"
                assert "<" not in message and ">" not in message, f"{name}: {line!r}"
                for actor in re.findall(r"[A-Za-z0-9]+", head.replace("Note over", "")):
                    assert actor in declared, f"{name}: undeclared {actor} in {line!r}"
    records = runbooks.newest_per_experiment(journals).values()
    assert seen == sum(len(j.attempts) for j in records)  # one per attempt of each record


def test_a_template_quoting_an_unknown_command_fails(
    journals: list[Journal], tmp_path: Path
) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    book = templates / "orphaned-running-flights.md.j2"
    book.write_text(
        book.read_text(encoding="utf-8") + '\n{{ cmd("rm-rf-everything").command }}\n',
        encoding="utf-8",
    )
    with pytest.raises(RunbookError) as info:
        render_all(journals, templates)
    assert str(info.value).startswith(
        "orphaned-running-flights.md.j2: quotes command 'rm-rf-everything', which no journal ran"
    )


def test_a_template_quoting_unknown_sql_fails(journals: list[Journal], tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    record = templates / "experiment.md.j2"
    record.write_text(
        record.read_text(encoding="utf-8") + '\n{{ sql("delete-everything").query }}\n',
        encoding="utf-8",
    )
    with pytest.raises(RunbookError, match="quotes SQL 'delete-everything', which no journal"):
        render_all(journals, templates)


def test_an_undefined_template_variable_fails(journals: list[Journal], tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    (templates / "index.md.j2").write_text("{{ no_such_thing }}\n", encoding="utf-8")
    with pytest.raises(RunbookError, match=r"index\.md\.j2: UndefinedError"):
        render_all(journals, templates)


def test_runbooks_whose_commands_no_run_executed_are_skipped(journals: list[Journal]) -> None:
    [single] = [j for j in journals if j.experiment.name == "single-instance-pod-kill"]
    files, skipped = render_all([single])
    names = [f.filename for f in files]
    assert names == ["experiment-single-instance-pod-kill.md", "README.md"]
    missing = {s.filename: s.missing for s in skipped}
    assert set(missing) == {b.filename for b in runbooks.RUNBOOKS}
    assert missing["flightmap-decode-failure.md"][:2] == (
        "run:decode-failure-on-resume",
        "run:decode-failure-fail",
    )
    assert "decode" in missing["flightmap-decode-failure.md"]  # no journal ran it either
    index = files[-1].text
    assert (
        "* `flightmap-decode-failure.md` (FlightMap decode failure): missing"
        " `run:decode-failure-on-resume`, `run:decode-failure-fail`, `decode`"
    ) in index


def test_no_journals_is_an_error() -> None:
    with pytest.raises(RunbookError, match="no journals"):
        render_all([])


def test_markdown_helpers_escape() -> None:
    assert fence("a ``` b", "text") == "````text\na ``` b\n````"
    assert fence(["x", "y"]) == "```\nx\ny\n```"
    assert cell("a|b\nc <init>") == "a\\|b c &lt;init&gt;"
    assert cell(None) == "NULL" and cell(True) == "true"
    assert mermaid_text("a; b # c <d> e -> f\nnext") == "a, b no. c ‹d› e → f next"
    assert mermaid_text("x" * 200).endswith("…") and len(mermaid_text("x" * 200)) == 90
