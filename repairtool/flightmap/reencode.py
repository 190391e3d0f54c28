"""Rewrite a stored value into the form a given reader accepts.

For a ≤0.0.60 reader (``LEGACY``) non-natural values need a type id: an enum becomes
``["<enum class>","MC_WORKSPACE"]``, a UUID ``["java.util.UUID","…"]``, a long
``["java.lang.Long",3]``. For a ≥0.0.61 reader (``TYPED``) final types must not have one, so such
wrappers are unwrapped. Only lossless rewrites are made (a number never becomes a string); the
result is Jackson's compact JSON and is checked against the reader before it is returned. The
repair layer writes it with a compare-and-set on the old text.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Collection, Mapping
from decimal import Decimal
from typing import Any

from . import java
from .catalog import ANY, CONTAINER_KINDS, CatalogType, ReadAs, TypeKind
from .errors import JacksonParseError
from .jackson import JsonFloat, dumps, is_wrapper, java_double_text, loads
from .reader import ReaderVersion
from .scalars import Reject, instant_seconds, is_base64_uuid, is_iso_instant, is_uuid_text
from .semantics import Context, check_object, check_typed, read_object

_NANOS = Decimal(1).scaleb(-9)
_INTEGRAL = frozenset({java.INTEGER, java.LONG, java.SHORT, java.BYTE, java.BIG_INTEGER})
_FLOATING = frozenset({java.DOUBLE, java.FLOAT, java.BIG_DECIMAL})


class _NoWay(Exception):
    """The value cannot be rewritten without guessing."""


def reencode(
    text: str,
    expected: CatalogType,
    reader: ReaderVersion,
    classes: Mapping[str, CatalogType] | None = None,
) -> str | None:
    """The stored text ``reader`` decodes as ``expected`` for this value, or None.

    A value the reader already accepts comes back unchanged (in compact form). None when the
    text is not JSON or the value cannot be rewritten without guessing (e.g. a number where a
    string is expected on a ≤0.0.60 reader, an enum constant the catalog does not list).
    ``classes``: the enums and POJOs the catalog names (default: those in ``expected``).
    """
    try:
        node, _ = loads(text)
    except JacksonParseError:
        return None
    new = reencode_node(node, expected, reader, classes)
    return None if new is NOT_REENCODABLE else dumps(new)


NOT_REENCODABLE: Any = object()
"""What :func:`reencode_node` returns when there is no lossless rewrite."""


def _context(
    reader: ReaderVersion, classes: Mapping[str, CatalogType] | None, t: CatalogType
) -> Context:
    known = classes if classes is not None else t.named_classes
    return Context(guava=reader is not ReaderVersion.LEGACY, classes=known)


def reencode_node(
    node: Any,
    expected: CatalogType,
    reader: ReaderVersion,
    classes: Mapping[str, CatalogType] | None = None,
) -> Any:
    """:func:`reencode` on parsed JSON: the rewritten value, checked against ``reader``.

    Wrappers in the result are plain ``[class, value]`` lists, so :func:`~.jackson.dumps`
    writes it and the checks read it like parsed text.
    """
    check = check_object if reader is ReaderVersion.LEGACY else check_typed
    try:
        check(node, expected, _context(reader, classes, expected))
        return node  # already readable: keep it as it is
    except (Reject, RecursionError):
        return rewrite_node(node, expected, reader, classes)


def rewrite_node(
    node: Any,
    expected: CatalogType,
    reader: ReaderVersion,
    classes: Mapping[str, CatalogType] | None = None,
) -> Any:
    """The rewritten form of a value ``reader`` rejects, checked, or ``NOT_REENCODABLE``."""
    legacy = reader is ReaderVersion.LEGACY
    cx = _context(reader, classes, expected)
    try:
        new = _Encoder(cx).encode(node, expected, legacy)
        (check_object if legacy else check_typed)(
            new, expected, _context(reader, classes, expected)
        )
    except (_NoWay, Reject, RecursionError):
        return NOT_REENCODABLE
    return new


def _unwrap(node: Any, classes: Collection[str]) -> Any:
    if is_wrapper(node) and node[0] in classes:
        return node[1]
    return node


# Final types that Jackson writes with a type id where the declared type is Object.
_WRAPPED_AS_OBJECT = frozenset({TypeKind.UUID, TypeKind.ENUM, TypeKind.LONG, TypeKind.INSTANT})
_DEFAULT_CLASS = {TypeKind.LIST: java.ARRAY_LIST, TypeKind.SET: "java.util.HashSet"}


class _Encoder:
    """Rewrites a value for a reader: ``as_object`` where it is read as ``Object`` (the
    ≤0.0.60 reader, the elements of a container asked for by class), else as its own type."""

    def __init__(self, cx: Context) -> None:
        self.cx = cx

    def encode(self, node: Any, t: CatalogType, as_object: bool) -> Any:
        if node is None:
            return None
        kind = t.kind
        if kind is TypeKind.ANY or (kind is TypeKind.OPTIONAL and not as_object):
            try:
                read_object(node, self.cx)
            except Reject:
                raise _NoWay from None
            if self._broken_inside(node):
                raise _NoWay  # it reads, but into an object that throws when used
            return node
        if kind is TypeKind.OPTIONAL:
            raise _NoWay  # readValue(…, Object.class) never makes an Optional
        if kind is TypeKind.POJO:
            return self._pojo(node, t, as_object)
        if kind in CONTAINER_KINDS:
            return self._container(node, t, as_object)
        if kind is TypeKind.BIGDECIMAL:
            value = _unwrap(node, (java.BIG_DECIMAL,))
            if type(value) in (int, JsonFloat):
                return [java.BIG_DECIMAL, value]
            raise _NoWay
        value = _encode_final(node, t)
        if (as_object and kind in _WRAPPED_AS_OBJECT) or (kind is TypeKind.ENUM and t.bodies):
            return [t.java_type, value]
        return value

    def _broken_inside(self, node: Any) -> bool:
        if self.cx.guava:
            return False
        if type(node) is dict:
            return any(self._broken_inside(v) for v in node.values())
        if type(node) is list:
            if node and type(node[0]) is str and node[0] in java.BROKEN_WITHOUT_GUAVA:
                return True
            return any(self._broken_inside(v) for v in node)
        return False

    def _pojo(self, node: Any, t: CatalogType, as_object: bool) -> Any:
        if is_wrapper(node) and node[0] in t.accepted_classes and type(node[1]) is dict:
            cls, content = node
        elif type(node) is dict and t.java_class:
            cls, content = t.java_class, node
        elif type(node) is dict and t.is_final and not as_object:
            return node
        else:
            raise _NoWay
        if t.is_final and not as_object:
            return content  # a final class is read without a type id
        return [cls, content]

    def _container(self, node: Any, t: CatalogType, as_object: bool) -> Any:
        shape: type = dict if t.kind is TypeKind.MAP else list
        if is_wrapper(node) and node[0] in t.accepted_classes and type(node[1]) is shape:
            cls, content = node
            known = java.CONTAINERS.get(cls)
            if known is not None and (
                not known.reads_as(len(content), self.cx.guava) or self._broken_inside([cls, {}])
            ):
                cls = _DEFAULT_CLASS.get(t.kind, java.HASH_MAP)  # a class this reader can make
        elif type(node) is shape:
            cls, content = _DEFAULT_CLASS.get(t.kind, java.HASH_MAP), node
        else:
            raise _NoWay
        element = t.element if t.element is not None else ANY
        items_as_object = as_object or t.read_as is ReadAs.CLASS
        if shape is list:
            return [cls, [self.encode(item, element, items_as_object) for item in content]]
        return [cls, {k: self.encode(v, element, items_as_object) for k, v in content.items()}]


def _encode_final(node: Any, t: CatalogType) -> Any:
    kind = t.kind
    if kind is TypeKind.STRING:
        value = _unwrap(node, (java.STRING,))
        if type(value) is str:
            return value
    elif kind is TypeKind.UUID:
        value = _unwrap(node, (java.UUID,))
        if type(value) is str and is_uuid_text(value):
            return value.lower()
        if type(value) is str and is_base64_uuid(value):
            return str(uuid.UUID(bytes=base64.b64decode(value)))
    elif kind is TypeKind.ENUM:
        value = _unwrap(node, (t.java_class,))
        if type(value) is str and value in t.values:
            return value
    elif kind in (TypeKind.INT, TypeKind.LONG):
        value = _unwrap(node, _INTEGRAL)
        low, high = (
            (java.INT_MIN, java.INT_MAX) if kind is TypeKind.INT else (java.LONG_MIN, java.LONG_MAX)
        )
        if type(value) is int and low <= value <= high:
            return value
    elif kind is TypeKind.BOOL:
        value = _unwrap(node, (java.BOOLEAN,))
        if type(value) is bool:
            return value
    elif kind is TypeKind.DOUBLE:
        value = _unwrap(node, _FLOATING)
        if type(value) is JsonFloat:
            return value
        if type(value) is int and abs(value) < 2**53:
            return JsonFloat(java_double_text(float(value)))
    elif kind is TypeKind.INSTANT:
        return _encode_instant(_unwrap(node, (java.INSTANT,)))
    raise _NoWay


def _encode_instant(value: Any) -> Any:
    if type(value) is str and is_iso_instant(value):
        return value
    if type(value) in (int, JsonFloat):
        seconds = instant_seconds(value)
        if seconds is not None and java.INSTANT_MIN_SECONDS <= seconds <= java.INSTANT_MAX_SECONDS:
            return JsonFloat(str(seconds.quantize(_NANOS)))
    raise _NoWay
