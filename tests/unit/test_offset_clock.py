"""The drill clock: system time plus a shared, changeable offset from a file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.runtime.clock import OffsetClock, configured_clock, system_clock


def test_without_a_file_the_given_clock_is_kept() -> None:
    assert configured_clock(None, system_clock) is system_clock


def test_the_offset_is_read_and_followed_when_the_file_changes(tmp_path: Path) -> None:
    offset_file = tmp_path / "offset"
    clock = OffsetClock(offset_file, recheck_seconds=0)
    assert abs(clock() - datetime.now(UTC)) < timedelta(seconds=5), "no file: no offset"
    offset_file.write_text("691200")  # eight days
    assert abs(clock() - datetime.now(UTC) - timedelta(days=8)) < timedelta(seconds=5)
    offset_file.write_text("garbage")
    assert clock() - datetime.now(UTC) > timedelta(days=7), "a bad file keeps the last offset"
    offset_file.write_text("-3600")
    assert abs(clock() - datetime.now(UTC) + timedelta(hours=1)) < timedelta(seconds=5)
