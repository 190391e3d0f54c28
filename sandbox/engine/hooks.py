"""Stairway hooks (`StairwayHook`, run through `HookWrapper`, which swallows their exceptions) and
the two WSM hooks of the 2021 experiment branch: `DelayHook` and the `MdcHook` state logging."""

from __future__ import annotations

import logging
import threading

from sandbox.engine.flight import FlightContext, FlightStatus


def java_duration(seconds: float) -> str:
    """`java.time.Duration.toString()`: PT3M, PT5S, PT2.5S, PT1M30S, PT0S."""
    if seconds == 0:
        return "PT0S"
    millis = round(seconds * 1000)
    hours, rem = divmod(millis, 3_600_000)
    minutes, rem = divmod(rem, 60_000)
    secs, ms = divmod(rem, 1000)
    out = "PT"
    if hours:
        out += f"{hours}H"
    if minutes:
        out += f"{minutes}M"
    if secs or ms:
        out += f"{secs}.{ms:03d}".rstrip("0").rstrip(".") + "S" if ms else f"{secs}S"
    return out


class StairwayHook:
    def start_flight(self, context: FlightContext) -> None:
        pass

    def start_step(self, context: FlightContext) -> None:
        pass

    def end_step(self, context: FlightContext) -> None:
        pass

    def end_flight(self, context: FlightContext) -> None:
        pass

    def state_transition(self, flight_id: str, status: FlightStatus) -> None:
        pass


class HookWrapper:
    """Runs every hook in order; a failing hook is logged and ignored."""

    def __init__(self, hooks: list[StairwayHook], logger_name: str) -> None:
        self.hooks = hooks
        self.log = logging.getLogger(logger_name)

    def _each(self, call: str, *args: object) -> None:
        for hook in self.hooks:
            try:
                getattr(hook, call)(*args)
            except Exception:
                self.log.exception("Stairway Hook failed with exception")

    def start_flight(self, context: FlightContext) -> None:
        self._each("start_flight", context)

    def start_step(self, context: FlightContext) -> None:
        self._each("start_step", context)

    def end_step(self, context: FlightContext) -> None:
        self._each("end_step", context)

    def end_flight(self, context: FlightContext) -> None:
        self._each("end_flight", context)

    def state_transition(self, flight_id: str, status: FlightStatus) -> None:
        self._each("state_transition", flight_id, status)


class DelayHook(StairwayHook):
    """WSM `DelayHook(flightClassName, stepIndex, delay)` (experiment-branch log lines)."""

    def __init__(
        self,
        flight_class: str,
        step_index: int,
        seconds: float,
        stop: threading.Event | None = None,
    ) -> None:
        self.flight_class = flight_class
        self.step_index = step_index
        self.seconds = seconds
        self.stop = stop or threading.Event()
        self.log = logging.getLogger("bio.terra.workspace.common.utils.DelayHook")

    def start_step(self, context: FlightContext) -> None:
        if context.class_name == self.flight_class and context.step_index == self.step_index:
            self.log.info(
                "Delaying flight ID %s class %s step %s by %s",
                context.flight_id,
                context.class_name,
                context.step_index,
                java_duration(self.seconds),
            )
            # Manual test typically kills pod now
            self.stop.wait(self.seconds)
            self.log.info("Resuming flight ID %s", context.flight_id)


class StateTransitionLogHook(StairwayHook):
    """WSM `MdcHook.stateTransition` on the experiment branch (696a97736)."""

    def __init__(self) -> None:
        self.log = logging.getLogger("bio.terra.workspace.common.utils.MdcHook")

    def state_transition(self, flight_id: str, status: FlightStatus) -> None:
        self.log.info("Flight ID %s changed status to %s.", flight_id, status.value)
