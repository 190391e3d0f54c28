"""``inv kill-pod``: kill the pod that holds a flight and record what the engine did.

1. Find the pod: ``--pod NAME``, or the owner of ``--flight ID`` (``flight.stairway_id``; the
   stairway id is the pod name in Terra services), or — for an unowned flight — the last pod
   whose logs show it received, took or launched the flight.
2. Optionally wait until the flight is inside step ``--when-step N`` (the delayed step).
3. Delete the pod with the official kubernetes client; watch until a replacement is Ready.
4. Follow the flight (database + engine log lines) until it finishes, or until nothing changed
   for ``settle`` seconds (stuck), or the timeout.

The timeline (deleted, replacement added/ready, disowned, taken over, finished or stuck) is
returned as :class:`KillPodResult` and written to ``<run>/kill-pod.json``. Namespaces other than
the env's are refused before anything happens.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opskit.cloudlogs import ENGINE_PHRASES
from opskit.engine_events import Kind, TimelineItem, classify_all, flight_timeline
from opskit.envs import Env
from opskit.errors import NotFound, OperationFailed, OpsError, OpsTimeout, Refused, UsageError
from opskit.events import Reporter, silent
from opskit.flights import FlightReader, FlightView
from opskit.kube import check_namespace, split_pod_arg
from opskit.platform import Platform
from repairtool.clock import rfc3339, utcnow
from repairtool.durations import InvalidDuration, parse_duration

FlightGetter = Callable[[str], FlightView]
#: the ``inv kill-pod --json-out`` / ``kill-pod.json`` document
SCHEMA = "stairway-ops.kill-pod/1"


@dataclass(frozen=True)
class KillPodOptions:
    """What to kill and how long to watch."""

    flight_id: str | None = None
    pod: str | None = None
    namespace: str | None = None
    when_step: int | None = None
    timeout: float = 600.0
    replacement_timeout: float = 180.0
    settle: float = 60.0
    grace_period: int | None = None
    poll: float = 0.5
    log_poll: float = 2.0

    @classmethod
    def for_env(
        cls,
        env: Env,
        *,
        flight: str | None = None,
        pod: str | None = None,
        namespace: str | None = None,
        when_step: str | bool | None = None,
        timeout: str | None = None,
        settle: str | None = None,
        grace: str | None = None,
        replacement_timeout: str | None = None,
    ) -> KillPodOptions:
        """The options as ``inv kill-pod`` gives them (text), with the env's defaults.

        ``when_step``: a step number, or ``True`` (the flag without a value) for the env's
        delayed step. Defaults: ``timeout`` 2 x the env's delay + 5 min (at least 10 min),
        ``settle`` the delay + 1 min (at least 30 s); ``grace`` the pod's own.
        """
        if not flight and not pod:
            raise UsageError("give --flight ID or --pod NAME")
        check_namespace(namespace, env.namespace)
        delay = env.delay_hook.duration.total_seconds() if env.delay_hook else 0.0
        return cls(
            flight_id=flight or None,
            pod=pod or None,
            namespace=namespace or None,
            when_step=_step(when_step, env),
            timeout=_seconds("--timeout", timeout) or max(600.0, 2 * delay + 300),
            settle=_seconds("--settle", settle) or max(30.0, delay + 60),
            grace_period=(
                math.ceil(_seconds("--grace", grace) or 0) if grace is not None else None
            ),
            replacement_timeout=(
                _seconds("--replacement-timeout", replacement_timeout) or 180.0
                if replacement_timeout is not None
                else 180.0
            ),
        )


def _step(value: str | bool | None, env: Env) -> int | None:
    if value is None or value is False:
        return None
    if value is True:
        if env.delay_hook is None:
            raise UsageError(f"--when-step without a number needs a delay_hook in {env.path.name}")
        return env.delay_hook.step
    try:
        step = int(value)
    except ValueError:
        raise UsageError(f"--when-step {value!r}: a step number (0-based)") from None
    if step < 0:
        raise UsageError(f"--when-step {value!r}: a step number (0-based)")
    return step


def _seconds(flag: str, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value).total_seconds()
    except InvalidDuration as exc:
        raise UsageError(f"{flag}: {exc}") from None


@dataclass(frozen=True)
class KillPlan:
    """What ``inv kill-pod`` is about to do (the y/N question and ``--dry`` print it)."""

    env: str
    namespace: str
    pod: str | None
    flight: FlightView | None
    when_step: int | None

    def describe(self) -> str:
        what = f"pod {self.pod}" if self.pod else "the pod that received the flight (from logs)"
        if self.flight is not None:
            owner = " (its owner now)" if self.pod and self.pod == self.flight.owner else ""
            what += f"{owner} holding flight {self.flight.flight_id}, {self.flight.describe()}"
            if self.when_step is not None:
                what += f", once it is inside step {self.when_step}"
        return f"delete {what} in namespace {self.namespace} of env {self.env}"


def plan_kill(
    platform: Platform, opts: KillPodOptions, get_flight: FlightGetter | None = None
) -> KillPlan:
    """Check the options and find the pod (as far as it is known before any waiting)."""
    env = platform.env
    check_namespace(opts.namespace, env.namespace)
    if not opts.flight_id and not opts.pod:
        raise UsageError("give --flight ID or --pod NAME")
    if opts.when_step is not None and not opts.flight_id:
        raise UsageError("--when-step needs --flight")
    pod = split_pod_arg(opts.pod, env.namespace) if opts.pod else None
    view = None
    if opts.flight_id:
        if get_flight is None:
            raise UsageError("--flight needs the Stairway database")
        view = get_flight(opts.flight_id)
        if view.terminal:
            raise Refused(
                f"flight {opts.flight_id} already finished ({view.status}); nothing to kill"
            )
        pod = pod or view.owner
    return KillPlan(env.name, env.namespace, pod, view, opts.when_step)


@contextlib.contextmanager
def flight_getter(
    platform: Platform, c: Any, reporter: Reporter, needed: bool
) -> Iterator[FlightGetter | None]:
    """Read flights from the env's Stairway database (through the proxy on GKE) while open."""
    if not needed:
        yield None
        return
    with platform.db(c, reporter) as target:
        reader = FlightReader(target.sqlalchemy_url())
        try:
            yield reader.get
        finally:
            reader.close()


