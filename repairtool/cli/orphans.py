"""`repairtool orphans`: find orphaned, stalled and unqueued flights and stale instances; repair.

Dry run by default: detection builds the plan and this prints it. `--fix --reason TEXT` applies the
same plan (after a y/N question on a terminal, or `--yes`).

`--env a,b,c` scans several environments at once (concurrently) and prints one table with an
Env column; with --json one document (schema repairtool.orphans.envs/1: {"schema", "envs":
[{"env", "ok": true, …the orphans/1 document…} | {"env", "ok": false, "error": {"code",
"name", "message"}}]}). Repairs (--fix) take one environment at a time.

--json document (stable; version 1):
  {"schema": "repairtool.orphans/1",
   "liveness": {"source", "confidence", "note", "live": [..] | null},
   "at": "RFC 3339 time of the scan", "reader": "legacy" | "typed", "scanned": N,
   "findings": [{"flight_id", "class_name", "status", "owner", "kind", "evidence",
                 "proposed_action", "instance"?}],
   "plan": [{"flight_id", "instance", "kind", "action", "steps", "reencode_keys"}],
   "refused": [{"flight_id", "instance", "kind", "action", "why"}],
   "deferred": [...plan items beyond --limit],
   "applied": [{...plan item, "results": [{"step", "flight_id", "outcome", "before", "after",
                                           "detail", "audit_id"}]}],   (after --fix)
   "skipped": [{...plan item, "results": [...], "why"}],             (after --fix)
   "failed", "not_attempted", "error": {"message", "exit_code"},   (after an error stopped
                                       the apply: the command then ends with that error)
   "environment": "what it acted on", "reason": "--reason"}         (after --fix)
After --fix, `-o markdown` prints an incident note: the findings, the changes and their audit ids.
kind: dead_owner | stalled | unqueued | stale_instance | queued_overdue
proposed_action / action: resume | fail | enqueue | recover_instance | reencode | none
queued_overdue is informational (proposed_action none; it never changes the exit code): a
QUEUED/READY flight unowned longer than the work queue's ack deadline plus --overdue-margin.
Its evidence names the age, the ack deadline and where the deadline was read (the subscription,
through the Pub/Sub API, when a work queue is configured; else the engine's default 100 s).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from typing import TYPE_CHECKING, Any

from repairtool.cli import validate
from repairtool.cli.common import (
    HelpFormatter,
    View,
    add_db_args,
    add_output_args,
    add_yes_arg,
    duration,
    open_engine,
    open_reader,
    show,
    target_of,
)
from repairtool.cli.progress import progress_sink
from repairtool.clock import rfc3339_or_none
from repairtool.errors import EXIT_FINDINGS, UsageError
from repairtool.exitcodes import exit_code_of
from repairtool.guards import confirm, require_reason

if TYPE_CHECKING:
    from repairtool.detect import Detection, Options
    from repairtool.flightmap import Catalog, ReaderVersion
    from repairtool.liveness import Liveness
    from repairtool.plan import Plan
    from repairtool.repair import Outcomes
    from repairtool.stairway.pgread import Source
    from repairtool.stairway.queue import WorkQueue
    from repairtool.target import Target


DEFAULT_POD_FILTER = "workspacemanager-deployment"


def add_liveness_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("liveness (which instances are alive)")
    x = g.add_mutually_exclusive_group()
    x.add_argument(
        "--live-instances", metavar="NAME,NAME", help="the live pod names, given directly"
    )
    x.add_argument(
        "--kube", action="store_true", help="list the deployment's pods with the kubernetes client"
    )
    g.add_argument(
        "--kubeconfig",
        help="kubeconfig file for --kube (default: the env's, else $KUBECONFIG; in a pod"
        " without one: the pod's service account)",
    )
    g.add_argument("--context", help="kubeconfig context for --kube (default: the env's)")
    g.add_argument("-n", "--namespace", help="namespace of the service's pods (default: the env's)")
    g.add_argument(
        "-l",
        "--selector",
        metavar="SELECTOR",
        help="label selector of the service's pods, e.g. app.kubernetes.io/component=buffer"
        " (default: the env's profile)",
    )
    g.add_argument(
        "--pod-filter",
        default="workspacemanager-deployment",
        help="pods whose name contains this are instances (TCL's pod-name filter)",
    )


def add_decode_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("FlightMap decoding")
    g.add_argument(
        "--catalog",
        metavar="FILE",
        help="type catalog YAML (default: the built-in workspace-manager catalog)",
    )
    g.add_argument(
        "--reader",
        metavar="VERSION",
        help="engine version of the reading service: ≤0.0.60 (legacy) or ≥0.0.61"
        " (typed); default: from how the database's newest rows were written",
    )


def add_queue_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("work queue (for resume)")
    g.add_argument(
        "--cluster",
        metavar="NAME",
        help="Stairway cluster name; READY messages go to <cluster>-workqueue",
    )
    g.add_argument("--project", help="GCP project of the topic (default $PUBSUB_PROJECT_ID)")


def add_detection_args(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The thresholds of detection (`orphans` and `watch`); returns the group for more."""
    d = p.add_argument_group("detection")
    d.add_argument(
        "--stalled-after",
        type=duration,
        default=duration("10m"),
        metavar="DURATION",
        help="RUNNING with no progress this long is stalled",
    )
    d.add_argument(
        "--unqueued-after",
        type=duration,
        default=duration("10m"),
        metavar="DURATION",
        help="READY and unowned this long is unqueued",
    )
    d.add_argument(
        "--queue-retention",
        type=duration,
        default=duration("3d"),
        metavar="DURATION",
        help="QUEUED longer than this lost its message",
    )
    d.add_argument(
        "--overdue-margin",
        type=duration,
        default=duration("30s"),
        metavar="DURATION",
        help="QUEUED/READY unowned longer than the ack deadline plus this is queued_overdue"
        " (informational)",
    )
    return d


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "orphans",
        help="find and repair flights the engine will never finish by itself",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    add_db_args(p)
    add_liveness_args(p)
    add_decode_args(p)
    add_queue_args(p)
    d = add_detection_args(p)
    d.add_argument("--class", dest="class_name", help="only flights of this class (* wildcard)")
    d.add_argument(
        "--flight",
        action="append",
        default=[],
        metavar="ID",
        help="only this flight (repeatable); with --action, that action for it (a live"
        " owner's flight still needs the make-flight failure or --force)",
    )
    d.add_argument(
        "--no-decode",
        action="store_true",
        help="skip the FlightMap check of RUNNING flights' inputs (faster on huge databases;"
        " make-flight failures are then not told apart from other stalls)",
    )
    f = p.add_argument_group("repair")
    f.add_argument("--fix", action="store_true", help="apply the plan (default: dry run)")
    f.add_argument(
        "--action",
        choices=["resume", "fail", "reencode"],
        help="override the proposed action of each finding",
    )
    f.add_argument("--reason", help="why (required with --fix; goes into the audit trail)")
    add_yes_arg(f)
    f.add_argument("--limit", type=validate.count, metavar="N", help="apply at most N changes")
    f.add_argument(
        "--rate", type=validate.rate, metavar="PER_SEC", help="at most this many changes/s"
    )
    f.add_argument(
        "--force",
        action="store_true",
        help="override the safety rules: resume flights whose inputs fail to decode (they"
        " will orphan again), touch a live owner's flight without the make-flight failure",
    )
    add_output_args(p, wide="full owners and evidence")
    p.set_defaults(func=cmd_orphans)


