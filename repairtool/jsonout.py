"""Versioned JSON documents, written fast and in pieces.

The bytes are exactly those of ``json.dumps(doc, indent=2, ensure_ascii=False, default=str)`` and
a newline (what the CLI always printed; `tests/repair/test_golden_documents.py` holds it to
that), but written with orjson (tens of times faster than the standard library's indenting
encoder, which is pure Python) and item by item for the long lists, so a document of 100,000
findings is never one 70 MB string in memory.

orjson and the standard library agree byte for byte on everything these documents hold —
strings, ints, booleans, null, lists and dicts with string keys — but not on every float
(`1e-05` vs `0.00001`) nor on a plain `Enum` (the standard library gives `str(member)`): a
document that may hold those goes through :func:`dumps` with ``exact=True``. Anything orjson
refuses (an int beyond 64 bits, a non-string key) falls back to the standard library, item by
item.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TextIO

try:
    import orjson
except ImportError:  # the standard library writes the same bytes, only slower
    orjson = None  # type: ignore[assignment]

# datetimes and dataclasses go to `default=str`, as with the standard library
_OPTIONS = (
    0
    if orjson is None
    else orjson.OPT_INDENT_2 | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


def _stdlib(value: Any) -> bytes:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False).encode()


def _encode(value: Any) -> bytes:
    """``value`` as indented JSON (a nested value's lines still need their outer indent)."""
    if orjson is not None:
        try:
            return orjson.dumps(value, default=str, option=_OPTIONS)
        except (TypeError, orjson.JSONEncodeError):
            pass
    return _stdlib(value)


def dumps(value: Any, *, exact: bool = False) -> str:
    """``json.dumps(value, indent=2, ensure_ascii=False, default=str)``; ``exact``: through the
    standard library itself (documents that may hold floats or other types)."""
    if exact:
        return json.dumps(value, indent=2, default=str, ensure_ascii=False)
    return _encode(value).decode()


class Streamed:
    """A list whose items are encoded one at a time while the document is written."""

    def __init__(self, items: Iterable[Any]) -> None:
        self.items = items


class Encoded:
    """A list whose items were encoded already, a chunk at a time, by :func:`encode_items`
    (a list written while its items are found, before the document is: kept as bytes)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = chunks


def write_document(doc: Mapping[str, Any], out: TextIO | None = None) -> None:
    """Write ``doc`` (a dict whose values may be :class:`Streamed` or :class:`Encoded`) and a
    newline to ``out`` (default: stdout), as ``json.dumps(indent=2, ensure_ascii=False)``
    would."""
    out = out if out is not None else sys.stdout
    binary = getattr(out, "buffer", None)
    utf8 = (getattr(out, "encoding", "") or "").lower().replace("-", "") == "utf8"
    if binary is not None and utf8:
        out.flush()
        sink = binary.write
    else:

        def sink(data: bytes) -> int:
            return out.write(data.decode())

    if not doc:
        sink(b"{}\n")
        return
    sink(b"{\n")
    for n, (key, value) in enumerate(doc.items()):
        sink(b"  " + _encode(key) + b": ")
        if isinstance(value, Streamed):
            _write_list(value.items, sink)
        elif isinstance(value, Encoded):
            _write_chunks(value.chunks, sink)
        else:
            sink(_encode(value).replace(b"\n", b"\n  "))
        sink(b",\n" if n < len(doc) - 1 else b"\n")
    sink(b"}\n")
    if binary is not None and utf8:
        binary.flush()


#: items encoded per call: one list of them is one orjson call and one write, not three per item
_CHUNK = 512


def _write_list(items: Iterable[Any], sink: Any) -> None:
    _write_chunks(_chunks(items), sink)


def _chunks(items: Iterable[Any]) -> Iterator[bytes]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == _CHUNK:
            yield encode_items(chunk)
            chunk = []
    if chunk:
        yield encode_items(chunk)


def _write_chunks(chunks: Iterable[bytes], sink: Any) -> None:
    first = True
    for encoded in chunks:
        sink((b"[\n" if first else b",\n") + encoded)
        first = False
    sink(b"[]" if first else b"\n  ]")


def encode_items(chunk: list[Any]) -> bytes:
    """The items of a list at the document's second level, comma-separated, without the
    brackets: each line 4 spaces in (as ``json.dumps(indent=2)`` puts them)."""
    encoded = _encode(chunk)  # "[\n  item,\n  item\n]", 2 spaces in
    if encoded.startswith(b"[\n  ") and encoded.endswith(b"\n]"):
        return b"    " + encoded[4:-2].replace(b"\n", b"\n  ")
    return b",\n".join(b"    " + _encode(x).replace(b"\n", b"\n    ") for x in chunk)
