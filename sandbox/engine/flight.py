"""Flights, steps, their context and the engine's enums (FlightStatus, Direction, StepStatus)."""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sandbox.engine.flightmap import FlightMap


class FlightStatus(enum.StrEnum):
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    FATAL = "FATAL"
    WAITING = "WAITING"
    READY = "READY"
    QUEUED = "QUEUED"
    READY_TO_RESTART = "READY_TO_RESTART"

    @property
    def active(self) -> bool:
        """`FlightState.isActive()`: only RUNNING."""
        return self is FlightStatus.RUNNING


class Direction(enum.StrEnum):
    START = "START"
    DO = "DO"
    UNDO = "UNDO"
    SWITCH = "SWITCH"


class StepStatus(enum.StrEnum):
    STEP_RESULT_SUCCESS = "STEP_RESULT_SUCCESS"
    STEP_RESULT_WAIT = "STEP_RESULT_WAIT"
    STEP_RESULT_STOP = "STEP_RESULT_STOP"
    STEP_RESULT_RERUN = "STEP_RESULT_RERUN"
    STEP_RESULT_FAILURE_RETRY = "STEP_RESULT_FAILURE_RETRY"
    STEP_RESULT_FAILURE_FATAL = "STEP_RESULT_FAILURE_FATAL"
    STEP_RESULT_RESTART_FLIGHT = "STEP_RESULT_RESTART_FLIGHT"

    @property
    def success(self) -> bool:
        return self in (
            StepStatus.STEP_RESULT_SUCCESS,
            StepStatus.STEP_RESULT_RERUN,
            StepStatus.STEP_RESULT_STOP,
            StepStatus.STEP_RESULT_WAIT,
            StepStatus.STEP_RESULT_RESTART_FLIGHT,
        )


@dataclass(frozen=True)
class StepResult:
    status: StepStatus = StepStatus.STEP_RESULT_SUCCESS
    exception: BaseException | None = None

    @property
    def success(self) -> bool:
        return self.status.success

    @classmethod
    def ok(cls) -> StepResult:
        return cls()

    @classmethod
    def fatal(cls, exc: BaseException) -> StepResult:
        return cls(StepStatus.STEP_RESULT_FAILURE_FATAL, exc)


@dataclass
class FlightContext:
    """What a running flight carries (`FlightContext`): maps, position, result."""

    flight_id: str
    class_name: str
    input_parameters: FlightMap
    working_map: FlightMap
    stairway_name: str
    step_index: int = 0
    direction: Direction = Direction.START
    rerun: bool = False
    result: StepResult = field(default_factory=StepResult)
    step_count: int = 0
    step_class_name: str = ""
    flight_status: FlightStatus = FlightStatus.RUNNING
    debug_info: str = "{}"

    @property
    def simple_class_name(self) -> str:
        return self.class_name.rsplit(".", 1)[-1]


class Step(abc.ABC):
    """A step: `do_step` and `undo_step` must be idempotent (they may be re-run on recovery)."""

    java_class: ClassVar[str] = "bio.terra.stairway.Step"

    @abc.abstractmethod
    def do_step(self, context: FlightContext) -> StepResult:
        """The step's work (each concrete step defines it)."""

    def undo_step(self, context: FlightContext) -> StepResult:
        return StepResult.ok()


class Flight:
    """A flight class: built from its input map and the application context (the bean bag).
    Building it must not touch the database: the engine rebuilds it on recovery."""

    java_class: ClassVar[str] = "bio.terra.stairway.Flight"
    #: the source line of the constructor, for stack traces of construction failures
    java_init_line: ClassVar[int] = 1

    def __init__(self, input_parameters: FlightMap, application_context: Any) -> None:
        self.input_parameters = input_parameters
        self.application_context = application_context
        self.steps: list[Step] = []

    def add_step(self, step: Step) -> None:
        self.steps.append(step)

    @classmethod
    def init_frame(cls) -> str:
        simple = cls.java_class.rsplit(".", 1)[-1]
        return f"{cls.java_class}.<init>({simple}.java:{cls.java_init_line})"
