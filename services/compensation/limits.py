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
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

Document = dict[str, Any]
CAS_ATTEMPTS = 8


def month_key(category: str, at: datetime) -> str:
    """The budget document of ``category`` for the month of ``at``."""
    return f"{category}:{at:%Y-%m}"


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

    # Both leave out ``offer_id``'s own charge, so that an offer decided again after a
    # crash (its charge made, the offer not yet stored) comes out the same.

    async def customer_used(
        self, customer_id: str | None, since: datetime, offer_id: str = ""
    ) -> Decimal:
        if not customer_id:
            return Decimal(0)
        doc = await self.customers.find_one({"_id": customer_id}) or {}
        used = sum(
            charge["cents"]
            for charge in doc.get("charges", [])
            if charge["at"] >= since and charge["offer_id"] != offer_id
        )
        return Decimal(used) / 100

    async def budget_spent(self, budget_key: str, offer_id: str = "") -> Decimal:
        doc = await self.budgets.find_one({"_id": budget_key}) or {}
        own = (doc.get("cents_by_offer") or {}).get(offer_id, 0)
        return Decimal(doc.get("spent_cents", 0) - own) / 100

    # --- charging --------------------------------------------------------------------

    async def charge_budget(
        self, document_id: str, offer_id: str, amount: Decimal, budget: Decimal | None
    ) -> bool:
        """Charge ``amount`` once for ``offer_id`` if the month's budget allows it.

        ``document_id`` is ``<category>:<YYYY-MM>``; a ``budget`` of None records the
        charge without a limit (an approver overrode it).
        """
        await self._ensure(self.budgets, document_id, {"spent_cents": 0, "offers": []})
        doc = await self.budgets.find_one({"_id": document_id}) or {}
        if offer_id in doc.get("offers", []):
            return True  # charged before (a redelivery)
        result = await self.budgets.update_one(
            {"_id": document_id, "offers": {"$ne": offer_id},
             **({} if budget is None else
                {"spent_cents": {"$lte": cents(budget) - cents(amount)}})},
            {"$inc": {"spent_cents": cents(amount)}, "$push": {"offers": offer_id},
             "$set": {f"cents_by_offer.{offer_id}": cents(amount)}},
        )  # fmt: skip
        if result.modified_count:
            return True
        doc = await self.budgets.find_one({"_id": document_id}) or {}
        return offer_id in doc.get("offers", [])

    async def release_budget(self, budget_key: str, offer_id: str) -> None:
        """Take ``offer_id``'s charge back entirely, as if it had never been made."""
        doc = await self.budgets.find_one({"_id": budget_key}) or {}
        charged = (doc.get("cents_by_offer") or {}).get(offer_id)
        if charged is None:
            return
        await self.budgets.update_one(
            {"_id": budget_key, f"cents_by_offer.{offer_id}": charged},
            {"$inc": {"spent_cents": -charged}, "$pull": {"offers": offer_id},
             "$unset": {f"cents_by_offer.{offer_id}": ""}},
        )  # fmt: skip

    async def settle_budget(self, budget_key: str, offer_id: str, amount: Decimal) -> None:
        """Bring ``offer_id``'s charge down (or up) to ``amount``: what was really given.

        Idempotent: settling twice to the same amount changes nothing. The offer stays on
        the month's list, so a redelivered proposal cannot charge it again.
        """
        for _ in range(CAS_ATTEMPTS):
            doc = await self.budgets.find_one({"_id": budget_key}) or {}
            charged = (doc.get("cents_by_offer") or {}).get(offer_id)
            if charged is None or charged == cents(amount):
                return
            result = await self.budgets.update_one(
                {"_id": budget_key, f"cents_by_offer.{offer_id}": charged},
                {"$inc": {"spent_cents": cents(amount) - charged},
                 "$set": {f"cents_by_offer.{offer_id}": cents(amount)}},
            )  # fmt: skip
            if result.modified_count:
                return
        raise RuntimeError(f"could not settle {offer_id} against {budget_key}")

    async def settle_customer(self, customer_id: str, offer_id: str, amount: Decimal) -> None:
        """The customer-cap counterpart of :meth:`settle_budget`."""
        if not await self._rewrite_charge(customer_id, offer_id, cents(amount)):
            raise RuntimeError(f"could not settle {offer_id} for a customer")

    async def _rewrite_charge(self, customer_id: str, offer_id: str, new_cents: int | None) -> bool:
        """Set ``offer_id``'s charge to ``new_cents`` (None: remove it) by compare-and-set on
        the customer's document. True when done or nothing to do; False under contention."""
        for _ in range(CAS_ATTEMPTS):
            doc = await self.customers.find_one({"_id": customer_id}) or {}
            charges = doc.get("charges", [])
            mine = next((c for c in charges if c["offer_id"] == offer_id), None)
            if mine is None or mine["cents"] == new_cents:
                return True
            others = [c for c in charges if c["offer_id"] != offer_id]
            rewritten = others if new_cents is None else [
                {**c, "cents": new_cents} if c["offer_id"] == offer_id else c for c in charges
            ]  # fmt: skip
            result = await self.customers.update_one(
                {"_id": customer_id, "version": doc.get("version", 0)},
                {"$set": {"charges": rewritten}, "$inc": {"version": 1}},
            )
            if result.modified_count:
                return True
        return False

    async def month_usage(self, month: str, categories: Iterable[str]) -> dict[str, Decimal]:
        """Goodwill charged per category in ``month`` (YYYY-MM): one _id lookup each."""
        usage: dict[str, Decimal] = {}
        keys = [f"{category}:{month}" for category in categories]
        async for doc in self.budgets.find({"_id": {"$in": keys}}):
            usage[doc["_id"].rsplit(":", 1)[0]] = Decimal(doc.get("spent_cents", 0)) / 100
        return usage

    async def charge_customer(
        self, customer_id: str, offer_id: str, amount: Decimal, cap: Decimal | None,
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
            used = sum(charge["cents"] for charge in recent)
            if cap is not None and used + cents(amount) > cents(cap):
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
        """Take ``offer_id``'s charge off the customer's window, as if never made."""
        await self._rewrite_charge(customer_id, offer_id, None)