@dataclass(frozen=True)
class TimelineEntry:
    at: dt.datetime
    kind: str
    detail: str
    source: str  # tool | kube | db | logs
    pod: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "at": rfc3339(self.at),
            "kind": self.kind,
            "detail": self.detail,
            "source": self.source,
            "pod": self.pod,
        }

    def line(self, t0: dt.datetime) -> str:
        offset = (self.at - t0).total_seconds()
        where = f" [{self.pod}]" if self.pod else ""
        return f"{offset:+8.1f}s  {self.kind:<20} {self.detail}{where}"


@dataclass(frozen=True)
class KillPodResult:
    """The rehearsal's record."""

    env: str
    namespace: str
    pod: str
    flight_id: str | None
    replacement: str | None
    replacement_ready: bool
    outcome: str  # finished | stuck | replaced | not-replaced
    verdict: str
    final: FlightView | None
    started: dt.datetime
    timeline: tuple[TimelineEntry, ...]
    engine_events: tuple[dict[str, Any], ...] = ()
    path: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "env": self.env,
            "namespace": self.namespace,
            "pod": self.pod,
            "flight_id": self.flight_id,
            "replacement": self.replacement,
            "replacement_ready": self.replacement_ready,
            "outcome": self.outcome,
            "verdict": self.verdict,
            "final": self.final.to_json() if self.final else None,
            "started": rfc3339(self.started),
            "timeline": [e.to_json() for e in self.timeline],
            "engine_events": list(self.engine_events),
        }

    def lines(self) -> list[str]:
        out = [e.line(self.started) for e in self.timeline]
        return out


