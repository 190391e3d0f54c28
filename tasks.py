"""stairway-ops tasks: ``inv --list`` is the menu, ``inv --help TASK`` explains one task.

Every task takes ``--env NAME`` (``envs/NAME.yaml``; default ``local``, the sandbox). The tasks
are thin: they parse options, call ``opskit``, print, and choose the exit code.

Exit codes (``opskit.errors.ExitCode``): 0 ok; 1 failed (playbook or test failed, flight left
stuck); 2 bad options; 3 unknown env or invalid env file; 4 missing tool or checkout; 5 flight or
pod not found; 6 refused (e.g. a namespace not in the env file); 7 an external command failed;
8 timeout; 9 platform unreachable (sandbox down, API or database unreachable). Errors are one
line on stderr.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

from invoke import Collection, Context, task
from invoke.exceptions import Exit

from opskit import envs as envs_mod
from opskit import paths
from opskit.errors import ExitCode, NotFound, UsageError
from opskit.taskkit import console_reporter, env_of, guard, parse_since, print_json, run_dir

ENV_HELP = "environment name (envs/NAME.yaml); default: local"


@task(
    help={
        "name": "show one environment in full",
        "vars": "print the playbooks' extravars for NAME as JSON (ansible-playbook -e @file)",
        "json": "machine-readable output",
    }
)
@guard
def envs(c: Context, name: str = "", vars: bool = False, json: bool = False) -> None:
    """List the environments in envs/ (or show one; --vars prints its playbook extravars)."""
    from opskit.envsetup import setup_vars
    from opskit.errors import EnvError

    if vars and not name:
        raise UsageError("--vars needs --name NAME")
    if name:
        env = env_of(name)
        if vars:
            print_json(setup_vars(env))
        elif json:
            print_json(env.to_dict())
        else:
            import yaml

            sys.stdout.write(yaml.safe_dump(env.to_dict(), sort_keys=False))
        return
    rows: list[dict[str, Any]] = []
    bad: list[str] = []
    for n in envs_mod.list_envs():
        try:
            e = env_of(n)
            rows.append(
                {
                    "name": n,
                    "kind": e.kind,
                    "namespace": e.namespace,
                    "description": e.description,
                    "default": n == envs_mod.DEFAULT_ENV,
                }
            )
        except EnvError as exc:
            rows.append({"name": n, "error": str(exc)})
            bad.append(str(exc))
    if json:
        print_json(rows)
    else:
        for r in rows:
            if "error" in r:
                print(f"{r['name']:<12} INVALID  {r['error']}")
            else:
                mark = " (default)" if r["default"] else ""
                print(
                    f"{r['name']:<12} {r['kind']:<6} {r['namespace']:<18} {r['description']}{mark}"
                )
    if bad:
        raise Exit(f"error: {bad[0]}", int(ExitCode.ENV))


@task(help={"env": ENV_HELP, "quiet": "print only the summary"})
@guard
def setup(c: Context, env: str = "", quiet: bool = False) -> None:
    """Prepare an env via playbooks/setup.yml (tools, rendered files, credentials). Idempotent.

    Checks the tools the env needs, renders skaffold config, helm values and the TestRunner server
    spec and suite into the env's state dir, and fetches cluster credentials (GKE) or prepares the
    sandbox (local). Prints what changed; a re-run changes nothing.
    """
    from opskit.envsetup import setup as do_setup

    e = env_of(env)
    rd = run_dir("setup", e)
    result = do_setup(e, rd, reporter=console_reporter(rd, quiet=quiet))
    if result.changed:
        print(f"setup {e.name}: {len(result.changed)} change(s):")
        for item in result.changed:
            print(f"  changed: {item}")
        for item in result.prepared:
            print(f"    {item}")
    else:
        print(f"setup {e.name}: nothing changed")
    print(f"state dir: {result.state_dir}  (artifacts: {rd})")


@task(help={"env": ENV_HELP})
@guard
def build(c: Context, env: str = "") -> None:
    """Build the service image (GKE: `skaffold build` in <checkout>/local-dev)."""
    from opskit.platform import platform_for

    e = env_of(env)
    platform_for(e).build(c, console_reporter())


@task(help={"env": ENV_HELP, "timeout": "seconds to wait for the rollout (default 600)"})
@guard
def deploy(c: Context, env: str = "", timeout: int = 600) -> None:
    """Deploy and watch the rollout until `Deployments stabilized in …`.

    GKE: `skaffold run` in <checkout>/local-dev, then the rollout through the Kubernetes API.
    Local: rolls the sandbox deployment (new template hash, pods replaced one by one).
    """
    from opskit.platform import platform_for

    e = env_of(env)
    rd = run_dir("deploy", e)
    result = platform_for(e).rollout(c, console_reporter(rd), timeout)
    print(result.message)


@task(help={"env": ENV_HELP})
@guard
def db_proxy(c: Context, env: str = "") -> None:
    """Start the Cloud SQL proxy until Ctrl-C and print the psql line.

    GKE: cloud-sql-proxy on the env's port, waiting until it accepts connections. Local: the
    sandbox database. The password comes from PGPASSWORD/.pgpass and is never printed.
    """
    from opskit.platform import platform_for

    e = env_of(env)
    p = platform_for(e)
    rep = console_reporter()
    with p.db_proxy(c, rep, e.state_path / "cloud-sql-proxy.log") as target:
        print(target.psql_line())
        print(f"password: {target.password.describe()}")
        if e.kind != "gke":
            return
        print("proxy running; Ctrl-C to stop")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass


@task(help={"env": ENV_HELP})
@guard
def connect_db(c: Context, env: str = "") -> None:
    """Open psql on the env's Stairway database (starting the Cloud SQL proxy for GKE)."""
    from opskit.platform import platform_for

    e = env_of(env)
    p = platform_for(e)
    with p.db(c, console_reporter()) as target:
        print(target.psql_line())
        result = c.run(
            target.psql_line(), pty=sys.stdin.isatty(), warn=True, env=target.child_env()
        )
    if result is not None and result.exited:
        raise Exit(code=int(result.exited))


