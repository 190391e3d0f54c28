"""The two ways a Stairway version reads FlightMap values back (``--reader``)."""

from __future__ import annotations

import re
from enum import StrEnum

from .errors import ReaderVersionError

_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)(?:[-+.][0-9A-Za-z.+-]*)?")
_FIRST_TYPED = (0, 0, 61)


class ReaderVersion(StrEnum):
    """How the service's Stairway turns a stored value into the object ``FlightMap.get`` returns.

    ``LEGACY`` (Stairway ≤ 0.0.60): ``readValue(text, Object.class)`` while rebuilding the
    FlightMap, then ``type.isInstance`` in ``get`` — an enum or UUID stored as a plain string
    comes back as a ``String`` and ``get`` throws ``ClassCastException``.
    ``TYPED`` (Stairway ≥ 0.0.61, PF-703): ``readValue(text, requestedType)`` in ``get``;
    failures are ``JsonConversionException``.
    """

    LEGACY = "legacy"
    TYPED = "typed"

    @property
    def label(self) -> str:
        """The Stairway versions this reader stands for (``≤0.0.60`` / ``≥0.0.61``)."""
        return "≤0.0.60" if self is ReaderVersion.LEGACY else "≥0.0.61"

    @classmethod
    def parse(cls, text: str) -> ReaderVersion:
        """Same as :func:`parse_reader`."""
        return parse_reader(text)


def parse_reader(text: str) -> ReaderVersion:
    """Read ``legacy``, ``typed`` or a Stairway version (``0.0.60``, ``0.0.61``, ``1.1.14``).

    Versions before 0.0.61 read values as ``Object`` (``LEGACY``); 0.0.61 and later read them
    into the requested type (``TYPED``). Raises :class:`ReaderVersionError` for anything else.
    """
    value = text.strip().lower()
    if value in ("legacy", "typed"):
        return ReaderVersion(value)
    match = _VERSION.fullmatch(value)
    if match is None:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise ReaderVersionError(
            f"unrecognised reader {shown!r}: give a Stairway version such as 0.0.60 or 1.1.14, "
            "or 'legacy' (≤0.0.60) / 'typed' (≥0.0.61)"
        )
    version = tuple(int(part) for part in match.groups())
    return ReaderVersion.LEGACY if version < _FIRST_TYPED else ReaderVersion.TYPED
