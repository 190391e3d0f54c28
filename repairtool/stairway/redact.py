"""Masking of secrets in stored FlightMap text before it reaches audit rows, logs or output."""

from __future__ import annotations

import json
import re
from typing import Any

SECRET_KEY = re.compile(
    r"(token|password|passwd|secret|credential|authorization|api[_-]?key)", re.I
)
MASK = "<<MASKED>>"


def mask_tree(value: Any) -> Any:
    """A copy of a parsed JSON value with the values of secret-looking keys replaced."""
    if isinstance(value, dict):
        return {
            k: (MASK if SECRET_KEY.search(str(k)) and v is not None else mask_tree(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_tree(v) for v in value]
    return value


def mask_text(stored: str, key: str = "") -> str:
    """Masked form of one stored value (the whole value when its key looks secret)."""
    if key and SECRET_KEY.search(key):
        return MASK
    try:
        parsed = json.loads(stored)
    except (ValueError, RecursionError):
        return f"<unparseable, {len(stored)} chars>"
    return json.dumps(mask_tree(parsed), separators=(",", ":"), ensure_ascii=False)