@task(
    help={
        "env": ENV_HELP,
        "flight": "kill the pod that owns (or received) this flight and follow the flight",
        "pod": "kill this pod (NAME or NAMESPACE/NAME)",
        "namespace": "namespace to act in; anything but the env's namespace is refused",
        "when_step": "first wait until the flight is inside step N (0-based, the delayed step)",
        "timeout": "overall seconds (default: 600, or 2x the env's delay + 300)",
        "settle": "stop following when nothing changed this long (default: delay + 60 s)",
        "grace": "pod deletion grace period in seconds (default: the pod's)",
        "json": "print the result as JSON",
    }
)
@guard
def kill_pod(
    c: Context,
    env: str = "",
    flight: str = "",
    pod: str = "",
    namespace: str = "",
    when_step: int = -1,
    timeout: int = 0,
    settle: int = 0,
    grace: int = -1,
    json: bool = False,
) -> None:
    """Kill the pod holding a flight, watch the replacement, and record what the engine did.

    Finds the pod that owns the flight (stairway_id) or received it (logs), optionally waits
    until the flight is inside the delayed step, deletes the pod with the kubernetes client,
    watches until the replacement is Ready, then follows the flight until it finishes or is
    stuck. Prints and saves the timeline (artifacts/kill-pod-*/kill-pod.json).
    """
    from opskit.flights import FlightReader
    from opskit.killpod import KillPodOptions
    from opskit.killpod import kill_pod as do_kill
    from opskit.platform import platform_for

    e = env_of(env)
    if not flight and not pod:
        raise UsageError("give --flight ID or --pod NAME")
    from opskit.kube import check_namespace

    check_namespace(namespace or None, e.namespace)
    delay = e.delay_hook.duration.total_seconds() if e.delay_hook else 0.0
    opts = KillPodOptions(
        flight_id=flight or None,
        pod=pod or None,
        namespace=namespace or None,
        when_step=when_step if when_step >= 0 else None,
        timeout=float(timeout) if timeout > 0 else max(600.0, 2 * delay + 300),
        settle=float(settle) if settle > 0 else max(30.0, delay + 60),
        grace_period=grace if grace >= 0 else None,
    )
    p = platform_for(e)
    rd = run_dir("kill-pod", e)
    # engine log lines come in the timeline at the end; live, show pods and flight states
    rep = console_reporter(rd, quiet=json, show=lambda ev: ".engine." not in ev.kind)
    if flight:
        with p.db(c, rep) as target:
            reader = FlightReader(target.sqlalchemy_url())
            try:
                result = do_kill(p, opts, get_flight=reader.get, reporter=rep, run_dir=rd)
            finally:
                reader.close()
    else:
        result = do_kill(p, opts, reporter=rep, run_dir=rd)
    if json:
        print_json(result.to_json())
    else:
        print(f"timeline ({result.path}):")
        for line in result.lines():
            print("  " + line)
    if result.outcome == "stuck":
        raise Exit(f"flight stuck: {result.verdict}", int(ExitCode.FAILED))
    if result.outcome == "not-replaced":
        raise Exit("no replacement pod became Ready in time", int(ExitCode.TIMEOUT))


