"""The engine: submit, run, log, complete, recover, resume — the Stairway object of one pod.

Startup is the engine's three steps (`initialize` → the caller's obsolete list →
`recover_and_start`); `recover_stairway(name)` is what the pod listener calls on DELETED.
Flights run on a thread pool; each step boundary is one `flightlog` row written by `FlightDao`.
`resume` commits ownership *before* the flight object is built (stairway-engine.md §3.5–3.6), so a
flight whose constructor throws is left RUNNING and owned — the 2021 orphan.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sandbox.engine.dao import FlightDao, LogRow, ResumeRows
from sandbox.engine.exceptions import (
    JavaException,
    MakeFlightException,
    StairwayShutdownException,
)
from sandbox.engine.flight import (
    Direction,
    Flight,
    FlightContext,
    FlightStatus,
    StepResult,
    StepStatus,
)
from sandbox.engine.flightmap import FlightMap, JsonFlightMap, ObjectFlightMap, new_map
from sandbox.engine.hooks import HookWrapper
from sandbox.engine.jackson import PROGRESS_METER, write_value
from sandbox.engine.queue import WorkQueue, WorkQueueListener, ready_message
from sandbox.engine.versions import EngineFeatures

PROGRESS_KEY = "StairwayProgressMeters"
STEP_PROGRESS = "STAIRWAY_STEP_PROGRESS"
REFLECT_FRAMES = [
    "java.base/jdk.internal.reflect.NativeConstructorAccessorImpl.newInstance0(Native Method)",
    "java.base/jdk.internal.reflect.NativeConstructorAccessorImpl.newInstance(Unknown Source)",
    "java.base/jdk.internal.reflect.DelegatingConstructorAccessorImpl.newInstance(Unknown Source)",
    "java.base/java.lang.reflect.Constructor.newInstance(Unknown Source)",
]


def deserialize_exception(text: str | None) -> JavaException | None:
    """`DefaultExceptionSerializer.deserialize` (`<class>;<message>`)."""
    if not text:
        return None
    cls, _, message = text.partition(";")
    return JavaException(cls, message)


@dataclass
class FlightState:
    """`FlightState` as the engine returns it to the service."""

    flight_id: str
    class_name: str
    status: FlightStatus
    stairway_id: str | None
    submitted: datetime | None
    completed: datetime | None
    input_parameters: FlightMap
    result_map: FlightMap | None
    exception: JavaException | None


class FlightFactory:
    """`StairwayFlightFactory.makeFlightFromName`: class name → flight object (reflection)."""

    def __init__(self, features: EngineFeatures, classes: dict[str, type[Flight]]) -> None:
        self.features = features
        self.classes = classes

    def make(
        self, class_name: str, inputs: FlightMap, app_context: Any, frames: list[str]
    ) -> Flight:
        cls = self.classes.get(class_name)
        if cls is None:
            raise MakeFlightException(
                f"Failed to make a flight from class name '{class_name}'",
                cause=JavaException("java.lang.ClassNotFoundException", class_name),
                frames=frames,
            )
        try:
            return cls(inputs, app_context)
        except JavaException as error:
            error.frames.append(cls.init_frame())
            error.omitted = 12
            make_frame = frames[0].replace(":30)", ":23)") if frames else ""
            ite = JavaException(
                "java.lang.reflect.InvocationTargetException",
                None,
                cause=error,
                frames=[*REFLECT_FRAMES, make_frame],
                omitted=7,
            )
            raise MakeFlightException(
                f"Failed to make a flight from class 'class {class_name}'", cause=ite, frames=frames
            ) from None


class Stairway:
    """One engine instance (`stairwayName` = the pod name)."""

    def __init__(
        self,
        *,
        name: str,
        cluster_name: str,
        dao: FlightDao,
        features: EngineFeatures,
        factory: FlightFactory,
        hooks: HookWrapper,
        app_context: Any,
        work_queue: WorkQueue | None,
        max_parallel_flights: int = 50,
    ) -> None:
        self.name = name
        self.cluster_name = cluster_name
        self.dao = dao
        self.f = features
        self.factory = factory
        self.hooks = hooks
        self.app_context = app_context
        self.work_queue = work_queue
        self.max_parallel_flights = max_parallel_flights
        self.log = logging.getLogger(features.logger_name("StairwayImpl"))
        self.flight_log = logging.getLogger(features.logger_name("FlightRunner"))
        self.queue_log_name = features.logger_name("QueueMessageReady")
        self._pool = ThreadPoolExecutor(
            max_workers=max_parallel_flights, thread_name_prefix="stairway-flight"
        )
        self._active = 0
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self._listener: WorkQueueListener | None = None

    # -- startup -----------------------------------------------------------------------------
    def initialize(self) -> list[str]:
        """Step 2: the recorded instances (`stairwayinstance.stairway_name`)."""
        return self.dao.instance_list()

    def recover_and_start(self, obsolete: list[str]) -> None:
        """Step 3: disown the obsolete instances' flights, register, recoverReady, listen."""
        for stairway_name in obsolete:
            stairway_id = self.dao.instance_lookup_id(stairway_name)
            if stairway_id is not None:
                self.log.info("Recovering stairway %s", stairway_name)
                for flight_id in self.dao.disown_recovery(stairway_id):
                    self.hooks.state_transition(flight_id, FlightStatus.READY)
        self.dao.instance_find_or_create(self.name)
        self.recover_ready(inline_frames=self._startup_frames())
        if self.work_queue is not None:
            self._listener = WorkQueueListener(
                self.work_queue,
                self.process_message,
                self.pool_has_room,
                self.f.logger_name("WorkQueueListener"),
                self.stopping,
            )
            self._listener.start()

    def recover_stairway(self, stairway_name: str) -> None:
        """`recoverStairway(name)`: disown one dead instance's flights, then rescan READY."""
        stairway_id = self.dao.instance_lookup_id(stairway_name)
        if stairway_id is not None:
            for flight_id in self.dao.disown_recovery(stairway_id):
                self.hooks.state_transition(flight_id, FlightStatus.READY)
        self.recover_ready(inline_frames=self._startup_frames())

    def recover_ready(self, inline_frames: list[str]) -> None:
        flights = self.dao.ready_flights()
        self.log.info("Found ready flights: %s", len(flights))
        for flight_id in flights:
            if self.work_queue is not None:
                self.queue_flight(flight_id)
            else:
                self.resume(flight_id, frames=inline_frames)

    def queue_flight(self, flight_id: str) -> None:
        assert self.work_queue is not None
        self.work_queue.publish(ready_message(flight_id, with_context=self.f.message_has_context))
        if self.dao.queued(flight_id):
            self.hooks.state_transition(flight_id, FlightStatus.QUEUED)

    def _startup_frames(self) -> list[str]:
        frames = self.f.resume_frames()[:3]
        if self.f.refactored:
            return [
                *frames,
                "bio.terra.stairway.impl.StairwayImpl.recoverReady(StairwayImpl.java:226)",
                "bio.terra.stairway.impl.StairwayImpl.recoverAndStart(StairwayImpl.java:199)",
            ]
        return [
            *frames,
            "bio.terra.stairway.Stairway.recoverReady(Stairway.java:373)",
            "bio.terra.stairway.Stairway.recoverAndStart(Stairway.java:336)",
        ]

    # -- the work queue ------------------------------------------------------------------------
    def pool_has_room(self) -> bool:
        with self._lock:
            return self._active < self.max_parallel_flights

    def process_message(self, data: str) -> bool:
        """`QueueMessage.processMessage` → `QueueMessageReady.process`."""
        import json

        log = logging.getLogger(self.queue_log_name)
        try:
            msg = json.loads(data)
            version = msg["type"]["version"]
            kind = msg["type"]["messageEnum"]
            flight_id = str(msg["flightId"])
        except (ValueError, KeyError, TypeError):
            log.info("Ignoring message: failed to deserialize: %s", data)
            return True
        if version != "1":
            log.info("Ignoring message: unknown version: %s", data)
            return True
        if kind != "QUEUE_MESSAGE_READY":
            log.info("Ignoring message: unknown message type: %s", data)
            return True
        from sandbox.engine.exceptions import DatabaseOperationException

        try:
            resumed = self.resume(flight_id, frames=self.f.resume_frames())
        except DatabaseOperationException:
            if self.f.acks_on_db_error:
                log.info("Unexpected stairway error")
                return True
            log.info("Unexpected stairway error, leaving %s on the queue", flight_id)
            return False
        if resumed:
            log.info("Stairway %s resumed flight: %s", self.name, flight_id)
        else:
            log.info("Stairway %s%s%s", self.name, self.f.resume_miss, flight_id)
        return True

    # -- submit / resume -----------------------------------------------------------------------
    def new_input_map(self, values: dict[str, Any]) -> FlightMap:
        return new_map(self.f.typed_reader, values)

    def submit(self, flight_id: str, class_name: str, inputs: FlightMap) -> None:
        if self.stopping.is_set():
            raise StairwayShutdownException(
                "Stairway is shutting down and cannot accept a new flight"
            )
        frames = [
            f"{self.f.logger_name('FlightFactory')}.makeFlightFromName",
            f"{self.f.logger_name('StairwayImpl')}.submit",
        ]
        flight = self.factory.make(class_name, inputs, self.app_context, frames)
        ctx = FlightContext(
            flight_id,
            class_name,
            inputs,
            new_map(self.f.typed_reader),
            self.name,
            step_count=len(flight.steps),
        )
        self.dao.submit(
            flight_id, class_name, FlightStatus.RUNNING, self.name, inputs.row_json(), "{}"
        )
        self.hooks.state_transition(flight_id, FlightStatus.RUNNING)
        self._launch(ctx, flight)

    def resume(self, flight_id: str, frames: list[str] | None = None) -> bool:
        """Claim an unowned WAITING/READY/QUEUED/READY_TO_RESTART flight and run it. Ownership is
        committed before the flight object is made: if that throws, the flight stays RUNNING."""
        if self.stopping.is_set():
            if self.f.refactored:
                raise StairwayShutdownException(
                    "Stairway is shutting down and cannot resume a flight"
                )
            raise MakeFlightException("Stairway is shutting down and cannot resume a flight")
        claimed = self.dao.resume(
            self.name, flight_id, lambda rows: self._context_from_rows(flight_id, rows)
        )
        if claimed is None:
            return False
        rows, ctx = claimed
        self.hooks.state_transition(flight_id, FlightStatus.RUNNING)
        flight = self.factory.make(
            rows.class_name,
            ctx.input_parameters,
            self.app_context,
            frames or self.f.resume_frames(),
        )
        ctx.step_count = len(flight.steps)
        self._launch(ctx, flight)
        return True

    def _context_from_rows(self, flight_id: str, rows: ResumeRows) -> FlightContext:
        typed = self.f.typed_reader
        frame = self.f.flightmap_get_frame()
        inputs: FlightMap = (
            JsonFlightMap(rows.input_rows)
            if typed
            else ObjectFlightMap.from_rows(rows.input_rows, get_frame=frame)
        )
        ctx = FlightContext(
            flight_id,
            rows.class_name,
            inputs,
            self._working_map(rows.latest),
            self.name,
            debug_info=rows.debug_info or "{}",
        )
        latest = rows.latest
        if latest is not None:
            ctx.step_index = latest.step_index
            ctx.direction = Direction(latest.direction)
            ctx.rerun = latest.rerun
            if latest.succeeded is False:
                ctx.result = StepResult(
                    StepStatus.STEP_RESULT_FAILURE_FATAL,
                    deserialize_exception(latest.serialized_exception),
                )
        return ctx

    def _working_map(self, latest: LogRow | None) -> FlightMap:
        typed = self.f.typed_reader
        if latest is None:
            return new_map(typed)
        if typed:
            if latest.working_rows or not latest.working_parameters:
                return JsonFlightMap(latest.working_rows)
            return JsonFlightMap.from_legacy(latest.working_parameters)
        frame = self.f.flightmap_get_frame()
        if latest.working_parameters:
            return ObjectFlightMap.from_legacy(latest.working_parameters, get_frame=frame)
        # ≤0.0.60 never reads flightworking rows (0.0.50–0.0.60 only compared them with the
        # JSON): rows a ≥0.0.61 engine wrote leave it the empty working map (§5.5)
        return ObjectFlightMap(get_frame=frame)

    def _launch(self, ctx: FlightContext, flight: Flight) -> None:
        self.log.info(
            "Launching flight class: %s stairway: %s flightid: %s",
            ctx.class_name,
            self.name,
            ctx.flight_id,
        )
        with self._lock:
            self._active += 1
        self._pool.submit(self._run, ctx, flight)

    def _run(self, ctx: FlightContext, flight: Flight) -> None:
        try:
            FlightRunner(self, ctx, flight).fly()
        except Exception:
            self.flight_log.exception("Failed to exit flight cleanly")
        finally:
            with self._lock:
                self._active -= 1

    # -- state ---------------------------------------------------------------------------------
    def get_flight_state(self, flight_id: str) -> FlightState:
        row = self.dao.flight_state(flight_id)
        typed = self.f.typed_reader
        frame = self.f.flightmap_get_frame()
        inputs: FlightMap = (
            JsonFlightMap(row.input_rows)
            if typed
            else ObjectFlightMap.from_rows(row.input_rows, get_frame=frame)
        )
        result: FlightMap | None = None
        if typed:
            if row.latest is not None:
                result = self._working_map(row.latest)
        elif row.output_parameters:
            result = ObjectFlightMap.from_legacy(row.output_parameters, get_frame=frame)
        elif row.latest is not None:
            result = self._working_map(row.latest)
        return FlightState(
            row.flight_id,
            row.class_name,
            row.status,
            row.stairway_id,
            row.submit_time,
            row.completed_time,
            inputs,
            result,
            deserialize_exception(row.serialized_exception),
        )

    def shutdown_now(self) -> None:
        self.stopping.set()
        self._pool.shutdown(wait=False, cancel_futures=True)


