"""`repairtool recover …`: the engine's single-flight recovery primitives (stairctl's `force ready`
/ `force fatal`, plus disown, instance recovery and the READY message), dry run by default.

`-o json` (`--json`) prints one `repairtool.recover/1` document, in a dry run too:
  {"schema": "repairtool.recover/1", "action", "target", "dry_run": true|false,
   "plan": "what would change", "results": [{"action", "flight_id", "outcome", "before",
   "after", "detail", "audit_id"}]}     (results: empty in a dry run)

The flight's (status, owner) as read now is the compare-and-set expectation of the change, so a
flight the engine moves on between the dry run and `--fix` is skipped, never clobbered.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from repairtool.cli.common import (
    HelpFormatter,
    View,
    add_db_args,
    add_output_args,
    add_yes_arg,
    open_engine,
    show,
)
from repairtool.cli.orphans import queue_of
from repairtool.errors import EXIT_FINDINGS, UsageError
from repairtool.guards import confirm, require_reason

if TYPE_CHECKING:
    from repairtool.stairway.model import MutationResult

ACTIONS = {
    "disown": "RUNNING → READY, owner cleared (only if still owned by the same instance)",
    "force-ready": "any state → READY, owner cleared (stairctl `force ready`; pickup happens at the"
    " next recovery unless you also `enqueue`)",
    "force-fatal": "→ FATAL with completed_time (stairctl `force fatal`; final)",
    "enqueue": "publish the READY message so a live replica resumes the flight now",
    "instance": "disownRecovery of a dead instance: its RUNNING flights → READY, row deleted",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "recover",
        help="single-flight recovery primitives (dry run by default)",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    acts = p.add_subparsers(dest="recover_action", required=True, metavar="ACTION")
    for name, helptext in ACTIONS.items():
        q = acts.add_parser(
            name,
            help=helptext,
            description=f"{helptext}\n\n{__doc__}",
            formatter_class=HelpFormatter,
        )
        add_db_args(q)
        q.add_argument("target", metavar="STAIRWAY_NAME" if name == "instance" else "FLIGHT_ID")
        q.add_argument("--fix", action="store_true", help="apply (default: show what would change)")
        q.add_argument("--reason", help="why (required with --fix; stored in the audit trail)")
        add_yes_arg(q)
        add_output_args(q)
        if name == "enqueue":
            q.add_argument(
                "--cluster",
                help="Stairway cluster name; the topic is <cluster>-workqueue (default: the"
                " environment's work queue)",
            )
            q.add_argument("--project", help="GCP project (default $PUBSUB_PROJECT_ID)")
        q.set_defaults(func=cmd_recover, action=name)


def _render(r: MutationResult) -> str:
    before = f"{r.before.get('status')}/{r.before.get('stairway_id') or '-'}" if r.before else "-"
    after = f"{r.after.get('status')}/{r.after.get('stairway_id') or '-'}" if r.after else "-"
    line = f"{r.action} {r.flight_id}: {r.outcome} ({before} → {after})"
    return line + (f": {r.detail}" if r.detail else "")


def cmd_recover(args: argparse.Namespace) -> int:
    # lazy: the recovery API pulls in SQLAlchemy and Pub/Sub (~0.5 s); --help must not wait
    from repairtool.stairway import recovery
    from repairtool.stairway.audit import Actor
    from repairtool.stairway.model import Outcome
    from repairtool.stairway.queries import get_flight, list_instances

    engine = open_engine(args)
    action: str = args.action
    if action == "instance":
        names = {i.stairway_name for i in list_instances(engine)}
        if args.target not in names:
            raise UsageError(f"no stairwayinstance row named {args.target}")
        plan = f"recover instance {args.target}: its RUNNING flights → READY; row deleted"
    else:
        flight = get_flight(engine, args.target).flight
        plan = f"{action} {flight.flight_id}: now {flight.status} owned by {flight.owner or '-'}"
        if action == "disown" and flight.status != "RUNNING":
            raise UsageError(f"flight {flight.flight_id} is {flight.status}, not RUNNING")
    doc: dict[str, Any] = {
        "schema": "repairtool.recover/1",
        "action": action,
        "target": args.target,
        "dry_run": not args.fix,
        "plan": plan,
        "results": [],
    }
    if not args.fix:
        lines = [f"dry run: {plan} — {ACTIONS[action]}", "re-run with --fix --reason TEXT to apply"]
        show(args, View(doc=doc, before=lines, title=f"repairtool recover {action} (dry run)"))
        return EXIT_FINDINGS
    actor = Actor(reason=require_reason(args.reason))
    confirm(f"{plan}. Apply?", yes=args.yes)
    notes: list[str] = []
    if action == "instance":
        rec = recovery.recover_instance(engine, args.target, actor=actor)
        results = list(rec.flights)
        notes.append(f"{rec.outcome}: {rec.detail}")
    elif action == "enqueue":
        queue = queue_of(args)
        if queue is None:
            raise UsageError("no work queue: pass --cluster NAME (the environment names none)")
        results = [
            recovery.enqueue_ready(
                engine, flight.flight_id, queue=queue, expected=flight.state, actor=actor
            )
        ]
    else:
        seen = flight.state
        # naming a flight here still overrides the liveness rule; the audit row says so
        named = recovery.Because(
            recovery.Evidence.FORCED, "named with `repairtool recover` (liveness not checked)"
        )
        if action == "disown":
            results = [
                recovery.disown(engine, flight.flight_id, expected=seen, because=named, actor=actor)
            ]
        elif action == "force-ready":
            results = [
                recovery.force_ready(
                    engine, flight.flight_id, expected=seen, because=named, actor=actor
                )
            ]
        else:
            results = [
                recovery.force_fatal(
                    engine, flight.flight_id, expected=seen, because=named, actor=actor
                )
            ]
    doc["results"] = [_result_json(r) for r in results]
    lines = [*notes, *(_render(r) for r in results)]
    show(args, View(doc=doc, before=lines, title=f"repairtool recover {action}"))
    return 0 if all(r.outcome is Outcome.CHANGED for r in results) else EXIT_FINDINGS


def _result_json(r: MutationResult) -> dict[str, Any]:
    return {k: (str(v) if k == "outcome" else v) for k, v in r.__dict__.items()}
