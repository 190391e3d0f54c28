"""`repairtool decode`: check stored FlightMaps against a type catalog for a reader version;
`repairtool catalog`: draft a catalog from a live database, or show the built-in one.

decode --json document (stable; version 1):
  {"schema": "repairtool.decode/1", "reader": "legacy" | "typed", "flights": N, "values": N,
   "findings": [{"flight_id", "class_name", "status", "owner", "kind": "undecodable",
                 "evidence": {"decode_failures": [{"flight_id", "key", "source", "expected",
                              "found", "reader", "reason", "engine_exception", "reencodable",
                              "when": "rebuild" | "get"}],
                              "working_map": "flightworking" | "working_parameters" | "none",
                              "decode": "<what the engine does on resume, in words>"},
                 "proposed_action": "reencode" | "fail" | "none"}],
   (a proposed "fail" is applied only with --action fail; otherwise it is in "refused")
   "plan": [...], "refused": [...], "applied": [...], "skipped": [...]}   (as in `orphans`)
Stored values never appear: `found` describes a value's shape.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from repairtool.cli import validate
from repairtool.cli.common import (
    HelpFormatter,
    add_db_args,
    add_output_args,
    add_yes_arg,
    open_engine,
    open_reader,
    target_of,
)
from repairtool.cli.orphans import add_decode_args, catalog_of, outcomes_json, reader_of
from repairtool.cli.progress import progress_sink
from repairtool.errors import EXIT_FINDINGS, RefusedError, UsageError
from repairtool.guards import confirm, require_reason


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "decode",
        help="find FlightMap values the service cannot read back (decode failures)",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    add_db_args(p)
    add_decode_args(p)
    p.add_argument(
        "--flight", action="append", default=[], metavar="ID", help="only this flight (repeatable)"
    )
    p.add_argument(
        "--all",
        action="store_true",
        help="every flight (default: the non-terminal ones the engine may rebuild)",
    )
    p.add_argument("--fix", action="store_true", help="apply the plan (default: dry run)")
    p.add_argument(
        "--action",
        choices=["fail", "reencode"],
        help="override the proposed action (reencode: rewrite the inputs for the reader)",
    )
    p.add_argument("--reason", help="why (required with --fix)")
    add_yes_arg(p)
    add_output_args(p, wide="every column of each failure")
    p.set_defaults(func=cmd_decode)

    c = sub.add_parser("catalog", help="draft a type catalog from a database, or show one")
    acts = c.add_subparsers(dest="catalog_action", required=True, metavar="ACTION")
    d = acts.add_parser("draft", help="infer a catalog (YAML) from the stored values")
    add_db_args(d)
    d.add_argument("--class", dest="class_name", help="only this flight class (* wildcard)")
    d.add_argument(
        "--limit",
        type=validate.positive_count,
        default=2000,
        help="flights to sample (newest first)",
    )
    d.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="write here (default: stdout; with --env of a service without a built-in catalog:"
        " its service.catalog file, else catalogs/ENV.yaml — never over an existing file)",
    )
    d.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    d.set_defaults(func=cmd_draft)
    s = acts.add_parser("show", help="print the built-in workspace-manager catalog")
    s.set_defaults(func=cmd_show)


def cmd_decode(args: argparse.Namespace) -> int:
    # lazy: the scan reads with psycopg and decodes with the FlightMap package; the changes of
    # --fix go through SQLAlchemy (~0.3 s); --help must not wait for them
    from repairtool.cli.spool import Spool
    from repairtool.decodescan import DecodeStream
    from repairtool.detect import Action, Detection, read_inputs
    from repairtool.jsonout import Encoded, write_document
    from repairtool.liveness import from_registry
    from repairtool.plan import build_plan
    from repairtool.stairway.queries import require_flights

    reason = require_reason(args.reason) if args.fix else ""
    db = open_reader(args)
    require_flights(db, args.flight)
    reader, reader_source = reader_of(args, db)
    catalog = catalog_of(args)
    named = frozenset(args.flight)
    stream = DecodeStream(
        db,
        catalog,
        reader,
        flight_ids=tuple(args.flight),
        all_flights=args.all,
        # progress (n/N, rate, ETA) on a terminal only: nothing on a pipe or with -o json
        on_event=progress_sink(args.output),
    )
    with Spool(as_rows=args.output != "json") as spool:
        # each finding goes to the spool as it is found; only those the plan may act on (a
        # proposed action, or a flight named with --flight) stay in memory
        planned = []
        for finding in stream:
            spool.add(finding)
            if finding.proposed_action is not Action.NONE or finding.flight_id in named:
                planned.append(finding)
        detection = Detection(tuple(planned), from_registry(), None, stream.flights, ())
        action = Action(args.action) if args.action else None
        plan = build_plan(
            detection,
            action=action,
            named=named,
            catalog=catalog,
            reader=reader,
            inputs=read_inputs(db, [f.flight_id for f in planned if f.flight_id]),
        )
        outcomes = None
        if args.fix and plan.changes:
            # lazy: changes go through SQLAlchemy's transactional API; only --fix needs it
            from repairtool.repair import apply_plan
            from repairtool.stairway.audit import Actor

            confirm(
                f"About to change {len(plan.changes)} flights: "
                + ", ".join(f"{v} × {k}" for k, v in plan.counts().items())
                + ". Apply?",
                yes=args.yes,
            )
            outcomes = apply_plan(
                open_engine(args), plan, actor=Actor(reason=reason), on_error="record"
            )
        elif args.fix:
            from repairtool.repair import Outcomes  # lazy: SQLAlchemy, only for --fix

            outcomes = Outcomes((), ())
        if args.output == "json":
            doc: dict[str, Any] = {
                "schema": "repairtool.decode/1",
                "reader": reader.value,
                "flights": stream.flights,
                "values": stream.values,
                "findings": Encoded(spool.chunks()),
                "plan": [c.to_json() for c in plan.changes],
                "refused": [r.to_json() for r in plan.refused],
            }
            if outcomes is not None:
                doc.update(outcomes_json(outcomes))
            write_document(doc)
        else:
            after = [
                f"  plan: {c.action:<9} {c.target}  ({' → '.join(c.steps)})" for c in plan.changes
            ]
            after += [f"  refused: {r.action} {r.finding.flight_id}: {r.why}" for r in plan.refused]
            if outcomes is not None:
                after += [
                    f"  failed: {a.change.action} {a.change.target}: {a.why}"
                    for a in outcomes.failed
                ]
                after += [f"  not attempted: {c.action} {c.target}" for c in outcomes.not_attempted]
                after.append(f"{len(outcomes.applied)} applied, {len(outcomes.skipped)} skipped")
            elif plan.changes:
                after.append("dry run: nothing changed; re-run with --fix --reason TEXT to apply")
            head = (
                f"Reader: {reader.label} ({reader_source}); checked {stream.values} values of"
                f" {stream.flights} flights; {spool.findings} flights fail to decode"
            )
            title = f"repairtool decode: {spool.findings} flights fail to decode"
            spool.render(sys.stdout, args.output, before=[head], after=after, title=title)
    if outcomes is not None and outcomes.error is not None:
        raise outcomes.error
    if not spool.findings:
        return 0
    if outcomes is None or plan.refused or outcomes.skipped:
        return EXIT_FINDINGS
    return 0 if len(outcomes.applied) == spool.findings else EXIT_FINDINGS


def cmd_draft(args: argparse.Namespace) -> int:
    # lazy: SQLAlchemy (~0.3 s) only when the command runs; --help must not wait for it
    from sqlalchemy import text

    from repairtool.flightmap import draft_catalog, dump_catalog
    from repairtool.stairway.db import reading
    from repairtool.stairway.version import require_stairway

    if args.out is not None and args.out.is_dir():
        raise UsageError(f"--out {args.out}: is a directory; give a file name")
    engine = open_engine(args)
    where, params = "", {"limit": args.limit}
    if args.class_name:
        op = "LIKE" if "*" in args.class_name else "="
        where = f"WHERE class_name {op} :cls"
        params["cls"] = args.class_name.replace("*", "%")
    with reading(engine) as conn:
        require_stairway(conn)
        rows = conn.execute(
            text(
                "SELECT f.class_name, i.key, i.value FROM (SELECT flightid, class_name FROM flight"
                f" {where} ORDER BY submit_time DESC LIMIT :limit) f"
                " JOIN flightinput i ON i.flightid = f.flightid"
            ),
            params,
        ).all()
    catalog = draft_catalog((r.class_name, r.key, r.value) for r in rows)
    out = dump_catalog(
        catalog,
        header=f"drafted by `repairtool catalog draft` from {len(rows)} stored inputs;"
        " review every type marked inferred before relying on it",
    )
    path = args.out or draft_path(args)
    if path is None:
        sys.stdout.write(out)
        return 0
    if path.exists() and not args.force:
        raise RefusedError(f"{path} exists: review it, or pass --force to overwrite it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(out, encoding="utf-8")
    except OSError as error:
        why = error.strerror or type(error).__name__
        raise UsageError(f"--out {path}: cannot write ({why})") from None
    print(f"wrote {path}", file=sys.stderr)
    target = target_of(args)
    if target is not None and args.out is None and str(path) != (target.catalog or ""):
        print(
            f"use it: set `service.catalog: {path}` in the env file of {target.name}",
            file=sys.stderr,
        )
    return 0


def draft_path(args: argparse.Namespace) -> Path | None:
    """Where `catalog draft --env X` writes when --out is not given (None: stdout).

    A service with a built-in catalog (Workspace Manager) drafts to stdout, for comparison; a
    new one gets a starting file: its `service.catalog` file, else `catalogs/<env>.yaml`.
    """
    target = target_of(args)
    if target is None:
        return None
    named = target.catalog or ""
    if named and "/" not in named and not named.endswith((".yaml", ".yml")):
        return None
    return Path(named) if named else Path("catalogs") / f"{target.name}.yaml"


def cmd_show(args: argparse.Namespace) -> int:
    from importlib import resources  # lazy: ~15 ms (tempfile, zip support); --help is faster

    sys.stdout.write(
        resources.files("repairtool").joinpath("catalogs", "workspace-manager.yaml").read_text()
    )
    return 0