def liveness_of(args: argparse.Namespace, target: Target | None = None) -> Liveness:
    """The liveness source the options (and the env, when given) name. Does not change `args`."""
    from repairtool import liveness  # lazy: imports the kubernetes client when asked to

    if args.live_instances is not None:  # "" is an empty list: an error, not "not given"
        return liveness.from_names(args.live_instances.split(","))
    target = target if target is not None else target_of(args)
    kube, namespace = args.kube, args.namespace
    kubeconfig, context, selector = args.kubeconfig, args.context, args.selector
    pod_filter = args.pod_filter
    if target is not None and target.namespace:
        # an environment names its cluster: use its pod list unless told otherwise
        kube = True
        namespace = namespace or target.namespace
        kubeconfig = kubeconfig or target.kubeconfig
        context = context or target.context
        selector = selector or target.label_selector
        if target.pod_filter and pod_filter == DEFAULT_POD_FILTER:
            pod_filter = target.pod_filter
    if selector and pod_filter == DEFAULT_POD_FILTER and target is None:
        pod_filter = ""  # a label selector alone says which pods are the service's
    if kube:
        if not namespace:
            raise UsageError("--kube needs --namespace (the deployment's namespace)")
        return liveness.from_kube(
            namespace, pod_filter, kubeconfig=kubeconfig, context=context, label_selector=selector
        )
    return liveness.from_registry()


