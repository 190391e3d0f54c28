"""stairway-ops tasks: ``inv --list`` is the menu, ``inv --help TASK`` explains one task.

Every task takes ``--env NAME`` (``envs/NAME.yaml``; default ``local``, the sandbox). The tasks
only parse options, call ``opskit``, print, and choose the exit code (the one table shared with
``repairtool``, :mod:`repairtool.exitcodes`; errors are one line on stderr). Conventions are in
:mod:`opskit.taskkit`: ``--dry`` honoured or refused, explicit short flags, ``--json-out``.

Adding a task: write a function taking the Invoke context and options with defaults, decorate
it with ``@ops_task(help={...}, dry=...)``, and list it in :data:`ns` at the bottom.
"""

from __future__ import annotations

import json as jsonlib
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from invoke import Collection, Context
from invoke.exceptions import Exit

from opskit import envs as envs_mod
from opskit import local, paths, sandboxwatch, viaansible
from opskit.cloudlogs import ENGINE_PHRASES, build_filter, parse_since
from opskit.engine_events import flight_timeline
from opskit.envs import load_env
from opskit.envsetup import setup as do_setup
from opskit.envsetup import setup_vars
from opskit.errors import (
    CommandFailed,
    EnvError,
    ExitCode,
    NotFound,
    OperationFailed,
    UsageError,
)
from opskit.experiment.definition import list_definitions, load_definition
from opskit.experiment.runner import run_experiment
from opskit.killpod import KillPodOptions, flight_getter, plan_kill
from opskit.killpod import kill_pod as do_kill
from opskit.kube import split_pod_arg
from opskit.platforms import platform_for
from opskit.runbooks import check as check_runbooks
from opskit.runbooks import load_journals, publish, render_runbooks
from opskit.taskkit import (
    console_reporter,
    env_of,
    is_dry,
    ops_task,
    print_json,
    run_dir,
    write_json_out,
)
from opskit.testrunner import run_test_document
from opskit.watchdeploy import apply_manifests, render_manifests, watch_settings, write_manifests
from repairtool.clock import rfc3339
from repairtool.durations import InvalidDuration, parse_duration
from repairtool.guards import confirm
from repairtool.incident import incident_markdown

ENV_HELP = (
    "environment name (envs/NAME.yaml); default: $STAIRWAY_OPS_ENV, Invoke's stairway_ops.env,"
    " the only env file, else local for read-only tasks (a task that changes something refuses)"
)
VIA_HELP = "python (the official client; default) or ansible (the playbook, kubernetes.core)"
JSON_OUT_HELP = "also write the result (or the error) as a JSON document to FILE"


@ops_task(
    help={
        "name": "show one environment in full",
        "vars": "print the playbooks' extravars for NAME as JSON (ansible-playbook -e @file)",
        "json": "machine-readable output",
    }
)
def envs(c: Context, name: str | None = None, vars: bool = False, json: bool = False) -> None:
    """List the environments in envs/ (or show one; --vars prints its playbook extravars)."""
    if vars and not name:
        raise UsageError("--vars needs --name NAME")
    if name:
        env = load_env(name)
        if vars:
            print_json(setup_vars(env))
        elif json:
            print_json(env.to_dict())
        else:
            sys.stdout.write(yaml.safe_dump(env.to_dict(), sort_keys=False))
        return
    rows: list[dict[str, Any]] = []
    bad: list[str] = []
    for n in envs_mod.list_envs():
        try:
            e = load_env(n)
        except EnvError as exc:
            rows.append({"name": n, "error": str(exc)})
            bad.append(str(exc))
            continue
        rows.append(
            {
                "name": n,
                "kind": e.kind,
                "namespace": e.namespace,
                "description": e.description,
                "default": n == envs_mod.DEFAULT_ENV,
            }
        )
    if json:
        print_json(rows)
    for r in [] if json else rows:
        if "error" in r:
            print(f"{r['name']:<12} INVALID  {r['error']}")
        else:
            mark = " (default)" if r["default"] else ""
            print(f"{r['name']:<12} {r['kind']:<6} {r['namespace']:<18} {r['description']}{mark}")
    if bad:
        raise Exit(f"error: {bad[0]}", int(ExitCode.USAGE))


