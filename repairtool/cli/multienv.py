"""`repairtool orphans --env a,b,c`: one scan per environment, run concurrently, one report.

Each environment is resolved, scanned and planned on its own thread (a GKE env starts its own
Cloud SQL proxy on its own port for the scan); a failing environment is reported with its error
and exit code next to the others' findings. The table has an Env column; `--json` prints one
document (schema `repairtool.orphans.envs/1`) holding each environment's `repairtool.orphans/1`
document, or its error. Dry run only: repairs take one environment at a time.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from repairtool.cli import orphans
from repairtool.cli.common import View, show
from repairtool.cli.orphans import (
    _evidence,
    _short,
    catalog_of,
    detect_options,
    document,
    liveness_of,
    make_plan,
    queue_of,
    reader_of,
)
from repairtool.errors import EXIT_FINDINGS, UsageError
from repairtool.exitcodes import ExitCode, exit_code_of, one_line

if TYPE_CHECKING:
    from repairtool.detect import Detection
    from repairtool.flightmap import ReaderVersion
    from repairtool.repair import Plan

SCHEMA = "repairtool.orphans.envs/1"
MAX_PARALLEL = 8


@dataclass(frozen=True)
class EnvReport:
    """One environment's scan: its plan, or the error that stopped it."""

    env: str
    plan: Plan | None = None
    reader: ReaderVersion | None = None
    reader_source: str = ""
    error: str = ""
    code: ExitCode = ExitCode.OK

    @property
    def detection(self) -> Detection | None:
        return self.plan.detection if self.plan is not None else None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`repairtool orphans`, with `--env a,b,c` handled here."""
    orphans.register(sub)
    sub.choices["orphans"].set_defaults(func=cmd_orphans_any)


def cmd_orphans_any(args: argparse.Namespace) -> int:
    if args.env and "," in args.env:
        return cmd_orphans_envs(args)
    return orphans.cmd_orphans(args)


def scan_env(args: argparse.Namespace, name: str) -> EnvReport:
    """Resolve, scan and plan one environment (never raises: an error is part of the report)."""
    # lazy: psycopg and the detection code (~0.2 s); --help must not wait for them
    from repairtool.detect import detect
    from repairtool.stairway.pgread import ReadDb
    from repairtool.target import resolve

    target = None
    db = None
    try:
        target = resolve(name)
        db = ReadDb(target.db.url)
        live = liveness_of(args, target)
        reader, reader_source = reader_of(args, db, target)
        catalog = None if args.no_decode else catalog_of(args, target)
        queue = queue_of(args, target)
        detection = detect(db, live, detect_options(args, catalog, reader, queue))
        plan = make_plan(args, db, detection, queue, catalog, reader)
        return EnvReport(name, plan, reader, reader_source)
    except Exception as error:  # reported per env, as one line with its code
        return EnvReport(name, error=one_line(error), code=exit_code_of(error))
    finally:
        if db is not None:
            db.close()
        if target is not None:
            target.close()


def scan_envs(args: argparse.Namespace, names: list[str]) -> list[EnvReport]:
    """Scan every environment concurrently; reports in the order the names were given."""
    # lazy: concurrent.futures pulls in logging and threading; --help must not wait for them
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(names))) as pool:
        return list(pool.map(lambda n: scan_env(args, n), names))


def envs_document(reports: list[EnvReport]) -> dict[str, Any]:
    envs: list[dict[str, Any]] = []
    for r in reports:
        if r.plan is None or r.reader is None:
            envs.append(
                {
                    "env": r.env,
                    "ok": False,
                    "error": {"code": int(r.code), "name": r.code.name, "message": r.error},
                }
            )
        else:
            doc = document(r.plan.detection, r.plan, r.reader, None)
            doc.pop("schema")
            envs.append({"env": r.env, "ok": True, **doc})
    return {"schema": SCHEMA, "envs": envs}


def envs_view(reports: list[EnvReport]) -> View:
    columns = ["Env", "Kind", "Flight", "Status", "Owner", "Idle", "Proposed", "Evidence"]
    rows: list[list[Any]] = []
    wide: list[list[Any]] = []
    before: list[str] = []
    total = 0
    for r in reports:
        d = r.detection
        if d is None:
            before.append(f"{r.env}: error ({r.code.name}): {r.error}")
            continue
        total += len(d.findings)
        before.append(
            f"{r.env}: {d.liveness.source} ({d.liveness.confidence} confidence);"
            f" scanned {d.scanned} non-terminal flights; {len(d.findings)} findings"
        )
        for f in d.findings:
            ev = f.evidence
            why = str(ev.get("pattern") or ev.get("why", ""))
            head = [r.env, f.kind, f.flight_id or f"instance {f.instance}", f.status or "-"]
            tail = [ev.get("idle_for", "-"), f.proposed_action]
            rows.append([*head, _short(f.owner), *tail, why if len(why) <= 60 else why[:57] + "…"])
            wide.append([*head, f.owner or "-", *tail, _evidence(ev)])
    failed = [r for r in reports if r.plan is None]
    title = f"repairtool orphans: {total} findings in {len(reports) - len(failed)} environments"
    if failed:
        title += f", {len(failed)} not scanned"
    return View(
        doc={},
        columns=columns,
        rows=rows,
        wide_rows=wide,
        title=title,
        before=before,
        after=["", "dry run: repairs take one environment at a time (--env NAME --fix)"]
        if rows
        else [],
    )


def cmd_orphans_envs(args: argparse.Namespace) -> int:
    if args.fix:
        raise UsageError("--fix works on one environment at a time: give --env NAME")
    if args.db:
        raise UsageError("give either --db or --env, not both")
    from repairtool.target import split_envs  # lazy: entry points; --help must not wait for them

    reports = scan_envs(args, split_envs(args.env))
    if args.output == "json":
        show(args, View(doc=envs_document(reports)))
    else:
        show(args, envs_view(reports))
    errors = [r for r in reports if r.plan is None]
    if errors:
        return int(errors[0].code)
    return int(EXIT_FINDINGS) if any(r.detection and r.detection.findings for r in reports) else 0
