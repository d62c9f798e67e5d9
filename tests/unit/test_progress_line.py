"""The CLI's progress line: rewritten in place on a terminal, erased before the next message."""

from __future__ import annotations

import io

import pytest

from cli.progress import ERASE_LINE, progress_line


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _screen(written: str) -> list[str]:
    """What a terminal shows: each line after its last carriage return (ERASE_LINE clears)."""
    return [line.rsplit("\r", 1)[-1].replace("\x1b[K", "") for line in written.split("\n")]


def test_a_shorter_update_and_the_final_message_leave_nothing_of_the_longer_line():
    """'matched ledger entries: 6' then '0 discrepancies' never reads '...: 60 discrepancies'."""
    stream = _Terminal()
    with progress_line(stream) as line:
        assert line is not None
        line.show("staged provider records", 1_000_000)
        line.show("matched ledger entries", 6)
    print("0 discrepancies", file=stream)
    assert _screen(stream.getvalue()) == ["0 discrepancies", ""]
    assert stream.getvalue() == (f"{ERASE_LINE}staged provider records: 1,000,000"
                                 f"{ERASE_LINE}matched ledger entries: 6{ERASE_LINE}"
                                 "0 discrepancies\n")


def test_the_line_is_cleared_when_the_run_fails():
    """An error inside the block still erases the line before the error is printed."""
    stream = _Terminal()
    with pytest.raises(RuntimeError), progress_line(stream) as line:
        assert line is not None
        line.show("staged provider records", 5_000)
        raise RuntimeError("provider down")
    assert stream.getvalue().endswith(ERASE_LINE)


def test_nothing_is_written_when_the_stream_is_not_a_terminal():
    """A log file gets no progress and no control codes."""
    stream = io.StringIO()
    with progress_line(stream) as line:
        assert line is None
    assert stream.getvalue() == ""


def test_nothing_is_erased_when_nothing_was_shown():
    """A run too short to report progress leaves the terminal as it was."""
    stream = _Terminal()
    with progress_line(stream):
        pass
    assert stream.getvalue() == ""
