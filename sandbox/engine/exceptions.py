"""Java-shaped exceptions: class name, message, cause chain and a logback-style stack trace, so the
sandbox's log lines read like the engine's (`Caused by: …`, `\\tat …`, `... N common frames
omitted`)."""

from __future__ import annotations

from collections.abc import Sequence

STAIRWAY_EXC = "bio.terra.stairway.exception."


class JavaException(Exception):
    """An exception as a Java program would have thrown it."""

    def __init__(
        self,
        java_class: str,
        message: str | None = None,
        *,
        cause: BaseException | None = None,
        frames: Sequence[str] = (),
        omitted: int = 0,
    ) -> None:
        super().__init__(message if message is not None else java_class)
        self.java_class = java_class
        self.message = message
        self.java_cause = cause
        self.frames = list(frames)
        self.omitted = omitted

    def java_str(self) -> str:
        """`Throwable.toString()`."""
        return self.java_class if self.message is None else f"{self.java_class}: {self.message}"

    def trace(self) -> str:
        """The stack trace as logback prints it (a null message printed as `null`)."""
        lines: list[str] = []
        exc: BaseException | None = self
        first = True
        while exc is not None:
            if isinstance(exc, JavaException):
                head = f"{exc.java_class}: {'null' if exc.message is None else exc.message}"
                frames, omitted, nxt = exc.frames, exc.omitted, exc.java_cause
            else:
                head = f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"
                frames, omitted, nxt = [], 0, exc.__cause__
            lines.append(head if first else f"Caused by: {head}")
            lines.extend(f"\tat {f}" for f in frames)
            if omitted:
                lines.append(f"\t... {omitted} common frames omitted")
            exc = nxt
            first = False
        return "\n".join(lines)

    def root(self) -> BaseException:
        exc: BaseException = self
        while isinstance(exc, JavaException) and exc.java_cause is not None:
            exc = exc.java_cause
        return exc


def stairway_exception(
    simple: str,
    message: str | None,
    *,
    cause: BaseException | None = None,
    frames: Sequence[str] = (),
) -> JavaException:
    return JavaException(STAIRWAY_EXC + simple, message, cause=cause, frames=frames)


class MakeFlightException(JavaException):
    def __init__(
        self, message: str, *, cause: BaseException | None = None, frames: Sequence[str] = ()
    ) -> None:
        super().__init__(STAIRWAY_EXC + "MakeFlightException", message, cause=cause, frames=frames)


class DatabaseOperationException(JavaException):
    def __init__(self, message: str, *, cause: BaseException | None = None) -> None:
        super().__init__(STAIRWAY_EXC + "DatabaseOperationException", message, cause=cause)


class DuplicateFlightIdException(JavaException):
    def __init__(self, message: str) -> None:
        super().__init__(STAIRWAY_EXC + "DuplicateFlightIdException", message)


class FlightNotFoundException(JavaException):
    def __init__(self, message: str) -> None:
        super().__init__(STAIRWAY_EXC + "FlightNotFoundException", message)


class JsonConversionException(JavaException):
    def __init__(self, message: str, *, cause: BaseException | None = None) -> None:
        super().__init__(STAIRWAY_EXC + "JsonConversionException", message, cause=cause)


class StairwayShutdownException(JavaException):
    def __init__(self, message: str) -> None:
        super().__init__(STAIRWAY_EXC + "StairwayShutdownException", message)


def java_class_cast(message: str, frames: Sequence[str] = ()) -> JavaException:
    return JavaException("java.lang.ClassCastException", message, frames=frames)


def serialize_exception(exc: BaseException | None) -> str:
    """Stairway's `DefaultExceptionSerializer`: `<class>;<message>`, or '' for none."""
    if exc is None:
        return ""
    if isinstance(exc, JavaException):
        return f"{exc.java_class};{exc.message}"
    return f"java.lang.RuntimeException;{type(exc).__name__}: {exc}"