@ops_task(help={"env": ENV_HELP, "quiet": "print only the summary"}, dry="refused")
def setup(c: Context, env: str | None = None, quiet: bool = False) -> None:
    """Prepare an env via playbooks/setup.yml (tools, rendered files, credentials). Idempotent.

    Checks the tools the env needs, renders skaffold config, helm values and the TestRunner server
    spec and suite into the env's state dir, and fetches cluster credentials (GKE) or prepares the
    sandbox (local). Prints what changed; a re-run changes nothing.
    """
    e = env_of(env, c, use="changes")
    rd = run_dir("setup", e)
    result = do_setup(e, rd, reporter=console_reporter(rd, quiet=quiet))
    print(
        f"setup {e.name}: {len(result.changed)} change(s):"
        if result.changed
        else f"setup {e.name}: nothing changed"
    )
    for item in result.changed:
        print(f"  changed: {item}")
    for item in result.prepared if result.changed else ():
        print(f"    {item}")
    print(f"state dir: {result.state_dir}  (artifacts: {rd})")


@ops_task(help={"env": ENV_HELP}, dry="honoured")
def build(c: Context, env: str | None = None) -> None:
    """Build the service image (GKE: `skaffold build` in <checkout>/local-dev; --dry echoes it)."""
    platform_for(env_of(env, c, use="reads" if is_dry(c) else "changes")).build(
        c, console_reporter()
    )


@ops_task(
    help={
        "env": ENV_HELP,
        "timeout": "how long to wait for the rollout (default: 10m)",
        "via": VIA_HELP,
    },
    dry="honoured",
)
def deploy(c: Context, env: str | None = None, timeout: str = "10m", via: str = "python") -> None:
    """Deploy and watch the rollout until `Deployments stabilized in …`.

    GKE: `skaffold run` in <checkout>/local-dev, then the rollout through the Kubernetes API.
    Local: rolls the sandbox deployment (new template hash, pods replaced one by one).
    With `inv --dry deploy` it says what it would roll and changes nothing. `--via ansible`
    runs playbooks/deploy.yml (kubernetes.core: k8s, k8s_info with wait_condition) instead.
    """
    e = env_of(env, c, use="reads" if is_dry(c) else "changes")
    seconds = _duration("--timeout", timeout)
    rd = run_dir("deploy", e)
    if _via(via) == "ansible" and not is_dry(c):
        print(viaansible.deploy(e, rd, console_reporter(rd), seconds).message)
        return
    result = platform_for(e).rollout(c, console_reporter(rd), seconds, dry=is_dry(c))
    print(result.message)


@ops_task(
    help={
        "env": ENV_HELP,
        "timeout": "how long to wait for the restarted pods (default: 10m)",
        "yes": "do not ask y/N before restarting a GKE deployment",
    },
    dry="honoured",
)
def restart(c: Context, env: str | None = None, timeout: str = "10m", yes: bool = False) -> None:
    """Rolling restart of the service (`kubectl rollout restart deployment/NAME`), watched.

    The same image, new pods one by one: each new pod runs the engine's start-up recovery
    (recoverAndStart → recoverReady), which resumes (no work queue) or queues every READY flight.
    This is how a READY flight is picked up when the service has no work queue. Through the
    Kubernetes API on GKE and on the sandbox alike; on a GKE env it asks y/N first.
    """
    e = env_of(env, c, use="reads" if is_dry(c) else "changes")
    seconds = _duration("--timeout", timeout)
    p = platform_for(e)
    if is_dry(c):
        print(p.restart(console_reporter(), seconds, dry=True).message)
        return
    if e.kind == "gke":
        confirm(f"About to restart deployment/{e.service.deployment} in {e.namespace}. Continue?",
                yes=yes)  # fmt: skip
    rd = run_dir("restart", e)
    result = p.restart(console_reporter(rd), seconds)
    print(f"restarted deployment/{e.service.deployment}: {result.replicas} pods;"
          f" {result.message}")  # fmt: skip


@ops_task(help={"env": ENV_HELP, "via": VIA_HELP}, dry="refused")
def db_proxy(c: Context, env: str | None = None, via: str = "python") -> None:
    """Start the Cloud SQL proxy until Ctrl-C and print the psql line.

    GKE: cloud-sql-proxy on the env's port, waiting until it accepts connections. Local: the
    sandbox database. The password comes from PGPASSWORD/.pgpass and is never printed
    (`inv connect-db` reads it from where the service keeps it). `--via ansible` runs
    playbooks/db-proxy.yml (which also checks the password's Secret with kubernetes.core).
    """
    e = env_of(env, c)
    if _via(via) == "ansible":
        _db_proxy_via_ansible(e)
        return
    with platform_for(e).db_proxy(c, console_reporter(), e.state_path / "cloud-sql-proxy.log") as t:
        print(t.psql_line())
        print(f"password: {t.password.describe()}")
        if e.kind != "gke":
            return
        print("proxy running; Ctrl-C to stop")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass


