"""Pictures where people would rather look than read, checked on the rendered Markdown: a triage
flowchart in every operational runbook that leads to sections that exist; in every experiment
record, per attempt, a state diagram of the flight (with the owner on each edge into RUNNING), a
Gantt chart of pods and statuses, and a sequence diagram whose state-change notes keep the new
status and whose arrows start only at pods alive at that moment."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from opskit.journal import Attempt, Journal, load, parse_time
from opskit.runbooks import RUNBOOKS, newest_per_experiment, render_all

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"
#: the finding kinds (or situations) each operational runbook's triage must lead from
KINDS = {
    "orphaned-running-flights.md": ("dead_owner", "stale_instance", "stalled"),
    "stuck-ready-or-queued-flights.md": ("queued_overdue", "unqueued"),
    "flightmap-decode-failure.md": ("make-flight failure", "reencodable"),
    "fatal-after-dependency-outage.md": ("DISMAL FAILURE", "FATAL"),
}
STATE = re.compile(r"changed status to (\w+)")


def _journals(where: Path) -> list[Journal]:
    return [load(p) for p in sorted(where.glob("*.json"))]


@pytest.fixture(scope="module", params=["committed", "fixtures"])
def rendered(request: pytest.FixtureRequest) -> tuple[dict[str, str], list[Journal]]:
    where = ROOT / "runbooks/journals" if request.param == "committed" else FIXTURES
    journals = _journals(where)
    files, _ = render_all(journals)
    return {f.filename: f.text for f in files}, journals


def mermaid_blocks(text: str) -> list[str]:
    return re.findall(r"^```mermaid\n(.*?)\n```$", text, re.M | re.S)


def test_every_operational_runbook_has_a_triage_flowchart(
    rendered: tuple[dict[str, str], list[Journal]],
) -> None:
    files, _ = rendered
    books = [b.filename for b in RUNBOOKS if b.filename in files]
    assert books, "no operational runbook rendered"
    for name in books:
        text = files[name]
        triage = text.split("## Triage", 1)[1].split("\n## ", 1)[0]
        [chart] = mermaid_blocks(triage)
        assert chart.startswith("flowchart TD"), name
        for kind in KINDS[name]:
            assert kind in chart, (name, kind)
        mitigation = text.split("\n## Mitigation", 1)[1].split("\n## Verification", 1)[0]
        headings = set(re.findall(r"^### (\w+)\. ", mitigation, re.M))
        referenced = set(re.findall(r"Mitigation (\w+):", chart))
        assert referenced, name
        assert referenced <= headings, (name, referenced - headings)
        for link in re.findall(r"([\w-]+\.md)", chart):
            assert link in files, (name, link)


def _attempt_blocks(record: str) -> list[str]:
    return re.split(r"^## Test attempt \d+", record, flags=re.M)[1:]


def _alive(attempt: Attempt, pod: str, at: dt.datetime) -> bool:
    """From the journal itself: the pod's watch record, else its kill in the timeline."""
    if attempt.pod_lives:
        for life in attempt.pod_lives:
            if life.name == pod:
                return parse_time(life.created) <= at + dt.timedelta(seconds=1) and (
                    life.deleted is None or at < parse_time(life.deleted)
                )
        return False
    kills = [
        parse_time(e.at)
        for e in attempt.timeline
        if e.pod == pod and e.source == "kube" and e.event in ("kill", "terminating", "pod_gone")
    ]
    return not kills or at < min(kills)


def test_every_experiment_record_draws_the_flight_and_the_pods(
    rendered: tuple[dict[str, str], list[Journal]],
) -> None:
    files, journals = rendered
    for name, journal in newest_per_experiment(journals).items():
        record = files[f"experiment-{name}.md"]
        blocks = _attempt_blocks(record)
        assert len(blocks) == len(journal.attempts)
        for attempt, block in zip(journal.attempts, blocks, strict=True):
            charts = mermaid_blocks(block)
            states = [c for c in charts if c.startswith("stateDiagram-v2")]
            gantts = [c for c in charts if c.startswith("gantt")]
            [sequence] = [c for c in charts if c.startswith("sequenceDiagram")]
            assert len(states) == 1 and len(gantts) == 1, name
            _check_states(states[0], attempt, name)
            _check_gantt(gantts[0], attempt, name)
            _check_sequence(sequence, attempt, name)


