"""PerTurn: what concurrent callers ask in one event-loop turn is answered by one call."""

from __future__ import annotations

import asyncio

import pytest

from services.runtime.per_turn import PerTurn


async def test_one_call_per_turn_with_each_callers_answer() -> None:
    calls: list[list[str]] = []

    async def answer_all(keys: list[str]) -> list[str]:
        calls.append(keys)
        return [key.upper() for key in keys]

    ask = PerTurn(answer_all)
    assert await asyncio.gather(ask("a"), ask("b"), ask("a")) == ["A", "B", "A"]
    assert calls == [["a", "b", "a"]]
    assert await ask("c") == "C"  # a later turn: a call of its own
    assert calls == [["a", "b", "a"], ["c"]]


async def test_a_failure_reaches_every_caller_of_the_turn() -> None:
    async def answer_all(keys: list[int]) -> list[int]:
        raise ConnectionError("store away")

    ask = PerTurn(answer_all)
    outcomes = await asyncio.gather(ask(1), ask(2), return_exceptions=True)
    assert all(isinstance(outcome, ConnectionError) for outcome in outcomes)
    with pytest.raises(ConnectionError):
        await ask(3)