@task(
    help={
        "env": ENV_HELP,
        "flight": "show the engine's events for this flight as a timeline",
        "pod": "only this pod's entries",
        "since": "how far back: a duration (1h, 30m, 48h) or an RFC 3339 time (default 1h)",
        "until": "end of the window (RFC 3339 time or duration back from now)",
        "limit": "at most this many entries (default 200)",
        "show_filter": "print the Cloud Logging filter used (paste into the Logs Explorer)",
        "json": "machine-readable output",
    }
)
@guard
def logs(
    c: Context,
    env: str = "",
    flight: str = "",
    pod: str = "",
    since: str = "1h",
    until: str = "",
    limit: int = 200,
    show_filter: bool = False,
    json: bool = False,
) -> None:
    """Service logs, or with --flight the engine's events for one flight as a timeline.

    Uses the standard filter (project, cluster, namespace, location, container, without /status
    and /version requests) and always an explicit time bound (--since).
    """
    from opskit.cloudlogs import ENGINE_PHRASES
    from opskit.engine_events import flight_timeline
    from opskit.kube import split_pod_arg
    from opskit.platform import platform_for

    e = env_of(env)
    start = parse_since(since)
    end = parse_since(until) if until else None
    pod_name = split_pod_arg(pod, e.namespace) if pod else None
    p = platform_for(e)
    if show_filter:
        from opskit.cloudlogs import build_filter

        contains = (flight, *ENGINE_PHRASES) if flight else ()
        print(build_filter(p.log_scope(), since=start, until=end, pod=pod_name, contains=contains))
        return
    if flight:
        lines = p.query_logs(
            since=start, until=end, pod=pod_name, contains=(flight, *ENGINE_PHRASES)
        )
        items = flight_timeline(lines, flight)
        if not items:
            raise NotFound(
                f"no log lines mention flight {flight} since {start:%Y-%m-%dT%H:%M:%SZ}"
                " (widen --since?)"
            )
        if json:
            print_json([i.to_json() for i in items])
            return
        for i in items:
            print(f"{_ts(i.at)}  {i.pod:<48} {i.event.kind.value:<18} {i.summary()}")
        return
    entries = p.query_logs(since=start, until=end, pod=pod_name, limit=limit)
    if json:
        print_json(
            [
                {
                    "timestamp": _ts(x.timestamp),
                    "pod": x.pod,
                    "severity": x.severity,
                    "message": x.message,
                }
                for x in entries
            ]
        )
        return
    for x in entries:
        first = x.message.splitlines()[0] if x.message else ""
        print(f"{_ts(x.timestamp)}  {x.pod:<48} {x.severity:<7} {first}")


