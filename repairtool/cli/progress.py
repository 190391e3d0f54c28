"""Progress of long operations on a terminal: one line on stderr, redrawn in place (n/N, rate,
ETA), from the core's progress events (`repairtool.events`). Nothing at all when stderr is not
a terminal or the output is a JSON document, so pipes and machine readers see only the result.

No progress library: a line of text redrawn at most ten times a second is all it takes, and
`--help` and a piped run import nothing for it.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from repairtool.events import Event, Sink, discard

#: the events drawn as progress: kind → what is counted
COUNTED = {"scan.progress": "flights", "change.done": "changes", "change.skipped": "changes"}
_REDRAW = 0.1  # seconds between redraws


class TtyProgress:
    """A sink drawing `scan.progress` (data: done, total, estimated) and per-change events
    (`change.done` / `change.skipped` after `apply.start`, data: total) as one line."""

    def __init__(self, stream: TextIO, *, echo: bool = False) -> None:
        self.stream = stream
        self.echo = echo  # also print every other event's message as a line (as `--fix` does)
        self.start = time.monotonic()
        self.last_draw = 0.0
        self.done = 0
        self.total: int | None = None
        self.estimated = False
        self.what = ""
        self.drawn = False

    def __call__(self, event: Event) -> None:
        if self.echo and not event.kind.startswith("scan."):
            drawn = self.drawn
            self._clear()
            self.stream.write(f"  {event.message}\n")
            if drawn:
                self.last_draw = 0.0
        if event.kind in ("scan.start", "apply.start"):
            self._begin(event)
        elif event.kind == "scan.progress":
            self.what = "flights"
            self.done = int(event.data.get("done", 0))
            total = event.data.get("total")
            self.total = int(total) if total is not None else None
            self.estimated = bool(event.data.get("estimated"))
            self._draw()
        elif event.kind in ("change.done", "change.skipped"):
            self.what = "changes"
            self.done += 1
            self._draw()
        elif event.kind in ("scan.done", "apply.done"):
            self._clear()

    def _begin(self, event: Event) -> None:
        self._clear()
        self.start = time.monotonic()
        self.last_draw = 0.0
        self.done = 0
        total = event.data.get("total")
        self.total = int(total) if total is not None else None
        self.estimated = bool(event.data.get("estimated"))

    def line(self, now: float | None = None) -> str:
        """`scanning 1,500/~5,300 flights  2,345/s  ETA 2s` (the total marked `~` when it is
        the planner's estimate)."""
        elapsed = max((now if now is not None else time.monotonic()) - self.start, 1e-6)
        rate = self.done / elapsed
        verb = "scanning" if self.what == "flights" else "applying"
        if self.total is not None:
            total = f"{'~' if self.estimated else ''}{self.total:,}"
            text = f"{verb} {self.done:,}/{total} {self.what}  {rate:,.0f}/s"
            left = max(self.total - self.done, 0)
            if rate > 0 and left:
                text += f"  ETA {_duration(left / rate)}"
        else:
            text = f"{verb} {self.done:,} {self.what}  {rate:,.0f}/s"
        return text

    def _draw(self) -> None:
        now = time.monotonic()
        if now - self.last_draw < _REDRAW:
            return
        self.last_draw = now
        self.stream.write("\r\x1b[K" + self.line(now))
        self.stream.flush()
        self.drawn = True

    def _clear(self) -> None:
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn = False


def _duration(seconds: float) -> str:
    s = int(seconds + 0.5)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def progress_sink(output: str, stream: TextIO | None = None, *, echo: Sink = discard) -> Sink:
    """A `TtyProgress` on `stream` (default stderr) when it is a terminal and the output is not
    JSON (echoing the other events' messages when `echo` is not `discard`); else `echo`."""
    stream = stream if stream is not None else sys.stderr
    if output == "json" or not stream.isatty():
        return echo
    return TtyProgress(stream, echo=echo is not discard)
