"""Compensation handlers: propose after triage and after a reopening; wire the rest.

Every offer's goodwill is reserved against the customer's rolling cap and the month's
category budget *before* the offer is stored (keyed by offer id, so a redelivery never
charges twice), and settled to what was really given when the offer ends (accepted,
expired, rejected). Reservations are what keep two instances from overspending.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from prometheus_client import Counter, Gauge

from schemas.topics import (
    CASE_ACTIONS,
    CASES_FOLLOWUPS,
    CASES_TRIAGED,
    CUSTOMER_ERASURES,
    CUSTOMER_PROFILES,
)
from services.compensation.actions import ActionHandlers
from services.compensation.approvals import ApprovalTimeouts
from services.compensation.events import approval_message, offer_document, proposed_messages
from services.compensation.expiry import OfferExpiry
from services.compensation.lifecycle import (
    Given,
    given_so_far,
    live_offer,
    next_offer_id,
    settled_amount,
)
from services.compensation.limits import Limits, month_key
from services.compensation.offers import OfferDecision, OfferFacts, propose
from services.compensation.privacy import CompensationPrivacy
from services.compensation.settings import CompensationSettings
from services.runtime.batches import by_case_and_customer, by_case_in_action
from services.runtime.customers import apply_profile_record
from services.runtime.documents import apply_once
from services.runtime.erasure import erasure_found_by_intake
from services.runtime.errors import RetryLater
from services.runtime.kit import ServiceKit
from services.runtime.outbox import add_to_outbox, flush_outbox
from services.runtime.records import InboundRecord, parse_cloudevent
from services.runtime.retention import RetentionLoop, note_reopened

URGENCY_ORDER = ("normal", "high", "urgent")
BUDGET_REFRESH_SECONDS = 5.0


def charge_time(event: dict[str, Any], fallback: datetime) -> datetime:
    """When an offer caused by ``event`` is charged: the event's own time, which a
    redelivery repeats. The moment of handling would charge a second budget month when a
    record is handled again after the month turned (a crash between the reservation and
    the stored offer, or an outage across midnight at the month's end)."""
    try:
        moment = datetime.fromisoformat(str(event["time"]))
    except (KeyError, ValueError):
        return fallback
    return moment if moment.tzinfo is not None else fallback


class CompensationService:
    def __init__(self, kit: ServiceKit, settings: CompensationSettings) -> None:
        self.kit = kit
        self.settings = settings
        self.cases = kit.db["cases"]
        self.ledger = kit.db["ledger"]
        self.customers = kit.db["customers"]
        self.limits = Limits(kit.db)
        self.outcomes = Counter(
            "complaints_offers_total",
            "Offers by outcome (proposed, approval_requested, approved, accepted, rejected, "
            "expired, approval_reminded, approval_escalated, approval_expired)",
            ["outcome", "category"],
            registry=kit.registry,
        )
        self.goodwill = Counter(
            "complaints_goodwill_given_total",
            "Goodwill given (accepted or granted on expiry), in the policy currency",
            ["category"],
            registry=kit.registry,
        )
        self.budget = Gauge(
            "complaints_goodwill_budget", "This month's goodwill budget per category (policy)",
            ["category"], registry=kit.registry,
        )  # fmt: skip
        self.budget_remaining = Gauge(
            "complaints_goodwill_budget_remaining",
            "This month's goodwill budget not yet reserved or given, per category",
            ["category"], registry=kit.registry,
        )  # fmt: skip
        self.actions = ActionHandlers(self)
        self.expiry = OfferExpiry(self)
        self.approvals = ApprovalTimeouts(self)
        self.privacy = CompensationPrivacy(kit.db, kit.registry)
        self.retention = RetentionLoop(
            kit, self.cases, self.privacy.mask_case, settings.retention_poll_seconds
        )

    def register(self) -> None:
        self.kit.on_startup(self.ensure_indexes)
        self.kit.on_startup(self.approvals.ensure_indexes)
        # One customer's cases in order: they draw on the same goodwill cap.
        self.kit.subscribe(CASES_TRIAGED, self.on_triaged, links=by_case_and_customer)
        self.kit.subscribe(CASES_FOLLOWUPS, self.on_followup_event)
        self.kit.subscribe(CASE_ACTIONS, self.actions.on_action, links=by_case_in_action)
        self.kit.subscribe(CUSTOMER_PROFILES, self.on_profile)
        self.kit.subscribe(CUSTOMER_ERASURES, self.on_erasure)
        self.kit.on_startup(self.retention.ensure_indexes)
        self.kit.background(self.retention.run)
        self.kit.background(self.expiry.run)
        self.kit.background(self.expiry.run_repair)
        self.kit.background(self.approvals.run)
        self.kit.background(self.run_budget_gauges)

    async def ensure_indexes(self) -> None:
        await self.ledger.create_index([("customer_id", 1), ("at", 1)])
        await self.ledger.create_index([("category", 1), ("month", 1)])
        await self.cases.create_index([("offer_expires_at", 1)])
        await self.cases.create_index([("unsettled_since", 1)])
        await self.ledger.create_index([("month", 1)])

    async def on_profile(self, record: InboundRecord) -> None:
        await apply_profile_record(self.customers, record)

    async def on_erasure(self, record: InboundRecord) -> None:
        erasure = erasure_found_by_intake(parse_cloudevent(record))
        if erasure is not None:
            await self.privacy.erase(erasure, self.kit.clock(), self.kit.publish)

    async def flush(self, case_number: str) -> None:
        # A case erased before (a late event, a redelivery) is masked again after the write.
        await flush_outbox(self.cases, case_number, self.kit.publish, masked=self.privacy.mask_case)

    # --- limits ----------------------------------------------------------------------

    async def decide_within_limits(
        self, facts: OfferFacts, customer_id: str | None, offer_id: str, now: datetime
    ) -> tuple[OfferDecision, dict[str, Any] | None, OfferFacts]:
        """Propose, then reserve the goodwill against cap and budget atomically.

        Another instance may charge the same customer or budget between our read and our
        charge; then we release, read again and propose again. If it still does not fit,
        the offer goes to a supervisor rather than past a limit. Returns the decision and
        what was reserved (None when nothing was), and the facts as the engine saw them
        (with the cap used and the budget left), for the audit trail.
        """
        policy = self.kit.policy.current()
        for _ in range(3):
            used, budget_left = await self.headroom(facts.category, customer_id, offer_id, now)
            facts = dataclasses.replace(
                facts, customer_goodwill_used=used, category_budget_left=budget_left
            )
            decision = propose(facts, policy)
            amount = decision.requested_goodwill
            if decision.needs_approval or amount <= 0:
                await self.release(month_key(facts.category, now), customer_id, offer_id)
                return decision, None, facts
            charged = await self.reserve(facts.category, customer_id, offer_id, amount, now)
            if charged is not None:
                return decision, charged, facts
        return dataclasses.replace(
            decision,
            approver_role="supervisor",
            reasons=[*decision.reasons, "goodwill cap or budget reached while proposing: "
                     "supervisor approval needed"],
        ), None, facts  # fmt: skip

    async def headroom(
        self, category: str, customer_id: str | None, offer_id: str, now: datetime
    ) -> tuple[Decimal, Decimal | None]:
        """(goodwill the customer used in the rolling window, the category budget left this
        month or None without a budget), leaving out ``offer_id``'s own charge."""
        rules = self.kit.policy.current().compensation
        window = timedelta(days=rules.customer_cap_window_days)
        used = await self.limits.customer_used(customer_id, now - window, offer_id)
        budget = rules.monthly_budget_by_category.get(category)
        if budget is None:
            return used, None
        return used, budget - await self.limits.budget_spent(month_key(category, now), offer_id)

    async def reserve(
        self, category: str, customer_id: str | None, offer_id: str, amount: Decimal,
        now: datetime, within_limits: bool = True,
    ) -> dict[str, Any] | None:  # fmt: skip
        """Charge ``amount`` for ``offer_id`` to the category's month and the customer's
        rolling cap, both or neither; None when a limit stops it. An approver's decision
        is charged with ``within_limits=False``: it overrides the limits, still counts."""
        rules = self.kit.policy.current().compensation
        budget_key = month_key(category, now)
        budget = rules.monthly_budget_by_category.get(category) if within_limits else None
        cap = rules.customer_goodwill_cap if within_limits else None
        window = timedelta(days=rules.customer_cap_window_days)
        if not await self.limits.charge_budget(budget_key, offer_id, amount, budget):
            return None
        if customer_id and not await self.limits.charge_customer(
            customer_id, offer_id, amount, cap, now, window
        ):
            await self.limits.release_budget(budget_key, offer_id)
            return None
        return {"budget": budget_key, "customer_id": customer_id, "amount": str(amount)}

    async def refresh_budget_gauges(self) -> None:
        policy = self.kit.policy.current()
        budgets = policy.compensation.monthly_budget_by_category
        used = await self.limits.month_usage(f"{self.kit.clock():%Y-%m}", policy.category_names)
        for category, budget in budgets.items():
            self.budget.labels(category).set(float(budget))
            self.budget_remaining.labels(category).set(float(budget - used.get(category, 0)))

    async def run_budget_gauges(self) -> None:
        await self.kit.repeat("budget gauges", self.refresh_budget_gauges, BUDGET_REFRESH_SECONDS)

    async def release(self, budget_key: str, customer_id: str | None, offer_id: str) -> None:
        await self.limits.release_budget(budget_key, offer_id)
        if customer_id:
            await self.limits.release_customer(customer_id, offer_id)

    async def settle(self, case_number: str, offer: dict[str, Any], now: datetime) -> None:
        """Bring the offer's reservation to what its final state gives, and book it.

        Runs after the state change that ended the offer (which marks the case
        ``unsettled``), and again on redelivery or by the expiry loop's repair pass if a
        crash came in between: every step is idempotent.
        """
        charged = offer.get("charged")
        amount = settled_amount(offer)
        if charged:
            if charged.get("budget"):
                await self.limits.settle_budget(charged["budget"], offer["offer_id"], amount)
            if charged.get("customer_id"):
                await self.limits.settle_customer(charged["customer_id"], offer["offer_id"], amount)
        if amount > 0:
            facts = offer.get("inputs", {})
            await self.ledger.update_one(
                {"_id": offer["offer_id"]},
                {"$setOnInsert": {
                    "case_number": case_number, "customer_id": facts.get("customer_id"),
                    "category": facts.get("category"), "month": f"{now:%Y-%m}",
                    "cents": int(amount * 100), "at": now, "how": offer["status"],
                    "policy_version": offer["policy_version"],
                }},
                upsert=True,
            )  # fmt: skip
        await self.cases.update_one(
            {"_id": case_number, "unsettled": offer["offer_id"]},
            {"$unset": {"unsettled": "", "unsettled_since": ""}},
        )

    async def settle_pending(self, case: dict[str, Any], now: datetime) -> None:
        offer_id = case.get("unsettled")
        if offer_id and offer_id in case.get("offers", {}):
            await self.settle(case["_id"], case["offers"][offer_id], now)

    # --- proposing -------------------------------------------------------------------

    async def on_triaged(self, record: InboundRecord) -> None:
        event = parse_cloudevent(record)
        if event["type"] != "complaint.case.triaged":
            return
        data = event["data"]
        case_number = data["case_number"]
        case = await self.cases.find_one({"_id": case_number}) or {}
        if case.get("offers"):
            # The first triage brings the offer; later ones (new messages, a reopening)
            # only refresh the facts. A reopening brings its own offer (on_reopened).
            await apply_once(self.cases, case_number, event["id"], {"$set": {"facts": data}})
            await self.flush(case_number)
            return
        await self.make_offer(
            case_number, data, event["id"], offers={},
            charge_at=charge_time(event, self.kit.clock()),
        )  # fmt: skip

    async def on_followup_event(self, record: InboundRecord) -> None:
        event = parse_cloudevent(record)
        if event["type"] != "complaint.case.reopened":
            return
        case_number = event["data"]["case_number"]
        await note_reopened(self.cases, case_number, datetime.fromisoformat(str(event["time"])))
        case = await self.cases.find_one({"_id": case_number})
        if case is None or "facts" not in case:
            raise RetryLater(f"no compensation record for {case_number} yet")
        offers = case.get("offers", {})
        if event["id"] in case.get("applied", []):
            await self.flush(case_number)
            return
        if live_offer(offers) is not None:
            # The customer still has an open offer: it stands; no second one.
            await apply_once(self.cases, case_number, event["id"], {"$inc": {"reopen_count": 1}})
            return
        minimum = self.kit.policy.current().followup.reopen_urgency
        facts = dict(case["facts"])
        if URGENCY_ORDER.index(facts["urgency"]) < URGENCY_ORDER.index(minimum):
            facts["urgency"] = minimum
        await self.make_offer(
            case_number, facts, event["id"], offers=offers,
            reopen_count=int(case.get("reopen_count", 0)) + 1, given=given_so_far(offers),
            charge_at=charge_time(event, self.kit.clock()),
        )  # fmt: skip

    async def make_offer(
        self, case_number: str, data: dict[str, Any], cause_id: str,
        offers: dict[str, Any], charge_at: datetime, reopen_count: int = 0,
        given: Given | None = None,
    ) -> None:  # fmt: skip
        policy = self.kit.policy.current()
        now = self.kit.clock()
        order_value = data.get("order_value") or {}
        customer_id = data.get("customer_id")
        customer = (
            await self.customers.find_one({"_id": customer_id}) if customer_id else None
        ) or {}
        given = given or Given()
        facts = OfferFacts(
            case_number=case_number,
            category=data["category"],
            urgency=data["urgency"],
            escalated=bool(data.get("escalated")),
            customer_tier=customer.get("tier") or data.get("customer_tier"),
            customer_id=customer_id,
            offer_id=next_offer_id(case_number, offers),
            order_value=Decimal(order_value["amount"]) if order_value.get("amount") else None,
            currency=order_value.get("currency") or policy.currency,
            language=data.get("language") or "zh-Hant",
            reopen_count=reopen_count,
            already_given=given.goodwill,
            already_refunded=given.refunded,
        )
        offer_id = facts.offer_id
        decision, charged, facts = await self.decide_within_limits(
            facts, customer_id, offer_id, charge_at
        )
        offer = offer_document(offer_id, decision, facts, now, policy, charged)
        messages = (
            [approval_message(case_number, offer, now)]
            if decision.needs_approval
            else proposed_messages(case_number, offer, data, now)
        )
        update: dict[str, Any] = {
            "$set": {
                "facts": data,
                "customer_id": customer_id,
                f"offers.{offer_id}": offer,
                "offer_expires_at": offer["expires_at"],
                # A pending approval is chased: reminded, moved up, at the top expired.
                "approval_due_at": self.approvals.due_at(offer)
                if decision.needs_approval
                else None,
                **add_to_outbox(messages),
            }
        }
        if reopen_count:
            update["$set"]["reopen_count"] = reopen_count
        # Two proposers racing on one case compute the same offer id: one of them wins.
        applied = await apply_once(
            self.cases, case_number, cause_id, update,
            expect={f"offers.{offer_id}": {"$exists": False}},
        )  # fmt: skip
        if applied:
            outcome = "approval_requested" if decision.needs_approval else "proposed"
            self.outcomes.labels(outcome, facts.category).inc()
            if offer["expires_at"] is not None:
                self.expiry.notify()
            if decision.needs_approval:
                self.approvals.notify()
        await self.flush(case_number)


def build(kit: ServiceKit, settings: CompensationSettings) -> CompensationService:
    service = CompensationService(kit, settings)
    service.register()
    return service
