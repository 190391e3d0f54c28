"""End to end on the sandbox (slow): `multi-instance-pod-kill` and `decode-failure-on-resume`
run as `inv experiment` runs them — real pods, Postgres, Pub/Sub emulator, and every command
(`inv run-test`, `inv kill-pod`, `repairtool …`, `psql`) a real process — then the journal is
checked: verdict, recorded commands, timeline, log excerpts, SQL evidence, repair plan and audit
rows, no secrets, the repaired end state, runbooks rendered from it, and no process left over."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from opskit import paths
from opskit.envs import load_env
from opskit.events import Collector, Event, JournalWriter, Reporter
from opskit.experiment.definition import load_definition
from opskit.experiment.runner import run_experiment
from opskit.journal import Journal, dumps, find_secrets, load, parse_time
from opskit.journey import JOURNEY_TOKEN
from opskit.runbooks import Source, render_all
from sandbox.pubsub_emulator import find_launcher

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(180),
    pytest.mark.skipif(find_launcher() is None, reason="Pub/Sub emulator not installed"),
]

ATTEMPT_COMMANDS = [
    "steady-state-orphans",
    "run-test",
    "kill-pod",
    "logs",
    "flight-show",
    "flights-nonterminal",
    "flights-unowned",
    "instances",
    "decode",
    "orphans-dry-run",
    "orphans-dry-run-json",
]


@dataclass
class Run:
    journal: Journal
    path: Path
    sandbox_dir: Path
    event_kinds: tuple[str, ...]
    password: str = ""
    pids: list[int] = field(default_factory=list)

    def text(self) -> str:
        """Everything the run wrote: journal, events.jsonl, command logs."""
        files = [self.path, self.path.parent / "events.jsonl"]
        files += sorted((self.path.parent / "commands").glob("*.log"))
        return "".join(f.read_text() for f in files)


def _capture(sandbox_dir: Path) -> tuple[str, list[int]]:
    """The sandbox's DB password and process ids (to check later that the password never
    reached the journal and that every process is gone)."""
    password = (sandbox_dir / "pg" / "password").read_text().strip()
    state = json.loads((sandbox_dir / "sandbox.json").read_text())
    pids = [int(state[k]) for k in ("supervisor_pid", "emulator_pid") if state.get(k)]
    pid_files = list(sandbox_dir.glob("pg/**/postmaster.pid"))
    loc = sandbox_dir / "pg" / "location"
    if loc.exists():
        pid_files.append(Path(loc.read_text().strip()) / "data" / "postmaster.pid")
    pids += [int(f.read_text().splitlines()[0]) for f in pid_files if f.exists()]
    return password, pids


class _Spy:
    """Captures password and pids right after `deploy` (the sandbox is gone at the end)."""

    def __init__(self, sandbox_dir: Path) -> None:
        self.sandbox_dir = sandbox_dir
        self.password = ""
        self.pids: list[int] = []

    def __call__(self, event: Event) -> None:
        if event.kind == "command.done" and event.data.get("id") == "deploy":
            self.password, self.pids = _capture(self.sandbox_dir)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def _leftovers(root: Path, pids: list[int]) -> list[str]:
    out = [f"pid {p}" for p in pids if _alive(p)]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(root) in cmd:
            out.append(f"{proc.name}: {cmd[:120]}")
    return out


@pytest.fixture
def run(isolated: Path) -> Iterator[Callable[..., Run]]:
    """`run(name, keep_sandbox=False, via_task=False) -> Run`: through `run_experiment`, or
    through `inv experiment NAME --keep-sandbox --out …` as a person runs it. Afterwards the
    sandbox is destroyed and nothing the experiment started may still run."""
    from sandbox.lifecycle import destroy

    started: list[tuple[Path, list[int]]] = []

    def go(name: str, *, keep_sandbox: bool = False, via_task: bool = False) -> Run:
        state_root = paths.state_dir() / "experiments" / name
        sandbox_dir = state_root / "sandbox"
        pids: list[int] = []
        started.append((state_root, pids))
        if via_task:
            return _via_task(name, isolated, sandbox_dir, pids)
        spy = _Spy(sandbox_dir)
        events = Collector()
        run_dir = paths.new_run_dir(f"{name}-local")
        reporter = Reporter([events, spy, JournalWriter(run_dir / "events.jsonl")])
        journal = run_experiment(
            load_definition(name),
            load_env("local"),
            run_dir=run_dir,
            reporter=reporter,
            keep_sandbox=keep_sandbox,
        )
        pids += spy.pids
        kinds = tuple(events.kinds())
        return Run(journal, run_dir / "journal.json", sandbox_dir, kinds, spy.password, pids)

    yield go
    problems = []
    for state_root, pids in started:
        try:  # every sandbox is destroyed, also after a failed experiment or a failed destroy
            destroy(state_root / "sandbox")
        except Exception as error:
            problems.append(f"{state_root}: destroy failed: {error!r}")
        left = _leftovers(state_root, pids)
        if left:
            problems.append(f"{state_root}: {left}")
    assert not problems, f"processes left running: {problems}"


def _via_task(name: str, tmp: Path, sandbox_dir: Path, pids: list[int]) -> Run:
    out = tmp / "runbooks"
    inv = str(Path(sys.executable).parent / "inv")
    p = subprocess.run(
        [inv, "experiment", name, "--keep-sandbox", "--out", str(out)],
        cwd=paths.PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    try:
        password, found = _capture(sandbox_dir)  # kept running for this
    except OSError:  # no sandbox (left): the failed run's output below says why
        password, found = "", []
    pids += found
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr
    assert "verdict: PASS (completed" in p.stdout
    path = Path(next(ln for ln in p.stdout.splitlines() if ln.startswith("journal: "))[9:])
    # runbooks rendered from the journal, which is kept next to them
    kept = out / "journals" / f"{name}-local.json"
    assert kept.read_bytes() == path.read_bytes()
    assert (out / f"experiment-{name}.md").is_file() and (out / "README.md").is_file()
    kinds = tuple(
        json.loads(line)["kind"] for line in (path.parent / "events.jsonl").read_text().splitlines()
    )
    return Run(load(path), path, sandbox_dir, kinds, password, pids)


def _common_checks(r: Run, name: str) -> None:
    j = r.journal
    assert j.verdict == "pass", (j.fail_step, j.notes)
    assert (j.status, j.deviated, j.fail_step) == ("completed", False, None)
    assert j.experiment.name == name and j.env.kind == "local" and j.run_id == r.path.parent.name
    # the file is the journal, validated and stable
    assert r.path.read_text() == dumps(load(r.path))
    # setup: the commands it quotes ran
    ids = [c.id for c in j.commands]
    assert ids[:2] == ["deploy", "connect-db"]
    assert j.setup.deployment.command.startswith("python -m sandbox up --state-dir ")
    assert f"--replicas {j.experiment.replicas} " in j.setup.deployment.command
    assert j.setup.database.connect_command.startswith('psql "host=127.0.0.1 port=')
    assert j.commands[1].output_tail[0].startswith('You are connected to database "stairway"')
    for needed in [*ATTEMPT_COMMANDS, "audit", "orphans-recheck"]:
        assert needed in ids, needed
    start, end = parse_time(j.started), parse_time(j.ended)
    (a,) = j.attempts
    lo, hi = parse_time(a.started), parse_time(a.ended)
    for c in j.commands:
        assert start <= parse_time(c.at) <= end
        if c.id in ATTEMPT_COMMANDS:
            assert lo <= parse_time(c.at) <= hi, c.id
    fid = a.flight_id
    assert fid is not None
    by_id = {c.id: c for c in j.commands}
    # the tools the experiment drives hand their results over as JSON files it names
    assert by_id["run-test"].command.startswith("inv run-test --env local --json-out ")
    assert by_id["kill-pod"].command.split("--json-out ")[1].endswith("-kill-pod.json")
    for c in (by_id["run-test"], by_id["kill-pod"]):
        doc = json.loads((paths.PROJECT_ROOT / c.command.split("--json-out ")[1]).read_text())
        assert doc["schema"] in ("stairway-ops.run-test/1", "stairway-ops.kill-pod/1"), doc
    assert by_id["kill-pod"].command.startswith(
        f"inv kill-pod --env local --flight {fid} --when-step 1 --timeout "
    )
    reader = j.experiment.reader
    dry = f"repairtool orphans --env local --reader {reader} --stalled-after 5s"
    assert by_id["orphans-dry-run"].command == dry
    assert by_id["orphans-dry-run-json"].command == dry + " --json"
    assert by_id["logs"].command == f"inv logs --env local --flight {fid}"
    assert any(fid in line for line in by_id["logs"].output_tail)
    # the attempt: pods, timeline, evidence
    assert a.pods.killed == a.pods.receiver and a.pods.killed
    assert a.pods.replacement and a.pods.replacement != a.pods.killed
    assert a.pods.survivors and a.pods.killed not in a.pods.survivors
    times = [t.at for t in a.timeline]
    assert times == sorted(times)
    events = {(t.source, t.event) for t in a.timeline}
    assert {
        ("db", "submitted"),
        ("log", "delaying"),
        ("kube", "kill"),
        ("kube", "replacement_added"),
        ("log", "disowned"),
        ("log", "taking_ownership"),
        ("tool", "client"),
        ("tool", "verdict"),
    } <= events
    messages = [x.message for x in a.log_excerpts]
    assert f"Disowned 1 flights for stairway: {a.pods.killed}" in messages
    assert f"DELETED : {a.pods.killed}" in messages
    assert {e.name for e in a.sql_evidence} == {
        "non-terminal-flights",
        "instances",
        "flight-log",
        "unowned-ready-queued",
    }
    assert j.steady_state_before.ok and j.steady_state_after.ok
    assert {p.name for p in j.steady_state_after.probes} == {
        "pods-ready",
        "no-stuck-flights",
        "no-stale-instances",
    }
    assert a.repair is not None and a.repair.dry_run is not None
    assert a.repair.dry_run["schema"] == "repairtool.orphans/1"
    assert a.repair.dry_run["liveness"]["source"] == "kube:terra-sandbox"
    # progress was live and recorded: events in the journal (not the raw output), events.jsonl
    kinds = [e.kind for e in j.events]
    assert kinds[0] == "experiment.started" and kinds[-1] == "experiment.finished"
    assert "attempt.verdict" in kinds and "command.output" not in kinds
    assert "command.output" in r.event_kinds  # live output went to the views and events.jsonl
    # no secrets: the DB password and the journey's token are nowhere in what the run wrote
    assert r.password and r.password not in r.text()
    assert JOURNEY_TOKEN not in r.path.read_text()
    assert find_secrets(j, [r.password, JOURNEY_TOKEN]) == []
    # runbooks render from this journal alone, quoting only commands it ran
    rendered, _ = render_all([j])
    ran = {c.command for c in j.commands}
    assert f"experiment-{name}.md" in {x.filename for x in rendered}
    for doc in rendered:
        for q in doc.quotes:
            assert q.kind != "command" or q.text in ran, (doc.filename, q.text)


def test_multi_instance_pod_kill_end_to_end_through_the_task(run: Callable[..., Run]) -> None:
    r = run("multi-instance-pod-kill", via_task=True)
    _common_checks(r, "multi-instance-pod-kill")
    (a,) = r.journal.attempts
    assert a.final_state.status == "SUCCESS" and a.final_state.owner is None
    assert a.final_state.last_step == 1
    # recovered by the survivor's pod listener; the flight finished on a live pod, never twice
    recoverer = next(x.pod for x in a.log_excerpts if x.message.startswith("Disowned 1 flights"))
    assert recoverer in a.pods.survivors
    assert a.pods.owner in (*a.pods.survivors, a.pods.replacement)
    log = {e.name: e for e in a.sql_evidence}["flight-log"]
    assert [(row[1], row[2], row[3]) for row in log.rows] == [(0, "DO", True), (1, "DO", True)]
    assert {e.name: e for e in a.sql_evidence}["non-terminal-flights"].rows == ()
    assert a.repair is not None and a.repair.fix is None and a.repair.audit == ()
    assert a.repair.dry_run is not None and a.repair.dry_run["findings"] == []
    assert a.repair.state_after.status == "SUCCESS"
    # what the client saw: its request died with the pod
    assert "HTTP 502" in a.what_happened or "failed" in a.what_happened
    assert "became Ready" in a.what_happened


def test_decode_failure_on_resume_end_to_end_and_repaired(run: Callable[..., Run]) -> None:
    r = run("decode-failure-on-resume", keep_sandbox=True)
    _common_checks(r, "decode-failure-on-resume")
    j = r.journal
    (a,) = j.attempts
    fid = a.flight_id
    # the 2021 attempt 1: RUNNING, owned by a live pod (the survivor or the replacement: who
    # receives the READY message is a race) that took it and could not rebuild it
    owner = a.final_state.owner
    assert a.final_state.status == "RUNNING" and owner in (*a.pods.survivors, a.pods.replacement)
    assert a.final_state.owner_alive is True and a.final_state.last_step == 0
    assert a.pods.owner == owner
    warn = [x for x in a.log_excerpts if x.severity == "WARNING"]
    assert warn and warn[0].pod == owner
    assert "MakeFlightException: Failed to make a flight from class" in warn[0].message
    assert "Found value 'MC_WORKSPACE' is not an instance of type" in warn[0].message
    assert any(x.message.endswith(f"did not resume flight: {fid}") for x in a.log_excerpts)
    assert "ClassCastException" in a.root_cause
    nonterminal = {e.name: e for e in a.sql_evidence}["non-terminal-flights"]
    assert [(row[0], row[1], row[2]) for row in nonterminal.rows] == [(fid, "RUNNING", owner)]
    # detection: stalled, make-flight pattern, re-encode proposed
    assert a.repair is not None and a.repair.dry_run is not None
    (finding,) = [f for f in a.repair.dry_run["findings"] if f["flight_id"] == fid]
    assert (finding["kind"], finding["owner"]) == ("stalled", owner)
    assert "make-flight failure" in finding["evidence"]["pattern"]
    assert finding["proposed_action"] == "reencode"
    assert {p["action"] for p in a.repair.dry_run["plan"]} == {"reencode"}
    # the fix ran as a real command with the reason, and is in the audit trail
    reason = load_definition("decode-failure-on-resume").repair.reason  # type: ignore[union-attr]
    fix_cmd = next(c for c in j.commands if c.id == "orphans-fix-reencode")
    assert fix_cmd.rc == 0
    assert fix_cmd.command == (
        "repairtool orphans --env local --reader 0.0.60 --stalled-after 5s"
        f" --flight {fid} --fix --action reencode --reason '{reason}' --yes --json"
    )
    assert a.repair.fix is not None
    (applied,) = [x for x in a.repair.fix["applied"] if x["flight_id"] == fid]
    assert applied["steps"] == ["rewrite_input", "disown", "enqueue"]
    assert a.repair.audit and {row["reason"] for row in a.repair.audit} == {reason}
    assert {row["flight_id"] for row in a.repair.audit} == {fid}
    # repaired end state: a live pod resumed it and it finished; nothing is found any more
    assert (a.repair.state_after.status, a.repair.state_after.owner) == ("SUCCESS", None)
    recheck = next(c for c in j.commands if c.id == "orphans-recheck")
    # the tail holds stderr too: first the line naming the environment, then the document
    assert recheck.output_tail[0] == "environment: local (--env)"
    assert json.loads("\n".join(recheck.output_tail[1:]))["findings"] == []
    from sandbox.lifecycle import SandboxHandle

    h = SandboxHandle.load(r.sandbox_dir)
    try:
        row = h.flight(fid)  # type: ignore[arg-type]
        assert row is not None and (row["status"], row["stairway_id"]) == ("SUCCESS", None)
        from sqlalchemy import text

        with h.engine("wsm").connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM workspace")).scalar() == 1
    finally:
        for engine in h._engines.values():
            engine.dispose()
    # the decode runbook has what it needs from this run; since issue 13 it (and the orphaned
    # flights runbook) also requires runs of other experiments: their committed journals
    committed = [load(p) for p in sorted((paths.PROJECT_ROOT / "runbooks/journals").glob("*.json"))]
    others = [x for x in committed if x.experiment.name != "decode-failure-on-resume"]
    rendered, skipped = render_all([j, *others])
    books = {x.filename: x for x in rendered}
    assert "flightmap-decode-failure.md" in books, skipped
    assert "orphaned-running-flights.md" in books, skipped
    assert Source.of(j) in books["flightmap-decode-failure.md"].sources


def test_dead_owner_without_a_work_queue_resumed_by_a_rolling_restart(
    run: Callable[..., Run],
) -> None:
    """The representative new experiment in CI: sandbox switches (pod watch dropped, no
    replacement), a service without a work queue, a two-step repair (`repairtool orphans --fix
    --action resume` leaves the flight READY; `inv restart` resumes it), the pod watch, the
    resume latency, and runbook pictures and production forms from its journal."""
    from opskit.flightstory import status_changes
    from opskit.production import check_production_form, production_form

    r = run("dead-owner-no-queue")
    j = r.journal
    assert j.verdict == "pass", (j.fail_step, j.notes)
    (a,) = j.attempts
    by_id: dict[str, list[str]] = {}
    for c in j.commands:
        by_id.setdefault(c.id, []).append(c.command)
    # the faults are switches driven from the definition, set and reset as recorded commands
    switches = by_id["switches"]
    assert switches[0].endswith("--set pod_watch_dropped=on --set replace_deleted_pods=off")
    assert switches[-1].endswith("--set pod_watch_dropped=off --set replace_deleted_pods=on")
    assert " --queue none " in j.setup.deployment.command + " "
    assert "--replacement-timeout 5s" in by_id["kill-pod"][0]
    # nobody recovered the dead owner: the flight stayed RUNNING under it
    assert (a.final_state.status, a.final_state.owner_alive) == ("RUNNING", False)
    assert a.pods.killed and a.pods.replacement is None
    assert a.repair is not None and a.repair.dry_run is not None
    kinds = {(f["kind"], f["flight_id"] or f["instance"]) for f in a.repair.dry_run["findings"]}
    assert kinds == {("dead_owner", a.flight_id), ("stale_instance", a.pods.killed)}
    # step 1: disown only (no queue), and the flight waits READY
    steps = a.repair.steps
    assert steps is not None and [s.command_id for s in steps] == ["orphans-fix-resume", "restart"]
    assert steps[0].doc is not None
    assert [x["steps"] for x in steps[0].doc["applied"]] == [["disown"]]
    assert (steps[0].status_after, steps[0].status_after_hold) == ("READY", "READY")
    # step 2: the rolling restart's new pods resume it and recover the dead pod's instance
    assert by_id["restart"] == ["inv restart --env local"]
    assert steps[1].status_after == "SUCCESS"
    assert a.repair.state_after.status == "SUCCESS" and a.repair.instance_after == "gone"
    assert a.repair.audit and a.repair.audit[0]["action"] == "disown"
    # the pod watch: the killed pod's deletion, the restart's new pods
    lives = {p.name: p for p in a.pod_lives or ()}
    assert lives[a.pods.killed].deleted is not None
    assert a.recovery is not None and a.recovery.running_pod in lives
    new_pod = lives[a.recovery.running_pod]
    assert parse_time(new_pod.created) > parse_time(lives[a.pods.killed].deleted or "")
    assert a.recovery.to_running_s and a.recovery.to_success_s
    assert a.recovery.to_success_s > a.recovery.to_running_s and a.recovery.queue == "none"
    # the flight's story: submitted, disowned by repairtool, resumed by a new pod, finished
    story = [(c.status, c.by) for c in status_changes(a)]
    assert story[0] == ("RUNNING", a.pods.killed)
    assert ("READY", "repairtool") in story and story[-1][0] == "SUCCESS"
    assert ("RUNNING", a.recovery.running_pod) in story
    # the production forms of its repair commands pass the rule
    for cid in ("orphans-fix-resume", "restart", "orphans-dry-run"):
        executed = by_id[cid][-1]
        p = production_form(executed, flight_ids=[a.flight_id or ""], pods=[a.pods.killed])
        assert check_production_form(p.text, executed) == [], (cid, p.text)
        assert "--env local" not in p.text and "--yes" not in p.text
