"""`repairtool watch`: scan on a jittered interval, export Prometheus metrics, log changes.

Runs until SIGTERM (or Ctrl-C), then stops cleanly: the current scan finishes, the metrics
endpoint closes, and a Cloud SQL proxy it started is stopped. Each log line on stdout is one
JSON object (`time`, `severity`, `event`, `message`, …): `watch.started`, `metrics.listening`,
`finding.new`, `finding.cleared`, `scan.failed`, `repair.applied|skipped|refused|rate_limited`,
`watch.stopped`. `--once` runs one scan and prints its result (schema repairtool.watch-scan/1;
the log lines then go to stderr).

Metrics (on http://ADDR/metrics):
  stairway_ops_findings{env,kind}                     findings of the last successful scan
  stairway_ops_oldest_finding_age_seconds{env,kind}   since the watcher first saw the oldest
  stairway_ops_flights{env,status}                    flights by status
  stairway_ops_scan_seconds{env}                      histogram of scan durations
  stairway_ops_scan_errors_total{env}                 failed scans
  stairway_ops_last_successful_scan_timestamp_seconds{env}
  stairway_ops_repairs_total{env,kind,action,outcome} auto-resume changes made or tried

Auto-resume is off unless `--auto-resume dead_owner` is given: it then resumes dead_owner flights
(disown + READY message, compare-and-set, audited with reason "watch auto-resume") when the pod
list came from the Kubernetes API, the owner pod is not terminating, the watcher has seen the
finding for --min-age, and fewer than --max-per-hour changes were made in the last hour.

Scans read on psycopg directly; SQLAlchemy is imported only when auto-resume applies a change.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from repairtool.cli.common import (
    HelpFormatter,
    add_db_args,
    duration,
    open_reader,
    print_json,
)
from repairtool.cli.orphans import (
    add_decode_args,
    add_detection_args,
    add_liveness_args,
    add_queue_args,
    catalog_of,
    detect_options,
    liveness_of,
    queue_of,
    reader_of,
)
from repairtool.clock import rfc3339, utcnow
from repairtool.errors import EXIT_FINDINGS, UsageError

if TYPE_CHECKING:
    from repairtool.target import Target
    from repairtool.watch import WatchSource

DEFAULT_METRICS_ADDR = "0.0.0.0:9464"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "watch",
        help="scan on an interval; Prometheus metrics; optional, limited auto-resume",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    add_db_args(p)
    add_liveness_args(p)
    add_decode_args(p)
    add_queue_args(p)
    w = p.add_argument_group("watch")
    w.add_argument(
        "--interval",
        type=duration,
        default=duration("60s"),
        metavar="DURATION",
        help="between scans (jittered by ±10%%)",
    )
    w.add_argument(
        "--metrics-addr",
        default=DEFAULT_METRICS_ADDR,
        metavar="HOST:PORT",
        help="where /metrics is served (port 0: any free port, logged in metrics.listening)",
    )
    w.add_argument("--once", action="store_true", help="one scan, print its result, exit")
    d = add_detection_args(p)
    d.add_argument("--no-decode", action="store_true", help="skip the FlightMap check")
    a = p.add_argument_group("auto-resume (off by default)")
    a.add_argument(
        "--auto-resume",
        metavar="KIND",
        help="resume findings of this kind by itself; only dead_owner is accepted",
    )
    a.add_argument(
        "--max-per-hour",
        type=int,
        default=6,
        metavar="N",
        help="at most N auto-resume changes in any hour",
    )
    a.add_argument(
        "--min-age",
        type=duration,
        default=duration("10m"),
        metavar="DURATION",
        help="resume a finding only after the watcher has seen it this long",
    )
    a.add_argument("--actor", help="who the audit trail names (default: repairtool-watch@HOST)")
    p.set_defaults(func=cmd_watch, class_name=None, flight=[])


def parse_addr(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::]:9464`` for IPv6) → (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--metrics-addr {text!r}: expected HOST:PORT, e.g. 0.0.0.0:9464")
    return host.strip("[]") or "0.0.0.0", int(port)


def _source(args: argparse.Namespace, target: Target | None) -> WatchSource:
    # lazy: psycopg, detection and the kubernetes client (~0.3 s); --help must not wait
    from repairtool.stairway.pgread import ReadDb
    from repairtool.watch import WatchSource

    db = ReadDb(target.db.url) if target is not None else open_reader(args)
    reader, _ = reader_of(args, db, target)
    catalog = None if args.no_decode else catalog_of(args, target)
    queue = queue_of(args, target)
    return WatchSource(
        env=target.name if target is not None else (args.namespace or "default"),
        db=db,
        liveness=lambda: liveness_of(args, target),
        options=detect_options(args, catalog, reader, queue),
        queue=queue,
    )


def _check_auto_resume_liveness(args: argparse.Namespace, targets: list[Target]) -> None:
    if args.live_instances:
        raise UsageError(
            "--auto-resume needs liveness from the Kubernetes API, not --live-instances"
        )
    if not targets and not args.kube:
        raise UsageError(
            "--auto-resume needs liveness from the Kubernetes API: give --env NAME, or --kube"
            " -n NAMESPACE"
        )


def cmd_watch(args: argparse.Namespace) -> int:
    # lazy: the watch core pulls in psycopg, detection and prometheus_client
    from prometheus_client import CollectorRegistry, start_http_server

    from repairtool.detect import Kind
    from repairtool.stairway.pgread import ReadDb
    from repairtool.target import resolve, split_envs
    from repairtool.watch import AutoResume, Watcher, WatchOptions, json_lines

    auto = None
    if args.auto_resume:
        try:
            kinds = frozenset(Kind(k.strip()) for k in args.auto_resume.split(","))
        except ValueError:
            raise UsageError(
                f"--auto-resume {args.auto_resume!r}: only dead_owner can be resumed automatically"
            ) from None
        auto = AutoResume(kinds, args.max_per_hour, args.min_age.total_seconds())
    options = WatchOptions(
        interval=args.interval.total_seconds(), auto_resume=auto, actor=args.actor or ""
    )
    host, port = parse_addr(args.metrics_addr)
    # --once prints one document on stdout: its log lines go to stderr
    log = json_lines(sys.stderr if args.once else None)
    # the environment/database each source acts on, as an event of the same JSON log
    args._announce_to = lambda line: log(
        {"time": rfc3339(utcnow()), "severity": "INFO", "event": "watch.source", "message": line}
    )
    targets: list[Target] = []
    sources: list[WatchSource] = []
    watcher: Watcher | None = None
    server: Any = None
    try:
        if args.env:
            if args.db:
                raise UsageError("give either --db or --env, not both")
            for name in split_envs(args.env):
                targets.append(resolve(name))
                sources.append(_source(args, targets[-1]))
        else:
            sources.append(_source(args, None))
        if auto is not None:
            _check_auto_resume_liveness(args, targets)
            if len(targets) > 1 and any(t.pubsub_emulator_host for t in targets):
                # the emulator is process-wide for the Pub/Sub client: READY messages for the
                # other environments would go to it
                raise UsageError(
                    "--auto-resume with the local sandbox and other environments in one watcher:"
                    " run one watcher for the sandbox and one for the others"
                )
        registry = CollectorRegistry()
        watcher = Watcher(sources, registry, options, log=log)
        if args.once:
            result = watcher.scan_once()
            print_json(result.to_json())
            failed = [e for e in result.envs if not e.ok]
            if failed:
                # the scan's own log event has the details; the command ends with one line
                first = failed[0]
                more = f" (and {len(failed) - 1} more envs)" if len(failed) > 1 else ""
                print(f"repairtool: error: {first.env}: {first.error}{more}", file=sys.stderr)
                return int(first.code or 70)
            return int(EXIT_FINDINGS) if any(sum(e.counts.values()) for e in result.envs) else 0
        server, _thread = start_http_server(port, addr=host, registry=registry)
        bound = server.server_address[1]
        log(
            {
                "time": rfc3339(utcnow()),
                "severity": "INFO",
                "event": "metrics.listening",
                "message": f"metrics on http://{host}:{bound}/metrics",
                "metrics_url": f"http://{host}:{bound}/metrics",
                "port": bound,
            }
        )
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        watcher.run(stop)
        return 0
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        if watcher is not None:
            watcher.close()
        for src in sources:
            if isinstance(src.db, ReadDb):
                src.db.close()
        for t in targets:
            with contextlib.suppress(Exception):
                t.close()
