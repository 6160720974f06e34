"""What compensation keeps about a customer, and how it is erased or masked.

Compensation's documents that name a customer:
- ``cases``: the triage facts (customer id, reasons that may quote a survey comment), the
  offers' inputs and charges (customer id), pending events (a notification's recipient);
- ``ledger``: goodwill given, per offer, with the customer id (kept for audit: amounts,
  category, month, who decided stay; the customer id goes);
- ``goodwill``: the customer's charges of the rolling cap window, keyed by customer id;
- ``customers``: the copy of the CRM profile.
Budgets and their charges are per category and offer: nothing personal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.runtime.erasure import (
    Erasure,
    ErasureLog,
    erase_cases,
    erase_profiles,
    marker_pseudonym,
    mask_reasons,
)
from services.runtime.outbox import MASKED

Document = dict[str, Any]
Publish = Callable[[list[Document]], Awaitable[None]]


def _charged(charged: Any, customer_id: str | None) -> Any:
    if isinstance(charged, dict) and charged.get("customer_id"):
        return {**charged, "customer_id": customer_id}
    return charged


def mask_offer(offer: Document, customer_id: str | None) -> Document:
    masked = {**offer, "charged": _charged(offer.get("charged"), customer_id)}
    if offer.get("inputs"):
        masked["inputs"] = {**offer["inputs"], "customer_id": customer_id}
    masked["history"] = [{**step, "charged": _charged(step.get("charged"), customer_id)}
                         if "charged" in step else step
                         for step in offer.get("history") or []]  # fmt: skip
    return masked


def mask_case(case: Document, masked: Document) -> Document:
    """Amounts, options, statuses, approvals and dates stay; the customer link goes."""
    customer_id = marker_pseudonym(masked)
    update: Document = {"customer_id": customer_id, MASKED: masked}
    if case.get("facts"):
        facts = {**case["facts"], "customer_id": customer_id}
        for field in ("reasons", "escalation_reasons"):
            if facts.get(field):
                facts[field] = mask_reasons(facts[field])
        update["facts"] = facts
    if case.get("offers"):
        update["offers"] = {offer_id: mask_offer(offer, customer_id)
                            for offer_id, offer in case["offers"].items()}  # fmt: skip
    return {"$set": update}


class CompensationPrivacy:
    def __init__(self, db: AsyncDatabase[Document], registry: Any) -> None:
        self.cases = db["cases"]
        self.ledger = db["ledger"]
        self.goodwill = db["goodwill"]
        self.customers = db["customers"]
        self.log = ErasureLog(db, "compensation", registry)

    async def mask_case(self, case_number: str, masked: Document) -> None:
        """The case and the ledger entries of its offers."""
        case = await self.cases.find_one({"_id": case_number})
        if case is None:
            return
        await self.cases.update_one({"_id": case_number}, mask_case(case, masked))
        offer_ids = list(case.get("offers") or {})
        if offer_ids:
            await self.ledger.update_many(
                {"_id": {"$in": offer_ids}}, {"$set": {"customer_id": marker_pseudonym(masked)}}
            )

    async def erase(self, erasure: Erasure, now: datetime, publish: Publish) -> None:
        async def cases(erasure: Erasure, log: ErasureLog) -> None:
            await erase_cases(log, erasure, self.cases, self.mask_case, publish, now)

        async def ledger_and_cap(erasure: Erasure, log: ErasureLog) -> None:
            ids = list(erasure.customer_ids)
            if not ids:
                return
            entries = await self.ledger.find({"customer_id": {"$in": ids}}, {"_id": 1}).to_list(
                None
            )
            found = [entry["_id"] for entry in entries]
            await log.note(erasure, "ledger_entries", [str(entry) for entry in found])
            if found:
                await self.ledger.update_many(
                    {"_id": {"$in": found}}, {"$set": {"customer_id": erasure.pseudonym}}
                )
            held = await self.goodwill.find({"_id": {"$in": ids}}, {"_id": 1}).to_list(None)
            await log.note(erasure, "goodwill_records", [str(doc["_id"]) for doc in held])
            await self.goodwill.delete_many({"_id": {"$in": ids}})

        async def profile_copies(erasure: Erasure, log: ErasureLog) -> None:
            await erase_profiles(log, erasure, self.customers)

        await self.log.run(erasure, [cases, ledger_and_cap, profile_copies], now, publish)