def reader_of(
    args: argparse.Namespace, source: Source, target: Target | None = None
) -> tuple[ReaderVersion, str]:
    """`--reader`, else the env's, else what the database's newest rows say (`source`: a
    `ReadDb` or a SQLAlchemy engine)."""
    # lazy: the FlightMap package and psycopg; --help must not wait for them
    from repairtool.flightmap import ReaderVersion, parse_reader
    from repairtool.stairway.pgread import run_read
    from repairtool.stairway.schema import EngineVersion
    from repairtool.stairway.version import detect_generation

    if args.reader:
        return parse_reader(args.reader), "--reader"
    target = target if target is not None else target_of(args)
    if target is not None and target.reader:
        return parse_reader(target.reader), f"--env {target.name}"
    gen = run_read(source, detect_generation, what="detect the engine version")
    high = gen.version.high
    if high is not None and high <= EngineVersion(0, 0, 60):
        return ReaderVersion.LEGACY, f"database written by Stairway {gen.version}"
    return ReaderVersion.TYPED, f"database written by Stairway {gen.version}"


def catalog_of(args: argparse.Namespace, target: Target | None = None) -> Catalog:
    """`--catalog FILE`, else the env's (a built-in name or a file), else Workspace Manager's."""
    # lazy: the FlightMap package is only needed when a command decodes
    from repairtool.flightmap import load_builtin_catalog, load_catalog

    if args.catalog:
        return load_catalog(args.catalog)
    if target is None and getattr(args, "env", None) and "," not in args.env:
        target = target_of(args)
    named = target.catalog if target is not None else None
    if named and ("/" in named or named.endswith((".yaml", ".yml"))):
        return load_catalog(named)
    return load_builtin_catalog(named or "workspace-manager")


def queue_of(args: argparse.Namespace, target: Target | None = None) -> WorkQueue | None:
    # lazy: the work queue module pulls in the database layer (~0.3 s)
    from repairtool.stairway.queue import WorkQueue

    target = target if target is not None else target_of(args)
    if target is not None and not args.cluster and target.cluster_name:
        if not target.work_queue:
            return None  # a service without a queue resumes READY flights inline at recovery
        if target.pubsub_emulator_host:
            os.environ.setdefault("PUBSUB_EMULATOR_HOST", target.pubsub_emulator_host)
        return WorkQueue.from_env(target.cluster_name, args.project or target.queue_project)
    if not args.cluster:
        return None
    return WorkQueue.from_env(args.cluster, args.project)


def ack_deadline_of(queue: WorkQueue | None) -> tuple[dt.timedelta, str]:
    """The work queue's ack deadline and where it comes from (the subscription, read with the
    Pub/Sub API; the engine's default when there is no queue or it cannot be read)."""
    # lazy: detection pulls in psycopg (~0.1 s); --help must not wait for it
    from repairtool.detect import ENGINE_ACK_DEADLINE, ENGINE_ACK_DEADLINE_SOURCE
    from repairtool.stairway.queue import QueueError

    if queue is None:
        return ENGINE_ACK_DEADLINE, ENGINE_ACK_DEADLINE_SOURCE
    try:
        seconds = queue.ack_deadline()
    except QueueError as error:
        return ENGINE_ACK_DEADLINE, (
            f"the engine's default 100 s: the subscription could not be read ({error})"
        )
    return dt.timedelta(seconds=seconds), (
        f"subscription {queue.subscription_path} (read with the Pub/Sub API)"
    )


