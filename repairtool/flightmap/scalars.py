"""Jackson's deserializers for final classes (read without a type id), and the rejection type.

Modelled on Jackson 2.12–2.17 defaults as Stairway configures them (``ACCEPT_FLOAT_AS_INT`` and
``ALLOW_COERCION_OF_SCALARS`` on, ``UNWRAP_SINGLE_VALUE_ARRAYS`` off). Every reader takes the
parsed JSON node, returns the Java class the service gets (or ``"null"``), appends remarks to
``notes``, and raises :class:`Reject` for a value Jackson would not read. Messages never contain
stored values: ``<value>`` stands in.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from . import java
from .catalog import CatalogType, TypeKind
from .jackson import JsonFloat

_DATABIND = "com.fasterxml.jackson.databind.exc."
MISMATCHED = _DATABIND + "MismatchedInputException"
INVALID_FORMAT = _DATABIND + "InvalidFormatException"
INVALID_TYPE_ID = _DATABIND + "InvalidTypeIdException"
INPUT_COERCION = "com.fasterxml.jackson.core.exc.InputCoercionException"


class Stage(StrEnum):
    """Where a value fails: Jackson's ``readValue``, or the ``isInstance`` check after it."""

    READ = "read"
    INSTANCE = "instance"


class Reject(Exception):
    """A value the reader would not hand to the service (internal; becomes a ``Finding``)."""

    def __init__(self, stage: Stage, reason: str, jackson: str, node: Any) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason
        self.jackson = jackson
        self.node = node
        self.path: list[str] = []
        self.runtime_class = ""  # for Stage.INSTANCE: what the value reads back as
        self.expected = ""  # for Stage.INSTANCE: the Java type it is not an instance of

    def within(self, step: str) -> Reject:
        """Record that the failing value sits at ``step`` (``element 2``) of its container."""
        self.path.insert(0, step)
        return self


def token_word(node: Any) -> str:
    """Jackson's word for a JSON token in "from X value" messages."""
    t = type(node)
    if t is str:
        return "String"
    if t is bool:
        return "Boolean"
    if t is int:
        return "Integer"
    if t is JsonFloat or t is float:
        return "Floating-point"
    if t is list:
        return "Array"
    if t is dict:
        return "Object"
    return "Null"


def mismatched(java_type: str, node: Any) -> str:
    """Jackson's ``MismatchedInputException`` text for ``node`` read as ``java_type``."""
    word = token_word(node)
    return f"{MISMATCHED}: Cannot deserialize value of type `{java_type}` from {word} value"


def shown(cls: str) -> str:
    """A class name as findings may show it (``<value>`` unless it is a conventional name)."""
    return cls if java.is_displayable_class(cls) else "<value>"


def _wrong_token(java_type: str, node: Any) -> Reject:
    """The rejection of a JSON array or object where ``java_type`` expects a scalar."""
    if type(node) is list and len(node) == 2 and type(node[0]) is str:
        reason = (
            f"{java_type} is final, so Jackson reads it without a type id and rejects a "
            "[class, value] wrapper"
        )
    else:
        reason = f"a JSON {token_word(node).lower()} value cannot be read as {java_type}"
    return Reject(Stage.READ, reason, mismatched(java_type, node), node)


# --- scalar deserializers (a final class read without a type id) -----------------------------

_TRIMMED = "".join(chr(i) for i in range(0x21))


def java_trim(text: str) -> str:
    """``String.trim()``: drops every character up to U+0020 at both ends (and only those)."""
    return text.strip(_TRIMMED)


def _read_string(node: Any, notes: list[str]) -> str:
    t = type(node)
    if t is str:
        return java.STRING
    if node is None:
        return java.NULL
    if t is list or t is dict:
        raise _wrong_token(java.STRING, node)
    notes.append(f"JSON {token_word(node).lower()} coerced to a String")
    return java.STRING