class _Timeline:
    def __init__(self, reporter: Reporter) -> None:
        self._items: list[TimelineEntry] = []
        self._lock = threading.Lock()
        self._rep = reporter
        self._seen: set[tuple[str, str, str]] = set()
        self.changed_at = time.monotonic()

    def add(
        self, kind: str, detail: str, source: str, pod: str = "", at: dt.datetime | None = None
    ) -> None:
        entry = TimelineEntry(at or utcnow(), kind, detail, source, pod)
        key = (entry.at.isoformat(), kind, detail)
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
            self._items.append(entry)
            self.changed_at = time.monotonic()
        self._rep.emit(
            f"killpod.{kind}",
            f"{kind}: {detail}" + (f" [{pod}]" if pod else ""),
            source=source,
            pod=pod,
        )

    def items(self) -> tuple[TimelineEntry, ...]:
        with self._lock:
            return tuple(sorted(self._items, key=lambda e: e.at))


def pod_from_logs(platform: Platform, flight_id: str, since: dt.datetime) -> str | None:
    """The last pod whose logs show it received, took, launched or delayed the flight."""
    lines = platform.query_logs(since=since, contains=(flight_id,))
    holders = (Kind.RECEIVED, Kind.TAKING_OWNERSHIP, Kind.LAUNCHING, Kind.DELAYING, Kind.RESUMING)
    items = [
        i for i in classify_all(lines) if i.event.flight_id == flight_id and i.event.kind in holders
    ]
    return items[-1].pod if items else None


