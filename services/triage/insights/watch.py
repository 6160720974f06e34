"""The insights' background loop: subsiding, the open-insights gauge, forgetting old keys.

An open insight carries ``check_at``: the moment its window would fall under the
threshold if nothing more arrived (each joining case moves it). The loop takes the due
ones from that index with a lease (services/runtime/leases.py), so a pass costs the due
insights, never the collection; an insight still above its threshold gets its next
``check_at``, one that fell under it subsides: ``complaint.insight.subsided``, and its key
may open a new insight later.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from services.runtime.kit import ServiceKit
from services.runtime.leases import LeasedWork
from services.runtime.outbox import add_to_outbox
from services.triage.insights.detection import InsightMetrics
from services.triage.insights.detector import evaluate
from services.triage.insights.messages import insight_message
from services.triage.insights.store import InsightStore

GAUGE_EVERY_SECONDS = 15.0
FORGET_EVERY_SECONDS = 300.0
BATCH = 100


class InsightWatcher:
    def __init__(
        self, kit: ServiceKit, store: InsightStore, metrics: InsightMetrics,
        poll_seconds: float, lease_seconds: float,
    ) -> None:  # fmt: skip
        self.kit = kit
        self.store = store
        self.metrics = metrics
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.owner = f"triage-insights-{uuid.uuid4().hex[:8]}"
        self.due = LeasedWork(store.insights, "check_at", "check_lease", "check_owner", self.owner)
        self.wake = asyncio.Event()
        self._gauge_at = 0.0
        self._forget_at = 0.0

    def notify(self, check_at: datetime | None) -> None:
        """An insight changed here: refresh the gauge soon, check it when due."""
        self._gauge_at = 0.0
        if check_at is not None and check_at <= self.kit.clock():
            self.wake.set()

    async def run(self) -> None:
        await self.kit.repeat("insights", self.one_pass, self.poll_seconds, self.wake)

    async def one_pass(self) -> None:
        now = self.kit.clock()
        for insight_id in await self.due.due(now, BATCH):
            claimed = await self.due.claim(insight_id, now, self.lease_seconds)
            if claimed is not None:
                await self.check(claimed, now)
        if time.monotonic() - self._gauge_at > GAUGE_EVERY_SECONDS:
            self._gauge_at = time.monotonic()
            await self.refresh_gauge()
        if time.monotonic() - self._forget_at > FORGET_EVERY_SECONDS:
            self._forget_at = time.monotonic()
            await self.forget_quiet_keys(now)

    async def check(self, insight: dict[str, Any], now: datetime) -> None:
        policy = self.kit.policy.current()
        rules = policy.insights
        key = await self.store.key(insight["key_id"]) or {}
        verdict = evaluate(key.get("live") or {}, key.get("days") or {}, insight["kind"],
                           insight["category"], rules, end=now)  # fmt: skip
        state = {"count": verdict.count, "baseline": verdict.baseline,
                 "threshold": verdict.threshold, "window_start": verdict.window_start,
                 "window_end": verdict.window_end}  # fmt: skip
        if verdict.above and verdict.subside_at is not None:
            update: dict[str, Any] = {**state, "check_at": verdict.subside_at}
            interval = timedelta(minutes=rules.update_interval_minutes)
            published = insight.get("published_case_at")
            if insight.get("update_pending") and (published is None
                                                  or now >= published + interval):  # fmt: skip
                # Cases joined within the interval of the last event: told now, once.
                total = int(insight.get("case_total") or 0)
                message = insight_message(
                    "updated", {**insight, **state}, rules.window_hours, now,
                    ("joined", str(total)), change=f"{total} case(s) in all",
                )  # fmt: skip
                update |= {"update_pending": False, "published_case_at": now,
                           **add_to_outbox([message])}  # fmt: skip
            elif insight.get("update_pending") and published is not None:
                update["check_at"] = min(verdict.subside_at, published + interval)
            await self.store.reschedule(insight["_id"], self.owner, update)
            await self.store.flush(insight["_id"], self.kit.publish)
            return
        closed = {**insight, **state, "status": "subsided", "subsided_at": now}
        message = insight_message(
            "subsided", closed, rules.window_hours, now, ("subsided",),
            change=f"{verdict.count} customers in the last {rules.window_hours} h, "
            f"under the threshold of {verdict.threshold}",
        )  # fmt: skip
        if await self.store.subside(insight["_id"], self.owner, {**state, "subsided_at": now},
                                    message):  # fmt: skip
            self._gauge_at = 0.0
        await self.store.release(insight["key_id"], insight["_id"])
        await self.store.flush(insight["_id"], self.kit.publish)

    async def refresh_gauge(self) -> None:
        counted = Counter(
            (doc.get("kind", "?"), doc.get("category", "?"),
             "true" if doc.get("acknowledged") else "false")
            for doc in await self.store.open_insights()
        )  # fmt: skip
        self.metrics.open.clear()
        for (kind, category, acknowledged), count in counted.items():
            self.metrics.open.labels(kind, category, acknowledged).set(count)

    async def forget_quiet_keys(self, now: datetime) -> int:
        """Keys no window or baseline will read again (nothing mentioned them for longer
        than the baseline and the window together) are deleted, a batch per pass."""
        rules = self.kit.policy.current().insights
        before = now - timedelta(days=rules.baseline_days, hours=rules.window_hours + 1)
        return await self.store.forget_keys(await self.store.stale_keys(before, BATCH), before)