def _db_proxy_via_ansible(e: envs_mod.Env) -> None:
    rd = run_dir("db-proxy", e)
    started = viaansible.db_proxy(e, rd, console_reporter(rd), state="started")
    print(started.psql)
    print(f"password: {e.require_db().password.describe() if e.kind == 'gke' else 'sandbox'}")
    if e.kind != "gke":
        return
    print("proxy running; Ctrl-C to stop")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        if started.started:
            viaansible.db_proxy(e, rd, console_reporter(rd, quiet=True), state="stopped")


@ops_task(
    help={
        "env": "a GKE environment (envs/NAME.yaml)",
        "out": "also write the rendered manifests to DIR (one YAML file per object)",
    },
    dry="honoured",
)
def deploy_watch(c: Context, env: str | None = None, out: str | None = None) -> None:
    """Run `repairtool watch` in the env's namespace: Deployment, RBAC, PrometheusRule.

    Renders templates/watch/*.yaml.j2 for the env (settings from its `watch:` section) and
    applies them with server-side apply: a ServiceAccount whose Role may only list pods in the
    namespace (and get the one Secret with the Stairway password, when the service keeps it
    there), a ConfigMap with the env file, the watcher Deployment (Cloud SQL proxy as a native
    sidecar, metrics on :9464, auto-resume only when `watch.auto_resume` is true), a
    PrometheusRule (finding older than `watch.alert_after`, scans failing, watcher absent) and
    a PodMonitor. `inv --dry deploy-watch` renders and lists them, and applies nothing.
    """
    e = env_of(env, c, use="reads" if is_dry(c) or out else "changes")
    manifests = render_manifests(e)
    if out:
        for p in write_manifests(manifests, Path(out)):
            print(f"wrote {p}")
    if is_dry(c):
        for m in manifests:
            print(f"dry run: would apply {m['kind'].lower()}/{m['metadata']['name']}"
                  f" in {m['metadata']['namespace']}")  # fmt: skip
        return
    kube = platform_for(e).kube()
    for applied in apply_manifests(kube.api_client, manifests):
        print(applied.line())
    (deployment,) = [m for m in manifests if m["kind"] == "Deployment"]
    print(
        f"watcher deployed: deployment/{deployment['metadata']['name']} in {e.namespace};"
        f" metrics on port {watch_settings(e).metrics_port} (/metrics)"
    )


@ops_task(help={"env": ENV_HELP})
def connect_db(c: Context, env: str | None = None) -> None:
    """Open psql on the env's Stairway database (starting the Cloud SQL proxy for GKE)."""
    with platform_for(env_of(env, c)).db(c, console_reporter()) as target:
        print(target.psql_line())
        result = c.run(
            target.psql_line(), pty=sys.stdin.isatty(), warn=True, env=target.child_env()
        )
    if result is not None and result.exited:
        raise Exit(code=int(result.exited))


