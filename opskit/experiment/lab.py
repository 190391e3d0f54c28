"""What every step of an attempt works with (:class:`Lab`), and what they hand each other."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

from opskit.dbproxy import DbTarget
from opskit.events import Reporter
from opskit.experiment.db import ExperimentDb
from opskit.experiment.definition import ExperimentDefinition
from opskit.experiment.stage import Stage
from opskit.experiment.tools import Tools
from opskit.journal import TimelineEntry
from repairtool.clock import rfc3339, utcnow

Source = Literal["kube", "log", "db", "tool"]


@dataclass(frozen=True)
class Lab:
    """One run's fixtures: the definition, where it runs, the commands, the database."""

    defn: ExperimentDefinition
    stage: Stage
    tools: Tools
    db: ExperimentDb
    target: DbTarget
    rep: Reporter

    @property
    def replicas(self) -> int:
        """The pods the service should have Ready."""
        env = self.stage.env
        return self.defn.replicas if env.kind == "local" else env.service.replicas

    def live_pods(self) -> set[str]:
        return {p.name for p in self.stage.platform.list_pods() if not p.deleting}

    def ready_pods(self) -> list[str]:
        return sorted(p.name for p in self.stage.platform.list_pods() if p.ready)


@dataclass(frozen=True)
class SubmittedFlight:
    """The flight an attempt started, as the database showed it when it appeared."""

    flight_id: str
    receiver: str | None
    submitted: dt.datetime


@dataclass
class Timeline:
    """An attempt's timeline as it is collected (sorted when recorded)."""

    entries: list[TimelineEntry] = field(default_factory=list)

    def add(
        self,
        source: Source,
        event: str,
        detail: str,
        pod: str | None = None,
        at: dt.datetime | None = None,
    ) -> None:
        self.entries.append(
            TimelineEntry(
                at=rfc3339(at or utcnow()), source=source, event=event, detail=detail, pod=pod
            )
        )

    def extend(self, entries: tuple[TimelineEntry, ...]) -> None:
        self.entries.extend(entries)

    def sorted(self) -> tuple[TimelineEntry, ...]:
        return tuple(sorted(self.entries, key=lambda t: t.at))
