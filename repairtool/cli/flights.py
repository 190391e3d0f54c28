"""`repairtool flights …`: read-only views (stairctl's list/count/get/list stairways + audit)."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import TYPE_CHECKING

from repairtool.cli.common import add_db_args, open_engine, print_json, table
from repairtool.clock import parse_rfc3339, rfc3339, rfc3339_or_none, utcnow
from repairtool.errors import UsageError

if TYPE_CHECKING:
    from repairtool.stairway.model import Flight
    from repairtool.stairway.queries import FlightFilter


def parse_time(text: str) -> dt.datetime:
    """RFC 3339 time (`2021-04-05T14:03:19Z`, `2021-04-05`) or an age like `10m`, `2h`, `3d`."""
    from repairtool.durations import parse_duration

    try:
        return parse_rfc3339(text)
    except ValueError:
        pass
    try:
        return utcnow() - parse_duration(text)
    except UsageError:
        raise UsageError(f"not a time: {text!r}; use RFC 3339 or an age like 10m, 2h, 3d") from None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("flights", help="read-only views of flights, instances and the audit trail")
    views = p.add_subparsers(dest="view", required=True, metavar="VIEW")

    lst = views.add_parser("list", help="list flights, newest first (stairctl `list flights`)")
    cnt = views.add_parser("count", help="count flights (stairctl `count flights`)")
    for q in (lst, cnt):
        add_db_args(q)
        q.add_argument("--status", action="append", default=[], help="repeatable; e.g. RUNNING")
        q.add_argument("--class", dest="class_name", help="flight class name; * is a wildcard")
        q.add_argument("--owner", help="stairway_id of the owner; 'none' = unowned, 'any' = owned")
        q.add_argument("--submitted-after", type=parse_time, metavar="TIME")
        q.add_argument("--submitted-before", type=parse_time, metavar="TIME")
        q.add_argument("--json", action="store_true", help="one JSON document")
    lst.add_argument("--limit", type=int, default=20)
    lst.add_argument("--offset", type=int, default=0)
    lst.add_argument(
        "--order", choices=["submitted-desc", "submitted-asc"], default="submitted-desc"
    )
    lst.set_defaults(func=cmd_list)
    cnt.set_defaults(func=cmd_count)

    show = views.add_parser("show", help="one flight in full: row, inputs, log, working map")
    add_db_args(show)
    show.add_argument("flight_id", metavar="ID")
    show.add_argument("--json", action="store_true")
    show.add_argument("--raw", action="store_true", help="print stored values unmasked")
    show.set_defaults(func=cmd_show)

    inst = views.add_parser("instances", help="registered instances (stairctl `list stairways`)")
    add_db_args(inst)
    inst.add_argument("--json", action="store_true")
    inst.set_defaults(func=cmd_instances)

    aud = views.add_parser("audit", help="the audit trail of changes made by this toolkit")
    add_db_args(aud)
    aud.add_argument("--flight", metavar="ID")
    aud.add_argument("--limit", type=int, default=50)
    aud.add_argument("--json", action="store_true")
    aud.set_defaults(func=cmd_audit)

    gen = views.add_parser("generation", help="detect the engine generation of the database")
    add_db_args(gen)
    gen.add_argument("--json", action="store_true")
    gen.set_defaults(func=cmd_generation)


def _filter(args: argparse.Namespace) -> FlightFilter:
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
    from repairtool.stairway.queries import Order, list_flights

    flights = list_flights(
        open_engine(args),
        _filter(args),
        limit=args.limit,
        offset=args.offset,
        order=Order(args.order),
    )
    if args.json:
        print_json({"flights": [_flight_dict(f) for f in flights]})
        return 0
    rows = [
        [
            args.offset + i,
            f.flight_id,
            _short(f.class_name),
            rfc3339_or_none(f.submit_time, "seconds"),
            rfc3339_or_none(f.completed_time, "seconds"),
            f.status,
            f.owner,
        ]
        for i, f in enumerate(flights)
    ]
    print(
        table(
            ["Offset", "FlightId", "Class", "Submitted", "Completed", "Status", "StairwayId"], rows
        )
    )
    return 0


def _short(class_name: str, width: int = 40) -> str:
    return class_name if len(class_name) <= width else "..." + class_name[-(width - 3) :]


def cmd_count(args: argparse.Namespace) -> int:
    from repairtool.stairway.queries import count_flights

    flt = _filter(args)
    n = count_flights(open_engine(args), flt)
    if args.json:
        print_json({"count": n})
    elif len(flt.statuses) == 1:
        print(f"Found {n} flights with status {flt.statuses[0]}")
    else:
        print(f"Found {n} flights")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from repairtool.stairway.queries import get_flight
    from repairtool.stairway.redact import mask_text

    d = get_flight(open_engine(args), args.flight_id)

    def val(key: str, text: str) -> str:
        return text if args.raw else mask_text(text, key)

    if args.json:
        print_json(
            {
                "flight": _flight_dict(d.flight),
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
                    {k: val(k, v) for k, v in d.persisted.items()}
                    if d.persisted is not None
                    else None
                ),
            }
        )
        return 0
    f = d.flight
    print(f"Flight {f.flight_id}")
    print(f"  class      {f.class_name}")
    print(f"  status     {f.status}")
    print(f"  owner      {f.owner or '-'}")
    print(f"  submitted  {rfc3339_or_none(f.submit_time) or '-'}")
    print(f"  completed  {rfc3339_or_none(f.completed_time) or '-'}")
    print("Inputs")
    for k, v in d.inputs.items():
        print(f"  {k} : {val(k, v)}")
    print("Log")
    if not d.log:
        print("  (no flightlog rows: the flight never finished a step)")
    for e in d.log:
        print(
            f"  {rfc3339(e.log_time)}  step {e.step_index}  {e.direction or '-'}"
            f"  succeeded={e.succeeded}  rerun={e.rerun}"
        )
    latest = d.latest_log
    if latest is not None and latest.working:
        print("Working map (latest step)")
        for k, v in latest.working.items():
            print(f"  {k} : {val(k, v)}")
    return 0


def cmd_instances(args: argparse.Namespace) -> int:
    from repairtool.stairway.queries import list_instances

    instances = list_instances(open_engine(args))
    if args.json:
        print_json(
            {
                "instances": [
                    {"stairway_name": i.stairway_name, "stairway_id": i.stairway_id}
                    for i in instances
                ]
            }
        )
        return 0
    print(
        table(["StairwayName", "StairwayId"], [[i.stairway_name, i.stairway_id] for i in instances])
    )
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from repairtool.stairway.audit import list_audit

    records = list_audit(open_engine(args), flight_id=args.flight, limit=args.limit)
    if args.json:
        print_json({"audit": [{**r.__dict__, "at": rfc3339(r.at)} for r in records]})
        return 0
    if not records:
        print("No changes recorded.")
        return 0
    print(
        table(
            ["Id", "At", "Actor", "Action", "FlightId", "Before", "After", "Reason"],
            [
                [
                    r.audit_id,
                    rfc3339(r.at, "seconds"),
                    r.actor,
                    r.action,
                    r.flight_id or "-",
                    _state(r.before),
                    _state(r.after),
                    r.reason,
                ]
                for r in records
            ],
        )
    )
    return 0


def _state(d: dict[str, object] | None) -> str:
    if not d:
        return "-"
    if "status" in d:
        return f"{d.get('status')}/{d.get('stairway_id') or '-'}"
    return ",".join(f"{k}={v}" for k, v in d.items() if k != "value")


def cmd_generation(args: argparse.Namespace) -> int:
    from repairtool.stairway.db import reading
    from repairtool.stairway.version import detect_generation

    with reading(open_engine(args)) as conn:
        g = detect_generation(conn)
    doc = {
        "version": str(g.version),
        "schema": str(g.schema),
        "source": g.source,
        "newest_changeset": g.newest_changeset,
        "writer": g.writer,
    }
    if args.json:
        print_json(doc)
    else:
        print(f"Stairway {g.version} (schema {g.schema} from {g.source}: {g.newest_changeset})")
        print(f"  writer: {g.writer or 'unknown (no flightlog rows)'}")
    return 0
