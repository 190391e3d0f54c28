"""Mask secrets in FlightMap values before anything shows them.

Values of keys named like ``token``, ``password``, ``secret``, ``credential``, ``accessToken``,
``refreshToken`` (in POJOs and maps, at any depth, e.g. ``auth_user_info``'s ``token``) are
replaced by ``<<MASKED>>``, and so are strings that look like OAuth access tokens or JWTs
wherever they are. Findings never carry values at all; this is for code that displays values.
"""

from __future__ import annotations

import re
from typing import Any, overload

from .errors import JacksonParseError
from .jackson import JsonTree, Typed, dump_string, dumps, loads, to_typed

MASK = "<<MASKED>>"
SECRET_KEY = re.compile(
    r"token|passw(?:or)?d|secret|credential|authorization|api[_-]?key|private[_-]?key", re.I
)
# Google OAuth access tokens ("ya29.") and JWTs ("eyJ...": base64 of '{"').
SECRET_VALUE = re.compile(r"ya29\.[\w.-]{8,}|eyJ[\w-]{8,}\.[\w-]+\.?[\w-]*")


def is_secret_key(name: str) -> bool:
    """True when a FlightMap key or field name looks like it holds a secret."""
    return SECRET_KEY.search(name) is not None


@overload
def mask(value: str, key: str = "") -> str: ...


@overload
def mask(value: JsonTree, key: str = "") -> JsonTree: ...


def mask(value: Any, key: str = "") -> Any:
    """Mask secrets in a stored value (text) or in a parsed tree.

    ``value`` as ``str``: the stored JSON text of one FlightMap entry; the result is compact JSON
    text with secrets masked (malformed text becomes ``<malformed JSON, N chars>``, never
    echoed). Any other value: a tree from :func:`~.jackson.parse_value`, masked the same way.
    ``key`` is the FlightMap key: when it looks secret the whole value is masked.
    """
    if isinstance(value, str):
        if key and is_secret_key(key):
            return dump_string(MASK)
        try:
            node, _ = loads(value)
        except JacksonParseError:
            return f"<malformed JSON, {len(value)} chars>"
        return dumps(_mask(to_typed(node), False))
    return mask_tree(value, key)


def mask_tree(tree: JsonTree, key: str = "") -> JsonTree:
    """Mask secrets in a parsed tree (a ``str`` here is a JSON string value, not stored text)."""
    return _mask(tree, bool(key) and is_secret_key(key))


def _mask(node: Any, secret: bool) -> Any:
    if secret and node is not None:
        return MASK
    t = type(node)
    if t is str:
        return MASK if SECRET_VALUE.search(node) else node
    if t is Typed:
        return Typed(_mask(node.java_class, False), _mask(node.value, False))
    if t is list:
        return [_mask(item, False) for item in node]
    if t is dict:
        return {name: _mask(item, is_secret_key(str(name))) for name, item in node.items()}
    return node
