"""`repairtool recover …`: the engine's single-flight recovery primitives (stairctl's `force ready`
/ `force fatal`, plus disown, instance recovery and the READY message), dry run by default.

The dry run shows the state it read — status, owner and row version (`xmin`) — and `--fix`
compares against *that* state, not against whatever it finds when it runs: a flight the engine
moved on since (completed, taken over, taken over again by a pod back under the same name) is
skipped, never clobbered. Give the dry run's state with
  --expect-status S --expect-owner NAME|none [--expect-version V]   (the dry run prints them)
or --expect-from FILE (the dry run's `-o json` document). Without them `--fix` asks y/N showing
the state it read; with `--yes` and no expectation it refuses: nobody saw that state.

The liveness rule: a RUNNING flight with an owner (and an instance) is changed only on evidence
that the owner is dead — a pod list without it (`--kube` or `--live-instances`) — or with
`--force` (a live owner would run the flight twice). The evidence goes into the audit row.

`-o json` (`--json`) prints one `repairtool.recover/1` document, in a dry run too:
  {"schema": "repairtool.recover/1", "action", "target", "dry_run": true|false,
   "plan": "what would change",
   "expect": {"status", "owner", "version"}   (instance: {"stairway_id", "version"}),
   "evidence": {"evidence", "detail"} | null, "refused": "why" | null,
   "results": [{"action", "flight_id", "outcome", "before", "after", "detail", "audit_id"}]}
   (results: empty in a dry run)
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from repairtool.cli.common import (
    HelpFormatter,
    View,
    add_db_args,
    add_output_args,
    add_yes_arg,
    open_engine,
    show,
)
from repairtool.cli.messages import shown_input
from repairtool.cli.orphans import add_liveness_args, liveness_of, queue_of
from repairtool.errors import EXIT_FINDINGS, RefusedError, UsageError
from repairtool.guards import confirm, require_reason

if TYPE_CHECKING:
    from repairtool.liveness import Liveness
    from repairtool.stairway.model import MutationResult
    from repairtool.stairway.recovery import Because

ACTIONS = {
    "disown": "RUNNING → READY, owner cleared (only if still owned by the same instance)",
    "force-ready": "any state → READY, owner cleared (stairctl `force ready`; pickup happens at the"
    " next recovery unless you also `enqueue`)",
    "force-fatal": "→ FATAL with completed_time (stairctl `force fatal`; final)",
    "enqueue": "publish the READY message so a live replica resumes the flight now",
    "instance": "disownRecovery of a dead instance: its RUNNING flights → READY, row deleted",
}
#: the engine's statuses (`FlightStatus.java`), spelled out: importing the model would pull in
#: the database layer on every `--help`
STATUSES = (
    "RUNNING", "SUCCESS", "ERROR", "FATAL", "WAITING", "READY", "QUEUED", "READY_TO_RESTART",
)  # fmt: skip
_VERSION = re.compile(r"\d{1,10}")
_PLAIN = re.compile(r"[A-Za-z0-9._:@/+=-]{1,200}")


class Expected(NamedTuple):
    """The state `--fix` compares against: a flight's (status, owner, version), or an instance's
    (stairway_id in `owner`, version)."""

    status: str | None
    owner: str | None
    version: str | None

    def to_json(self, instance: bool) -> dict[str, Any]:
        if instance:
            return {"stairway_id": self.owner, "version": self.version}
        return {"status": self.status, "owner": self.owner, "version": self.version}

    def shown(self, instance: bool) -> str:
        version = f" (row version {self.version})" if self.version else ""
        if instance:
            return f"registered as {self.owner}{version}"
        return f"{self.status} owned by {self.owner or '-'}{version}"

    def flags(self, instance: bool) -> str:
        """The options that give this state to `--fix` ("" when a value is not plain enough to
        put on a command line: then `--expect-from` the JSON document)."""
        parts = [] if instance else ["--expect-status", str(self.status)]
        if not instance:
            owner = self.owner if self.owner is not None else "none"
            if not _PLAIN.fullmatch(owner):
                return ""
            parts += ["--expect-owner", owner]
        if self.version:
            parts += ["--expect-version", self.version]
        return " ".join(shlex.quote(p) for p in parts)


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
        if name != "enqueue":  # a READY message goes to unowned flights only
            add_liveness_args(q)
            q.add_argument(
                "--force",
                action="store_true",
                help="change a RUNNING flight (or an instance) even when nothing shows its owner"
                " is dead — a live owner would run the flight twice; recorded in the audit row",
            )
        e = q.add_argument_group("compare-and-set: the state the dry run showed")
        if name != "instance":
            e.add_argument("--expect-status", choices=STATUSES, help="the flight's status")
            e.add_argument(
                "--expect-owner", metavar="NAME|none", help="its owner (stairway_id), or none"
            )
        e.add_argument(
            "--expect-version",
            metavar="V",
            help="its row version (xmin) as the dry run printed it",
        )
        e.add_argument(
            "--expect-from",
            type=Path,
            metavar="FILE",
            help="the dry run's `-o json` document (instead of the --expect-* options)",
        )
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


# -- the expectation ------------------------------------------------------------------------------


def _version(text: str | None, where: str) -> str | None:
    if text is None:
        return None
    if not _VERSION.fullmatch(text):
        raise UsageError(f"{where}: a row version is a number (xmin), not {shown_input(text)}")
    return text


def given_expectation(args: argparse.Namespace) -> Expected | None:
    """The state given on the command line (or in a dry run's JSON), checked before anything
    else runs; None when none was given."""
    instance = args.action == "instance"
    status = getattr(args, "expect_status", None)
    owner = getattr(args, "expect_owner", None)
    flags = status is not None or owner is not None or args.expect_version is not None
    if args.expect_from is not None:
        if flags:
            raise UsageError("give either --expect-from FILE or the --expect-* options, not both")
        return _from_file(args.expect_from, args.action, args.target)
    if not flags:
        return None
    if not instance and (status is None or owner is None):
        raise UsageError(
            "--expect-status and --expect-owner go together (the owner NAME, or none): the"
            " dry run prints both"
        )
    if instance and args.expect_version is None:
        raise UsageError("recover instance compares the row version: give --expect-version")
    return Expected(
        status,
        None if owner is None or owner.strip().lower() == "none" else owner,
        _version(args.expect_version, "--expect-version"),
    )


def _from_file(path: Path, action: str, target: str) -> Expected:
    where = f"--expect-from {path}"
    try:
        doc = json.loads(path.read_bytes())
    except IsADirectoryError:
        raise UsageError(f"{where}: is a directory, not a JSON document") from None
    except OSError as error:
        raise UsageError(f"{where}: cannot read ({error.strerror or 'error'})") from None
    except (ValueError, RecursionError):
        raise UsageError(f"{where}: not a JSON document") from None
    if not isinstance(doc, dict) or doc.get("schema") != "repairtool.recover/1":
        raise UsageError(f"{where}: not a `repairtool recover … -o json` document")
    if doc.get("action") != action or doc.get("target") != target:
        other = f"{shown_input(str(doc.get('action')))} {shown_input(str(doc.get('target')))}"
        raise UsageError(f"{where}: the dry run of another operation ({other}), not of this one")
    expect = doc.get("expect")
    if not isinstance(expect, dict):
        raise UsageError(f"{where}: no `expect` state in it (a dry run writes one)")
    values = ("stairway_id", "version") if action == "instance" else ("status", "owner", "version")
    if any(v is not None and not isinstance(v, str) for v in (expect.get(k) for k in values)):
        raise UsageError(f"{where}: `expect` holds a value that is not text")
    if action == "instance":
        return Expected(None, expect.get("stairway_id"), _version(expect.get("version"), where))
    if expect.get("status") not in STATUSES:
        raise UsageError(f"{where}: `expect.status` is not a flight status")
    return Expected(expect["status"], expect.get("owner"), _version(expect.get("version"), where))


# -- the liveness rule ----------------------------------------------------------------------------


def _evidence(
    alive: bool | None, terminating: bool, source: str, owner: str, force: bool, what: str
) -> tuple[Because | None, str | None]:
    """(the evidence to record, or why it is refused) for changing `what`, owned by `owner`:
    `alive` is what the pod list says of the owner (None: there is no pod list)."""
    from repairtool.stairway.errors import shown  # lazy: the database layer's naming rule
    from repairtool.stairway.recovery import Because, Evidence

    if alive is False and not terminating:
        return Because(
            Evidence.OWNER_DEAD, f"owner {shown(owner)} has no live pod ({source})"
        ), None
    if force:
        return Because(Evidence.FORCED, "the operator forced it (--force)"), None
    if terminating:
        why = f"its pod {shown(owner)} is still terminating"
    elif alive:
        why = f"its owner {shown(owner)} is alive ({source})"
    else:
        why = (
            f"nothing shows its owner {shown(owner)} is dead (no pod list: pass --kube or"
            " --live-instances)"
        )
    return None, (
        f"{what}: {why}; a live owner would run the flight twice — pass --force to change it anyway"
    )


def _liveness_of(
    live: Liveness, owner: str, names: dict[str, str], instance: bool
) -> tuple[bool | None, bool]:
    """(is the owner alive per the pod list — None without one —, is its pod terminating).
    A flight's owner is a `stairway_id`: its pod is the instance registered under that id (the
    same name since Stairway 0.0.30; a short UUID before)."""
    pods = {owner} if instance else {owner} | {n for n, sid in names.items() if sid == owner}
    terminating = bool(pods & live.terminating)
    if live.live is None:
        return None, terminating
    return bool(pods & live.live), terminating


# -- the command ---------------------------------------------------------------------------------


def _render(r: MutationResult) -> str:
    before = f"{r.before.get('status')}/{r.before.get('stairway_id') or '-'}" if r.before else "-"
    after = f"{r.after.get('status')}/{r.after.get('stairway_id') or '-'}" if r.after else "-"
    line = f"{r.action} {r.flight_id}: {r.outcome} ({before} → {after})"
    return line + (f": {r.detail}" if r.detail else "")


def cmd_recover(args: argparse.Namespace) -> int:
    # lazy: the recovery API pulls in SQLAlchemy and Pub/Sub (~0.5 s); --help must not wait
    from repairtool.stairway import recovery
    from repairtool.stairway.audit import Actor
    from repairtool.stairway.errors import shown
    from repairtool.stairway.model import FlightState, FlightStatus, Outcome
    from repairtool.stairway.queries import get_flight, get_instance, list_instances

    action: str = args.action
    instance = action == "instance"
    given = given_expectation(args)
    reason = require_reason(args.reason) if args.fix else ""
    engine = open_engine(args)
    live = liveness_of(args) if action != "enqueue" else None
    if instance:
        inst, version = get_instance(engine, args.target)
        current = Expected(None, inst.stairway_id, version)
        target = f"instance {shown(args.target)}"
        plan = f"recover {target}: its RUNNING flights → READY; row deleted"
    else:
        flight = get_flight(engine, args.target).flight
        current = Expected(str(flight.status), flight.owner, flight.version)
        target = f"flight {shown(flight.flight_id)}"
        plan = f"{action} {shown(flight.flight_id)}"
        if action == "disown" and flight.status != FlightStatus.RUNNING:
            raise UsageError(f"flight {shown(flight.flight_id)} is {flight.status}, not RUNNING")
    expected = given or current
    subject = args.target if instance else expected.owner
    because: Because | None = None
    refused: str | None = None
    if (
        live is not None
        and subject is not None
        and (instance or expected.status == FlightStatus.RUNNING)
    ):
        names = {} if instance else {i.stairway_name: i.stairway_id for i in list_instances(engine)}
        alive, terminating = _liveness_of(live, subject, names, instance)
        because, refused = _evidence(
            alive, terminating, live.source, subject, args.force, f"{action} {target}"
        )
    doc: dict[str, Any] = {
        "schema": "repairtool.recover/1",
        "action": action,
        "target": args.target,
        "dry_run": not args.fix,
        "plan": f"{plan}: now {current.shown(instance)}",
        "expect": expected.to_json(instance),
        "evidence": because.to_json() if because else None,
        "refused": refused,
        "results": [],
    }
    if not args.fix:
        lines = [f"dry run: {plan}: now {current.shown(instance)} — {ACTIONS[action]}"]
        if because is not None:
            lines.append(f"evidence: {because.detail}")
        flags = current.flags(instance)
        lines.append(
            "to apply it against exactly this state: --fix --reason TEXT"
            + (f" {flags}" if flags else " --expect-from <this dry run's -o json document>")
        )
        show(args, View(doc=doc, before=lines, title=f"repairtool recover {action} (dry run)"))
        if refused:
            raise RefusedError(refused)
        return EXIT_FINDINGS
    if refused:
        raise RefusedError(refused)
    if given is None:
        if args.yes:
            raise RefusedError(
                f"--fix --yes compares against the state you checked: pass the --expect-status,"
                f" --expect-owner and --expect-version the dry run printed, or --expect-from its"
                f" -o json document (now: {current.shown(instance)})"
            )
        confirm(f"{plan}: now {current.shown(instance)}. Apply?", yes=False)
    else:
        confirm(f"{plan}: expected {given.shown(instance)}. Apply?", yes=args.yes)
    actor = Actor(reason=reason)
    notes: list[str] = []
    if instance:
        rec = recovery.recover_instance(
            engine,
            args.target,
            actor=actor,
            expected_id=expected.owner,
            expected_version=expected.version,
            because=because,
        )
        results = list(rec.flights)
        notes.append(f"{rec.outcome}: {rec.detail}")
        done = rec.outcome is Outcome.CHANGED and rec.instance_deleted
    else:
        state = FlightState(expected.status or "", expected.owner, expected.version)
        if action == "enqueue":
            queue = queue_of(args)
            if queue is None:
                raise UsageError("no work queue: pass --cluster NAME (the environment names none)")
            results = [
                recovery.enqueue_ready(
                    engine, args.target, queue=queue, expected=state, actor=actor
                )
            ]
        else:
            mutate = {
                "disown": recovery.disown,
                "force-ready": recovery.force_ready,
                "force-fatal": recovery.force_fatal,
            }[action]
            results = [mutate(engine, args.target, expected=state, because=because, actor=actor)]
        done = all(r.outcome is Outcome.CHANGED for r in results)
    doc["results"] = [_result_json(r) for r in results]
    lines = [*notes, *(_render(r) for r in results)]
    show(args, View(doc=doc, before=lines, title=f"repairtool recover {action}"))
    return 0 if done else EXIT_FINDINGS


def _result_json(r: MutationResult) -> dict[str, Any]:
    return {k: (str(v) if k == "outcome" else v) for k, v in r.__dict__.items()}
