"""A one-line progress display for long commands in a terminal, cleared before the next line.

Each update rewrites the line in place (carriage return, then erase to the end of the line), so
a shorter update never leaves the tail of a longer one behind, and ``clear`` erases it before
anything else is printed: no "matched ledger entries: 06 discrepancies".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

ERASE_LINE = "\r\x1b[K"  # to the start of the line, then erase to its end


class ProgressLine:
    """``show(stage, count)`` rewrites the line; ``clear()`` leaves the cursor on an empty one."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.shown = False

    def show(self, stage: str, count: int) -> None:
        self.stream.write(f"{ERASE_LINE}{stage}: {count:,}")
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write(ERASE_LINE)
            self.stream.flush()
            self.shown = False


@contextmanager
def progress_line(stream: TextIO) -> Iterator[ProgressLine | None]:
    """A progress line on ``stream`` when it is a terminal (None otherwise: no control codes in
    a log file), cleared when the block ends, however it ends."""
    line = ProgressLine(stream) if stream.isatty() else None
    try:
        yield line
    finally:
        if line is not None:
            line.clear()
