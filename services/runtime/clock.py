"""Time is injected: every deadline and schedule asks a Clock, never datetime.now()."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class OffsetClock:
    """System time plus an offset in seconds read from a file (CLOCK_OFFSET_FILE).

    For drills and fault-injection runs only: several processes that read the same file
    move through time together (e.g. to a follow-up's due date days later) while
    everything else stays real. The file is read again at most every ``recheck_seconds``;
    a missing or unreadable file keeps the last offset read (zero at first).
    """

    def __init__(self, path: Path, recheck_seconds: float = 0.2) -> None:
        self.path = path
        self.recheck_seconds = recheck_seconds
        self._offset = timedelta(0)
        self._read_at = float("-inf")

    def __call__(self) -> datetime:
        now = time.monotonic()
        if now - self._read_at >= self.recheck_seconds:
            self._read_at = now
            # Half-written or gone: keep the offset we had.
            with contextlib.suppress(OSError, ValueError):
                self._offset = timedelta(seconds=float(self.path.read_text().strip() or 0))
        return datetime.now(UTC) + self._offset


def configured_clock(offset_file: Path | None, clock: Clock) -> Clock:
    """``clock``, unless the settings name an offset file (drills only)."""
    return clock if offset_file is None else OffsetClock(offset_file)