def wait_for_step(
    get: FlightGetter, flight_id: str, step: int, timeout: float, poll: float, rep: Reporter
) -> FlightView:
    """Wait until the flight is RUNNING inside step ``step``."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        view = get(flight_id)
        if view.terminal:
            raise OperationFailed(f"flight {flight_id} finished ({view.status}) before step {step}")
        if view.current_step is not None and view.current_step > step:
            raise OperationFailed(
                f"flight {flight_id} is already in step {view.current_step}, past step {step}"
            )
        if view.status == "RUNNING" and view.current_step == step:
            rep.emit("killpod.in_step", f"flight {flight_id} is inside step {step}", step=step)
            return view
        if view.describe() != last:
            last = view.describe()
            rep.emit("killpod.waiting", f"waiting for step {step}: flight {last}")
        if time.monotonic() >= deadline:
            raise OpsTimeout(f"flight {flight_id} did not reach step {step} within {timeout:g}s")
        time.sleep(poll)


def kill_pod(
    platform: Platform,
    opts: KillPodOptions,
    *,
    get_flight: FlightGetter | None = None,
    reporter: Reporter | None = None,
    run_dir: Path | None = None,
) -> KillPodResult:
    """Run the rehearsal. ``get_flight`` reads the flight (required with ``--flight``)."""
    rep = reporter or silent()
    env = platform.env
    ns = env.namespace
    plan = plan_kill(platform, opts, get_flight)
    pod_name = split_pod_arg(opts.pod, ns) if opts.pod else None
    kube = platform.kube()
    view = plan.flight

    if opts.flight_id and view is not None and get_flight is not None:
        if opts.when_step is not None:
            view = wait_for_step(
                get_flight, opts.flight_id, opts.when_step, opts.timeout, opts.poll, rep
            )
        if pod_name is None:
            pod_name = view.owner
            if pod_name is None:
                since = view.submitted.replace(tzinfo=dt.UTC) - dt.timedelta(minutes=1)
                pod_name = pod_from_logs(platform, opts.flight_id, since)
            if pod_name is None:
                raise NotFound(
                    f"flight {opts.flight_id} is {view.status} and unowned, and no pod logged"
                    " receiving it; give --pod"
                )
    assert pod_name is not None
    try:
        target = kube.get_pod(pod_name)
    except NotFound:
        owner = " (the flight's owner)" if view is not None and view.owner == pod_name else ""
        raise NotFound(f"pod {pod_name}{owner} not found in namespace {ns}") from None
    if not kube.matches(target.name):
        raise Refused(f"pod {pod_name} is not a pod of deployment {env.service.deployment}")

    started = utcnow()
    tl = _Timeline(rep)
    before, rv = kube.list_pods_rv()
    before_names = {p.name for p in before}
    if view is not None:
        tl.add("flight", f"{view.flight_id} {view.describe()}", "db", at=started)

    # follow the flight in the database from the moment of the kill
    stop = threading.Event()
    states: list[FlightView] = [view] if view is not None else []
    poll_errors: list[str] = []

    def poll_flight() -> None:
        assert get_flight is not None and view is not None
        prev = view
        while not stop.is_set():
            try:
                cur = get_flight(view.flight_id)
            except Exception as exc:  # keep following; a DB blip must not end the record
                msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                if not poll_errors or poll_errors[-1] != msg:
                    tl.add("db_error", msg[:200], "db")
                poll_errors.append(msg)
                stop.wait(opts.poll)
                continue
            if cur.state() != prev.state():
                _note_transition(tl, prev, cur)
                states.append(cur)
                prev = cur
            if cur.terminal:
                return
            stop.wait(opts.poll)

    poller = threading.Thread(target=poll_flight, name="kill-pod-db", daemon=True)

    deleted_at = utcnow()
    kube.delete_pod(pod_name, opts.grace_period)
    tl.add("deleted", f"deleted pod {pod_name} in {ns}", "kube", pod=pod_name, at=deleted_at)
    if view is not None:
        poller.start()

    replacement, ready = _watch_replacement(kube, pod_name, before_names, rv, tl, opts)

    engine_items: list[TimelineItem] = []
    final = states[-1] if states else None
    try:
        if view is not None:
            final, engine_items = _follow(platform, view, states, tl, opts, started, replacement)
    finally:
        stop.set()
        if poller.is_alive():
            poller.join(timeout=5)
    if view is not None and states:
        final = states[-1]

    outcome, verdict = _verdict(platform, final, replacement, ready, engine_items)
    tl.add("outcome", f"{outcome}: {verdict}", "tool")
    result = KillPodResult(
        env=env.name,
        namespace=ns,
        pod=pod_name,
        flight_id=opts.flight_id,
        replacement=replacement,
        replacement_ready=ready,
        outcome=outcome,
        verdict=verdict,
        final=final,
        started=started,
        timeline=tl.items(),
        engine_events=tuple(i.to_json() for i in engine_items),
    )
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / "kill-pod.json"
        path.write_text(json.dumps(result.to_json(), indent=2, default=str) + "\n")
        result = dataclasses.replace(result, path=path)
    return result


def _note_transition(tl: _Timeline, prev: FlightView, cur: FlightView) -> None:
    if cur.terminal:
        tl.add("finished", f"flight {cur.status}", "db")
    elif prev.owner and cur.owner is None:
        tl.add("disowned", f"flight {cur.status}, owner {prev.owner} cleared", "db", pod=prev.owner)
    elif cur.owner and cur.owner != prev.owner and cur.status == "RUNNING":
        tl.add("taken_over", f"flight RUNNING, now owned by {cur.owner}", "db", pod=cur.owner)
    elif cur.status != prev.status:
        tl.add("status", f"flight {prev.status} -> {cur.status}", "db", pod=cur.owner or "")
    elif cur.log_rows != prev.log_rows:
        step = f", in step {cur.current_step}" if cur.current_step is not None else ""
        tl.add("progress", f"{cur.log_rows} flightlog rows{step}", "db", pod=cur.owner or "")


def _watch_replacement(
    kube: Any,
    pod_name: str,
    before: set[str],
    rv: str | None,
    tl: _Timeline,
    opts: KillPodOptions,
) -> tuple[str | None, bool]:
    replacement: str | None = None
    ready = gone = terminating = False
    budget = min(opts.replacement_timeout, opts.timeout)
    for ev in kube.watch_pods(budget, rv):
        name = ev.pod.name
        if name == pod_name:
            if ev.type == "DELETED" and not gone:
                gone = True
                tl.add("pod_gone", f"pod {name} deleted from the API", "kube", pod=name)
            elif ev.pod.deleting and not terminating:
                terminating = True
                tl.add("terminating", f"pod {name} terminating", "kube", pod=name)
        elif name not in before:
            if replacement is None and ev.type in ("ADDED", "MODIFIED"):
                replacement = name
                tl.add("replacement_added", f"pod {name} added", "kube", pod=name)
            if name == replacement and ev.pod.ready and not ready:
                ready = True
                tl.add("replacement_ready", f"pod {name} Ready", "kube", pod=name)
        if ready and gone:
            break
    return replacement, ready


def _follow(
    platform: Platform,
    first: FlightView,
    states: list[FlightView],
    tl: _Timeline,
    opts: KillPodOptions,
    started: dt.datetime,
    replacement: str | None,
) -> tuple[FlightView, list[TimelineItem]]:
    """Follow the flight until finished, stuck (``settle`` s without change) or timeout."""
    deadline_at = started + dt.timedelta(seconds=opts.timeout)
    since = first.submitted.replace(tzinfo=dt.UTC) - dt.timedelta(minutes=1)
    engine: list[TimelineItem] = []
    logs_ok = True
    next_logs = 0.0
    seen = 0
    while True:
        cur = states[-1]
        now = time.monotonic()
        if logs_ok and now >= next_logs:
            next_logs = now + opts.log_poll
            try:
                lines = platform.query_logs(
                    since=since, contains=(first.flight_id, *ENGINE_PHRASES)
                )
                engine = flight_timeline(lines, first.flight_id)
                for item in engine[seen:]:
                    if item.at >= started - dt.timedelta(seconds=1):
                        tl.add(
                            f"engine.{item.event.kind.value}",
                            item.summary(),
                            "logs",
                            pod=item.pod,
                            at=item.at,
                        )
                seen = len(engine)
            except OpsError as exc:
                logs_ok = False
                tl.add("logs_unavailable", str(exc), "tool")
        if cur.terminal:
            return cur, engine
        if _rebuild_failed(cur, engine) and time.monotonic() - tl.changed_at >= min(
            3.0, opts.settle
        ):
            return cur, engine
        if time.monotonic() - tl.changed_at >= opts.settle or utcnow() >= deadline_at:
            return cur, engine
        time.sleep(opts.poll)


def _rebuild_failed(cur: FlightView, engine: Iterable[TimelineItem]) -> bool:
    """The 2021 orphan signature: the owner took the flight, then failed to build it."""
    if cur.status != "RUNNING" or not cur.owner:
        return False
    took = failed = False
    for item in engine:
        if item.pod != cur.owner and item.event.stairway != cur.owner:
            continue
        k = item.event.kind
        if k is Kind.TAKING_OWNERSHIP:
            took, failed = True, False
        elif k in (Kind.LAUNCHING, Kind.DELAYING, Kind.RESUMING) and took:
            took = False
        elif k in (Kind.DISPATCH_ERROR, Kind.NOT_RESUMED) and took:
            failed = True
    return took and failed


def _verdict(
    platform: Platform,
    final: FlightView | None,
    replacement: str | None,
    ready: bool,
    engine: list[TimelineItem],
) -> tuple[str, str]:
    if final is None:
        if ready:
            return "replaced", f"replacement pod {replacement} is Ready"
        return "not-replaced", "no replacement pod became Ready in time"
    if final.terminal:
        return "finished", f"flight {final.flight_id} finished: {final.status}"
    live = {p.name for p in _safe_pods(platform)}
    fid = final.flight_id
    if final.status == "RUNNING" and final.owner and final.owner not in live:
        return "stuck", (
            f"flight {fid} RUNNING, owned by {final.owner} which is gone: nobody disowned it"
        )
    if final.status == "RUNNING" and _rebuild_failed(final, engine):
        causes = [
            i.event.detail for i in engine if i.event.kind is Kind.DISPATCH_ERROR and i.event.detail
        ]
        cause = f" ({causes[-1]})" if causes else ""
        return "stuck", (
            f"flight {fid} RUNNING, owned by live pod {final.owner} that could not rebuild it"
            f"{cause}; resume() never takes a RUNNING flight"
        )
    if final.status == "RUNNING":
        return "stuck", f"flight {fid} RUNNING on {final.owner}, no progress before the deadline"
    return "stuck", f"flight {fid} {final.status}, unowned: no pod picked it up"


def _safe_pods(platform: Platform) -> list[Any]:
    try:
        return platform.list_pods()
    except OpsError:
        return []
