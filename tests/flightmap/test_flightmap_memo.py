"""decode_value's verdict memo returns exactly what the full check (decode_full) returns.

A memoized verdict is reused for another text of the same form (two UUIDs, two decimals of the
same length, two POJOs of the same class and number of scalar fields): each test decodes a
*primer* of the form first, so the subject is answered from the memo, then compares it with the
full check of the subject — every field, the node's exact text, and the caller's type object.
"""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.bench_decode import make_values
from repairtool.flightmap import (
    CatalogType,
    Decoded,
    Finding,
    ReaderVersion,
    TypeKind,
    decode_value,
    dumps,
    load_builtin_catalog,
    parse_type,
)
from repairtool.flightmap.decode import _VERDICTS, _form, clear_memo, decode_full
from tests.conformance.javavalues import CLASSES, ENUMS, POJOS, types
from tests.conformance.test_values import EDGE_TEXTS, EDGE_TYPES

FIXTURES = Path(__file__).parent / "fixtures"
READERS = st.sampled_from(list(ReaderVersion))
HEX = "0123456789abcdefABCDEF"


def assert_same(memo: Decoded | Finding, full: Decoded | Finding) -> None:
    assert type(memo) is type(full)
    assert memo == full
    if isinstance(memo, Finding):
        assert isinstance(full, Finding)
        assert memo.expected_type is full.expected_type  # not compared by ==
    else:
        assert isinstance(full, Decoded)
        assert memo.expected is full.expected
        assert type(memo.node) is type(full.node)
        assert dumps(memo.node) == dumps(full.node)  # a decimal's exact text too


def check_pair(
    primer: str,
    subject: str,
    expected: CatalogType,
    reader: ReaderVersion,
    classes: Any,
) -> None:
    clear_memo()
    decode_value(primer, expected, reader, flight_id="p", key="k0", classes=classes)
    memo = decode_value(subject, expected, reader, flight_id="s", key="k1", classes=classes)
    full = decode_full(subject, expected, reader, "s", "k1", "input", classes)
    assert_same(memo, full)


# --- texts of one form, two at a time ---------------------------------------------------------


def _uuid(draw: st.DrawFn) -> str:
    digits = draw(st.lists(st.sampled_from(HEX), min_size=32, max_size=32))
    text = "".join(digits)
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


@st.composite
def uuid_pairs(draw: st.DrawFn) -> tuple[str, str]:
    wrap = draw(st.sampled_from(["plain", "wrapped", "list"]))
    if wrap == "plain":
        return json.dumps(_uuid(draw)), json.dumps(_uuid(draw))
    if wrap == "wrapped":
        return tuple(f'["java.util.UUID","{_uuid(draw)}"]' for _ in range(2))  # type: ignore[return-value]
    k = draw(st.integers(0, 4))

    def listed() -> str:
        items = ",".join(f'["java.util.UUID","{_uuid(draw)}"]' for _ in range(k))
        return f'["java.util.ArrayList",[{items}]]'

    return listed(), listed()


_PLAIN = st.text(
    st.characters(
        blacklist_categories=("Cs",), blacklist_characters='"\\' + "".join(map(chr, range(32)))
    ),
    max_size=30,
) | st.sampled_from(
    [
        *("", "null", "true", "42", "1.5", " 7 ", "MC_WORKSPACE", "CREATE", "java.util.UUID"),
        *("2021-04-05T10:14:23Z", "AAAAAAAAAAAAAAAAAAAAAA==", "conformance.model.Owner"),
    ]
)


@st.composite
def string_pairs(draw: st.DrawFn) -> tuple[str, str]:
    return json.dumps(draw(_PLAIN), ensure_ascii=False), json.dumps(
        draw(_PLAIN), ensure_ascii=False
    )


@st.composite
def number_pairs(draw: st.DrawFn) -> tuple[str, str]:
    if draw(st.booleans()):
        limit = 10**9 - 1
        return tuple(str(draw(st.integers(-limit, limit))) for _ in range(2))  # type: ignore[return-value]
    sign = draw(st.sampled_from(["", "-"]))
    whole = draw(st.integers(1, 16))
    frac = draw(st.sampled_from([1, 3, 8, 9, 10, 18]))

    def one() -> str:
        digits = draw(st.lists(st.sampled_from("0123456789"), min_size=whole, max_size=whole))
        if whole > 1 and digits[0] == "0":
            digits[0] = "1"
        fraction = draw(st.lists(st.sampled_from("0123456789"), min_size=frac, max_size=frac))
        return f"{sign}{''.join(digits)}.{''.join(fraction)}"

    return one(), one()


_SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _PLAIN
)
_POJO_CLASSES = [t.java_class for t in POJOS] + ["conformance.model.AdminRequest"]


@st.composite
def pojo_pairs(draw: st.DrawFn) -> tuple[str, str]:
    cls = draw(st.sampled_from(_POJO_CLASSES))
    n = draw(st.integers(0, 4))

    def one() -> str:
        names = draw(st.lists(st.text(max_size=6), min_size=n, max_size=n, unique=True))
        body = {name: draw(_SCALAR) for name in names}
        return json.dumps([cls, body], separators=(",", ":"), ensure_ascii=False)

    return one(), one()


PAIRS = uuid_pairs() | string_pairs() | number_pairs() | pojo_pairs()
SCALAR_KINDS = (TypeKind.STRING, TypeKind.ANY, TypeKind.INT, TypeKind.LONG, TypeKind.DOUBLE)
ASKED = (
    types()
    | st.sampled_from([*ENUMS, *POJOS])
    | st.sampled_from([CatalogType(k) for k in (*SCALAR_KINDS, TypeKind.INSTANT, TypeKind.UUID)])
)


@settings(
    max_examples=3000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(pair=PAIRS, expected=ASKED, reader=READERS, named=st.booleans())
def test_a_memoized_verdict_is_the_full_verdict(
    pair: tuple[str, str], expected: CatalogType, reader: ReaderVersion, named: bool
) -> None:
    primer, subject = pair
    check_pair(primer, subject, expected, reader, CLASSES if named else None)


# --- whole corpora, in order: each form's first text primes the memo for the rest -------------


def _stored_values() -> list[tuple[str, CatalogType]]:
    rows = json.loads((FIXTURES / "stored_values.json").read_text())["rows"]
    return [(row["stored"], parse_type(row["type"])) for row in rows]


def _edge_values() -> list[tuple[str, CatalogType]]:
    asked = [parse_type(t) for t in EDGE_TYPES] + list(ENUMS) + list(POJOS)
    return [(text, t) for text in EDGE_TEXTS for t in asked]


@pytest.mark.parametrize("reader", list(ReaderVersion))
@pytest.mark.parametrize(
    "corpus", ["bench", "edge", "stored_values", "shuffled bench × catalog types"]
)
def test_memoized_scan_of_a_corpus_matches_the_full_check(
    corpus: str, reader: ReaderVersion
) -> None:
    if corpus == "bench":
        values = make_values(20_000, seed=7)
    elif corpus == "edge":
        values = _edge_values()
    elif corpus == "stored_values":
        values = _stored_values()
    else:
        texts = [text for text, _ in make_values(5_000, seed=11)]
        catalog = load_builtin_catalog("workspace-manager")
        asked = sorted({k.type for f in catalog.flights for k in (*f.input, *f.working)}, key=str)
        rng = random.Random(3)
        values = [(text, rng.choice(asked)) for text in texts]
    clear_memo()
    for i, (text, expected) in enumerate(values):
        memo = decode_value(text, expected, reader, flight_id=str(i), key="k", classes=CLASSES)
        full = decode_full(text, expected, reader, str(i), "k", "input", CLASSES)
        assert_same(memo, full)


def test_unique_texts_of_one_form_share_one_verdict() -> None:
    """The memo is what makes unique UUIDs cheap: 500 of them, one memo entry per reader."""
    uuid_t = CatalogType(TypeKind.UUID)
    rng = random.Random(5)
    clear_memo()
    for _ in range(500):
        text = json.dumps(str(uuid.UUID(int=rng.getrandbits(128))))
        for reader in ReaderVersion:
            decode_value(text, uuid_t, reader)
    assert len(_VERDICTS) == 2
    other = _form('"not a uuid"', uuid_t, None)
    assert other is not None and other[0] == '"not a uuid"'  # memoized by its exact text only
