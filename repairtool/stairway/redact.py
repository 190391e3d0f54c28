"""Masking of secrets in stored FlightMap text before it reaches audit rows, logs or output.

One implementation for the whole package: `repairtool.flightmap.secrets` (token-like keys and
values such as OAuth access tokens and JWTs become `<<MASKED>>`; unparseable text is described,
never echoed).
"""

from __future__ import annotations

from repairtool.flightmap.secrets import MASK, mask


def mask_text(stored: str, key: str = "") -> str:
    """Masked form of one stored value (the whole value when its key looks secret)."""
    masked = mask(stored, key)
    assert isinstance(masked, str)
    return masked


__all__ = ["MASK", "mask_text"]