def detect_options(
    args: argparse.Namespace,
    catalog: Catalog | None,
    reader: ReaderVersion,
    queue: WorkQueue | None = None,
) -> Options:
    from repairtool.detect import Options  # lazy: psycopg and the FlightMap package

    return Options(
        stalled_after=args.stalled_after,
        unqueued_after=args.unqueued_after,
        queue_retention=args.queue_retention,
        class_name=args.class_name,
        flight_ids=tuple(args.flight),
        catalog=catalog,
        reader=reader,
        ack_deadline_reader=lambda: ack_deadline_of(queue),
        overdue_margin=args.overdue_margin,
    )


def cmd_orphans(args: argparse.Namespace) -> int:
    # lazy: detection reads with psycopg (~50 ms to import); --help must not wait for it
    from repairtool.detect import detect
    from repairtool.stairway.queries import require_flights

    if args.fix:
        reason = require_reason(args.reason)
    if args.reader:
        # lazy: the FlightMap package; a bad --reader is one line before anything is opened
        from repairtool.flightmap import parse_reader

        parse_reader(args.reader)
    db = open_reader(args)
    live = liveness_of(args)
    require_flights(db, args.flight)
    reader, reader_source = reader_of(args, db)
    catalog = None if args.no_decode else catalog_of(args)
    queue = queue_of(args)
    options = detect_options(args, catalog, reader, queue)
    # progress (n/N, rate, ETA) on a terminal only: nothing on a pipe or with -o json
    detection = detect(db, live, options, on_event=progress_sink(args.output))
    plan = make_plan(args, db, detection, queue, catalog, reader)
    outcomes = None
    human = args.output != "json"
    if args.fix and plan.changes:
        if human and args.output != "markdown":  # markdown: one incident note at the end
            show(args, plan_view(plan, reader, reader_source))
        summary = ", ".join(f"{v} × {k}" for k, v in plan.counts().items())
        confirm(
            f"About to change {len(plan.changes)} flights/instances: {summary}. Apply?",
            yes=args.yes,
        )
        # lazy: changes go through SQLAlchemy's transactional API (~0.3 s); only --fix needs it
        from repairtool.repair import apply_plan
        from repairtool.stairway.audit import Actor

        outcomes = apply_plan(
            open_engine(args),
            plan,
            actor=Actor(reason=reason),
            queue=queue,
            rate=args.rate,
            on_event=(
                progress_sink(args.output, echo=_console)
                if human and args.output != "markdown"
                else _quiet
            ),
            on_error="record",  # an error part-way: what was done is still shown, then raised
        )
    elif args.fix:
        from repairtool.repair import Outcomes  # lazy: SQLAlchemy, only for --fix

        outcomes = Outcomes((), ())
    if not human:
        from repairtool.jsonout import write_document  # lazy: orjson; --help must not wait

        doc = document(detection, plan, reader, outcomes, streamed=True)
        if outcomes is not None:
            doc["environment"] = getattr(args, "_where", None)
            doc["reason"] = reason
        write_document(doc)
    elif args.output == "markdown" and outcomes is not None:
        # lazy: the incident note is needed only after a repair in Markdown
        from repairtool.incident import incident_markdown

        doc = document(detection, plan, reader, outcomes)
        doc |= {"environment": getattr(args, "_where", None), "reason": reason}
        sys.stdout.write(incident_markdown(doc))
    elif not args.fix or not plan.changes:
        view = plan_view(plan, reader, reader_source)
        if plan.changes:
            view.after += [
                "",
                "dry run: nothing changed; re-run with --fix --reason TEXT to apply this plan",
            ]
        show(args, view)
    else:
        assert outcomes is not None
        render_outcomes(outcomes)
    if outcomes is not None and outcomes.error is not None:
        raise outcomes.error
    if all(f.informational for f in detection.findings):
        return 0  # nothing found, or only delays (queued_overdue): the exit code ignores them
    if outcomes is None:
        return EXIT_FINDINGS
    left = plan.refused or plan.deferred or plan.report_only or outcomes.skipped
    return EXIT_FINDINGS if left else 0