def _ts(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@task(
    help={
        "env": ENV_HELP,
        "suite": "test suite: kill-pod (the env's kill-pod-<env>.json) or a suite file name",
        "json": "print the summary as JSON (TestRunner field names)",
    }
)
@guard
def run_test(c: Context, env: str = "", suite: str = "kill-pod", json: bool = False) -> None:
    """Run the workspace user journey and print its SUMMARY_testRun.json summary.

    GKE: TestRunner (`./gradlew runTest --args="suites/kill-pod-<env>.json /tmp/TR"`). Local: the
    same journey (create → get → delete workspace) against the sandbox API.
    """
    from opskit.platform import platform_for

    e = env_of(env)
    rd = run_dir("run-test", e)
    summary = platform_for(e).run_test(c, suite, console_reporter(rd, quiet=json), rd)
    if json:
        print_json(summary.to_json())
    else:
        for line in summary.lines():
            print(line)
    if summary.is_failure:
        raise Exit("test run failed", int(ExitCode.FAILED))


EXPERIMENT_HELP = {
    "name": "the experiment: experiments/NAME.yaml (e.g. single-instance-pod-kill)",
    "env": ENV_HELP + " (local: a sandbox of the experiment's own)",
    "attempts": "number of attempts (default: the experiment's)",
    "delay": "DelayHook seconds (default: the experiment's, e.g. 5)",
    "keep_sandbox": "local: leave the experiment's sandbox running afterwards",
    "no_runbooks": "do not render runbooks from the journal",
    "out": "runbooks directory (default: runbooks/); the journal is copied to OUT/journals/",
}


@task(positional=["name"], help=EXPERIMENT_HELP)
@guard
def experiment(
    c: Context,
    name: str,
    env: str = "",
    attempts: int = 0,
    delay: str = "",
    keep_sandbox: bool = False,
    no_runbooks: bool = False,
    out: str = "",
) -> None:
    """Run a pod-kill experiment, write its journal, render runbooks; exit 1 on deviation.

    Per attempt: steady state before, the flight started through the service API
    (`inv run-test`), the fault inside the delayed step (`inv kill-pod` or cut DB connections),
    observation (logs, flight rows, pod events), `repairtool orphans` dry run and --fix when the
    experiment says so, steady state after, verdict. Local: the sandbox is started with the
    experiment's replicas/reader/delay in .stairway-ops/experiments/NAME and destroyed after.
    Writes artifacts/<run-id>/journal.json; when the verdict passed, copies it to
    runbooks/journals/ and renders runbooks/ from the journals there.
    """
    from opskit.experiment import list_definitions, load_definition, run_experiment

    if not name:
        raise UsageError("name an experiment: " + ", ".join(list_definitions()))
    definition = load_definition(name)
    if delay:
        try:
            seconds = float(delay)
        except ValueError:
            raise UsageError(f"--delay {delay!r}: a number of seconds") from None
        definition = definition.with_delay(seconds)
    if attempts < 0:
        raise UsageError("--attempts must be >= 1")
    e = env_of(env)
    rd = paths.new_run_dir(f"{definition.name}-{e.name}")
    # live: everything but the bulky --json documents (they are in the run's commands/*.log)
    rep = console_reporter(rd, show=lambda ev: not ev.data.get("quiet"))
    journal = run_experiment(
        definition,
        e,
        run_dir=rd,
        reporter=rep,
        attempts=attempts or None,
        c=c,
        keep_sandbox=keep_sandbox,
    )
    for a in journal.attempts:
        print(f"attempt {a.number}: {a.verdict.upper()}  flight {a.flight_id}")
    print(f"verdict: {journal.verdict.upper()} ({journal.status}, {journal.duration_s:g}s)")
    print(f"journal: {rd / 'journal.json'}")
    if journal.deviated:
        print("runbooks: not updated (runbooks quote verified runs only)")
    elif not no_runbooks:
        _render_after_experiment(rd / "journal.json", journal, Path(out) if out else None)
    if journal.deviated:
        raise Exit(f"experiment deviated: {journal.fail_step}", int(ExitCode.FAILED))


def _render_after_experiment(path: Path, journal: Any, out: Path | None) -> None:
    import shutil

    from opskit.journal import load
    from opskit.runbooks import journal_paths, render_runbooks

    out_dir = out or paths.PROJECT_ROOT / "runbooks"
    kept = out_dir / "journals" / f"{journal.experiment.name}-{journal.env.name}.json"
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, kept)
    journals = [load(p) for p in journal_paths([kept.parent])]
    written = render_runbooks(journals, out_dir)
    print(f"runbooks: {len(written)} files in {out_dir} (journal kept as {kept})")


@task(
    iterable=["journal"],
    help={
        "journal": "a journal.json or a directory of them (repeatable); default runbooks/journals/",
        "out": "output directory (default: runbooks/)",
        "check": "write nothing; exit 1 when a file in --out differs from what would be rendered",
    },
)
@guard
def runbook(
    c: Context, journal: list[str] | None = None, out: str = "", check: bool = False
) -> None:
    """Render the runbooks from experiment journals only (never from live state).

    The same journals give byte-identical Markdown: experiment records, the operational
    runbooks (orphaned RUNNING flights, FlightMap decode failure, stuck READY/QUEUED flights)
    and an index. Every command they quote was executed by the run that wrote the journal.
    """
    from opskit.journal import load
    from opskit.runbooks import RunbookError, journal_paths, render_runbooks
    from opskit.runbooks import check as check_runbooks

    sources = [Path(j) for j in journal] if journal else [paths.PROJECT_ROOT / "runbooks/journals"]
    missing = [str(p) for p in sources if not p.exists()]
    files = journal_paths(p for p in sources if p.exists())
    if missing or not files:
        raise RunbookError(
            f"no journals in {', '.join(missing or map(str, sources))}"
            " (`inv experiment NAME` writes one)"
        )
    journals = [load(p) for p in files]
    out_dir = Path(out) if out else paths.PROJECT_ROOT / "runbooks"
    if check:
        stale = check_runbooks(journals, out_dir)
        for name in stale:
            print(f"stale: {name}")
        if stale:
            raise Exit(f"{len(stale)} runbook file(s) differ from their journals", 1)
        print(f"runbooks in {out_dir} match {len(journals)} journal(s)")
        return
    for p in render_runbooks(journals, out_dir):
        print(p)


