"""Parse and write Stairway's Jackson default-typed JSON.

Stairway's mapper enables ``DefaultTyping.NON_FINAL`` with ``As.WRAPPER_ARRAY``: a value whose
declared type is not final is written as ``["<java class>", <value>]``. Whether a JSON array is
such a wrapper depends on the type Jackson reads it as, so there are two layers here:

* :func:`loads` parses stored text into plain JSON (``dict``/``list``/``str``/``int``/
  :class:`JsonFloat`/``bool``/``None``), keeping each decimal number's exact text;
* :func:`parse_value` reads that the way ``readValue(text, Object.class)`` does: a two-element
  array whose first element is a string is a wrapper (:class:`Typed`) — also when it was meant
  as ``List.of("a", "b")``, which is exactly why Jackson takes ``"a"`` for a type id.

:func:`dumps` writes a tree back byte for byte as Jackson's compact output does.
"""

from __future__ import annotations

import json
import json.scanner
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NoReturn, TypeAlias

from . import java
from .errors import JacksonParseError


class JsonFloat(float):
    """A JSON decimal number that remembers its exact text (``1617631399.046000000``)."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> JsonFloat:
        value = super().__new__(cls, text)
        value.text = text
        return value


@dataclass(frozen=True, slots=True)
class Typed:
    """A Jackson ``WRAPPER_ARRAY`` type id and the value it wraps."""

    java_class: str
    value: JsonTree


JsonTree: TypeAlias = (
    bool | int | float | str | Typed | list["JsonTree"] | dict[str, "JsonTree"] | None
)
"""A parsed value: plain JSON where no wrapper is possible, :class:`Typed` where one is.
``None`` is Java ``null``."""


def _no_constant(name: str) -> NoReturn:
    raise JacksonParseError(f"non-standard number literal {name} (Jackson rejects it)")


_DECODER = json.JSONDecoder(parse_float=JsonFloat, parse_constant=_no_constant)
_SCAN: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(_DECODER)  # type: ignore[arg-type]
_WS = " \t\n\r"


def loads(text: str) -> tuple[Any, int | None]:
    """Parse one stored value into plain JSON, as Jackson's parser reads it.

    Returns the value and, when non-blank text follows it, the index where that text starts
    (Jackson's ``readValue`` ignores trailing tokens; ``FAIL_ON_TRAILING_TOKENS`` is off).
    Raises :class:`JacksonParseError` (with a character position, never the text).
    """
    start = 0
    if text[:1] in _WS:
        start = len(text) - len(text.lstrip(_WS))
    if start >= len(text):
        raise JacksonParseError("no content (empty text)", start)
    try:
        value, end = _SCAN(text, start)
    except StopIteration as stop:
        raise JacksonParseError("expecting a value", stop.value) from None
    except json.JSONDecodeError as err:
        problem = err.msg.split(":")[0].removesuffix(" starting at")
        raise JacksonParseError(problem[:1].lower() + problem[1:], err.pos) from None
    except RecursionError:
        raise JacksonParseError("nesting too deep", None) from None
    except ValueError:  # e.g. an integer of more than 4300 digits
        raise JacksonParseError("number too long", None) from None
    if end < len(text) and text[end:].strip(_WS):
        if type(value) in (int, JsonFloat) and text[end] not in _WS:
            # a root-level number ends only at whitespace: "5." or "2021-04-05" is malformed
            raise JacksonParseError("unexpected character after a number", end)
        if (value is None or type(value) is bool) and (text[end].isalnum() or text[end] == "_"):
            raise JacksonParseError("unrecognized token", start)  # "truex", "nullable"
        return value, end + len(text[end:]) - len(text[end:].lstrip(_WS))
    return value, None


def is_wrapper(node: Any) -> bool:
    """True when ``node`` has a wrapper's shape: ``[string, value]``."""
    return type(node) is list and len(node) == 2 and type(node[0]) is str


def to_typed(node: Any, wrappers: bool = True) -> JsonTree:
    """Turn plain JSON into a tree, reading arrays as wrappers where ``wrappers`` is true.

    Inside a wrapper of a JDK list or map class the elements are again in an ``Object``
    context (wrappers possible); inside any other class (a POJO) the content is plain JSON,
    because the field types that decide it are not known here.
    """
    if type(node) is list:
        if wrappers and is_wrapper(node):
            cls, content = node
            if cls in java.LIST_CLASSES and type(content) is list:
                return Typed(cls, [to_typed(item) for item in content])
            if cls in java.MAP_CLASSES and type(content) is dict:
                return Typed(cls, {key: to_typed(item) for key, item in content.items()})
            return Typed(cls, to_typed(content, False))
        return [to_typed(item, wrappers) for item in node]
    if type(node) is dict:
        return {key: to_typed(item, wrappers) for key, item in node.items()}
    return node


def parse_value(text: str) -> JsonTree:
    """Parse one stored value as ``readValue(text, Object.class)`` sees its structure.

    Raises :class:`JacksonParseError` for text that is not JSON.
    """
    return to_typed(loads(text)[0])


def parse_legacy_map(text: str) -> dict[str, JsonTree]:
    """Parse a legacy whole-map JSON (``["java.util.HashMap",{...}]``) into key → value.

    This is the form of ``flightlog.working_parameters`` (≤0.0.60) and of
    ``flight.input_parameters`` before 2020-02. Raises :class:`JacksonParseError`.
    """
    return {key: to_typed(node) for key, node in legacy_items(text).items()}


def split_legacy_map(text: str) -> dict[str, str]:
    """Split a legacy whole-map JSON into per-key stored texts (compact, type ids kept)."""
    return {key: dumps(node) for key, node in legacy_items(text).items()}


def legacy_items(text: str) -> dict[str, Any]:
    """The parsed values of a legacy whole-map JSON, by key (raises JacksonParseError)."""
    node, _ = loads(text)
    if node is None:
        return {}
    if not (is_wrapper(node) and node[0] in java.MAP_CLASSES and type(node[1]) is dict):
        raise JacksonParseError('not a legacy FlightMap (expected ["java.util.HashMap",{...}])')
    items: dict[str, Any] = node[1]
    return items


# Jackson escapes '"', '\\' and control characters; \b \t \n \f \r get short forms and the
# others \u00XX with upper-case hex. Lone surrogates cannot be encoded: write them escaped.
_ESCAPES = {i: f"\\u{i:04X}" for i in range(0x20)}
_ESCAPES.update({0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r"})
_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\"})
_ESCAPES.update({i: f"\\u{i:04x}" for i in range(0xD800, 0xE000)})


def dump_string(text: str) -> str:
    """A JSON string literal exactly as Jackson writes it."""
    return '"' + text.translate(_ESCAPES) + '"'


#: ``FloatingDecimal.insignificantDigitsNumber``: decimal digits of 2^i that carry no information.
_INSIGNIFICANT: tuple[int, ...] = (
    *(0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7),
    *(8, 8, 8, 9, 9, 9, 9, 10, 10, 10, 11, 11, 11, 12, 12, 12, 12, 13, 13, 13, 14),
    *(14, 14, 15, 15, 15, 15, 16, 16, 16, 17, 17, 17, 18, 18, 18, 19),
)


def java_double_text(value: float) -> str:
    """``Double.toString(value)`` of a finite double as JDK 11–18 (the engines' JVMs) write it.

    Shortest round-trip digits, except for integral values below 2^63, which
    ``FloatingDecimal`` prints from the long value: every digit above the ones 2^(e-54) makes
    insignificant (8.057836148783996E17 is written ``8.0578361487839962E17``). Checked against
    the JVM by ``tests/conformance``.
    """
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("Jackson writes NaN and Infinity only as non-standard literals")
    if value == 0:
        return "-0.0" if str(value).startswith("-") else "0.0"
    minus = "-" if value < 0 else ""
    magnitude = abs(value)
    if magnitude == int(magnitude) and 1 <= magnitude < 2.0**63:
        digits, point = _long_digits(int(magnitude))
    else:
        _, shortest, exponent = Decimal(repr(magnitude)).as_tuple()
        assert isinstance(exponent, int)
        digits = "".join(map(str, shortest)).rstrip("0") or "0"
        point = len(shortest) + exponent  # decimal point position within the digits
    if 1e-3 <= magnitude < 1e7:
        if point <= 0:
            return f"{minus}0.{'0' * -point}{digits}"
        whole, frac = digits[:point].ljust(point, "0"), digits[point:]
        return f"{minus}{whole}.{frac or '0'}"
    return f"{minus}{digits[0]}.{digits[1:] or '0'}E{point - 1}"


def _long_digits(n: int) -> tuple[str, int]:
    """``FloatingDecimal.developLongDigits``: the digits of an integral double and the position
    of the decimal point, low-order insignificant digits dropped (rounding half up)."""
    bin_exp = n.bit_length() - 1
    p2 = bin_exp - 54
    insignificant = _INSIGNIFICANT[p2] if 1 < p2 < len(_INSIGNIFICANT) else 0
    text = str(n)
    point = len(text)
    if insignificant:
        pow10 = 10**insignificant
        n, residue = divmod(n, pow10)
        if residue >= pow10 // 2:
            n += 1
        text = str(n)
        point = len(text) + insignificant
    return text.rstrip("0") or "0", point


def dumps(tree: Any) -> str:
    """Write a tree (plain JSON, :class:`Typed`, :class:`JsonFloat`) as Jackson's compact JSON."""
    parts: list[str] = []
    _dump(tree, parts)
    return "".join(parts)


def _dump(node: Any, out: list[str]) -> None:
    t = type(node)
    if t is str:
        out.append(dump_string(node))
    elif node is None:
        out.append("null")
    elif t is bool:
        out.append("true" if node else "false")
    elif t is int:
        out.append(str(node))
    elif t is JsonFloat:
        out.append(node.text)
    elif t is float:
        out.append(java_double_text(node))
    elif t is Typed:
        out.append("[")
        out.append(dump_string(node.java_class))
        out.append(",")
        _dump(node.value, out)
        out.append("]")
    elif t is list:
        out.append("[")
        for i, item in enumerate(node):
            if i:
                out.append(",")
            _dump(item, out)
        out.append("]")
    elif t is dict:
        out.append("{")
        for i, (key, item) in enumerate(node.items()):
            if i:
                out.append(",")
            out.append(dump_string(str(key)))
            out.append(":")
            _dump(item, out)
        out.append("}")
    else:
        raise TypeError(f"cannot write {t.__name__} as JSON")
