"""The findings of a `repairtool decode` scan kept on disk while the scan runs, then written in
the command's output format — the same bytes `View.render` and `jsonout.write_document` give for
them — so memory stays flat however many flights fail to decode."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from typing import IO, Any, TextIO

import orjson

from repairtool.cli.common import md_cell, md_table
from repairtool.jsonout import encode_items

#: findings encoded at a time (the chunk of `jsonout`'s writer)
CHUNK = 512

COLUMNS = ("Flight", "Status", "Map", "Key", "Expected", "Found", "Reencodable")
WIDE_COLUMNS = (*COLUMNS, "Reader", "Reason", "EngineException")


class Spool:
    """The findings of a scan, kept on disk (an unnamed temporary file) as they are found, for
    the output written after the scan (the document's counts come before its findings): the
    findings' JSON (``as_rows=False``), or one row of the wide table per decode failure and the
    width of each column. Memory stays flat however many there are."""

    def __init__(self, *, as_rows: bool) -> None:
        self.as_rows = as_rows
        self.findings = 0
        self.rows = 0
        self.widths = [len(c) for c in WIDE_COLUMNS]
        # closed by __exit__: the spool is used as a context manager
        self.file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self.pending: list[dict[str, Any]] = []  # findings' documents not yet encoded

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()

    def add(self, finding: Any) -> None:
        self.findings += 1
        if not self.as_rows:
            self.pending.append(finding.to_json())
            if len(self.pending) == CHUNK:
                self._write_pending()
            return
        for x in finding.evidence["decode_failures"]:
            row = [
                finding.flight_id,
                finding.status,
                x["source"],
                x["key"],
                x["expected"],
                x["found"],
                "yes" if x["reencodable"] else "no",
                x["reader"],
                x["reason"],
                x["engine_exception"],
            ]
            for i, cell in enumerate(row):
                self.widths[i] = max(self.widths[i], len(_cell(cell)))
            self.rows += 1
            self.file.write(_line(row))

    def _write_pending(self) -> None:
        encoded = encode_items(self.pending)
        self.file.write(len(encoded).to_bytes(8, "little") + encoded)
        self.pending = []

    def chunks(self) -> Iterator[bytes]:
        """The findings' documents, encoded as `jsonout.Encoded` wants them, chunk by chunk."""
        if self.pending:
            self._write_pending()
        self.file.flush()
        self.file.seek(0)
        while size := self.file.read(8):
            yield self.file.read(int.from_bytes(size, "little"))

    def rows_added(self) -> Iterator[list[Any]]:
        """The wide rows, in order."""
        self.file.flush()
        self.file.seek(0)
        for line in self.file:
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError:  # written by the standard library (see _line)
                yield json.loads(line)

    def render(
        self, out: TextIO, output: str, *, before: list[str], after: list[str], title: str
    ) -> None:
        """What `View.render` prints for these rows (table, wide or markdown), row by row."""
        wide = output in ("wide", "markdown")
        n = len(WIDE_COLUMNS) if wide else len(COLUMNS)
        if output == "markdown":
            parts = [f"**{title}**"] + [f"* {line.strip()}" for line in before if line.strip()]
            out.write("\n\n".join(parts) + "\n\n")
            if self.rows:
                out.write(md_table(WIDE_COLUMNS, ()))
                for row in self.rows_added():
                    out.write("\n| " + " | ".join(md_cell(c) for c in row) + " |")
            else:
                out.write("(nothing)")
            tail = [f"* {line.strip()}" for line in after if line.strip()]
            out.write("".join(f"\n\n{part}" for part in tail) + "\n")
            return
        widths = self.widths[:n]
        headers = WIDE_COLUMNS[:n]
        text: list[str] = list(before)
        if self.rows:
            text.append("  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip())
        out.write("\n".join(text))
        if self.rows:
            for row in self.rows_added():
                cells = [_cell(c) for c in row[:n]]
                line = "  ".join(c.ljust(widths[i]) for i, c in enumerate(cells)).rstrip()
                out.write("\n" + line)
        rest = "\n".join(after).rstrip("\n")
        if rest:
            out.write(("\n" if text or self.rows else "") + rest)
        out.write("\n")


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _line(value: Any) -> bytes:
    try:
        return orjson.dumps(value) + b"\n"
    except (TypeError, orjson.JSONEncodeError):  # an int beyond 64 bits, a non-string key
        return json.dumps(value, ensure_ascii=False, default=str).encode() + b"\n"