BENCHES = {
    "decode": "bench/bench_decode.py",
    "orphans": "bench/bench_orphans.py",
    "sandbox": "bench/bench_sandbox_startup.py",
}


@task(
    help={
        "which": "decode, orphans, sandbox or all (default)",
        "flights": "flights in the generated database for the orphans benchmark (default 1000000)",
        "repeat": "repetitions per measurement (medians are reported)",
    }
)
def bench(c: Context, which: str = "all", flights: int = 1_000_000, repeat: int = 3) -> None:
    """Run the benchmarks under bench/; each reports ratios against a baseline from the same run.

    decode: FlightMap decode values/s vs json.loads; orphans: `repairtool orphans --json` end to
    end vs the same detection as one psql query (the floor) on a generated database; sandbox:
    2-replica sandbox start-up vs a bare Postgres start.
    """
    names = list(BENCHES) if which == "all" else [which]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        raise Exit(f"error: unknown benchmark {unknown[0]!r}; one of {', '.join(BENCHES)}", 2)
    for name in names:
        args = {
            "orphans": f" --flights {flights} --repeat {repeat}",
            "sandbox": f" --rounds {repeat}",
        }
        print(f"== {name}")
        c.run(f"{sys.executable} {BENCHES[name]}{args.get(name, '')}", pty=False)


@task(help={"cases": "generated cases for the full-path test (default 20000; CI runs 5000)"})
def conformance(c: Context, cases: int = 20_000) -> None:
    """Check every FlightMap verdict repairtool makes against real Jackson (tests/conformance),
    with new random cases; prints how many were compared and how many disagreed."""
    env = {"STAIRWAY_CONFORMANCE_CASES": str(cases), "STAIRWAY_CONFORMANCE_RANDOM": "1"}
    c.run(f"{sys.executable} -m pytest -q tests/conformance", env=env, pty=False)


def _local_env(name: str) -> Any:
    e = env_of(name)
    if e.kind != "local":
        raise UsageError(f"env {e.name!r} is {e.kind}: the sandbox is for local environments")
    return e


@task(
    help={
        "env": "a local environment (envs/NAME.yaml); default: local",
        "fresh": "wipe the previous database, logs and pods first",
    }
)
@guard
def sandbox_up(c: Context, env: str = "", fresh: bool = False) -> None:
    """Start the local sandbox (Postgres, Pub/Sub emulator, pods) and wait until Ready."""
    from opskit import local

    e = _local_env(env)
    h = local.up(e, fresh=fresh)
    pods = h.ready_pods()
    print(f"sandbox up in {h.startup_seconds:.1f}s: {len(pods)} pod(s) ready in {h.namespace}")
    for p in pods:
        print(f"  {p}")
    print(f"service {h.service_url}  kubeconfig {h.kubeconfig}  logs {h.logging_url}")
    print("work queue: " + ("Pub/Sub emulator" if h.queue_enabled else "none (resume inline)"))


@task(help={"env": "a local environment (envs/NAME.yaml); default: local"})
@guard
def sandbox_down(c: Context, env: str = "") -> None:
    """Stop every process of the local sandbox (pods, supervisor, emulator, Postgres)."""
    from opskit import local

    was = local.down(_local_env(env))
    print("sandbox stopped" if was else "sandbox was not running")


@task(help={"env": "a local environment (envs/NAME.yaml); default: local", "json": "as JSON"})
@guard
def sandbox_status(c: Context, env: str = "", json: bool = False) -> None:
    """Show what runs in the local sandbox; exit 9 when it is not running."""
    from opskit import local

    st = local.status(_local_env(env))
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
    if not st.running:
        raise Exit(code=int(ExitCode.UNAVAILABLE))


sandbox_ns = Collection("sandbox")
sandbox_ns.add_task(sandbox_up, name="up")
sandbox_ns.add_task(sandbox_down, name="down")
sandbox_ns.add_task(sandbox_status, name="status")

ns = Collection(
    envs,
    setup,
    build,
    deploy,
    db_proxy,
    connect_db,
    kill_pod,
    logs,
    run_test,
    experiment,
    runbook,
    bench,
    conformance,
)
ns.add_collection(sandbox_ns)