_INTEGRAL_RANGES = {
    java.INTEGER: ("int", java.INT_MIN, java.INT_MAX),
    java.LONG: ("long", java.LONG_MIN, java.LONG_MAX),
    java.SHORT: ("short", java.SHORT_MIN, java.SHORT_MAX),
    java.BYTE: ("byte", java.BYTE_MIN, java.BYTE_MAX),
}
_INT_TEXT = re.compile(r"[+-]?\d{1,40}")
_FLOAT_TEXT = re.compile(r"[+-]?(?:NaN|Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[dDfF]?)")
_DECIMAL_TEXT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _read_integral(cls: str, node: Any, notes: list[str]) -> str:
    t = type(node)
    if node is None:
        return java.NULL
    if t is int:
        value = node
    elif t is JsonFloat or t is float:
        if node != node or node in (float("inf"), float("-inf")):
            raise Reject(Stage.READ, f"not a finite number for {cls}", mismatched(cls, node), node)
        value = int(node)
        notes.append(f"decimal truncated to {cls}")
    elif t is str:
        text = java_trim(node)
        if text in ("", "null"):
            notes.append(f"{'empty' if not text else 'textual null'} String read as null")
            return java.NULL
        if not _INT_TEXT.fullmatch(text):
            raise Reject(
                Stage.READ,
                f"a JSON string that is not an integer cannot be read as {cls}",
                f"{INVALID_FORMAT}: Cannot deserialize value of type `{cls}` from String "
                '"<value>": not a valid representation',
                node,
            )
        value = int(text)
        notes.append(f"String coerced to {cls}")
    else:
        raise _wrong_token(cls, node)
    if cls == java.BIG_INTEGER:
        return cls
    name, low, high = _INTEGRAL_RANGES[cls]
    if not low <= value <= high:
        raise Reject(
            Stage.READ,
            f"the number is out of the range of {name}",
            f"{INPUT_COERCION}: Numeric value (<value>) out of range of {name} ({low} - {high})",
            node,
        )
    return cls


def _read_floating(cls: str, node: Any, notes: list[str]) -> str:
    t = type(node)
    if node is None:
        return java.NULL
    if t is int or t is JsonFloat or t is float:
        if t is int:
            notes.append(f"integer read as {cls}")
        return cls
    if t is str:
        text = java_trim(node)
        if not text:
            notes.append("empty String read as null")
            return java.NULL
        pattern = _DECIMAL_TEXT if cls == java.BIG_DECIMAL else _FLOAT_TEXT
        if pattern.fullmatch(text):
            notes.append(f"String coerced to {cls}")
            return cls
        raise Reject(
            Stage.READ,
            f"a JSON string that is not a number cannot be read as {cls}",
            f"{INVALID_FORMAT}: Cannot deserialize value of type `{cls}` from String "
            '"<value>": not a valid representation',
            node,
        )
    raise _wrong_token(cls, node)


def _read_boolean(node: Any, notes: list[str]) -> str:
    t = type(node)
    if t is bool:
        return java.BOOLEAN
    if node is None:
        return java.NULL
    if t is int:
        notes.append("integer coerced to a Boolean")
        return java.BOOLEAN
    if t is str:
        text = java_trim(node)
        if text in ("true", "True", "TRUE", "false", "False", "FALSE"):
            notes.append("String coerced to a Boolean")
            return java.BOOLEAN
        if text in ("", "null"):
            notes.append("empty or textual null String read as null")
            return java.NULL
        raise Reject(
            Stage.READ,
            "a JSON string other than true/false cannot be read as java.lang.Boolean",
            f"{INVALID_FORMAT}: Cannot deserialize value of type `java.lang.Boolean` from "
            'String "<value>": only "true" or "false" recognized',
            node,
        )
    raise _wrong_token(java.BOOLEAN, node)


_HEX = frozenset("0123456789abcdefABCDEF")


def is_uuid_text(text: str) -> bool:
    """True for the 36-character form ``UUIDDeserializer`` accepts (any hex case)."""
    if len(text) != 36:
        return False
    if text[8] != "-" or text[13] != "-" or text[18] != "-" or text[23] != "-":
        return False
    return _HEX.issuperset(text[:8] + text[9:13] + text[14:18] + text[19:23] + text[24:])