@ops_task(
    optional=["when_step"],
    help={
        "env": ENV_HELP,
        "flight": "kill the pod that owns (or received) this flight and follow the flight",
        "pod": "kill this pod (NAME or NAMESPACE/NAME)",
        "namespace": "namespace to act in; anything but the env's namespace is refused",
        "when_step": "first wait until the flight is inside step N (0-based); without N:"
        " the env's delayed step",
        "timeout": "overall time limit (default: 2 x the env's delay + 5m, at least 10m)",
        "settle": "stop following when nothing changed this long (default: the delay + 1m)",
        "grace": "pod deletion grace period, e.g. 0s or 30s (default: the pod's)",
        "replacement_timeout": "how long to wait for the replacement pod (default: 3m)",
        "yes": "do not ask y/N before killing a pod of a GKE env",
        "json": "print the result as JSON",
        "json_out": JSON_OUT_HELP,
        "via": VIA_HELP + "; ansible deletes the pod and waits for the replacement only",
    },
    dry="honoured",
)
def kill_pod(
    c: Context,
    env: str | None = None,
    flight: str | None = None,
    pod: str | None = None,
    namespace: str | None = None,
    when_step: str | bool | None = None,
    timeout: str | None = None,
    settle: str | None = None,
    grace: str | None = None,
    replacement_timeout: str | None = None,
    yes: bool = False,
    json: bool = False,
    json_out: str | None = None,
    via: str = "python",
) -> None:
    """Kill the pod holding a flight, watch the replacement, and record what the engine did.

    Finds the pod that owns the flight (stairway_id) or received it (logs), optionally waits
    until the flight is inside the delayed step, deletes the pod with the kubernetes client,
    watches until the replacement is Ready, then follows the flight until it finishes or is
    stuck. Prints and saves the timeline (artifacts/kill-pod-*/kill-pod.json). On a GKE env it
    asks y/N first (--yes skips it); `inv --dry kill-pod` says what it would kill and stops.
    """
    e = env_of(env, c, use="reads" if is_dry(c) else "changes")
    opts = KillPodOptions.for_env(
        e, flight=flight, pod=pod, namespace=namespace, when_step=when_step,
        timeout=timeout, settle=settle, grace=grace, replacement_timeout=replacement_timeout,
    )  # fmt: skip
    p = platform_for(e)
    rd = run_dir("kill-pod", e)
    # engine log lines come in the timeline at the end; live, show pods and flight states
    rep = console_reporter(rd, quiet=json, show=lambda ev: ".engine." not in ev.kind)
    with flight_getter(p, c, rep, needed=bool(flight)) as get_flight:
        plan = plan_kill(p, opts, get_flight)
        if is_dry(c):
            print(f"dry run: would {plan.describe()}; nothing was changed")
            return
        if e.kind == "gke":
            confirm(f"About to {plan.describe()}. Continue?", yes=yes)
        if _via(via) == "ansible":
            _kill_pod_via_ansible(e, plan.pod, opts, rd, rep, json=json, json_out=json_out)
            return
        result = do_kill(p, opts, get_flight=get_flight, reporter=rep, run_dir=rd)
    if json_out:
        write_json_out(json_out, result.to_json())
    if json:
        print_json(result.to_json())
    else:
        print(f"timeline ({result.path}):")
        for line in result.lines():
            print("  " + line)
    if result.outcome == "stuck":
        raise Exit(f"flight stuck: {result.verdict}", int(ExitCode.FINDINGS))
    if result.outcome == "not-replaced":
        raise Exit("no replacement pod became Ready in time", int(ExitCode.TIMEOUT))


def _kill_pod_via_ansible(
    e: envs_mod.Env,
    pod: str | None,
    opts: KillPodOptions,
    rd: Path,
    rep: Any,
    *,
    json: bool,
    json_out: str | None,
) -> None:
    if pod is None:
        raise UsageError("--via ansible needs the pod: give --pod, or a --flight that has an owner")
    if opts.when_step is not None:
        raise UsageError("--when-step follows the flight, which --via ansible does not do")
    result = viaansible.kill_pod(e, pod, rd, rep, wait_seconds=opts.replacement_timeout)
    doc = {
        "schema": "stairway-ops.kill-pod-ansible/1",
        "deleted": result.deleted,
        "replacement": result.replacement,
        "namespace": result.namespace,
    }
    if json_out:
        write_json_out(json_out, doc)
    if json:
        print_json(doc)
    else:
        print(result.message)


@ops_task(
    help={
        "env": ENV_HELP,
        "flight": "show the engine's events for this flight as a timeline",
        "pod": "only this pod's entries",
        "since": "how far back: a duration (1h, 30m, 3d) or an RFC 3339 time (default: 1h)",
        "until": "end of the window (RFC 3339 time or duration back from now; default: now)",
        "limit": "at most this many entries (default: 200)",
        "show_filter": "print the Cloud Logging filter used (paste into the Logs Explorer)",
        "json": "machine-readable output",
    }
)
def logs(
    c: Context,
    env: str | None = None,
    flight: str | None = None,
    pod: str | None = None,
    since: str = "1h",
    until: str | None = None,
    limit: int = 200,
    show_filter: bool = False,
    json: bool = False,
) -> None:
    """Service logs, or with --flight the engine's events for one flight as a timeline.

    Uses the standard filter (project, cluster, namespace, location, container, without /status
    and /version requests) and always an explicit time bound (--since).
    """
    e = env_of(env, c)
    start = parse_since(since)
    end = parse_since(until, "--until") if until else None
    pod_name = split_pod_arg(pod, e.namespace) if pod else None
    p = platform_for(e)
    contains = (flight, *ENGINE_PHRASES) if flight else ()
    if show_filter:
        print(build_filter(p.log_scope(), since=start, until=end, pod=pod_name, contains=contains))
        return
    if flight:
        lines = p.query_logs(since=start, until=end, pod=pod_name, contains=contains)
        items = flight_timeline(lines, flight)
        if not items:
            raise NotFound(
                f"no log lines mention flight {flight} since {rfc3339(start, 'seconds')}"
                " (widen --since?)"
            )
        if json:
            print_json([i.to_json() for i in items])
        for i in [] if json else items:
            print(f"{rfc3339(i.at)}  {i.pod:<48} {i.event.kind.value:<18} {i.summary()}")
        return
    entries = p.query_logs(since=start, until=end, pod=pod_name, limit=limit)
    if json:
        print_json(
            [
                {"timestamp": rfc3339(x.timestamp), "pod": x.pod, "severity": x.severity}
                | {"message": x.message}
                for x in entries
            ]
        )
    for x in [] if json else entries:
        first = x.message.splitlines()[0] if x.message else ""
        print(f"{rfc3339(x.timestamp)}  {x.pod:<48} {x.severity:<7} {first}")


