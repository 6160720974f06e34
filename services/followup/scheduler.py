"""The durable follow-up scheduler: persisted checks, claimed with a lease, each step once.

A check moves through stages, each due at `next_at`:
  check     send the satisfaction survey                  -> sent,     then reminder
  reminder  no answer after N days: one reminder          -> reminded, then close
  close     still no answer: the loop closes quietly      -> closed_no_answer
An answer at any point ends it (`answered`). A check not yet sent that will not happen
(the case reopened or resolved again, the customer opted out) is `cancelled`, and that is
announced with `complaint.followup.cancelled`. Each due step is claimed by one instance
with an atomic conditional update that takes a lease; the step's events and the next
state go in ONE update, then out. If an instance dies holding a lease, the lease runs
out and another instance takes the step. Event ids are stable, so even a step repeated
after a lease expiry carries ids consumers have already seen.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter, Gauge
from pymongo.asynchronous.collection import AsyncCollection

from services.followup.events import cancelled_message, reminder_messages, sent_messages
from services.followup.settings import FollowupSettings
from services.runtime.kit import ServiceKit
from services.runtime.leases import (
    UNPUBLISHED,
    LeasedWork,
    clear_unpublished,
    publish_stranded,
)
from services.runtime.outbox import add_to_outbox, flush_outbox

Document = dict[str, Any]
OPEN = ("scheduled", "sent", "reminded")


class FollowupScheduler:
    def __init__(
        self, kit: ServiceKit, settings: FollowupSettings, followups: AsyncCollection[Document]
    ) -> None:
        self.kit = kit
        self.settings = settings
        self.followups = followups
        self.owner = f"{kit.name}-{uuid.uuid4().hex[:8]}"
        self.work = LeasedWork(followups, "next_at", "lease_until", "owner", self.owner)
        self.transitions = Counter(
            "complaints_followups_total", "Follow-up checks by transition",
            ["transition"], registry=kit.registry,
        )  # fmt: skip
        self.due_now = Gauge(
            "complaints_followups_due", "Follow-up steps due now and not yet taken (up to a batch)",
            registry=kit.registry,
        )  # fmt: skip

    async def ensure_indexes(self) -> None:
        await self.followups.create_index([("next_at", 1)])
        await self.followups.create_index([("case_number", 1)])
        await self.followups.create_index([("customer_id", 1)])  # opt-out cancels by customer
        await self.followups.create_index([(UNPUBLISHED, 1)], sparse=True)

    async def schedule(
        self, followup_id: str, case_number: str, due_at: datetime, reasons: list[str],
        cancelled_because: str | None = None, **facts: Any,
    ) -> None:  # fmt: skip
        """Store the check; ``cancelled_because`` stores it as one that will not happen
        (its announcement travels with the resolution's events)."""
        state = (
            {"status": "scheduled", "next_at": due_at}
            if cancelled_because is None
            else {"status": "cancelled", "cancel_reason": cancelled_because, "next_at": None}
        )
        result = await self.followups.update_one(
            {"_id": followup_id},
            {"$setOnInsert": {"case_number": case_number, "due_at": due_at, "reasons": reasons,
                              "stage": "check", "lease_until": None, **state, **facts}},
            upsert=True,
        )  # fmt: skip
        if result.upserted_id is not None:
            self.transitions.labels("scheduled").inc()
            if cancelled_because is not None:
                self.transitions.labels("cancelled").inc()

    async def mark_answered(self, followup_id: str, score: int) -> None:
        result = await self.followups.update_one(
            {"_id": followup_id, "status": {"$in": list(OPEN)}},
            {"$set": {"status": "answered", "score": score, "next_at": None}},
        )
        if result.modified_count:
            self.transitions.labels("answered").inc()

    async def cancel(self, selector: Document, reason: str) -> None:
        """Checks not yet sent that match ``selector`` will not happen: each is cancelled
        and announced once. ``selector`` must use an index (case, customer or id).

        The announcement is stored with the cancellation, then published; cancelled
        checks whose announcement is still pending (a crash in between) are finished by
        the next call for them, which the redelivered record makes.
        """
        now = self.kit.clock()
        found = await self.followups.find(
            {**selector, "status": {"$in": ["scheduled", "cancelled"]}},
            {"status": 1, "case_number": 1, "outbox": 1},
        ).to_list(None)
        for followup in found:
            if followup["status"] == "scheduled":
                message = cancelled_message(followup["case_number"], followup["_id"], reason, now)
                result = await self.followups.update_one(
                    {"_id": followup["_id"], "status": "scheduled"},
                    {"$set": {"status": "cancelled", "cancel_reason": reason, "next_at": None,
                              **add_to_outbox([message])}},
                )  # fmt: skip
                if result.modified_count:
                    self.transitions.labels("cancelled").inc()
            elif not followup.get("outbox"):
                continue
            await flush_outbox(self.followups, followup["_id"], self.kit.publish)

    def step(self, followup: Document, now: datetime) -> tuple[Document, list[Any], str]:
        """(the new state, the events, the transition name) for the due stage. Pure."""
        wait = timedelta(days=self.kit.policy.current().followup.no_answer_reminder_days)
        stage = followup.get("stage", "check")
        if stage == "check":
            state = {"status": "sent", "sent_at": now, "stage": "reminder", "next_at": now + wait}
            return state, sent_messages(followup, now), "sent"
        if stage == "reminder":
            state = {"status": "reminded", "reminded_at": now, "stage": "close",
                     "next_at": now + wait}  # fmt: skip
            return state, reminder_messages(followup, now), "reminded"
        return {"status": "closed_no_answer", "closed_at": now, "next_at": None}, [], "closed"

    async def fire(self, followup: Document, now: datetime) -> None:
        state, messages, transition = self.step(followup, now)
        # Marked until published: the next step is days away, so if this pass cannot
        # publish, a later pass must (publish_stranded), not the next step.
        mark = {UNPUBLISHED: now} if messages else {}
        result = await self.followups.update_one(
            {"_id": followup["_id"], "owner": self.owner, "next_at": followup["next_at"]},
            {"$set": {**state, "lease_until": None, **mark, **add_to_outbox(messages)}},
        )
        if result.modified_count:
            self.transitions.labels(transition).inc()
        await flush_outbox(self.followups, followup["_id"], self.kit.publish)
        if mark:
            await clear_unpublished(self.followups, followup["_id"], now)

    async def fire_due(self) -> int:
        """Run every step due now; returns how many this instance ran."""
        fired = 0
        now = self.kit.clock()
        lease = timedelta(seconds=self.settings.scheduler_lease_seconds)
        await publish_stranded(self.followups, now - lease, self.kit.publish,
                               self.settings.scheduler_batch)  # fmt: skip
        due = await self.work.due(now, self.settings.scheduler_batch)
        self.due_now.set(len(due))
        for followup_id in due:
            followup = await self.work.claim(
                followup_id, now, self.settings.scheduler_lease_seconds
            )
            if followup is not None:
                await self.fire(followup, now)
                fired += 1
        return fired

    async def run(self) -> None:
        await self.kit.repeat("follow-up scheduler", self.fire_due,
                              self.settings.scheduler_poll_seconds)  # fmt: skip
