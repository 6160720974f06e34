"""The durable follow-up scheduler: persisted checks, claimed with a lease, fired once.

Each due check is claimed by one instance with an atomic conditional update (status
scheduled, due, and no live lease). The claim carries a lease; if the instance dies
before marking the check sent, the lease runs out and another instance fires it.
The sent event's id is stable, so the rare double fire after a lease expiry is
de-duplicated by consumers.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from services.followup.events import sent_messages
from services.followup.settings import FollowupSettings
from services.runtime.errors import TRANSIENT_ERRORS
from services.runtime.kit import ServiceKit
from services.runtime.outbox import add_to_outbox, flush_outbox

log = logging.getLogger(__name__)
Document = dict[str, Any]


class FollowupScheduler:
    def __init__(
        self, kit: ServiceKit, settings: FollowupSettings, followups: AsyncCollection[Document]
    ) -> None:
        self.kit = kit
        self.settings = settings
        self.followups = followups
        self.owner = f"{kit.name}-{uuid.uuid4().hex[:8]}"
        self.fired = Counter(
            "complaints_followups_total",
            "Follow-up checks by transition",
            ["transition"],
            registry=kit.registry,
        )

    async def ensure_indexes(self) -> None:
        await self.followups.create_index([("status", 1), ("due_at", 1)])
        await self.followups.create_index([("case_number", 1)])

    async def schedule(
        self, followup_id: str, case_number: str, due_at: datetime, reasons: list[str], **facts: Any
    ) -> None:
        result = await self.followups.update_one(
            {"_id": followup_id},
            {
                "$setOnInsert": {
                    "case_number": case_number,
                    "due_at": due_at,
                    "reasons": reasons,
                    "status": "scheduled",
                    "lease_until": None,
                    **facts,
                }
            },
            upsert=True,
        )
        if result.upserted_id is not None:
            self.fired.labels("scheduled").inc()

    async def mark_answered(self, followup_id: str, score: int) -> None:
        result = await self.followups.update_one(
            {"_id": followup_id, "status": {"$in": ["scheduled", "sent"]}},
            {"$set": {"status": "answered", "score": score}},
        )
        if result.modified_count:
            self.fired.labels("answered").inc()

    async def due(self, now: datetime) -> list[str]:
        """Checks due now, oldest first: a plain read, so no write waits on the search."""
        found = await self.followups.find(
            {"status": {"$in": ["scheduled", "firing"]}, "due_at": {"$lte": now}},
            {"_id": 1, "due_at": 1},
        ).to_list(self.settings.scheduler_batch)
        return [item["_id"] for item in sorted(found, key=lambda item: item["due_at"])]

    async def claim(self, followup_id: str, now: datetime) -> Document | None:
        """Take the check unless another instance holds a live lease on it."""
        lease = now + timedelta(seconds=self.settings.scheduler_lease_seconds)
        return await self.followups.find_one_and_update(
            {
                "_id": followup_id,
                "status": {"$in": ["scheduled", "firing"]},
                "due_at": {"$lte": now},
                "$or": [{"lease_until": None}, {"lease_until": {"$lt": now}}],
            },
            {"$set": {"status": "firing", "lease_until": lease, "owner": self.owner}},
            return_document=ReturnDocument.AFTER,
        )

    async def fire(self, followup: Document, now: datetime) -> None:
        # Events first go into the check's own document, then out; then it is "sent".
        await self.followups.update_one(
            {"_id": followup["_id"], "owner": self.owner, "status": "firing"},
            {"$set": add_to_outbox(sent_messages(followup, now))},
        )
        await flush_outbox(self.followups, followup["_id"], self.kit.publish)
        result = await self.followups.update_one(
            {"_id": followup["_id"], "owner": self.owner, "status": "firing"},
            {"$set": {"status": "sent", "sent_at": now, "lease_until": None}},
        )
        if result.modified_count:
            self.fired.labels("sent").inc()

    async def fire_due(self) -> int:
        """Fire every check due now; returns how many this instance fired."""
        fired = 0
        now = self.kit.clock()
        for followup_id in await self.due(now):
            followup = await self.claim(followup_id, now)
            if followup is not None:
                await self.fire(followup, now)
                fired += 1
        return fired

    async def run(self) -> None:
        while True:
            try:
                await self.fire_due()
            except TRANSIENT_ERRORS as outage:
                log.warning("scheduler pass failed, retrying: %s", type(outage).__name__)
            except Exception:
                log.exception("scheduler pass failed")
            await asyncio.sleep(self.settings.scheduler_poll_seconds)  # polling interval
