"""Errors of the FlightMap package.

Every message is one line and never contains a stored value (FlightMaps hold tokens): it names
the file, flight class, key or character position instead.
"""

from __future__ import annotations


class FlightMapError(Exception):
    """Base of the FlightMap package's errors: a one-line message."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class CatalogError(FlightMapError):
    """A type catalog file is invalid (unknown kind, missing or unexpected field, bad YAML)."""


class ReaderVersionError(FlightMapError, ValueError):
    """A ``--reader`` value is neither a Stairway version nor ``legacy`` / ``typed``."""


class JacksonParseError(FlightMapError):
    """A stored value is not JSON that Jackson would read; ``position`` is a character index."""

    def __init__(self, problem: str, position: int | None = None) -> None:
        self.problem = problem
        self.position = position
        where = f" at char {position}" if position is not None else ""
        super().__init__(f"malformed JSON{where}: {problem}")
