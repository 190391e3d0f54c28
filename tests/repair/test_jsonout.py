"""The streamed JSON writer writes exactly what `json.dumps(indent=2, ensure_ascii=False)` writes,
whatever the length of its lists (chunk boundaries) and whatever orjson refuses (an int beyond
64 bits goes through the standard library)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from repairtool.jsonout import Streamed, write_document


def item(i: int) -> dict[str, Any]:
    return {
        "flight_id": f"f{i}",
        "evidence": {"steps": [1, 2, {"b": None}], "why": "line\nbreak, é, \u2028"},
        "empty": [],
        "none": {},
        "big": 2**70 if i == 700 else i,
    }


@pytest.mark.parametrize("n", [0, 1, 511, 512, 513, 1025])
def test_a_streamed_document_is_byte_identical_to_json_dumps(n: int) -> None:
    items = [item(i) for i in range(n)]
    doc = {"schema": "repairtool.orphans/1", "findings": items, "plan": [], "tail": {"k": [1]}}
    out = io.StringIO()
    write_document({**doc, "findings": Streamed(iter(items)), "plan": Streamed([])}, out)
    assert out.getvalue() == json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
