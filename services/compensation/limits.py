"""Goodwill reservations against the per-customer rolling cap and the monthly budgets.

Both are enforced under concurrency with single-document atomic updates, keyed by offer
id so that a redelivered proposal never charges twice:
- a category's month: one document; the charge is a conditional $inc that only matches
  while enough budget is left and the offer has not been charged yet;
- a customer: one document listing the charges of the rolling window; a new charge is a
  compare-and-set on the document's version after checking the window's sum.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

Document = dict[str, Any]
CAS_ATTEMPTS = 8


def cents(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


class Limits:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.budgets = db["budgets"]
        self.customers = db["goodwill"]

    async def _ensure(self, collection: Any, document_id: str, fields: Document) -> None:
        with contextlib.suppress(DuplicateKeyError):
            await collection.insert_one({"_id": document_id, **fields})

    # --- reading ---------------------------------------------------------------------

    async def customer_used(self, customer_id: str | None, since: datetime) -> Decimal:
        if not customer_id:
            return Decimal(0)
        doc = await self.customers.find_one({"_id": customer_id}) or {}
        used = sum(e["cents"] for e in doc.get("charges", []) if e["at"] >= since)
        return Decimal(used) / 100

    async def budget_spent(self, category: str, month: str) -> Decimal:
        doc = await self.budgets.find_one({"_id": f"{category}:{month}"}) or {}
        return Decimal(doc.get("spent_cents", 0)) / 100

    # --- charging --------------------------------------------------------------------

    async def charge_budget(
        self, category: str, month: str, offer_id: str, amount: Decimal, budget: Decimal
    ) -> bool:
        """Charge ``amount`` once for ``offer_id`` if the month's budget allows it."""
        document_id = f"{category}:{month}"
        await self._ensure(self.budgets, document_id, {"spent_cents": 0, "offers": []})
        doc = await self.budgets.find_one({"_id": document_id}) or {}
        if offer_id in doc.get("offers", []):
            return True  # charged before (a redelivery)
        result = await self.budgets.update_one(
            {"_id": document_id, "offers": {"$ne": offer_id},
             "spent_cents": {"$lte": cents(budget) - cents(amount)}},
            {"$inc": {"spent_cents": cents(amount)}, "$push": {"offers": offer_id}},
        )  # fmt: skip
        if result.modified_count:
            return True
        doc = await self.budgets.find_one({"_id": document_id}) or {}
        return offer_id in doc.get("offers", [])

    async def release_budget(
        self, category: str, month: str, offer_id: str, amount: Decimal
    ) -> None:
        await self.budgets.update_one(
            {"_id": f"{category}:{month}", "offers": offer_id},
            {"$inc": {"spent_cents": -cents(amount)}, "$pull": {"offers": offer_id}},
        )

    async def charge_customer(
        self, customer_id: str, offer_id: str, amount: Decimal, cap: Decimal,
        now: datetime, window: timedelta,
    ) -> bool:  # fmt: skip
        """Charge ``amount`` once for ``offer_id`` if the customer's rolling cap allows it."""
        await self._ensure(self.customers, customer_id, {"charges": [], "version": 0})
        for _ in range(CAS_ATTEMPTS):
            doc = await self.customers.find_one({"_id": customer_id}) or {}
            charges = doc.get("charges", [])
            if any(charge["offer_id"] == offer_id for charge in charges):
                return True  # charged before (a redelivery)
            recent = [charge for charge in charges if charge["at"] >= now - window]
            if sum(charge["cents"] for charge in recent) + cents(amount) > cents(cap):
                return False
            result = await self.customers.update_one(
                {"_id": customer_id, "version": doc.get("version", 0)},
                {"$set": {"charges": [*recent, {"offer_id": offer_id, "cents": cents(amount), "at": now}]},
                 "$inc": {"version": 1}},
            )  # fmt: skip
            if result.modified_count:
                return True
        return False  # too much contention: the caller asks for approval instead

    async def release_customer(self, customer_id: str, offer_id: str) -> None:
        for _ in range(CAS_ATTEMPTS):
            doc = await self.customers.find_one({"_id": customer_id}) or {}
            charges = doc.get("charges", [])
            if not any(charge["offer_id"] == offer_id for charge in charges):
                return
            result = await self.customers.update_one(
                {"_id": customer_id, "version": doc.get("version", 0)},
                {"$set": {"charges": [c for c in charges if c["offer_id"] != offer_id]},
                 "$inc": {"version": 1}},
            )  # fmt: skip
            if result.modified_count:
                return