def _check_states(chart: str, attempt: Attempt, name: str) -> None:
    labels = dict(re.findall(r'^    state "(\w+)" as (s\d+)$', chart, re.M)[::1])
    names = {sid: status for status, sid in re.findall(r'state "(\w+)" as (s\d+)', chart)}
    assert labels
    edges = re.findall(r"^    (\[\*\]|s\d+) --> (s\d+|\[\*\]): ?(.*)$", chart, re.M)
    path = [names[dst] for _, dst, _ in edges if dst != "[*]"]
    assert path[0] == "RUNNING", name  # submitted
    # every status the engine logged for the flight is a state on the path, in order
    logged = [
        m[1]
        for e in attempt.timeline
        if e.event == "state_change" and (m := STATE.search(e.detail))
    ]
    it = iter(path)
    assert all(any(s == p for p in it) for s in _dedupe(logged)), (name, logged, path)
    final = attempt.repair.state_after.status if attempt.repair else attempt.final_state.status
    assert path[-1] == final, name
    for _, dst, label in edges:
        if dst != "[*]" and names[dst] == "RUNNING":
            assert "owner pod " in label, (name, label)  # the owner on every edge into RUNNING
        elif dst != "[*]":
            assert label.startswith("+"), (name, label)


def _dedupe(values: list[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        if not out or out[-1] != v:
            out.append(v)
    return out


def _check_gantt(chart: str, attempt: Attempt, name: str) -> None:
    assert "section Pods" in chart and "section Flight" in chart, name
    pods_part = chart.split("section Pods", 1)[1].split("section Flight", 1)[0]
    bars = re.findall(r"^    pod ([\w.-]+)", pods_part, re.M)
    for pod in (attempt.pods.receiver, attempt.pods.killed, attempt.pods.replacement):
        if pod:
            assert any(pod.endswith(b) for b in bars), (name, pod, bars)
    if attempt.pods.killed:
        assert re.search(r"killed :crit", pods_part), name
    times = re.findall(
        r", (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}), (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})$",
        chart,
        re.M,
    )
    assert times and all(a <= b for a, b in times), name


def _check_sequence(chart: str, attempt: Attempt, name: str) -> None:
    aliases = dict(re.findall(r"^    participant (P\d+) as pod ([\w.-]+)$", chart, re.M))
    # every state change the engine logged is a note that keeps the new status
    for e in attempt.timeline:
        m = STATE.search(e.detail) if e.event == "state_change" else None
        if m:
            clock = e.at.split("T", 1)[1]
            assert re.search(rf"^    Note over \w+: {re.escape(clock)} → {m[1]}\b", chart, re.M), (
                name,
                e.at,
                m[1],
            )
    assert "changed status" not in chart  # shown as → STATUS, never cut
    # arrows start only at pods alive at that moment
    for alias, clock in re.findall(r"^    (P\d+)->>DB: (\d\d:\d\d:\d\d\.\d+)Z", chart, re.M):
        short = aliases[alias]
        pod = next(p for p in _pods(attempt) if p.endswith(short))
        at = _at(attempt, clock)
        assert _alive(attempt, pod, at), (name, pod, clock)


def _pods(attempt: Attempt) -> set[str]:
    p = attempt.pods
    names = {x for x in (p.receiver, p.owner, p.killed, p.replacement, *p.survivors) if x}
    return names | {e.pod for e in attempt.timeline if e.pod}


def _at(attempt: Attempt, clock: str) -> dt.datetime:
    day = parse_time(attempt.started).date()
    t = dt.datetime.fromisoformat(f"{day.isoformat()}T{clock}+00:00")
    return (
        t if t >= parse_time(attempt.started) - dt.timedelta(hours=1) else t + dt.timedelta(days=1)
    )


def test_the_16_state_changes_the_issue_found_cut_keep_their_status() -> None:
    """The four journals the runbooks were rendered from before this change held 16 engine
    state changes, and every one of them was cut at 90 characters before its new status."""
    from opskit.runbooks import mermaid

    changes = 0
    for path in sorted((Path(__file__).parent / "pictures").glob("*.json")):
        journal = load(path)
        for attempt in journal.attempts:
            chart = mermaid(attempt)
            for e in attempt.timeline:
                m = STATE.search(e.detail) if e.event == "state_change" else None
                if m:
                    changes += 1
                    assert f"{e.at.split('T', 1)[1]} → {m[1]} (flight " in chart
            _check_sequence(chart, attempt, journal.experiment.name)
    assert changes == 16


def test_the_arrow_the_issue_found_from_a_dead_pod_is_a_note_now() -> None:
    """The journal the runbooks were rendered from before: its `disowned` database entry names
    the killed pod, 2 s after `inv kill-pod` deleted it. It was an arrow from that pod."""
    from opskit.runbooks import mermaid

    journal = load(Path(__file__).parent / "pictures/single-instance-pod-kill-before-issue-13.json")
    (attempt,) = journal.attempts
    killed = attempt.pods.killed
    assert killed
    chart = mermaid(attempt)
    alias = next(
        a
        for a, pod in re.findall(r"participant (P\d+) as pod ([\w.-]+)", chart)
        if killed.endswith(pod)
    )
    entry = next(e for e in attempt.timeline if e.source == "db" and e.event == "disowned")
    assert entry.pod == killed
    clock = entry.at.split("T", 1)[1]
    assert f"    Note over DB: {clock} disowned:" in chart
    assert not re.search(rf"^    {alias}->>DB: {re.escape(clock)}", chart, re.M)
    _check_sequence(chart, attempt, journal.experiment.name)
