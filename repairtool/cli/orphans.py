"""`repairtool orphans`: find orphaned, stalled and unqueued flights and stale instances; repair.

Dry run by default: detection builds the plan and this prints it. `--fix --reason TEXT` applies the
same plan (after a y/N question on a terminal, or `--yes`).

--json document (stable; version 1):
  {"schema": "repairtool.orphans/1",
   "liveness": {"source", "confidence", "note", "live": [..] | null},
   "reader": "legacy" | "typed", "scanned": N,
   "findings": [{"flight_id", "class_name", "status", "owner", "kind", "evidence",
                 "proposed_action", "instance"?}],
   "plan": [{"flight_id", "instance", "kind", "action", "steps", "reencode_keys"}],
   "refused": [{"flight_id", "instance", "kind", "action", "why"}],
   "deferred": [...plan items beyond --limit],
   "applied": [{...plan item, "results": [{"step", "outcome", "before", "after", "detail",
                                           "audit_id"}]}],          (after --fix)
   "skipped": [{...plan item, "results": [...], "why"}]}            (after --fix)
kind: dead_owner | stalled | unqueued | stale_instance
proposed_action / action: resume | fail | enqueue | recover_instance | reencode | none
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from repairtool.cli.common import (
    add_db_args,
    confirm,
    duration,
    open_engine,
    print_json,
    require_reason,
    table,
    target_of,
)
from repairtool.errors import EXIT_FINDINGS, UsageError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from repairtool.detect import Detection
    from repairtool.flightmap import ReaderVersion
    from repairtool.liveness import Liveness
    from repairtool.repair import Outcomes, Plan
    from repairtool.stairway.queue import WorkQueue


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
    g.add_argument("--kubeconfig", help="kubeconfig file for --kube (default: $KUBECONFIG)")
    g.add_argument("--context", help="kubeconfig context for --kube")
    g.add_argument("--namespace", help="namespace of the deployment (for --kube)")
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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "orphans",
        help="find and repair flights the engine will never finish by itself",
        description=__doc__,
    )
    add_db_args(p)
    add_liveness_args(p)
    add_decode_args(p)
    add_queue_args(p)
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
    d.add_argument("--class", dest="class_name", help="only flights of this class (* wildcard)")
    d.add_argument(
        "--flight",
        action="append",
        default=[],
        metavar="ID",
        help="only this flight (repeatable); naming a flight also allows repairing"
        " it while its owner is alive",
    )
    d.add_argument("--json", action="store_true", help="one JSON document (see the schema above)")
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
    f.add_argument("--yes", action="store_true", help="do not ask y/N")
    f.add_argument("--limit", type=int, metavar="N", help="apply at most N changes")
    f.add_argument("--rate", type=float, metavar="PER_SEC", help="at most this many changes/s")
    f.add_argument(
        "--force",
        action="store_true",
        help="resume even flights whose inputs fail to decode (they will orphan again)",
    )
    p.set_defaults(func=cmd_orphans)


def liveness_of(args: argparse.Namespace) -> Liveness:
    from repairtool import liveness

    if args.live_instances:
        return liveness.from_names(args.live_instances.split(","))
    target = target_of(args)
    if target is not None and target.namespace:
        # an environment names its cluster: use its pod list unless told otherwise
        args.kube = True
        args.namespace = args.namespace or target.namespace
        args.kubeconfig = args.kubeconfig or target.kubeconfig
        args.context = args.context or target.context
        if target.pod_filter and args.pod_filter == DEFAULT_POD_FILTER:
            args.pod_filter = target.pod_filter
    if args.kube:
        if not args.namespace:
            raise UsageError("--kube needs --namespace (the deployment's namespace)")
        return liveness.from_kube(
            args.namespace, args.pod_filter, kubeconfig=args.kubeconfig, context=args.context
        )
    return liveness.from_registry()


def reader_of(args: argparse.Namespace, engine: Engine) -> tuple[ReaderVersion, str]:
    from repairtool.flightmap import ReaderVersion, parse_reader
    from repairtool.stairway.db import reading
    from repairtool.stairway.schema import EngineVersion
    from repairtool.stairway.version import detect_generation

    if args.reader:
        return parse_reader(args.reader), "--reader"
    target = target_of(args)
    if target is not None and target.reader:
        return parse_reader(target.reader), f"--env {target.name}"
    with reading(engine) as conn:
        gen = detect_generation(conn)
    high = gen.version.high
    if high is not None and high <= EngineVersion(0, 0, 60):
        return ReaderVersion.LEGACY, f"database written by Stairway {gen.version}"
    return ReaderVersion.TYPED, f"database written by Stairway {gen.version}"


def catalog_of(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from repairtool.flightmap import load_builtin_catalog, load_catalog

    return load_catalog(args.catalog) if args.catalog else load_builtin_catalog("workspace-manager")


def queue_of(args: argparse.Namespace) -> WorkQueue | None:
    import os

    from repairtool.stairway.queue import WorkQueue

    target = target_of(args)
    if target is not None and not args.cluster and target.cluster_name:
        if not target.work_queue:
            return None  # a service without a queue resumes READY flights inline at recovery
        if target.pubsub_emulator_host:
            os.environ.setdefault("PUBSUB_EMULATOR_HOST", target.pubsub_emulator_host)
        return WorkQueue.from_env(target.cluster_name, args.project or target.queue_project)
    if not args.cluster:
        return None
    return WorkQueue.from_env(args.cluster, args.project)


def cmd_orphans(args: argparse.Namespace) -> int:
    from repairtool.detect import Action, Options, detect
    from repairtool.repair import apply_plan, build_plan, read_inputs
    from repairtool.stairway.audit import Actor

    if args.fix:
        reason = require_reason(args.reason)
    engine = open_engine(args)
    live = liveness_of(args)
    reader, reader_source = reader_of(args, engine)
    catalog = None if args.no_decode else catalog_of(args)
    options = Options(
        stalled_after=args.stalled_after,
        unqueued_after=args.unqueued_after,
        queue_retention=args.queue_retention,
        class_name=args.class_name,
        flight_ids=tuple(args.flight),
        catalog=catalog,
        reader=reader,
    )
    detection = detect(engine, live, options)
    queue = queue_of(args)
    action = Action(args.action) if args.action else None
    inputs = None
    if action is Action.REENCODE or any(
        f.proposed_action is Action.REENCODE for f in detection.findings
    ):
        inputs = read_inputs(
            engine,
            [
                f.flight_id
                for f in detection.findings
                if f.flight_id and f.evidence.get("decode_failures")
            ],
        )
    plan = build_plan(
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
    outcomes = None
    if args.fix and plan.changes:
        if not args.json:
            render_plan(plan, reader, reader_source)
        summary = ", ".join(f"{v} × {k}" for k, v in plan.counts().items())
        confirm(
            f"About to change {len(plan.changes)} flights/instances: {summary}. Apply?",
            yes=args.yes,
        )
        outcomes = apply_plan(
            engine,
            plan,
            actor=Actor(reason=reason),
            queue=queue,
            rate=args.rate,
            on_event=_console if not args.json else _quiet,
        )
    if args.json:
        print_json(document(detection, plan, reader, outcomes))
    elif not args.fix or not plan.changes:
        render_plan(plan, reader, reader_source)
        if plan.changes:
            print("\ndry run: nothing changed; re-run with --fix --reason TEXT to apply this plan")
    else:
        assert outcomes is not None
        render_outcomes(outcomes)
    if not detection.findings:
        return 0
    if outcomes is None:
        return EXIT_FINDINGS
    left = plan.refused or plan.deferred or plan.report_only or outcomes.skipped
    return EXIT_FINDINGS if left else 0


def _console(event: Any) -> None:
    print(f"  {event.message}", file=sys.stderr)


def _quiet(event: Any) -> None:
    return None


def document(
    detection: Detection, plan: Plan, reader: ReaderVersion, outcomes: Outcomes | None
) -> dict[str, Any]:
    live = detection.liveness
    doc: dict[str, Any] = {
        "schema": "repairtool.orphans/1",
        "liveness": {
            "source": live.source,
            "confidence": live.confidence.value,
            "note": live.note,
            "live": sorted(live.live) if live.live is not None else None,
        },
        "reader": reader.value,
        "scanned": detection.scanned,
        "findings": [f.to_json() for f in detection.findings],
        "plan": [c.to_json() for c in plan.changes],
        "refused": [r.to_json() for r in plan.refused],
        "deferred": [c.to_json() for c in plan.deferred],
    }
    if outcomes is not None:
        doc["applied"] = [a.to_json() for a in outcomes.applied]
        doc["skipped"] = [a.to_json() for a in outcomes.skipped]
    return doc


def _short(s: str | None, width: int = 36) -> str:
    if not s:
        return "-"
    return s if len(s) <= width else "…" + s[-(width - 1) :]


def render_plan(plan: Plan, reader: ReaderVersion, reader_source: str) -> None:
    d = plan.detection
    live = d.liveness
    print(f"Liveness: {live.source} ({live.confidence} confidence): {live.note}")
    print(f"Reader: {reader.label} ({reader_source})")
    print(
        f"Scanned {d.scanned} non-terminal flights at {d.now:%Y-%m-%d %H:%M:%S};"
        f" {len(d.findings)} findings"
    )
    if not d.findings:
        return
    rows = []
    for f in d.findings:
        ev = f.evidence
        why = ev.get("pattern") or ev.get("why", "")
        rows.append(
            [
                f.kind,
                f.flight_id or f"instance {f.instance}",
                f.status or "-",
                _short(f.owner),
                ev.get("idle_for", "-"),
                f.proposed_action,
                why if len(why) <= 60 else why[:57] + "…",
            ]
        )
    print(table(["Kind", "Flight", "Status", "Owner", "Idle", "Proposed", "Evidence"], rows))
    for f in d.findings:
        for failure in f.evidence.get("decode_failures", []):
            print(
                f"  {f.flight_id} {failure['source']} {failure['key']}: expected"
                f" {failure['expected']},"
                f" found {failure['found']} — {failure['engine_exception']}"
            )
    if plan.changes:
        print("\nPlan:")
        for c in plan.changes:
            print(f"  {c.action:<16} {c.target}  ({' → '.join(c.steps)})")
    if plan.refused:
        print("\nRefused:")
        for r in plan.refused:
            print(f"  {r.action:<16} {r.finding.flight_id or r.finding.instance}: {r.why}")
    if plan.deferred:
        print(f"\nDeferred by --limit: {len(plan.deferred)} more changes")
    if plan.report_only:
        print(f"\nReport only: {len(plan.report_only)} findings (no safe automatic action)")
    if any(c.action.value in ("resume", "enqueue") for c in plan.changes) and plan.queue is None:
        print(
            "\nNo work queue given (--cluster): resumed flights are disowned to READY and wait"
            " for the next pod start or pod deletion (recoverReady)"
        )


def render_outcomes(outcomes: Outcomes) -> None:
    for a in outcomes.applied:
        print(f"applied  {a.change.action:<16} {a.change.target}" + (f"  {a.why}" if a.why else ""))
        for r in a.results:
            if r.action == "enqueue_ready":
                print(f"         enqueued: {r.detail}")
    for a in outcomes.skipped:
        print(f"skipped  {a.change.action:<16} {a.change.target}: {a.why}")
    print(
        f"{len(outcomes.applied)} applied, {len(outcomes.skipped)} skipped;"
        " see `repairtool flights audit`"
    )
