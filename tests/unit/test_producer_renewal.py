"""A producer that stopped for good is replaced, once (found by make chaos: after the broker
was away longer than the 40 s delivery timeout, aiokafka's idempotent producer failed every
publish with OutOfOrderSequenceNumber and compensation redelivered the same records for
minutes, never recovering by itself)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import OutOfOrderSequenceNumber

from services.runtime.kafka import build_broker, publish_outbound


def message(number: int) -> dict[str, Any]:
    return {"id": f"e{number}", "topic": "cases.opened", "key": "CS1", "value": "{}"}


async def test_a_producer_out_of_sequence_is_renewed_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker: Any = build_broker("127.0.0.1:1", "test", None, 1 << 20)
    connected: list[Any] = []

    async def publish(*args: Any, **kwargs: Any) -> None:
        raise OutOfOrderSequenceNumber("the producer's sender stopped")

    async def connect(self: Any, producer: Any, **kwargs: Any) -> None:
        connected.append(producer)

    async def disconnect(self: Any) -> None:
        return None

    monkeypatch.setattr(broker, "publish", publish)
    producer_class = type(broker.config.producer)  # slotted: patched on its class
    monkeypatch.setattr(producer_class, "connect", connect)
    monkeypatch.setattr(producer_class, "disconnect", disconnect)
    # Many lanes fail on the same dead producer at once: one replacement, and each still
    # fails (its record is redelivered and goes out through the new producer).
    outcomes = await asyncio.gather(
        *(publish_outbound(broker, [message(n)]) for n in range(5)), return_exceptions=True
    )
    assert all(isinstance(outcome, OutOfOrderSequenceNumber) for outcome in outcomes)
    assert len(connected) == 1
    assert broker.producer_generation == 1
    await connected[0].stop()


async def test_other_publish_failures_keep_the_producer(monkeypatch: pytest.MonkeyPatch) -> None:
    broker: Any = build_broker("127.0.0.1:1", "test", None, 1 << 20)

    async def publish(*args: Any, **kwargs: Any) -> None:
        raise TimeoutError

    monkeypatch.setattr(broker, "publish", publish)
    with pytest.raises(TimeoutError):
        await publish_outbound(broker, [message(1)])
    assert broker.producer_generation == 0