@ops_task(
    help={
        "env": ENV_HELP,
        "suite": "kill-pod (the env's kill-pod-<env>.json; the default) or a suite file name",
        "json": "print the summary as JSON (TestRunner field names)",
        "json_out": JSON_OUT_HELP + " (stairway-ops.run-test/1: summary and journeys)",
    },
    dry="refused",
)
def run_test(
    c: Context,
    env: str | None = None,
    suite: str = "kill-pod",
    json: bool = False,
    json_out: str | None = None,
) -> None:
    """Run the workspace user journey and print its SUMMARY_testRun.json summary.

    GKE: TestRunner (`./gradlew runTest --args="suites/kill-pod-<env>.json /tmp/TR"`). Local: the
    same journey (create → get → delete workspace) against the sandbox API.
    """
    e = env_of(env, c, use="changes")
    rd = run_dir("run-test", e)
    summary = platform_for(e).run_test(c, suite, console_reporter(rd, quiet=json), rd)
    if json_out:
        write_json_out(json_out, run_test_document(summary))
    if json:
        print_json(summary.to_json())
    for line in [] if json else summary.lines():
        print(line)
    if summary.is_failure:  # an outcome, not an error: the --json-out document stands
        raise Exit("test run failed", int(ExitCode.FINDINGS))


@ops_task(
    positional=["name"],
    help={
        "name": "the experiment: experiments/NAME.yaml (e.g. single-instance-pod-kill)",
        "env": ENV_HELP + " (local: a sandbox of the experiment's own)",
        "attempts": "number of attempts (default: the experiment's)",
        "delay": "DelayHook duration, e.g. 5s (default: the experiment's)",
        "keep_sandbox": "local: leave the experiment's sandbox running afterwards",
        "no_runbooks": "do not render runbooks from the journal",
        "out": "runbooks directory (default: runbooks/); the journal is copied to OUT/journals/",
    },
    dry="refused",
)
def experiment(
    c: Context,
    name: str,
    env: str | None = None,
    attempts: int | None = None,
    delay: str | None = None,
    keep_sandbox: bool = False,
    no_runbooks: bool = False,
    out: str | None = None,
) -> None:
    """Run a failure experiment, write its journal, render runbooks; exit 1 on deviation.

    Per attempt: steady state before, the flight started through the service API
    (`inv run-test`), the fault inside the delayed step (`inv kill-pod` or cut DB connections),
    observation (logs, flight rows, pod events), `repairtool orphans` dry run and --fix when the
    experiment says so, steady state after, verdict. Local: the sandbox is started with the
    experiment's replicas/reader/delay in .stairway-ops/experiments/NAME and destroyed after.
    Writes artifacts/<run-id>/journal.json; when the verdict passed, copies it to
    runbooks/journals/ and renders runbooks/ from the journals there.
    """
    if not name:
        raise UsageError("name an experiment: " + ", ".join(list_definitions()))
    definition = load_definition(name)
    if delay is not None:
        definition = definition.with_delay(_duration("--delay", delay))
    e = env_of(env, c, use="rehearsal")
    rd = paths.new_run_dir(f"{definition.name}-{e.name}")
    # live: everything but the bulky --json documents (they are in the run's commands/*.log)
    rep = console_reporter(rd, show=lambda ev: not ev.data.get("quiet"))
    journal = run_experiment(
        definition, e, run_dir=rd, reporter=rep, attempts=_count("--attempts", attempts), c=c,
        keep_sandbox=keep_sandbox,
    )  # fmt: skip
    for a in journal.attempts:
        print(f"attempt {a.number}: {a.verdict.upper()}  flight {a.flight_id}")
    print(f"verdict: {journal.verdict.upper()} ({journal.status}, {journal.duration_s:g}s)")
    print(f"journal: {rd / 'journal.json'}")
    if journal.deviated:
        print("runbooks: not updated (runbooks quote verified runs only)")
        raise Exit(f"experiment deviated: {journal.fail_step}", int(ExitCode.FINDINGS))
    if not no_runbooks:
        done = publish(rd / "journal.json", journal, Path(out) if out else None)
        print(
            f"runbooks: {len(done.written)} files in {done.out_dir} (journal kept as {done.kept})"
        )


