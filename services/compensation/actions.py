"""Agents' and customers' actions on offers: approve, reject, accept.

Each action changes the offer in ONE guarded update (the offer must still be in the
state the action expects), keyed by the action id so a redelivery changes nothing;
money moves against the limits around it, idempotently, keyed by offer id.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from schemas.inbound import (
    AcceptOffer,
    ApproveCompensation,
    CaseAction,
    RejectCompensation,
    Resolve,
)
from services.compensation.events import (
    acceptance_messages,
    offer_document,
    proposed_messages,
    rejected_message,
)
from services.compensation.lifecycle import capped_options, next_offer_id
from services.compensation.offers import ZERO, OfferDecision, OfferFacts, Option
from services.runtime.documents import apply_once
from services.runtime.errors import InputRejected, RetryLater
from services.runtime.outbox import add_to_outbox
from services.runtime.records import InboundRecord
from services.runtime.retention import note_resolved

if TYPE_CHECKING:
    from services.compensation.service import CompensationService

_ACTION: TypeAdapter[CaseAction] = TypeAdapter(CaseAction)
COMPENSATION_ACTIONS = {"accept_offer", "approve_compensation", "reject_compensation"}
Document = dict[str, Any]


def _require(offer: Document, status: str, code: str) -> None:
    if offer["status"] != status:
        raise InputRejected(code, f"offer {offer['offer_id']} is {offer['status']}, not {status}")


class ActionHandlers:
    def __init__(self, service: CompensationService) -> None:
        self.service = service
        self.cases = service.cases
        self.kit = service.kit

    async def on_action(self, record: InboundRecord) -> None:
        try:
            raw = json.loads((record.value or b"").decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return  # the followup service owns rejecting malformed actions
        if isinstance(raw, dict) and raw.get("type") == "resolve":
            await self.note_resolved(raw)
            return
        if not isinstance(raw, dict) or raw.get("type") not in COMPENSATION_ACTIONS:
            return
        try:
            action = _ACTION.validate_python(raw)
        except ValidationError as exc:
            raise InputRejected("schema_violation", str(exc)) from exc
        case = await self.cases.find_one({"_id": action.case_number})
        if case is None or "facts" not in case:
            raise RetryLater(f"no compensation record for {action.case_number} yet")
        now = self.kit.clock()
        if action.action_id not in case.get("applied", []):
            offer = case.get("offers", {}).get(getattr(action, "offer_id", ""))
            if offer is None:
                raise InputRejected("unknown_offer", f"case {action.case_number} has no such offer")
            if isinstance(action, AcceptOffer):
                await self.accept(case, offer, action, now)
            elif isinstance(action, ApproveCompensation):
                await self.approve(case, offer, action, now)
            elif isinstance(action, RejectCompensation):
                await self.reject(case, offer, action, now)
            case = await self.cases.find_one({"_id": action.case_number}) or case
        # Also after a redelivery: finish what a crash may have interrupted.
        await self.service.settle_pending(case, now)
        await self.service.flush(action.case_number)

    async def note_resolved(self, raw: Document) -> None:
        """Retention counts from the resolution (services/runtime/retention.py)."""
        try:
            resolve = TypeAdapter(Resolve).validate_python(raw)
        except ValidationError:
            return  # the followup service dead-letters malformed actions
        await note_resolved(self.cases, resolve.case_number, resolve.at)

    async def accept(
        self, case: Document, offer: Document, action: AcceptOffer, now: datetime
    ) -> None:
        option = next((o for o in offer["options"] if o["option_id"] == action.option_id), None)
        if option is None:
            raise InputRejected("unknown_option", f"offer {offer['offer_id']} has no such option")
        _require(offer, "proposed", "offer_not_open")
        if offer.get("expires_at") is not None and offer["expires_at"] < now:
            raise InputRejected("offer_expired", f"offer {offer['offer_id']} has expired")
        key = f"offers.{offer['offer_id']}"
        entry = {"what": "accepted", "at": action.at, "by": action.actor,
                 "option": option["option_id"], "goodwill": option["goodwill"],
                 "charged": offer.get("charged")}  # fmt: skip
        # The customer hears back: what they chose, what happens next and by when.
        messages = acceptance_messages(case["_id"], offer, option, case["facts"], now,
                                       self.kit.policy.current())  # fmt: skip
        applied = await apply_once(
            self.cases, case["_id"], action.action_id,
            {"$set": {f"{key}.status": "accepted", f"{key}.accepted_option": option,
                      f"{key}.accepted_at": now, "offer_expires_at": None,
                      "unsettled": offer["offer_id"], "unsettled_since": now,
                      **add_to_outbox(messages)},
             "$push": {f"{key}.history": entry}},
            expect={f"{key}.status": "proposed"},
        )  # fmt: skip
        if applied:
            category = case["facts"]["category"]
            self.service.outcomes.labels("accepted", category).inc()
            self.service.goodwill.labels(category).inc(float(option["goodwill"]))

    async def approve(
        self, case: Document, offer: Document, action: ApproveCompensation, now: datetime
    ) -> None:
        _require(offer, "pending_approval", "offer_not_pending")
        policy = self.kit.policy.current()
        amount = Decimal(offer["requested_goodwill"])
        charged = None
        if amount > 0:
            # Charged at the approver's time, which a redelivery repeats (the budget month).
            charged = await self.service.reserve(
                case["facts"]["category"], case.get("customer_id"), offer["offer_id"], amount,
                action.at, within_limits=False,
            )  # fmt: skip
        expires_at = now + timedelta(hours=policy.compensation.offer_expires_hours)
        approved = {**offer, "status": "proposed", "expires_at": expires_at}
        key = f"offers.{offer['offer_id']}"
        entry = {"what": "approved", "at": action.at, "by": action.actor, "note": action.note,
                 "charged": charged}  # fmt: skip
        applied = await apply_once(
            self.cases, case["_id"], action.action_id,
            {"$set": {f"{key}.status": "proposed", f"{key}.expires_at": expires_at,
                      f"{key}.charged": charged, f"{key}.approved_by": action.actor,
                      "offer_expires_at": expires_at, "approval_due_at": None,
                      **add_to_outbox(proposed_messages(case["_id"], approved, case["facts"], now))},
             "$push": {f"{key}.history": entry}},
            expect={f"{key}.status": "pending_approval"},
        )  # fmt: skip
        if applied:
            self.service.outcomes.labels("approved", case["facts"]["category"]).inc()
            self.service.expiry.notify()

    async def reject(
        self, case: Document, offer: Document, action: RejectCompensation, now: datetime
    ) -> None:
        """The approver said no: the customer gets a capped alternative at once."""
        _require(offer, "pending_approval", "offer_not_pending")
        alternative_id = next_offer_id(case["_id"], case.get("offers", {}))
        alternative = await self.capped_alternative(case, offer, alternative_id, now, action.at)
        key = f"offers.{offer['offer_id']}"
        messages = [
            rejected_message(case["_id"], offer, action.actor, action.note, alternative_id, now),
            *proposed_messages(case["_id"], alternative, case["facts"], now),
        ]
        applied = await apply_once(
            self.cases, case["_id"], action.action_id,
            {"$set": {f"{key}.status": "rejected", f"{key}.rejected_by": action.actor,
                      f"offers.{alternative_id}": alternative, "approval_due_at": None,
                      "offer_expires_at": alternative["expires_at"], **add_to_outbox(messages)},
             "$push": {f"{key}.history": {"what": "rejected", "at": action.at,
                                          "by": action.actor, "note": action.note,
                                          "alternative": alternative_id}}},
            expect={f"{key}.status": "pending_approval",
                    f"offers.{alternative_id}": {"$exists": False}},
        )  # fmt: skip
        if applied:
            category = case["facts"]["category"]
            self.service.outcomes.labels("rejected", category).inc()
            self.service.outcomes.labels("proposed", category).inc()
            self.service.expiry.notify()

    async def capped_alternative(
        self, case: Document, offer: Document, alternative_id: str, now: datetime,
        charge_at: datetime,
    ) -> Document:  # fmt: skip
        """Options cut to what the system may give alone and what cap and budget have left,
        reserved like any proposal (retrying if another instance got there first), charged
        at ``charge_at`` (the approver's time: a redelivery charges the same month)."""
        policy = self.kit.policy.current()
        rules = policy.compensation
        facts = case["facts"]
        category, language = facts["category"], facts.get("language") or "zh-Hant"
        customer_id = case.get("customer_id")
        charged = None
        for _ in range(3):
            used, budget_left = await self.service.headroom(
                category, customer_id, alternative_id, charge_at
            )
            ceiling = min(rules.system_authority_limit, rules.customer_goodwill_cap - used)
            if budget_left is not None:
                ceiling = min(ceiling, budget_left)
            options = capped_options(offer["options"], max(ZERO, ceiling), offer["currency"],
                                     language, alternative_id)  # fmt: skip
            amount = max((Decimal(o["goodwill"]) for o in options), default=ZERO)
            if amount <= 0:
                break
            charged = await self.service.reserve(
                category, customer_id, alternative_id, amount, charge_at
            )
            if charged is not None:
                break
        else:  # another instance kept getting there first: a non-monetary alternative
            options = capped_options(offer["options"], ZERO, offer["currency"], language,
                                     alternative_id)  # fmt: skip
            amount = ZERO
        decision = OfferDecision(
            options=[Option(o["option_id"], o["kind"],
                            None if o["value"] is None else Decimal(o["value"]),
                            Decimal(o["goodwill"]), o["description"]) for o in options],
            requested_goodwill=amount, approver_role=None,
            reasons=[f"approver rejected {offer['offer_id']}: goodwill capped at "
                     f"{amount:,.0f} (system authority, customer cap and budget left)"],
            policy_version=policy.version,
        )  # fmt: skip
        inputs = OfferFacts(
            case_number=case["_id"], category=category, urgency=facts["urgency"],
            customer_id=customer_id, currency=offer["currency"], language=language,
        )  # fmt: skip
        return offer_document(alternative_id, decision, inputs, now, policy, charged,
                              after_rejection_of=offer["offer_id"])  # fmt: skip
