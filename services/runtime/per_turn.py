"""Requests made by concurrent handlers in one event-loop turn, answered by one call.

The lanes of a batch run side by side and reach the same step at about the same moment;
a PerTurn collects what they ask for during one turn of the event loop and answers all
of it with one call (one query, one increment), instead of one round trip each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class PerTurn(Generic[K, V]):
    """``await per_turn(key)``: the answer for ``key`` from one ``answer_all`` call.

    ``answer_all`` gets the keys of the turn in the order they were asked, repeats
    included, and returns one answer per request, in the same order.
    """

    def __init__(self, answer_all: Callable[[list[K]], Awaitable[list[V]]]) -> None:
        self.answer_all = answer_all
        self._asked: list[tuple[K, asyncio.Future[V]]] = []
        self._running: set[asyncio.Task[None]] = set()

    async def __call__(self, key: K) -> V:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[V] = loop.create_future()
        self._asked.append((key, future))
        if len(self._asked) == 1:
            # After every handler that is ready to run this turn has asked.
            loop.call_soon(self._start)
        return await future

    def _start(self) -> None:
        asked, self._asked = self._asked, []
        task = asyncio.ensure_future(self._answer(asked))
        self._running.add(task)  # a reference, so the task is not collected mid-flight
        task.add_done_callback(self._running.discard)

    async def _answer(self, asked: list[tuple[K, asyncio.Future[V]]]) -> None:
        try:
            answers = await self.answer_all([key for key, _ in asked])
        except BaseException as exc:  # every caller sees the failure of its call
            for _, future in asked:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), answer in zip(asked, answers, strict=True):
            if not future.done():
                future.set_result(answer)