@ops_task(
    iterable=["journal"],
    help={
        "journal": "a journal.json or a directory of them (repeatable); default runbooks/journals/",
        "out": "output directory (default: runbooks/)",
        "check": "write nothing; exit 1 when a file in --out differs from what would be rendered",
        "incident": "print the incident note of a repair instead: FILE is the JSON document"
        " of `repairtool orphans … --fix -o json` (or `repairtool recover … --json`)",
    },
)
def runbook(
    c: Context,
    journal: list[str] | None = None,
    out: str | None = None,
    check: bool = False,
    incident: str | None = None,
) -> None:
    """Render the runbooks from experiment journals only (never from live state).

    The same journals give byte-identical Markdown: experiment records, the operational
    runbooks (orphaned RUNNING flights, FlightMap decode failure, stuck READY/QUEUED flights,
    FATAL after a dependency outage) and an index. Every command they quote was executed by the
    run that wrote the journal. With --incident FILE it prints a short Markdown note of a real
    repair (findings, changes, audit ids) to paste into an incident channel.
    """
    if incident:
        sys.stdout.write(incident_markdown(read_json_document(incident)))
        return
    sources = [Path(j) for j in journal] if journal else [paths.PROJECT_ROOT / "runbooks/journals"]
    journals = load_journals(sources)
    out_dir = Path(out) if out else paths.PROJECT_ROOT / "runbooks"
    if not check:
        for p in render_runbooks(journals, out_dir):
            print(p)
        return
    stale = check_runbooks(journals, out_dir)
    for name in stale:
        print(f"stale: {name}")
    if stale:
        raise Exit(f"{len(stale)} runbook file(s) differ from their journals", 1)
    print(f"runbooks in {out_dir} match {len(journals)} journal(s)")


BENCHES = {
    "decode": "bench/bench_decode.py",
    "orphans": "bench/bench_orphans.py",
    "scale": "bench/bench_scale.py",
    "sandbox": "bench/bench_sandbox_startup.py",
    "resume": "bench/bench_resume.py",
}


@ops_task(
    dry="honoured",
    help={
        "which": "decode, orphans, scale, sandbox, resume or all (default: all)",
        "flights": "flights in the generated database for the orphans benchmark (default: 1000000)",
        "repeat": "repetitions per measurement; medians are reported (default: 3)",
        "big": "scale: also the 10,000,000-flight case (generated once, kept; not for CI)",
        "decode_all": "scale: also `repairtool decode --all` on the 1M case, next to its floor",
    },
)
def bench(
    c: Context,
    which: str = "all",
    flights: int = 1_000_000,
    repeat: int = 3,
    big: bool = False,
    decode_all: bool = False,
) -> None:
    """Run the benchmarks under bench/; each reports ratios against a baseline from the same run.

    decode: FlightMap decode values/s vs json.loads; orphans: `repairtool orphans --json` end to
    end vs the same detection as one psql query (the floor) on a generated database, and the
    start-up figures; scale: the same at 100k, 1M, 1M with 100k non-terminal flights (and 10M
    with --big), with peak RSS (--decode-all: also `repairtool decode --all` on the 1M case, in
    values/s next to its floor: the same values streamed and parsed by json.loads); sandbox:
    2-replica sandbox start-up vs a bare Postgres start;
    resume: resume latency (owner death to RUNNING and to SUCCESS, median and p90) of the
    single- and multi-replica pod-kill experiments with and without a work queue, vs the ack
    deadline and the DelayHook. The benchmark databases are generated once and kept in
    `.stairway-ops/bench`.
    """
    names = list(BENCHES) if which == "all" else [which]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        raise UsageError(f"unknown benchmark {unknown[0]!r}; one of {', '.join(BENCHES)}")
    args = {
        "orphans": f" --flights {flights} --repeat {repeat}",
        "scale": f" --repeat {repeat}"
        + (" --big" if big else "")
        + (" --decode-all" if decode_all else ""),
        "sandbox": f" --rounds {repeat}",
        "resume": f" --runs {repeat}",
    }
    for name in names:
        print(f"== {name}")
        result = c.run(
            f"{sys.executable} {BENCHES[name]}{args.get(name, '')}", pty=False, warn=True
        )
        if result is not None and result.failed:
            raise CommandFailed(f"{BENCHES[name]} failed (exit {result.exited})")


