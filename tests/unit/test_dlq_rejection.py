"""A record rejected again (its batch was redelivered after an outage, or a zombie instance
handled it too) must give the very same DLQ record: same id, same bytes. Found by make
chaos: a DLQ record re-published later carried a new time under the same id."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services.runtime.kit import ServiceKit
from services.runtime.records import InboundRecord
from services.runtime.settings import ServiceSettings
from tests.support.system import FakeClock


async def test_the_same_rejection_later_is_the_same_record() -> None:
    clock = FakeClock()
    kit = ServiceKit("intake", ServiceSettings(metrics_enabled=False), clock)
    published: list[dict[str, Any]] = []

    async def capture(messages: list[dict[str, Any]]) -> None:
        published.extend(messages)

    kit.publish = capture  # type: ignore[method-assign]
    record = InboundRecord(
        topic="complaints.inbound.app", partition=1, offset=42, key=None,
        value=b'{"submission_id": "x", "message": ', timestamp_ms=1_795_000_000_000,
        headers={"received-at": b"2026-11-23T10:00:00+08:00"},
    )  # fmt: skip
    await kit.reject(record, "invalid_json", "not JSON")
    clock.advance(timedelta(minutes=3))
    await kit.reject(record, "invalid_json", "not JSON")
    first, again = published
    assert first["id"] == again["id"]
    assert first["value"] == again["value"], "one event id, one payload"
    await kit.mongo.close()
