"""Waiting on a condition with a deadline: the only kind of waiting the tests do."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

POLL_SECONDS = 0.1


async def eventually(condition: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Return as soon as ``condition()`` is true; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(POLL_SECONDS)  # poll interval between checks, not a fixed delay
