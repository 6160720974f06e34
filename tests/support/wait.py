"""Waiting on a condition with a deadline: the only kind of waiting the tests do."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

POLL_SECONDS = 0.1


async def waited(
    condition: Callable[[], Awaitable[bool]], timeout: float, step: float = POLL_SECONDS
) -> float | None:
    """Seconds until ``condition()`` held, or None if it did not within ``timeout``."""
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > timeout:
            return None
        await asyncio.sleep(step)  # poll interval between checks, not a fixed delay
    return time.monotonic() - started


async def eventually(condition: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Return as soon as ``condition()`` is true; fail naming ``what`` after ``timeout``."""
    if await waited(condition, timeout) is None:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")