@ops_task(
    help={"cases": "generated cases for the full-path test (default 20000; CI runs 5000)"},
)
def conformance(c: Context, cases: int = 20_000) -> None:
    """Check every FlightMap verdict repairtool makes against real Jackson (tests/conformance)
    with new random cases; prints how many were compared and how many disagreed."""
    if cases < 1:
        raise UsageError(f"--cases {cases}: a whole number >= 1")
    env = {"STAIRWAY_CONFORMANCE_CASES": str(cases), "STAIRWAY_CONFORMANCE_RANDOM": "1"}
    with c.cd(str(paths.PROJECT_ROOT)):
        result = c.run(
            f"{sys.executable} -m pytest -q tests/conformance", env=env, pty=False, warn=True
        )
    if result is not None and result.failed:
        raise OperationFailed(f"the conformance suite failed (pytest exit {result.exited})")


@ops_task(
    help={
        "only": "soak names or prefixes: race, faults, fuzz, secrets, cli, sandbox (default: all)",
        "scale": "fraction of the full trial counts (default: 1.0)",
        "seed": "random seed (default: a new one, printed per soak)",
        "json": "also write the figures to this JSON file",
    },
)
def soak(
    c: Context,
    only: str | None = None,
    scale: float = 1.0,
    seed: str | None = None,
    json: str | None = None,
) -> None:
    """Run the reliability soaks (tests/reliability) and print their figures: trials and
    violations per invariant, the table the README's Reliability section quotes."""
    if seed is not None and not seed.isdigit():
        raise UsageError(f"--seed {seed!r}: a whole number >= 0")
    args = (f" --only {only}" if only else "") + f" --scale {scale}"
    args += (f" --seed {seed}" if seed is not None else "") + (f" --json {json}" if json else "")
    with c.cd(str(paths.PROJECT_ROOT)):
        result = c.run(f"{sys.executable} -m tests.reliability.soak{args}", pty=False, warn=True)
    if result is not None and result.exited == 1:
        raise OperationFailed("the soaks found violations (see the table)")
    if result is not None and result.failed:
        raise CommandFailed(f"tests/reliability/soak.py failed (exit {result.exited})")


@ops_task(
    help={
        "env": "a local environment (envs/NAME.yaml; default: local)",
        "fresh": "wipe the previous database, logs and pods first",
        "watch": "also run `repairtool watch` on the sandbox (metrics, log lines)",
        "watch_interval": "between the watcher's scans (default: the env's watch.interval, 1m)",
        "auto_resume": "let the watcher resume dead_owner flights (limited; see README)",
        "max_per_hour": "auto-resume at most N changes per hour (default: the env's, 6)",
        "min_age": "auto-resume a finding seen this long (default: the env's, 10m)",
    },
    dry="refused",
)
def sandbox_up(
    c: Context,
    env: str | None = None,
    fresh: bool = False,
    watch: bool = False,
    watch_interval: str | None = None,
    auto_resume: bool = False,
    max_per_hour: int | None = None,
    min_age: str | None = None,
) -> None:
    """Start the local sandbox (Postgres, Pub/Sub emulator, pods) and wait until Ready.

    With --watch the same watcher a cluster runs (`inv deploy-watch`) runs next to it: its
    metrics URL is printed, its JSON log is <sandbox state>/watch.log; `inv sandbox.down`
    stops it.
    """
    e = local.require_local(env_of(env, c, use="rehearsal"))
    if (auto_resume or watch_interval or min_age or max_per_hour) and not watch:
        raise UsageError(
            "--watch-interval, --auto-resume, --max-per-hour and --min-age need --watch"
        )
    h = local.up(e, fresh=fresh)
    pods = h.ready_pods()
    print(f"sandbox up in {h.startup_seconds:.1f}s: {len(pods)} pod(s) ready in {h.namespace}")
    for p in pods:
        print(f"  {p}")
    print(f"service {h.service_url}  kubeconfig {h.kubeconfig}  logs {h.logging_url}")
    print("work queue: " + ("Pub/Sub emulator" if h.queue_enabled else "none (resume inline)"))
    if watch:
        w = watch_settings(e)
        args = sandboxwatch.watch_command(
            e,
            interval=_duration_td("--watch-interval", watch_interval) or w.interval,
            auto_resume=auto_resume,
            max_per_hour=_count("--max-per-hour", max_per_hour) or w.max_per_hour,
            min_age=_duration_td("--min-age", min_age) or w.min_age,
        )
        running = sandboxwatch.start(e, args)
        print(f"watcher: repairtool {' '.join(args)}")
        print(f"  metrics {running.metrics_url}  log {running.log}  (pid {running.pid})")


