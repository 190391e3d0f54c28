"""Production-ready commands: every step of an operational runbook shows the command for production
first and, beneath it, the exact command a rehearsal executed. The production form may differ
from the executed one only by the environment, ids, thresholds and the reason (and leave out
--yes, --json and --reader): checked here on the rendered Markdown, pair by pair, with
`check_production_form`, which reads both commands on its own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from opskit.journal import Journal, load
from opskit.production import (
    THRESHOLDS,
    check_production_form,
    production_form,
    sql_production_form,
)
from opskit.runbooks import RUNBOOKS, render_all

ROOT = Path(__file__).resolve().parents[2]
OPERATIONAL = [b.filename for b in RUNBOOKS]
PAIR = re.compile(
    r"<!-- production -->\n(`{3,})bash\n(?P<prod>.*?)\n\1\n.*?"
    r"<!-- executed -->\n(`{3,})bash\n(?P<ran>.*?)\n\3\n",
    re.S,
)
SQL_PAIR = re.compile(
    r"<!-- production sql -->\n(`{3,})sql\n(?P<prod>.*?)\n\1\n.*?"
    r"<!-- executed sql -->\n(`{3,})sql\n(?P<ran>.*?)\n\3\n",
    re.S,
)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def committed() -> dict[str, str]:
    """The runbooks the committed journals render (runbooks/ holds exactly these)."""
    journals: list[Journal] = [load(p) for p in sorted((ROOT / "runbooks/journals").glob("*.json"))]
    files, skipped = render_all(journals)
    assert not skipped, f"operational runbooks not rendered: {skipped}"
    return {f.filename: f.text for f in files}


@pytest.mark.parametrize("name", OPERATIONAL)
def test_every_step_is_a_production_form_of_an_executed_command(
    committed: dict[str, str], name: str
) -> None:
    text = committed[name]
    pairs = list(PAIR.finditer(text))
    assert pairs and len(pairs) == text.count("<!-- production -->"), name
    for m in pairs:
        prod, ran = m["prod"], m["ran"]
        assert check_production_form(prod, ran) == [], (prod, ran)
        assert "--yes" not in prod.split() and "-y" not in prod.split()
        assert "--env local" not in prod and '--env "$ENV"' in prod
        assert "rehearsal" not in prod
        for flag, t in THRESHOLDS.items():
            if flag in prod.split():
                assert f"{flag} {t.production}" in prod
                assert f"`{flag} {t.production}`: " in text[m.end(2) : m.start(4)], (
                    f"{flag}: the runbook says how to choose it"
                )
    for m in SQL_PAIR.finditer(text):
        assert m["prod"] == UUID.sub("<FLIGHT_ID>", m["ran"])
        assert not UUID.search(m["prod"])


@pytest.mark.parametrize("name", OPERATIONAL)
def test_every_mitigation_was_exercised(committed: dict[str, str], name: str) -> None:
    text = committed[name]
    assert "No recorded run has exercised this fix yet" not in text
    mitigation = text.split("## Mitigation", 1)[1].split("## Verification", 1)[0]
    # each mitigation that runs a command shows its production form and its evidence
    for section in re.split(r"^### ", mitigation, flags=re.M)[1:]:
        if "```bash" in section:
            assert "<!-- production -->" in section and "<!-- executed -->" in section, section[:80]


def test_the_fixes_of_every_mitigation_are_in_some_runbook(committed: dict[str, str]) -> None:
    """resume (with and without a work queue, then inv restart), recover the instance, the whole
    plan, enqueue, fail, re-encode, force ready: each has a production form somewhere."""
    prods = [m["prod"] for name in OPERATIONAL for m in PAIR.finditer(committed[name])]
    wanted = [
        "--stalled-after 30m --flight <FLIGHT_ID> --fix --action resume",
        'inv restart --env "$ENV"',
        'repairtool recover instance --env "$ENV" <STAIRWAY_NAME> --fix',
        "--queue-retention 3d --flight <FLIGHT_ID> --fix --reason",
        "--fix --action fail",
        "--fix --action reencode",
        'repairtool recover force-ready --env "$ENV" <FLIGHT_ID> --fix',
        'repairtool recover enqueue --env "$ENV" <FLIGHT_ID> --fix',
        'repairtool orphans --env "$ENV" --stalled-after 30m --fix --reason',
    ]
    for want in wanted:
        assert any(want in p for p in prods), want


EXECUTED = (
    "repairtool orphans --env local --reader 0.0.61 --stalled-after 5s --queue-retention 20s"
    " --flight 8c98f10c-f338-4236-afbf-01d6771ae5ce --fix --reason 'rehearsal: lost' --yes --json"
)


def test_the_production_form_substitutes_only_env_ids_thresholds_and_reason() -> None:
    p = production_form(EXECUTED, flight_ids=["8c98f10c-f338-4236-afbf-01d6771ae5ce"])
    assert p.text == (
        'repairtool orphans --env "$ENV" --stalled-after 30m --queue-retention 3d'
        ' --flight <FLIGHT_ID> --fix --reason "<TICKET>: <why>"'
    )
    assert [t.flag for t in p.thresholds] == ["--stalled-after", "--queue-retention"]
    assert check_production_form(p.text, EXECUTED) == []


@pytest.mark.parametrize(
    ("production", "problem"),
    [
        (  # an action nobody executed
            'repairtool orphans --env "$ENV" --stalled-after 30m --queue-retention 3d'
            ' --flight <FLIGHT_ID> --fix --action fail --reason "<TICKET>: <why>"',
            "words",
        ),
        (  # a rehearsal threshold kept
            'repairtool orphans --env "$ENV" --stalled-after 5s --queue-retention 3d'
            ' --flight <FLIGHT_ID> --fix --reason "<TICKET>: <why>"',
            "--stalled-after 5s",
        ),
        (  # the rehearsal's environment
            "repairtool orphans --env local --stalled-after 30m --queue-retention 3d"
            ' --flight <FLIGHT_ID> --fix --reason "<TICKET>: <why>"',
            "--env 'local'",
        ),
        (  # --yes
            'repairtool orphans --env "$ENV" --stalled-after 30m --queue-retention 3d'
            ' --flight <FLIGHT_ID> --fix --reason "<TICKET>: <why>" --yes',
            "--yes in a production form",
        ),
        (  # a flight id where the executed command had something else
            'repairtool orphans --env "$ENV" --stalled-after 30m --queue-retention 3d'
            ' --flight <FLIGHT_ID> <FLIGHT_ID> --reason "<TICKET>: <why>"',
            "word 11",
        ),
    ],
)
def test_the_check_finds_anything_else(production: str, problem: str) -> None:
    problems = check_production_form(production, EXECUTED)
    assert problems and any(problem in p for p in problems), problems


def test_sql_production_form_hides_only_the_flight_id() -> None:
    q = "SELECT 1 FROM flightlog WHERE flightid = '8c98f10c-f338-4236-afbf-01d6771ae5ce'"
    out = sql_production_form(q, flight_ids=["8c98f10c-f338-4236-afbf-01d6771ae5ce"])
    assert out == "SELECT 1 FROM flightlog WHERE flightid = '<FLIGHT_ID>'"
