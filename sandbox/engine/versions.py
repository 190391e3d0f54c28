"""What an engine release writes and how it reads, as feature switches (stairway-engine.md §1–5)."""

from __future__ import annotations

from dataclasses import dataclass

from repairtool.stairway.schema import EngineVersion

V = EngineVersion.parse


@dataclass(frozen=True)
class EngineFeatures:
    """Behaviour of one engine generation. `reader` may differ from `version` (a repair drill)."""

    version: EngineVersion
    reader: EngineVersion

    @classmethod
    def of(cls, version: str, reader: str | None = None) -> EngineFeatures:
        return cls(V(version), V(reader or version))

    @property
    def has_flightlog_id(self) -> bool:
        """flightlog.id + flightworking rows (changeset 20210416, first in 0.0.50)."""
        return self.version >= V("0.0.50")

    @property
    def writes_legacy_json(self) -> bool:
        """flightlog.working_parameters / flight.output_parameters whole-map JSON (≤0.0.60)."""
        return self.version <= V("0.0.60")

    @property
    def writes_progress(self) -> bool:
        """flightpersisted `StairwayProgressMeters` (0.0.70)."""
        return self.version >= V("0.0.70")

    @property
    def typed_reader(self) -> bool:
        """FlightMap of raw JSON decoded with the requested type (PF-703, 0.0.61)."""
        return self.reader >= V("0.0.61")

    @property
    def refactored(self) -> bool:
        """The 0.0.63 impl/ + queue/ split (class names in traces, queue log wording)."""
        return self.version >= V("0.0.63")

    @property
    def resume_miss(self) -> str:
        return " did not find flight to resume: " if self.refactored else " did not resume flight: "

    @property
    def acks_on_db_error(self) -> bool:
        """0.0.50 acks a message whose processing hit a DatabaseOperationException; HEAD not."""
        return not self.refactored

    @property
    def message_has_context(self) -> bool:
        """1.1.10 appends `callingThreadContext` to the queue message."""
        return self.version >= V("1.1.10")

    @property
    def keeps_do_failure_on_dismal(self) -> bool:
        """PF-2594 (2023-03): a dismal failure keeps the original DO exception."""
        return self.version >= V("1.0.0")

    def resume_frames(self) -> list[str]:
        """Where a MakeFlightException raised on the queue-dispatch path comes from."""
        if not self.refactored:
            return [
                "bio.terra.stairway.StairwayFlightFactory.makeFlight(StairwayFlightFactory.java:30)",
                "bio.terra.stairway.StairwayFlightFactory.makeFlightFromName("
                "StairwayFlightFactory.java:41)",
                "bio.terra.stairway.Stairway.resume(Stairway.java:682)",
                "bio.terra.stairway.QueueMessageReady.process(QueueMessageReady.java:24)",
                "bio.terra.stairway.QueueMessage.processMessage(QueueMessage.java:43)",
                "bio.terra.stairway.Queue.dispatchMessages(Queue.java:148)",
                "bio.terra.stairway.WorkQueueListener.run(WorkQueueListener.java:39)",
                "java.base/java.lang.Thread.run(Unknown Source)",
            ]
        return [
            "bio.terra.stairway.impl.FlightFactory.makeFlight(FlightFactory.java:37)",
            "bio.terra.stairway.impl.FlightFactory.makeFlightFromName(FlightFactory.java:57)",
            "bio.terra.stairway.impl.StairwayImpl.resume(StairwayImpl.java:461)",
            "bio.terra.stairway.queue.QueueMessageReady.process(QueueMessageReady.java:31)",
            "bio.terra.stairway.queue.WorkQueueProcessor.processMessage("
            "WorkQueueProcessor.java:51)",
            "bio.terra.stairway.queue.WorkQueueListener.run(WorkQueueListener.java:82)",
            "java.base/java.lang.Thread.run(Thread.java:833)",
        ]

    def flightmap_get_frame(self) -> str:
        return (
            "bio.terra.stairway.FlightMap.get(FlightMap.java:89)"
            if not self.typed_reader
            else "bio.terra.stairway.FlightMap.get(FlightMap.java:120)"
        )

    def logger_name(self, simple: str) -> str:
        """The engine's logger (class) name for `simple` in this generation."""
        impl = {
            "FlightDao",
            "StairwayImpl",
            "DbRetry",
            "FlightRunner",
            "StairwayInstanceDao",
            "FlightFactory",
            "HookWrapper",
        }
        queue = {"WorkQueueListener", "QueueMessageReady", "WorkQueueManager"}
        if not self.refactored:
            renamed = {
                "StairwayImpl": "Stairway",
                "FlightRunner": "Flight",
                "WorkQueueManager": "Queue",
                "FlightFactory": "StairwayFlightFactory",
            }
            return "bio.terra.stairway." + renamed.get(simple, simple)
        if simple in impl:
            return "bio.terra.stairway.impl." + simple
        if simple in queue:
            return "bio.terra.stairway.queue." + simple
        return "bio.terra.stairway." + simple
