"""Approvals nobody decides do not rot: remind, move one role up, at the top expire.

Policy (`[compensation.approval]`): the role holding a pending approval is reminded after
`remind_after_hours` (`approval_requested` again, `reminder: n`, same offer); after
`escalate_after_hours` it goes to the next role up (`approval_requested` for that role,
`escalated_from`); at the top role it expires after `expire_at_top_after_hours` with the
expiry fallback, cut to what the system may give on its own (it was never approved),
and the customer is told. Each role's clock starts when the approval reaches it.

A case with a pending approval carries its next step's time in `approval_due_at`
(indexed). The loop claims a due case with the lease helper and takes the step in ONE
update guarded by the claim and the offer still pending (an approver who decides at the
same moment wins or loses as a whole), then publishes. Step event ids are stable.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from services.compensation.events import approval_message, expired_messages
from services.compensation.lifecycle import (
    capped_fallback,
    fallback_option,
    goodwill_of,
    next_approval_step,
)
from services.compensation.limits import month_key
from services.compensation.offers import ZERO
from services.runtime.leases import UNPUBLISHED, LeasedWork, clear_unpublished, publish_stranded
from services.runtime.outbox import add_to_outbox

if TYPE_CHECKING:
    from services.compensation.service import CompensationService

Document = dict[str, Any]
BY = "system:approvals"
# complaints_offers_total{outcome} for each step.
STEP_OUTCOMES = {"remind": "approval_reminded", "escalate": "approval_escalated",
                 "expire": "approval_expired"}  # fmt: skip


def pending_offer(case: Document) -> Document | None:
    return next(
        (o for o in case.get("offers", {}).values() if o["status"] == "pending_approval"), None
    )


class ApprovalTimeouts:
    def __init__(self, service: CompensationService) -> None:
        self.service = service
        self.kit = service.kit
        self.cases = service.cases
        self.settings = service.settings
        self.owner = f"{self.kit.name}-{uuid.uuid4().hex[:8]}"
        self.wake = asyncio.Event()
        self.work = LeasedWork(self.cases, "approval_due_at", "approval_lease_until",
                               "approval_owner", self.owner)  # fmt: skip

    async def ensure_indexes(self) -> None:
        await self.cases.create_index([("approval_due_at", 1)])
        await self.cases.create_index([(UNPUBLISHED, 1)], sparse=True)

    def notify(self) -> None:
        """A new pending approval: look again now rather than at the end of the pause."""
        self.wake.set()

    def due_at(self, offer: Document) -> datetime:
        """When a pending approval's next step is due, by the current policy."""
        return next_approval_step(offer, self.kit.policy.current().compensation.approval).due_at

    async def step_due(self) -> int:
        """Take every approval step due now; returns how many this instance took."""
        now = self.kit.clock()
        lease = self.settings.scheduler_lease_seconds
        await publish_stranded(self.cases, now - timedelta(seconds=lease), self.kit.publish, 100)
        return await self.work.take_due(now, self.settings.scheduler_batch, lease, self.take_step)

    async def run(self) -> None:
        await self.kit.repeat("approval timeouts", self.step_due,
                              self.settings.scheduler_poll_seconds, self.wake)  # fmt: skip

    async def take_step(self, case: Document, now: datetime) -> bool:
        guard = {"_id": case["_id"], "approval_owner": self.owner,
                 "approval_due_at": case["approval_due_at"]}  # fmt: skip
        offer = pending_offer(case)
        if offer is None:  # decided just now: nothing left to chase
            await self.cases.update_one(
                guard, {"$set": {"approval_due_at": None, "approval_lease_until": None}}
            )
            return False
        step = next_approval_step(offer, self.kit.policy.current().compensation.approval)
        if step.due_at > now:  # the policy moved it (hot reload): wait for the new time
            await self.cases.update_one(
                guard, {"$set": {"approval_due_at": step.due_at, "approval_lease_until": None}}
            )
            return False
        if step.kind == "expire":
            return await self.expire(case, offer, guard, now)
        key = f"offers.{offer['offer_id']}"
        if step.kind == "remind":
            reminders = int(offer.get("reminders", 0)) + 1
            message = approval_message(case["_id"], offer, now, reminder=reminders)
            changes: Document = {"reminders": reminders, "reminded_role": step.role}
            entry = {"what": "reminded", "role": step.role, "reminder": reminders}
        else:
            assert step.to_role is not None
            changes = {"approver_role": step.to_role, "role_since": now}
            message = approval_message(case["_id"], {**offer, **changes}, now,
                                       escalated_from=step.role)  # fmt: skip
            entry = {"what": "escalated", "from": step.role, "to": step.to_role}
        # Marked until published: if the broker is away now, a later pass publishes it
        # (publish_stranded), since the next step of this approval may be a day away.
        result = await self.cases.update_one(
            {**guard, f"{key}.status": "pending_approval"},
            {"$set": {**{f"{key}.{field}": value for field, value in changes.items()},
                      "approval_due_at": self.due_at({**offer, **changes}),
                      "approval_lease_until": None, UNPUBLISHED: now,
                      **add_to_outbox([message])},
             "$push": {f"{key}.history": {**entry, "at": now, "by": BY}}},
        )  # fmt: skip
        if result.modified_count:
            category = case.get("facts", {}).get("category", "other")
            self.service.outcomes.labels(STEP_OUTCOMES[step.kind], category).inc()
        await self.service.flush(case["_id"])
        if result.modified_count:
            await clear_unpublished(self.cases, case["_id"], now)
        return bool(result.modified_count)

    async def expire(self, case: Document, offer: Document, guard: Document, now: datetime) -> bool:
        """At the top and out of time: the expiry fallback, inside the system's limits."""
        facts = case.get("facts", {})
        fallback, charged = await self.fallback_within_limits(case, offer, now)
        key = f"offers.{offer['offer_id']}"
        messages = expired_messages(case["_id"], offer, fallback, facts, now,
                                    pending_approval=True)  # fmt: skip
        result = await self.cases.update_one(
            {**guard, f"{key}.status": "pending_approval"},
            {"$set": {f"{key}.status": "expired", f"{key}.expired_at": now,
                      f"{key}.fallback": fallback, f"{key}.charged": charged,
                      "approval_due_at": None, "approval_lease_until": None,
                      "unsettled": offer["offer_id"], "unsettled_since": now,
                      **add_to_outbox(messages)},
             "$push": {f"{key}.history": {"what": "expired", "at": now, "by": BY,
                                          "role": offer["approver_role"],
                                          "fallback": fallback, "charged": charged}}},
        )  # fmt: skip
        category = facts.get("category", "other")
        if not result.modified_count:
            await self.release_unless_approved(case["_id"], offer, now)
            return False
        self.service.outcomes.labels(STEP_OUTCOMES["expire"], category).inc()
        if goodwill_of(fallback) > 0:
            self.service.goodwill.labels(category).inc(float(goodwill_of(fallback)))
        # Published before the settlement, which clears `unsettled`: until both are done,
        # the expiry loop's repair pass sees the case and finishes them (as in expiry.py;
        # make chaos found this one's events stranded by a broker outage).
        await self.service.flush(case["_id"])
        expired = {**offer, "status": "expired", "fallback": fallback, "charged": charged}
        await self.service.settle(case["_id"], expired, now)
        return True

    async def fallback_within_limits(
        self, case: Document, offer: Document, now: datetime
    ) -> tuple[Document | None, Document | None]:
        """(the fallback, cut to the system's authority and what cap and budget have left;
        what was reserved for it). Reserved like any proposal, retried if another instance
        took the room first; an apology when there is none."""
        policy = self.kit.policy.current()
        rules = policy.compensation
        facts = case.get("facts", {})
        language = facts.get("language") or "zh-Hant"
        fallback = fallback_option(offer, policy, language)
        if fallback is None or goodwill_of(fallback) <= 0:
            return fallback, None
        category, customer_id = facts.get("category", "other"), case.get("customer_id")
        for _ in range(3):
            used, budget_left = await self.service.headroom(
                category, customer_id, offer["offer_id"], now
            )
            ceiling: Decimal = min(rules.system_authority_limit, rules.customer_goodwill_cap - used)
            if budget_left is not None:
                ceiling = min(ceiling, budget_left)
            capped = capped_fallback(fallback, max(ZERO, ceiling), offer, language)
            amount = goodwill_of(capped)
            if amount <= 0:
                return capped, None
            charged = await self.service.reserve(
                category, customer_id, offer["offer_id"], amount, now
            )
            if charged is not None:
                return capped, charged
        return capped_fallback(fallback, ZERO, offer, language), None

    async def release_unless_approved(
        self, case_number: str, offer: Document, now: datetime
    ) -> None:
        """The expiry lost to an approver (or its lease): give back what it reserved, unless
        an approval now holds that reservation as its own."""
        case = await self.cases.find_one({"_id": case_number}) or {}
        current = case.get("offers", {}).get(offer["offer_id"], {})
        if current.get("status") == "proposed":
            return
        category = case.get("facts", {}).get("category", "other")
        await self.service.release(month_key(category, now), case.get("customer_id"),
                                   offer["offer_id"])  # fmt: skip
