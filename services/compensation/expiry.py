"""Offers nobody chose from: expired on time, once, with the policy's fallback.

Cases with a live offer carry its expiry in ``offer_expires_at``. The loop sleeps until
the earliest one (or a poll interval), claims a due case with a lease (an atomic
conditional update, so two instances never expire the same offer twice), then expires
the offer, queues its events and marks the case ``unsettled`` in ONE update; the
reservation is settled to the fallback afterwards. A repair pass settles what a crash
left unsettled for longer than a lease.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from services.compensation.events import expired_messages
from services.compensation.lifecycle import fallback_option, goodwill_of
from services.runtime.leases import LeasedWork
from services.runtime.outbox import add_to_outbox

if TYPE_CHECKING:
    from services.compensation.service import CompensationService

Document = dict[str, Any]


class OfferExpiry:
    def __init__(self, service: CompensationService) -> None:
        self.service = service
        self.kit = service.kit
        self.cases = service.cases
        self.settings = service.settings
        self.owner = f"{self.kit.name}-{uuid.uuid4().hex[:8]}"
        self.wake = asyncio.Event()
        self.work = LeasedWork(self.cases, "offer_expires_at", "expiry_lease_until",
                               "expiry_owner", self.owner)  # fmt: skip

    def notify(self) -> None:
        """A new expiry: look again now rather than at the end of the current pause."""
        self.wake.set()

    async def expire(self, case: Document, now: datetime) -> bool:
        offer = next(
            (o for o in case.get("offers", {}).values()
             if o["status"] == "proposed" and o.get("expires_at") and o["expires_at"] <= now),
            None,
        )  # fmt: skip
        guard = {"_id": case["_id"], "expiry_owner": self.owner,
                 "offer_expires_at": case["offer_expires_at"]}  # fmt: skip
        if offer is None:  # accepted just now, or nothing live: nothing to expire
            await self.cases.update_one(
                guard, {"$set": {"offer_expires_at": None, "expiry_lease_until": None}}
            )
            return False
        policy = self.kit.policy.current()
        facts = case.get("facts", {})
        fallback = fallback_option(offer, policy, facts.get("language") or "zh-Hant")
        key = f"offers.{offer['offer_id']}"
        result = await self.cases.update_one(
            {**guard, f"{key}.status": "proposed"},
            {"$set": {f"{key}.status": "expired", f"{key}.expired_at": now,
                      f"{key}.fallback": fallback, "offer_expires_at": None,
                      "expiry_lease_until": None, "unsettled": offer["offer_id"],
                      "unsettled_since": now,
                      **add_to_outbox(expired_messages(case["_id"], offer, fallback, facts, now))},
             "$push": {f"{key}.history": {"what": "expired", "at": now, "by": "system:expiry",
                                          "fallback": fallback,
                                          "charged": offer.get("charged")}}},
        )  # fmt: skip
        if not result.modified_count:
            return False
        category = facts.get("category", "other")
        self.service.outcomes.labels("expired", category).inc()
        if goodwill_of(fallback) > 0:
            self.service.goodwill.labels(category).inc(float(goodwill_of(fallback)))
        # Published before the settlement, which clears `unsettled`: until both are done,
        # the repair pass sees the case and finishes them (no redelivery brings it back).
        await self.service.flush(case["_id"])
        expired = {**offer, "status": "expired", "fallback": fallback}
        await self.service.settle(case["_id"], expired, now)
        return True

    async def repair(self) -> None:
        """Settle what a crash left unsettled (the offer ended, the money not yet moved)."""
        now = self.kit.clock()
        stale = now - timedelta(seconds=self.settings.scheduler_lease_seconds)
        async for case in self.cases.find({"unsettled_since": {"$lte": stale}}):
            # Published first: settling clears the mark this pass finds the case by, so a
            # broker away now would strand the events (make chaos seed 1601 found it).
            await self.service.flush(case["_id"])
            await self.service.settle_pending(case, now)

    async def expire_due(self) -> int:
        """Expire every offer due now; returns how many this instance expired."""
        return await self.work.take_due(
            self.kit.clock(), self.settings.scheduler_batch,
            self.settings.scheduler_lease_seconds, self.expire,
        )  # fmt: skip

    async def run(self) -> None:
        await self.kit.repeat("offer expiry", self.expire_due,
                              self.settings.scheduler_poll_seconds, self.wake)  # fmt: skip

    async def run_repair(self) -> None:
        # A crash between an offer's end and its settlement is rare: once a lease is enough.
        await self.kit.repeat("settlement repair", self.repair,
                              self.settings.scheduler_lease_seconds)  # fmt: skip