class FlightRunner:
    """`Flight.fly()`: run steps from the logged position, log each boundary, complete."""

    def __init__(self, stairway: Stairway, ctx: FlightContext, flight: Flight) -> None:
        self.s = stairway
        self.ctx = ctx
        self.flight = flight
        self.log = stairway.flight_log

    def _advance(self) -> None:
        """`nextStepIndex()` from the last logged position."""
        ctx = self.ctx
        if ctx.direction == Direction.START:
            ctx.step_index, ctx.direction = 0, Direction.DO
        elif ctx.rerun:
            pass
        elif ctx.direction == Direction.DO:
            ctx.step_index += 1
        elif ctx.direction == Direction.UNDO:
            ctx.step_index -= 1
        # SWITCH: undo the step that failed (same index)

    def fly(self) -> None:
        ctx, s = self.ctx, self.s
        steps = self.flight.steps
        ctx.step_count = len(steps)
        s.hooks.start_flight(ctx)
        self._advance()
        while 0 <= ctx.step_index < len(steps):
            if s.f.writes_progress:
                meter = {STEP_PROGRESS: PROGRESS_METER(v1=ctx.step_index, v2=len(steps))}
                s.dao.persisted_put(ctx.flight_id, PROGRESS_KEY, write_value(meter))
            step = steps[ctx.step_index]
            ctx.step_class_name = step.java_class
            s.hooks.start_step(ctx)
            if ctx.direction == Direction.DO:
                result = self._call(step.do_step)
                if result.success:
                    ctx.rerun = result.status == StepStatus.STEP_RESULT_RERUN
                    s.dao.step(ctx)
                    s.hooks.end_step(ctx)
                    if result.status in (StepStatus.STEP_RESULT_WAIT, StepStatus.STEP_RESULT_STOP):
                        status = (
                            FlightStatus.WAITING
                            if result.status == StepStatus.STEP_RESULT_WAIT
                            else FlightStatus.READY
                        )
                        if s.dao.disown(ctx.flight_id, status):
                            s.hooks.state_transition(ctx.flight_id, status)
                            if status == FlightStatus.READY and s.work_queue is not None:
                                s.queue_flight(ctx.flight_id)
                        return
                else:
                    ctx.result = result
                    ctx.direction = Direction.SWITCH
                    ctx.rerun = False
                    s.dao.step(ctx)
                    s.hooks.end_step(ctx)
            else:
                undo = self._call(step.undo_step)
                if not undo.success:
                    self._dismal(step.java_class, undo)
                    return
                ctx.direction = Direction.UNDO
                ctx.rerun = False
                s.dao.step(ctx)
                s.hooks.end_step(ctx)
            self._advance()
        final = FlightStatus.SUCCESS if ctx.direction == Direction.DO else FlightStatus.ERROR
        exception = None if final == FlightStatus.SUCCESS else ctx.result.exception
        if s.dao.complete(ctx, final, exception):
            ctx.flight_status = final
            s.hooks.state_transition(ctx.flight_id, final)
        s.hooks.end_flight(ctx)

    def _call(self, fn: Any) -> StepResult:
        ctx = self.ctx
        try:
            result = fn(ctx)
            assert isinstance(result, StepResult)
            return result
        except JavaException as error:
            self.log.info(
                "Caught exception: (%s) flight id: %s step: %s direction: %s",
                error.java_str(),
                ctx.flight_id,
                ctx.step_index,
                ctx.direction.value,
            )
            return StepResult.fatal(error)
        except Exception as error:
            wrapped = JavaException(
                "java.lang.RuntimeException", f"{type(error).__name__}: {error}"
            )
            self.log.info(
                "Caught exception: (%s) flight id: %s step: %s direction: %s",
                wrapped.java_str(),
                ctx.flight_id,
                ctx.step_index,
                ctx.direction.value,
            )
            return StepResult.fatal(wrapped)

    def _dismal(self, step_class: str, undo: StepResult) -> None:
        """Part 3 of `fly()`: one more row with the direction as it stands (SWITCH when the
        failed step's own undo failed, UNDO when a later one did) and the DO failure, then FATAL.
        ≤0.0.62 then replaces the result with the undo error (the flight row's exception);
        since PF-2594 (2023-03) the DO failure is kept. A forced-ready flight resumes from this
        row: SWITCH undoes the same step again. (Flight.java 0.0.5x; impl/FlightRunner.java.)"""
        ctx, s = self.ctx, self.s
        s.dao.step(ctx)
        if s.f.keeps_do_failure_on_dismal:
            self.log.error(
                "%s (index %s) experienced DISMAL FAILURE: non-retryable error on undo",
                step_class,
                ctx.step_index,
            )
        else:
            ctx.result = undo
            self.log.error(
                "DISMAL FAILURE: non-retry-able error during undo. Flight: %s(%s) Step: %s(%s)",
                ctx.flight_id,
                ctx.class_name,
                ctx.step_index,
                step_class,
            )
        if s.dao.complete(ctx, FlightStatus.FATAL, ctx.result.exception):
            s.hooks.state_transition(ctx.flight_id, FlightStatus.FATAL)
        s.hooks.end_flight(ctx)
