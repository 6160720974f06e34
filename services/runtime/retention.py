"""Retention: a resolved case keeps its personal data for the policy's ``retention_days``,
then the service masks it as an erasure would (services/<service>/privacy.py).

Each service marks its own case documents: ``retain_from`` is the latest resolution (a
``resolve`` action's time), cleared when the case is reopened after it. The loop reads the
``retain_from`` index from its oldest entry up to now minus the retention period: the cost
of a pass is the cases due, never the collection. A due case is claimed with a lease
(services/runtime/leases.py), so two instances never mask it twice, and one that dies
holding a claim only delays the work.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge
from pymongo.asynchronous.collection import AsyncCollection

from services.runtime.erasure import marker
from services.runtime.leases import LeasedWork

if TYPE_CHECKING:
    from services.runtime.kit import ServiceKit

Document = dict[str, Any]
RETAIN_FROM = "retain_from"
REOPENED_AT = "reopened_at"
# Masks the document's personal data: (document id, marker) -> None.
Mask = Callable[[Any, Document], Awaitable[object]]


async def note_resolved(
    collection: AsyncCollection[Document], case_number: str, at: datetime
) -> None:
    """The case was resolved at ``at``: its retention counts from then (the latest
    resolution wins), unless it was reopened after ``at``."""
    await collection.update_one(
        {"_id": case_number, REOPENED_AT: {"$not": {"$gt": at}}, "masked": None},
        {"$max": {RETAIN_FROM: at}},
    )


async def note_reopened(
    collection: AsyncCollection[Document], case_number: str, at: datetime
) -> None:
    """The case was reopened at ``at``: a resolution before it no longer starts retention."""
    await collection.update_one({"_id": case_number}, {"$max": {REOPENED_AT: at}})
    await collection.update_one(
        {"_id": case_number, RETAIN_FROM: {"$lte": at}}, {"$unset": {RETAIN_FROM: ""}}
    )


class RetentionLoop:
    def __init__(
        self, kit: ServiceKit, collection: AsyncCollection[Document], mask: Mask,
        poll_seconds: float = 60.0, lease_seconds: float = 60.0, batch: int = 100,
    ) -> None:  # fmt: skip
        self.kit = kit
        self.collection = collection
        self.mask = mask
        self.poll_seconds, self.lease_seconds, self.batch = poll_seconds, lease_seconds, batch
        owner = f"{kit.name}-{uuid.uuid4().hex[:8]}"
        self.work = LeasedWork(collection, RETAIN_FROM, "retention_lease", "retention_owner", owner)
        self.masked = Counter(
            "complaints_retention_masked_total",
            "Cases whose personal data was masked because they were resolved longer ago than "
            "the policy's retention_days",
            registry=kit.registry,
        )
        self.checked_up_to = Gauge(
            "complaints_retention_resolved_before_seconds",
            "Cases resolved before this time (Unix seconds) are masked: the last pass's "
            "now minus retention_days; stops moving when the retention loop is stuck",
            registry=kit.registry,
        )

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([(RETAIN_FROM, 1)])

    async def mask_due(self) -> int:
        """Mask every case due now; returns how many this instance masked."""
        now = self.kit.clock()
        due_by = now - timedelta(days=self.kit.policy.current().privacy.retention_days)
        masked = 0
        for case_number in await self.work.due(due_by, self.batch):
            claimed = await self.work.claim(case_number, now, self.lease_seconds, due_by=due_by)
            if claimed is None:
                continue
            await self.mask(case_number, marker("retention", now))
            # Off the index: the case is done (a masking that failed stays due: the lease
            # runs out and the next pass masks it).
            await self.collection.update_one(
                {"_id": case_number, "retention_owner": self.work.owner},
                {"$unset": {RETAIN_FROM: "", "retention_lease": "", "retention_owner": ""}},
            )
            self.masked.inc()
            masked += 1
        if masked < self.batch:  # everything due is masked (else the next pass goes on)
            self.checked_up_to.set(due_by.timestamp())
        return masked

    async def run(self) -> None:
        await self.kit.repeat("retention", self.mask_due, self.poll_seconds)
