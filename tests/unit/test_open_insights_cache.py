"""Triage's copy of the open insights: read at most once per refresh interval."""

from __future__ import annotations

import asyncio
from typing import Any

from services.triage.insights.hook import OpenInsights


class Store:
    def __init__(self) -> None:
        self.reads = 0
        self.open: list[dict[str, Any]] = [{"_id": "INS-1", "category": "product_defect"}]

    async def read(self) -> list[dict[str, Any]]:
        self.reads += 1
        return list(self.open)


def test_the_open_insights_are_read_again_only_after_the_interval() -> None:
    store, now = Store(), [100.0]
    cache = OpenInsights(store.read, 5.0, lambda: now[0])

    async def scenario() -> None:
        first = await cache.by_category()
        assert [i["_id"] for i in first["product_defect"]] == ["INS-1"]
        store.open.append({"_id": "INS-2", "category": "delivery"})
        now[0] += 4.9
        assert "delivery" not in await cache.by_category()
        now[0] += 0.1
        assert [i["_id"] for i in (await cache.by_category())["delivery"]] == ["INS-2"]

    asyncio.run(scenario())
    assert store.reads == 2


def test_an_interval_of_zero_reads_at_every_call() -> None:
    store = Store()
    cache = OpenInsights(store.read, 0.0, lambda: 1.0)
    for _ in range(3):
        asyncio.run(cache.by_category())
    assert store.reads == 3