def make_plan(
    args: argparse.Namespace,
    source: Source,
    detection: Detection,
    queue: WorkQueue | None,
    catalog: Catalog | None,
    reader: ReaderVersion,
) -> Plan:
    """The one plan for the options (`--action`, `--flight`, `--force`, `--limit`). Re-encoding
    rewrites the inputs detection read (`detection.inputs`); others are read from `source`."""
    from repairtool.detect import Action, read_inputs  # lazy: psycopg and the FlightMap package
    from repairtool.plan import build_plan

    action = Action(args.action) if args.action else None
    inputs = None
    if action is Action.REENCODE or any(
        f.proposed_action is Action.REENCODE for f in detection.findings
    ):
        failing = [
            f.flight_id
            for f in detection.findings
            if f.flight_id and f.evidence.get("decode_failures")
        ]
        inputs = {fid: dict(v) for fid, v in detection.inputs.items()}
        missing = [fid for fid in failing if fid not in inputs]
        if missing:
            inputs.update(read_inputs(source, missing))
    return build_plan(
        detection,
        action=action,
        named=frozenset(args.flight),
        force=args.force,
        limit=args.limit,
        queue=queue,
        catalog=catalog,
        reader=reader,
        inputs=inputs,
    )


def _console(event: Any) -> None:
    print(f"  {event.message}", file=sys.stderr)


def _quiet(event: Any) -> None:
    return None


def document(
    detection: Detection,
    plan: Plan,
    reader: ReaderVersion,
    outcomes: Outcomes | None,
    *,
    streamed: bool = False,
) -> dict[str, Any]:
    """The orphans/1 document; `streamed`: its long lists as `jsonout.Streamed` (for
    `jsonout.write_document`, which encodes them one item at a time)."""
    from repairtool.jsonout import Streamed  # lazy: orjson; --help must not wait

    lists: Any = Streamed if streamed else list
    live = detection.liveness
    doc: dict[str, Any] = {
        "schema": "repairtool.orphans/1",
        "at": rfc3339_or_none(detection.now, "seconds"),
        "liveness": {
            "source": live.source,
            "confidence": live.confidence.value,
            "note": live.note,
            "live": sorted(live.live) if live.live is not None else None,
        },
        "reader": reader.value,
        "scanned": detection.scanned,
        "findings": lists(f.to_json() for f in detection.findings),
        "plan": lists(c.to_json() for c in plan.changes),
        "refused": lists(r.to_json() for r in plan.refused),
        "deferred": lists(c.to_json() for c in plan.deferred),
    }
    if outcomes is not None:
        doc.update(outcomes_json(outcomes))
    return doc


def outcomes_json(outcomes: Outcomes) -> dict[str, Any]:
    """`applied` and `skipped`; after an error that stopped the apply also `failed`,
    `not_attempted` and `error` ({"message", "exit_code"}) — the one-line message and the exit
    code the command then ends with."""
    doc: dict[str, Any] = {
        "applied": [a.to_json() for a in outcomes.applied],
        "skipped": [a.to_json() for a in outcomes.skipped],
    }
    if outcomes.error is not None:
        doc["failed"] = [a.to_json() for a in outcomes.failed]
        doc["not_attempted"] = [c.to_json() for c in outcomes.not_attempted]
        doc["error"] = {
            "message": str(outcomes.error),
            "exit_code": int(exit_code_of(outcomes.error)),
        }
    return doc


def _short(s: str | None, width: int = 36) -> str:
    if not s:
        return "-"
    return s if len(s) <= width else "…" + s[-(width - 1) :]


