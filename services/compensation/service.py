"""Compensation handlers: propose after triage, act on approvals and acceptances."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from prometheus_client import Counter
from pydantic import TypeAdapter, ValidationError

from schemas.inbound import AcceptOffer, ApproveCompensation, CaseAction, RejectCompensation
from schemas.topics import CASE_ACTIONS, CASES_TRIAGED, CUSTOMER_PROFILES
from services.compensation.events import (
    accepted_message,
    approval_message,
    offer_document,
    proposed_messages,
)
from services.compensation.limits import Limits
from services.compensation.offers import OfferDecision, OfferFacts, propose
from services.compensation.settings import CompensationSettings
from services.runtime.customers import apply_profile_record
from services.runtime.documents import apply_once
from services.runtime.errors import InputRejected, RetryLater
from services.runtime.kit import ServiceKit
from services.runtime.outbox import add_to_outbox, flush_outbox
from services.runtime.records import InboundRecord, parse_cloudevent

LIVE = ("proposed", "pending_approval")
_ACTION: TypeAdapter[CaseAction] = TypeAdapter(CaseAction)
COMPENSATION_ACTIONS = {"accept_offer", "approve_compensation", "reject_compensation"}


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
            "Offers by outcome (proposed, approval_requested, accepted, rejected)",
            ["outcome", "category"],
            registry=kit.registry,
        )

    def register(self) -> None:
        self.kit.on_startup(self.ensure_indexes)
        self.kit.subscribe(CASES_TRIAGED, self.on_triaged)
        self.kit.subscribe(CASE_ACTIONS, self.on_action)
        self.kit.subscribe(CUSTOMER_PROFILES, self.on_profile)

    async def ensure_indexes(self) -> None:
        await self.ledger.create_index([("customer_id", 1), ("at", 1)])
        await self.ledger.create_index([("category", 1), ("month", 1)])

    async def on_profile(self, record: InboundRecord) -> None:
        await apply_profile_record(self.customers, record)

    # --- proposing -------------------------------------------------------------------

    async def decide_within_limits(
        self, facts: OfferFacts, customer_id: str | None, offer_id: str, now: datetime
    ) -> OfferDecision:
        """Propose, then charge the goodwill against cap and budget atomically.

        Another instance may charge the same customer or budget between our read and our
        charge; then we release, read again and propose again. If it still does not fit,
        the offer goes to a supervisor rather than past a limit.
        """
        policy = self.kit.policy.current()
        rules = policy.compensation
        window = timedelta(days=rules.customer_cap_window_days)
        month = f"{now:%Y-%m}"
        budget = rules.monthly_budget_by_category.get(facts.category)
        for _ in range(3):
            used = await self.limits.customer_used(customer_id, now - window)
            spent = await self.limits.budget_spent(facts.category, month)
            facts = dataclasses.replace(
                facts,
                customer_goodwill_used=used,
                category_budget_left=None if budget is None else budget - spent,
            )
            decision = propose(facts, policy)
            amount = decision.requested_goodwill
            if decision.needs_approval or amount <= 0:
                return decision
            if budget is not None and not await self.limits.charge_budget(
                facts.category, month, offer_id, amount, budget
            ):
                continue
            if customer_id and not await self.limits.charge_customer(
                customer_id, offer_id, amount, rules.customer_goodwill_cap, now, window
            ):
                await self.limits.release_budget(facts.category, month, offer_id, amount)
                continue
            return decision
        return dataclasses.replace(
            decision,
            approver_role="supervisor",
            reasons=[*decision.reasons, "goodwill cap or budget reached while proposing: "
                     "supervisor approval needed"],
        )  # fmt: skip

    async def on_triaged(self, record: InboundRecord) -> None:
        event = parse_cloudevent(record)
        if event["type"] != "complaint.case.triaged":
            return
        data = event["data"]
        case_number = data["case_number"]
        case = await self.cases.find_one({"_id": case_number}) or {}
        live = [o for o in case.get("offers", {}).values() if o["status"] in LIVE]
        if live or case.get("offers"):
            # One offer per case; a re-triage does not bring a second one.
            await apply_once(self.cases, case_number, event["id"], {"$set": {"facts": data}})
            await flush_outbox(self.cases, case_number, self.kit.publish)
            return
        policy = self.kit.policy.current()
        now = self.kit.clock()
        order_value = data.get("order_value") or {}
        customer_id = data.get("customer_id")
        customer = (
            await self.customers.find_one({"_id": customer_id}) if customer_id else None
        ) or {}
        facts = OfferFacts(
            case_number=case_number,
            category=data["category"],
            urgency=data["urgency"],
            escalated=bool(data.get("escalated")),
            customer_tier=customer.get("tier") or data.get("customer_tier"),
            order_value=Decimal(order_value["amount"]) if order_value.get("amount") else None,
            currency=order_value.get("currency") or policy.currency,
            language=data.get("language") or "zh-Hant",
        )
        offer_id = f"{case_number}-O1"
        decision = await self.decide_within_limits(facts, data.get("customer_id"), offer_id, now)
        offer = offer_document(offer_id, decision, facts.currency, now, policy)
        messages = (
            [approval_message(case_number, offer, now)]
            if decision.needs_approval
            else proposed_messages(case_number, offer, data, now)
        )
        applied = await apply_once(
            self.cases,
            case_number,
            event["id"],
            {
                "$set": {
                    "facts": data,
                    "customer_id": data.get("customer_id"),
                    f"offers.{offer_id}": offer,
                    **add_to_outbox(messages),
                }
            },
        )
        if applied:
            outcome = "approval_requested" if decision.needs_approval else "proposed"
            self.outcomes.labels(outcome, data["category"]).inc()
        await flush_outbox(self.cases, case_number, self.kit.publish)

    # --- actions ---------------------------------------------------------------------

    async def on_action(self, record: InboundRecord) -> None:
        try:
            raw = json.loads((record.value or b"").decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return  # the followup service owns rejecting malformed actions
        if not isinstance(raw, dict) or raw.get("type") not in COMPENSATION_ACTIONS:
            return
        try:
            action = _ACTION.validate_python(raw)
        except ValidationError as exc:
            raise InputRejected("schema_violation", str(exc)) from exc
        case = await self.cases.find_one({"_id": action.case_number})
        if case is None or "facts" not in case:
            raise RetryLater(f"no compensation record for {action.case_number} yet")
        offer = case.get("offers", {}).get(getattr(action, "offer_id", ""))
        if offer is None:
            raise InputRejected("unknown_offer", f"case {action.case_number} has no such offer")
        now = self.kit.clock()
        if isinstance(action, AcceptOffer):
            await self.accept(case, offer, action, now)
        elif isinstance(action, ApproveCompensation):
            await self.approve(case, offer, action, now)
        elif isinstance(action, RejectCompensation):
            await self.reject_offer(case, offer, action, now)
        await flush_outbox(self.cases, action.case_number, self.kit.publish)

    async def accept(
        self, case: dict[str, Any], offer: dict[str, Any], action: AcceptOffer, now: datetime
    ) -> None:
        option = next((o for o in offer["options"] if o["option_id"] == action.option_id), None)
        if option is None:
            raise InputRejected("unknown_option", f"offer {offer['offer_id']} has no such option")
        expired = offer.get("expires_at") is not None and offer["expires_at"] < now
        if offer["status"] != "proposed" or expired:
            raise InputRejected(
                "offer_not_open", f"offer {offer['offer_id']} is {offer['status']}, not open"
            )
        key = f"offers.{offer['offer_id']}"
        entry = {
            "what": "accepted",
            "at": action.at,
            "by": action.actor,
            "option": option["option_id"],
        }
        applied = await apply_once(
            self.cases,
            case["_id"],
            action.action_id,
            {
                "$set": {
                    f"{key}.status": "accepted",
                    f"{key}.accepted_option": option,
                    **add_to_outbox([accepted_message(case["_id"], offer, option, now)]),
                },
                "$push": {f"{key}.history": entry},
            },
        )
        goodwill = Decimal(option["goodwill"])
        if applied and goodwill > 0:
            facts = case.get("facts", {})
            await self.ledger.update_one(
                {"_id": offer["offer_id"]},
                {
                    "$setOnInsert": {
                        "customer_id": case.get("customer_id"),
                        "category": facts.get("category"),
                        "month": f"{now:%Y-%m}",
                        "cents": int(goodwill * 100),
                        "at": now,
                        "policy_version": offer["policy_version"],
                    }
                },
                upsert=True,
            )
        if applied:
            self.outcomes.labels("accepted", case.get("facts", {}).get("category", "other")).inc()

    async def approve(
        self,
        case: dict[str, Any],
        offer: dict[str, Any],
        action: ApproveCompensation,
        now: datetime,
    ) -> None:
        if offer["status"] != "pending_approval":
            raise InputRejected(
                "offer_not_pending", f"offer {offer['offer_id']} is {offer['status']}"
            )
        policy = self.kit.policy.current()
        amount = Decimal(offer["requested_goodwill"])
        if amount > 0:
            # Approval overrides the limits; the spend is still recorded against them.
            unlimited = Decimal("1e12")
            window = timedelta(days=policy.compensation.customer_cap_window_days)
            await self.limits.charge_budget(
                case["facts"]["category"], f"{now:%Y-%m}", offer["offer_id"], amount, unlimited
            )
            if case.get("customer_id"):
                await self.limits.charge_customer(
                    case["customer_id"], offer["offer_id"], amount, unlimited, now, window
                )
        approved = {
            **offer,
            "status": "proposed",
            "expires_at": now + timedelta(hours=policy.compensation.offer_expires_hours),
        }
        key = f"offers.{offer['offer_id']}"
        await apply_once(
            self.cases,
            case["_id"],
            action.action_id,
            {
                "$set": {
                    f"{key}.status": "proposed",
                    f"{key}.expires_at": approved["expires_at"],
                    **add_to_outbox(proposed_messages(case["_id"], approved, case["facts"], now)),
                },
                "$push": {
                    f"{key}.history": {
                        "what": "approved",
                        "at": action.at,
                        "by": action.actor,
                        "note": action.note,
                    }
                },
            },
        )

    async def reject_offer(
        self, case: dict[str, Any], offer: dict[str, Any], action: RejectCompensation, now: datetime
    ) -> None:
        if offer["status"] != "pending_approval":
            raise InputRejected(
                "offer_not_pending", f"offer {offer['offer_id']} is {offer['status']}"
            )
        policy = self.kit.policy.current()
        limit = policy.compensation.system_authority_limit
        # The capped alternative: the same options with goodwill cut to the system's authority.
        options = []
        for original in offer["options"]:
            option = original
            if Decimal(option["goodwill"]) > limit:
                option = {
                    **option,
                    "value": str(limit),
                    "goodwill": str(limit),
                    "description": option["description"].split(" ")[0] + f" {limit:,.0f}",
                }
            options.append(option)
        number = len(case.get("offers", {})) + 1
        alternative = {
            **offer,
            "offer_id": f"{case['_id']}-O{number}",
            "status": "proposed",
            "options": options,
            "requested_goodwill": str(min(Decimal(offer["requested_goodwill"]), limit)),
            "approver_role": None,
            "expires_at": now + timedelta(hours=policy.compensation.offer_expires_hours),
            "history": [
                {
                    "what": "created",
                    "at": now,
                    "by": "system",
                    "after_rejection_of": offer["offer_id"],
                }
            ],
        }
        key = f"offers.{offer['offer_id']}"
        await apply_once(
            self.cases,
            case["_id"],
            action.action_id,
            {
                "$set": {
                    f"{key}.status": "rejected",
                    f"offers.{alternative['offer_id']}": alternative,
                    **add_to_outbox(
                        proposed_messages(case["_id"], alternative, case["facts"], now)
                    ),
                },
                "$push": {
                    f"{key}.history": {
                        "what": "rejected",
                        "at": action.at,
                        "by": action.actor,
                        "note": action.note,
                    }
                },
            },
        )


def build(kit: ServiceKit, settings: CompensationSettings) -> CompensationService:
    service = CompensationService(kit, settings)
    service.register()
    return service
