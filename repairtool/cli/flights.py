"""`repairtool flights …`: read-only views (stairctl's list/count/get/list stairways + audit).

Every view takes `-o table|wide|json|markdown` (`--json` = `-o json`); JSON documents are
versioned: `repairtool.flights/1` (list), `repairtool.flight-count/1`, `repairtool.flight/1`
(show), `repairtool.instances/1`, `repairtool.audit/1`, `repairtool.generation/1`. Times are
RFC 3339 UTC. Every view reads on psycopg directly (`repairtool.stairway.pgread`): none imports
SQLAlchemy.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from repairtool.cli import validate
from repairtool.cli.common import HelpFormatter, View, add_db_args, add_output_args, open_reader
from repairtool.cli.common import show as show_view
from repairtool.clock import rfc3339, rfc3339_or_none

if TYPE_CHECKING:
    from repairtool.stairway.model import AuditRecord, Flight
    from repairtool.stairway.queries import FlightFilter


#: RFC 3339 time (`2021-04-05T14:03:19Z`, `2021-04-05`) or an age like `10m`, `2h`, `3d`
parse_time = validate.time_or_age


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "flights",
        help="read-only views of flights, instances and the audit trail",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    views = p.add_subparsers(dest="view", required=True, metavar="VIEW")

    def view(name: str, helptext: str) -> argparse.ArgumentParser:
        q = views.add_parser(name, help=helptext, description=helptext)
        add_db_args(q)
        return q

    lst = view("list", "list flights, newest first (stairctl `list flights`)")
    cnt = view("count", "count flights (stairctl `count flights`)")
    for q in (lst, cnt):
        q.add_argument("--status", action="append", default=[], help="repeatable; e.g. RUNNING")
        q.add_argument("--class", dest="class_name", help="flight class name; * is a wildcard")
        q.add_argument("--owner", help="stairway_id of the owner; 'none' = unowned, 'any' = owned")
        q.add_argument("--submitted-after", type=parse_time, metavar="TIME")
        q.add_argument("--submitted-before", type=parse_time, metavar="TIME")
    add_output_args(lst, wide="full class names")
    add_output_args(cnt)
    lst.add_argument("--limit", type=validate.count, default=20, help="at most this many flights")
    lst.add_argument("--offset", type=validate.count, default=0, help="skip this many first")
    lst.add_argument(
        "--order", choices=["submitted-desc", "submitted-asc"], default="submitted-desc"
    )
    lst.set_defaults(func=cmd_list)
    cnt.set_defaults(func=cmd_count)

    show = view("show", "one flight in full: row, inputs, log, working map")
    show.add_argument("flight_id", metavar="ID")
    show.add_argument("--raw", action="store_true", help="print stored values unmasked")
    add_output_args(show, wide="working maps of every step")
    show.set_defaults(func=cmd_show)

    inst = view("instances", "registered instances (stairctl `list stairways`)")
    add_output_args(inst)
    inst.set_defaults(func=cmd_instances)

    aud = view("audit", "the audit trail of changes made by this toolkit")
    aud.add_argument("--flight", metavar="ID", help="only changes of this flight")
    aud.add_argument(
        "--limit", type=validate.count, default=50, help="the newest this many changes"
    )
    add_output_args(aud, wide="operation ids and the full before/after states")
    aud.set_defaults(func=cmd_audit)

    gen = view("generation", "detect the engine generation of the database")
    add_output_args(gen)
    gen.set_defaults(func=cmd_generation)


def _filter(args: argparse.Namespace) -> FlightFilter:
    # lazy: the queries module pulls in psycopg (~0.1 s); --help must not wait for it
    from repairtool.stairway.queries import OWNED, UNOWNED, FlightFilter, statuses_from

    owner = args.owner
    if owner is not None and owner.lower() == "none":
        owner = UNOWNED
    elif owner is not None and owner.lower() == "any":
        owner = OWNED
    return FlightFilter(
        statuses=statuses_from(args.status),
        class_name=args.class_name,
        owner=owner,
        submitted_before=args.submitted_before,
        submitted_after=args.submitted_after,
    )


def _flight_dict(f: Flight) -> dict[str, object]:
    return {
        "flight_id": f.flight_id,
        "class_name": f.class_name,
        "status": str(f.status),
        "owner": f.owner,
        "submit_time": rfc3339_or_none(f.submit_time),
        "completed_time": rfc3339_or_none(f.completed_time),
    }


def cmd_list(args: argparse.Namespace) -> int:
    # lazy: the queries module pulls in psycopg (~0.1 s); --help must not wait for it
    from repairtool.stairway.queries import Order, list_flights

    flights = list_flights(
        open_reader(args),
        _filter(args),
        limit=args.limit,
        offset=args.offset,
        order=Order(args.order),
    )

    def row(i: int, f: Flight, class_name: str) -> list[Any]:
        return [
            args.offset + i,
            f.flight_id,
            class_name,
            rfc3339_or_none(f.submit_time, "seconds"),
            rfc3339_or_none(f.completed_time, "seconds"),
            f.status,
            f.owner,
        ]

    columns = ["Offset", "FlightId", "Class", "Submitted", "Completed", "Status", "StairwayId"]
    show_view(
        args,
        View(
            doc={"schema": "repairtool.flights/1", "flights": [_flight_dict(f) for f in flights]},
            columns=columns,
            rows=[row(i, f, _short(f.class_name)) for i, f in enumerate(flights)],
            wide_rows=[row(i, f, f.class_name) for i, f in enumerate(flights)],
            title=f"repairtool flights list: {len(flights)} flights",
            empty="No flights.",
        ),
    )
    return 0


def _short(class_name: str | None, width: int = 40) -> str:
    if class_name is None:  # NULL in a schema that allows it
        return "-"
    return class_name if len(class_name) <= width else "..." + class_name[-(width - 3) :]


def cmd_count(args: argparse.Namespace) -> int:
    # lazy: the queries module pulls in psycopg (~0.1 s); --help must not wait for it
    from repairtool.stairway.queries import count_flights

    flt = _filter(args)
    n = count_flights(open_reader(args), flt)
    with_status = f" with status {flt.statuses[0]}" if len(flt.statuses) == 1 else ""
    line = f"Found {n} flights{with_status}"
    doc = {"schema": "repairtool.flight-count/1", "count": n}
    show_view(args, View(doc=doc, before=[line], title=line))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    # lazy: the queries module pulls in psycopg (~0.1 s); --help must not wait for it
    from repairtool.stairway.queries import get_flight
    from repairtool.stairway.redact import mask_text

    d = get_flight(open_reader(args), args.flight_id)

    def val(key: str, text: str) -> str:
        return text if args.raw else mask_text(text, key)

    f = d.flight
    doc = {
        "schema": "repairtool.flight/1",
        "flight": _flight_dict(f),
        "inputs": {k: val(k, v) for k, v in d.inputs.items()},
        "log": [
            {
                "log_time": rfc3339(e.log_time),
                "step_index": e.step_index,
                "direction": str(e.direction) if e.direction else None,
                "succeeded": e.succeeded,
                "rerun": e.rerun,
                "working": {k: val(k, v) for k, v in e.working.items()},
            }
            for e in d.log
        ],
        "persisted": (
            {k: val(k, v) for k, v in d.persisted.items()} if d.persisted is not None else None
        ),
    }
    before = [
        f"Flight {f.flight_id}",
        f"  class      {f.class_name}",
        f"  status     {f.status}",
        f"  owner      {f.owner or '-'}",
        f"  submitted  {rfc3339_or_none(f.submit_time) or '-'}",
        f"  completed  {rfc3339_or_none(f.completed_time) or '-'}",
        "Inputs",
        *(f"  {k} : {val(k, v)}" for k, v in d.inputs.items()),
        "Log",
    ]
    steps = [
        [rfc3339(e.log_time), e.step_index, e.direction or "-", e.succeeded, e.rerun] for e in d.log
    ]
    wide = args.output in ("wide", "markdown")
    latest = [d.latest_log] if d.latest_log is not None else []
    after = []
    for e in [e for e in d.log if e.working] if wide else latest:
        if e.working:
            which = "latest step" if e is d.latest_log else f"step {e.step_index}"
            after.append(f"Working map ({which}, {rfc3339(e.log_time)})")
            after += [f"  {k} : {val(k, v)}" for k, v in e.working.items()]
    if args.output == "markdown":
        before = [line for line in before if line not in ("Inputs", "Log")]
    show_view(
        args,
        View(
            doc=doc,
            columns=["LogTime", "Step", "Direction", "Succeeded", "Rerun"],
            rows=steps,
            title=f"Flight {f.flight_id}: {f.status}",
            before=before,
            after=after,
            empty="  (no flightlog rows: the flight never finished a step)",
        ),
    )
    return 0


def cmd_instances(args: argparse.Namespace) -> int:
    # lazy: the queries module pulls in psycopg (~0.1 s); --help must not wait for it
    from repairtool.stairway.queries import list_instances

    instances = list_instances(open_reader(args))
    rows = [[i.stairway_name, i.stairway_id] for i in instances]
    doc = {
        "schema": "repairtool.instances/1",
        "instances": [
            {"stairway_name": i.stairway_name, "stairway_id": i.stairway_id} for i in instances
        ],
    }
    show_view(
        args,
        View(
            doc=doc,
            columns=["StairwayName", "StairwayId"],
            rows=rows,
            title=f"repairtool flights instances: {len(rows)} registered",
            empty="No instances registered.",
        ),
    )
    return 0


def audit_json(r: AuditRecord) -> dict[str, Any]:
    return {**r.__dict__, "at": rfc3339(r.at)}


def cmd_audit(args: argparse.Namespace) -> int:
    # lazy: the audit trail's reader pulls in psycopg (~0.1 s); --help must not wait for it
    from repairtool.stairway.auditread import list_audit

    records = list_audit(open_reader(args), flight_id=args.flight, limit=args.limit)

    def row(r: AuditRecord, wide: bool) -> list[Any]:
        state = _json if wide else _state
        head = [r.audit_id, rfc3339(r.at, "seconds"), r.actor, r.action, r.flight_id or "-"]
        return [*head, *([r.op_id] if wide else []), state(r.before), state(r.after), r.reason]

    columns = ["Id", "At", "Actor", "Action", "FlightId", "Before", "After", "Reason"]
    show_view(
        args,
        View(
            doc={"schema": "repairtool.audit/1", "audit": [audit_json(r) for r in records]},
            columns=columns,
            rows=[row(r, False) for r in records],
            wide_columns=[*columns[:5], "OperationId", *columns[5:]],
            wide_rows=[row(r, True) for r in records],
            title=f"repairtool flights audit: {len(records)} changes",
            empty="No changes recorded.",
        ),
    )
    return 0


def _state(d: dict[str, object] | None) -> str:
    if not d:
        return "-"
    if "status" in d:
        return f"{d.get('status')}/{d.get('stairway_id') or '-'}"
    return ",".join(f"{k}={v}" for k, v in d.items() if k != "value")


def _json(d: dict[str, object] | None) -> str:
    return json.dumps(d, sort_keys=True, default=str) if d else "-"


def cmd_generation(args: argparse.Namespace) -> int:
    # lazy: the read path pulls in psycopg (~0.1 s); --help must not wait for it
    from repairtool.stairway.pgread import reading
    from repairtool.stairway.version import detect_generation

    with reading(open_reader(args)) as conn:
        g = detect_generation(conn)
    doc = {
        "schema": "repairtool.generation/1",
        "version": str(g.version),
        "schema_generation": str(g.schema),
        "source": g.source,
        "newest_changeset": g.newest_changeset,
        "writer": g.writer,
    }
    line = f"Stairway {g.version} (schema {g.schema} from {g.source}: {g.newest_changeset})"
    writer = f"  writer: {g.writer or 'unknown (no flightlog rows)'}"
    show_view(args, View(doc=doc, before=[line, writer], title=line))
    return 0
