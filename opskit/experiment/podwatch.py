"""The pods' lifetimes during an attempt: a pod watch in the background (:class:`PodWatch`).

Through the same platform code as ``inv kill-pod`` (the official client on GKE and on the
sandbox). It records, per pod, when the API server created it (``creationTimestamp``), when it
was first seen Ready and when it was marked for deletion or deleted. The experiment records draw
the Gantt chart of pod lifetimes from it, and the sequence diagrams draw arrows only from pods
alive at the moment.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from dataclasses import dataclass

from opskit.errors import OpsError
from opskit.journal import PodLife
from opskit.kube import Pod
from opskit.platform import Platform
from repairtool.clock import rfc3339, utcnow

#: each watch request lasts this long before the next one (so that stop() is prompt)
WATCH_SLICE_SECONDS = 2.0


@dataclass
class _Life:
    created: dt.datetime
    ready: dt.datetime | None = None
    deleted: dt.datetime | None = None
    #: already Ready when the watch began (its Ready time is unknown)
    ready_before: bool = False


class PodWatch:
    """Watch the service's pods until :meth:`stop`; :meth:`lives` are the recorded lifetimes."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._lives: dict[str, _Life] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pod-watch", daemon=True)
        self.error: str | None = None
        self._rv: str | None = None

    def start(self) -> PodWatch:
        with contextlib.suppress(OpsError):
            pods, self._rv = self.platform.kube().list_pods_rv()
            now = utcnow()
            for pod in pods:
                self._see(pod, now, deleted=False)
                if pod.ready:  # Ready before the watch began: when, the list does not say
                    self._lives[pod.name].ready, self._lives[pod.name].ready_before = None, True
        self._thread.start()
        return self

    def _see(self, pod: Pod, at: dt.datetime, *, deleted: bool) -> None:
        with self._lock:
            life = self._lives.get(pod.name)
            if life is None:
                created = pod.created.astimezone(dt.UTC) if pod.created else at
                life = self._lives[pod.name] = _Life(created=min(created, at))
            if pod.ready and life.ready is None and not pod.deleting and not life.ready_before:
                life.ready = at
            if (pod.deleting or deleted) and life.deleted is None:
                life.deleted = at

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for ev in self.platform.watch_pods(WATCH_SLICE_SECONDS, self._rv):
                    self._rv = ev.resource_version or self._rv
                    self._see(ev.pod, ev.at, deleted=ev.type == "DELETED")
                    if self._stop.is_set():
                        return
            except OpsError as exc:  # recorded: the lifetimes are then incomplete
                self.error = str(exc)
                self._stop.wait(1.0)

    def stop(self) -> tuple[PodLife, ...]:
        self._stop.set()
        self._thread.join(WATCH_SLICE_SECONDS + 3)
        return self.lives()

    def lives(self) -> tuple[PodLife, ...]:
        with self._lock:
            items = sorted(self._lives.items(), key=lambda kv: (kv[1].created, kv[0]))
        return tuple(
            PodLife(
                name=name,
                created=rfc3339(life.created),
                ready=rfc3339(life.ready) if life.ready else None,
                deleted=rfc3339(life.deleted) if life.deleted else None,
            )
            for name, life in items
        )