@ops_task(help={"env": "a local environment (envs/NAME.yaml; default: local)"}, dry="refused")
def sandbox_down(c: Context, env: str | None = None) -> None:
    """Stop every process of the local sandbox (pods, supervisor, emulator, Postgres)."""
    was = local.down(local.require_local(env_of(env, c, use="rehearsal")))
    print("sandbox stopped" if was else "sandbox was not running")


@ops_task(help={"env": "a local environment (envs/NAME.yaml; default: local)", "json": "as JSON"})
def sandbox_status(c: Context, env: str | None = None, json: bool = False) -> None:
    """Show what runs in the local sandbox; exit 8 (PLATFORM_UNREACHABLE) when it is down."""
    st = local.status(local.require_local(env_of(env, c, use="rehearsal")))
    if json:
        print_json(st.as_dict())
    else:
        print(f"sandbox in {st.state_dir}: {'running' if st.running else 'not running'}")
        print(f"  supervisor {st.supervisor}  postgres {st.postgres}  emulator {st.emulator}")
        for p in st.pods:
            state = "Ready" if p.get("ready") else ("Terminating" if p.get("terminating") else "-")
            print(f"  pod {p.get('name')}  {state}")
        for k, v in st.urls.items():
            print(f"  {k}: {v}")
        running = sandboxwatch.status()
        if running is not None:
            print(f"  watcher: pid {running.pid}  metrics {running.metrics_url}")
    if not st.running:
        raise Exit(code=int(ExitCode.PLATFORM_UNREACHABLE))


def read_json_document(path: str) -> Any:
    """A JSON document from a file (``-`` is stdin); bad input is one line."""
    text = sys.stdin.read() if path == "-" else _read(path)
    try:
        return jsonlib.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path}: not JSON ({exc})") from None


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise NotFound(f"{path}: {exc.strerror or exc}") from None


def _duration(flag: str, value: str) -> float:
    """A duration option in seconds (the one grammar: 90s, 10m, 1h30m)."""
    try:
        return parse_duration(value).total_seconds()
    except InvalidDuration as exc:
        raise UsageError(f"{flag}: {exc}") from None


def _via(value: str) -> str:
    if value not in ("python", "ansible"):
        raise UsageError(f"--via {value!r}: python or ansible")
    return value


def _duration_td(flag: str, value: str | None) -> timedelta | None:
    """A duration option (None when not given)."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except InvalidDuration as exc:
        raise UsageError(f"{flag}: {exc}") from None


def _count(flag: str, value: int | str | None) -> int | None:
    """A positive count option (Invoke passes an unset option as None, a given one as text)."""
    if value is None:
        return None
    try:
        n = int(value)
    except ValueError:
        raise UsageError(f"{flag} {value!r}: a whole number >= 1") from None
    if n < 1:
        raise UsageError(f"{flag} {value!r}: a whole number >= 1")
    return n


sandbox_ns = Collection("sandbox")
sandbox_ns.add_task(sandbox_up, name="up")
sandbox_ns.add_task(sandbox_down, name="down")
sandbox_ns.add_task(sandbox_status, name="status")

#: the collection (the root ``tasks.py`` re-exports it for ``inv``)
ns = Collection(
    envs, setup, build, deploy, restart, db_proxy, connect_db, kill_pod, logs, run_test,
    experiment, runbook, bench, conformance, soak, deploy_watch,
)  # fmt: skip
ns.add_collection(sandbox_ns)