def plan_view(plan: Plan, reader: ReaderVersion, reader_source: str) -> View:
    """The findings and the plan for people: table (evidence cut to fit), wide and markdown
    (full owners and evidence)."""
    d = plan.detection
    live = d.liveness
    before = [
        f"Liveness: {live.source} ({live.confidence} confidence): {live.note}",
        f"Reader: {reader.label} ({reader_source})",
        f"Scanned {d.scanned} non-terminal flights at {rfc3339_or_none(d.now, 'seconds')};"
        f" {len(d.findings)} findings",
    ]
    columns = ["Kind", "Flight", "Status", "Owner", "Idle", "Proposed", "Evidence"]
    rows, wide = [], []
    for f in d.findings:
        ev = f.evidence
        why = str(ev.get("pattern") or ev.get("why", ""))
        head = [f.kind, f.flight_id or f"instance {f.instance}", f.status or "-"]
        tail = [ev.get("idle_for", "-"), f.proposed_action]
        rows.append([*head, _short(f.owner), *tail, why if len(why) <= 60 else why[:57] + "…"])
        wide.append([*head, f.owner or "-", *tail, _evidence(ev)])
    after = [
        f"  {f.flight_id} {x['source']} {x['key']}: expected {x['expected']},"
        f" found {x['found']}"
        f" — {x['engine_exception']}"
        for f in d.findings
        for x in f.evidence.get("decode_failures", [])
    ]
    if plan.changes:
        after += ["", "Plan:"]
        after += [f"  {c.action:<16} {c.target}  ({' → '.join(c.steps)})" for c in plan.changes]
    if plan.refused:
        after += ["", "Refused:"]
        after += [
            f"  {r.action:<16} {r.finding.flight_id or r.finding.instance}: {r.why}"
            for r in plan.refused
        ]
    if plan.deferred:
        after += ["", f"Deferred by --limit: {len(plan.deferred)} more changes"]
    if plan.report_only:
        after += ["", f"Report only: {len(plan.report_only)} findings (no safe automatic action)"]
    overdue = [f for f in d.findings if f.informational]
    if overdue:
        ev = overdue[0].evidence
        after += [
            "",
            f"Informational: {len(overdue)} queued_overdue (waiting longer than the ack deadline"
            f" {ev.get('ack_deadline')} + {ev.get('margin')}; deadline from"
            f" {ev.get('ack_deadline_source')}); no action, the exit code ignores them",
        ]
    if any(c.action.value in ("resume", "enqueue") for c in plan.changes) and plan.queue is None:
        after += [
            "",
            "No work queue given (--cluster): resumed flights are disowned to READY and wait"
            " for the next pod start or pod deletion (recoverReady)",
        ]
    return View(
        doc={},
        columns=columns,
        rows=rows,
        wide_rows=wide,
        title=f"repairtool orphans: {len(d.findings)} findings"
        + (f", {len(plan.changes)} changes planned (dry run)" if plan.changes else ""),
        before=before,
        after=after,
    )


def _evidence(ev: dict[str, Any]) -> str:
    """All of a finding's evidence on one line (decode failures are listed below the table)."""
    return "; ".join(
        f"{k}={v}" for k, v in sorted(ev.items()) if k != "decode_failures" and v not in (None, "")
    )


def render_outcomes(outcomes: Outcomes) -> None:
    for a in outcomes.applied:
        print(f"applied  {a.change.action:<16} {a.change.target}" + (f"  {a.why}" if a.why else ""))
        for r in a.results:
            if r.action == "enqueue_ready":
                print(f"         enqueued: {r.detail}")
    for a in outcomes.skipped:
        print(f"skipped  {a.change.action:<16} {a.change.target}: {a.why}")
    for a in outcomes.failed:
        print(f"failed   {a.change.action:<16} {a.change.target}: {a.why}")
    for c in outcomes.not_attempted:
        print(f"not attempted  {c.action:<10} {c.target}")
    stopped = f", {len(outcomes.not_attempted)} not attempted" if outcomes.error else ""
    print(
        f"{len(outcomes.applied)} applied, {len(outcomes.skipped)} skipped{stopped};"
        " see `repairtool flights audit`"
    )