def is_base64_uuid(text: str) -> bool:
    """True for the 24-character Base64 form ``UUIDDeserializer`` also accepts."""
    if len(text) != 24:
        return False
    try:
        return len(base64.b64decode(text, validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


def _read_uuid(node: Any, notes: list[str]) -> str:
    t = type(node)
    if t is str:
        if is_uuid_text(node):
            return java.UUID
        node = java_trim(node)  # FromStringDeserializer trims
        if not node:
            notes.append("empty String read as null")
            return java.NULL
        if is_uuid_text(node):
            return java.UUID
        if is_base64_uuid(node):
            notes.append("Base64 form of a UUID")
            return java.UUID
    elif node is None:
        return java.NULL
    elif t is list or t is dict:
        raise _wrong_token(java.UUID, node)
    raise Reject(
        Stage.READ,
        "the value is not a UUID in its 36-character form",
        f"{INVALID_FORMAT}: Cannot deserialize value of type `java.util.UUID` from String "
        '"<value>": UUID has to be represented by standard 36-char representation',
        node,
    )


_ISO_INSTANT = re.compile(
    r"[+-]?\d{4,9}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})"
)


def is_iso_instant(text: str) -> bool:
    """True for an ISO-8601 instant that ``InstantDeserializer`` parses
    (``DateTimeFormatter.ISO_INSTANT``: seconds required; 24:00:00 is the next day's midnight and
    23:59:60 a leap second, both accepted)."""
    if not _ISO_INSTANT.fullmatch(text):
        return False
    text = re.sub(r"T24:00:00(\.0+)?", "T00:00:00", text)  # the date is still checked
    text = re.sub(r"T23:59:60", "T23:59:59", text)
    try:
        datetime.fromisoformat(re.sub(r"\.(\d{6})\d+", r".\1", text).replace("Z", "+00:00"))
    except ValueError:
        return text[:1] in "+-" or len(text.split("-")[0]) > 4  # years beyond 9999: trust it
    return True


def instant_seconds(node: Any) -> Decimal | None:
    """Epoch seconds of a JSON number, or None when it is not a finite number."""
    try:
        seconds = Decimal(node.text if type(node) is JsonFloat else str(node))
    except InvalidOperation:
        return None
    return seconds if seconds.is_finite() else None


def _numeric_instant(text: str) -> bool | None:
    """``InstantDeserializer`` takes a string of digits with at most one period as epoch
    seconds (no sign); True/False whether it is in range, None when the text is not of that form
    (then it must parse as ISO-8601)."""
    if not text or text.strip("0123456789."):
        return None
    dots = text.count(".")
    if dots > 1 or text == ".":
        return None
    seconds = Decimal(text)
    if dots == 0 and seconds > java.LONG_MAX:
        return None  # parseLong fails: falls through to the ISO parse, which fails too
    return java.INSTANT_MIN_SECONDS <= seconds <= java.INSTANT_MAX_SECONDS


def _read_instant(node: Any, notes: list[str]) -> str:
    t = type(node)
    if node is None:
        return java.NULL
    if t is int or t is JsonFloat or t is float:
        seconds = instant_seconds(node)
        if seconds is not None and (
            java.INSTANT_MIN_SECONDS <= seconds <= java.INSTANT_MAX_SECONDS
        ):
            return java.INSTANT
        raise Reject(
            Stage.READ,
            "the number is outside java.time.Instant's range",
            f"{INVALID_FORMAT}: Cannot deserialize value of type `java.time.Instant` from "
            "Floating-point value: Instant exceeds minimum or maximum instant",
            node,
        )
    if t is str:
        text = java_trim(node)
        if not text:
            notes.append("empty String read as null")
            return java.NULL
        numeric = _numeric_instant(text)
        if numeric is True or (numeric is None and is_iso_instant(text)):
            return java.INSTANT
        raise Reject(
            Stage.READ,
            "the string is not an ISO-8601 instant",
            "java.time.format.DateTimeParseException: Text '<value>' could not be parsed",
            node,
        )
    raise _wrong_token(java.INSTANT, node)


_ORDINAL = re.compile(r"0|[1-9][0-9]{0,8}")


def read_enum(node: Any, t: CatalogType, notes: list[str]) -> str:
    """``EnumDeserializer``: a constant's name, or its ordinal; never a wrapper."""
    kind = type(node)
    if kind is str:
        if node in t.values:
            return t.java_class
        name = java_trim(node)
        if name in t.values:
            return t.java_class
        if not name:
            raise Reject(
                Stage.READ,
                "an empty string is not an enum constant",
                f'{INVALID_FORMAT}: Cannot coerce empty String ("") to `{t.java_class}` value',
                node,
            )
        if _ORDINAL.fullmatch(name) and int(name) < len(t.values):
            notes.append(f"String read by ordinal as {t.values[int(name)]}")
            return t.java_class
        raise Reject(
            Stage.READ,
            f"the string is not one of the constants of {t.java_class}",
            f"{INVALID_FORMAT}: Cannot deserialize value of type `{t.java_class}` from String "
            f'"<value>": not one of the values accepted for Enum class: [{", ".join(t.values)}]',
            node,
        )
    if node is None:
        return java.NULL
    if kind is int:
        if 0 <= node < len(t.values):
            notes.append(f"read by ordinal as {t.values[node]}")
            return t.java_class
        raise Reject(
            Stage.READ,
            "the number is not a valid ordinal of the enum",
            f"{INVALID_FORMAT}: Cannot deserialize value of type `{t.java_class}` from number "
            "<value>: index value outside legal index range",
            node,
        )
    raise _wrong_token(t.java_class, node)


def read_pojo(cls: str, node: Any) -> str:
    """A bean deserializer: only a JSON object (its fields are not checked here)."""
    if type(node) is dict:
        return cls
    if node is None:
        return java.NULL
    raise Reject(
        Stage.READ,
        f"the content of a {cls} wrapper must be a JSON object",
        f"{MISMATCHED}: Cannot construct instance of `{cls}` from {token_word(node)} value",
        node,
    )


def read_final_pojo(node: Any, t: CatalogType) -> str:
    """A final class (final POJO, record, Lombok ``@Value``) asked for by its class: Jackson
    reads it from a plain JSON object and rejects a wrapper (its fields are not checked here)."""
    if type(node) is dict:
        return t.java_type
    if node is None:
        return java.NULL
    if type(node) is list:
        raise _wrong_token(t.java_type, node)
    raise Reject(
        Stage.READ,
        f"a JSON {token_word(node).lower()} value cannot be read as {t.java_type}",
        f"{MISMATCHED}: Cannot construct instance of `{t.java_type}`: no "
        f"{token_word(node)}-argument constructor/factory method to deserialize from it",
        node,
    )


def read_scalar_class(cls: str, node: Any, notes: list[str]) -> str:
    """The deserializer of a JDK scalar class (``java.SCALAR_CLASSES``) applied to ``node``."""
    if cls == java.STRING:
        return _read_string(node, notes)
    if cls in _INTEGRAL_RANGES or cls == java.BIG_INTEGER:
        return _read_integral(cls, node, notes)
    if cls in (java.DOUBLE, java.FLOAT, java.BIG_DECIMAL):
        return _read_floating(cls, node, notes)
    if cls == java.BOOLEAN:
        return _read_boolean(node, notes)
    if cls == java.UUID:
        return _read_uuid(node, notes)
    return _read_instant(node, notes)


FinalReader = Callable[[Any, CatalogType, list[str]], str]

#: ``readValue(node, type)`` for each final kind: no type id expected.
FINAL_READERS: dict[TypeKind, FinalReader] = {
    TypeKind.STRING: lambda node, t, notes: _read_string(node, notes),
    TypeKind.UUID: lambda node, t, notes: _read_uuid(node, notes),
    TypeKind.ENUM: read_enum,
    TypeKind.INT: lambda node, t, notes: _read_integral(java.INTEGER, node, notes),
    TypeKind.LONG: lambda node, t, notes: _read_integral(java.LONG, node, notes),
    TypeKind.BOOL: lambda node, t, notes: _read_boolean(node, notes),
    TypeKind.DOUBLE: lambda node, t, notes: _read_floating(java.DOUBLE, node, notes),
    TypeKind.INSTANT: lambda node, t, notes: _read_instant(node, notes),
}
