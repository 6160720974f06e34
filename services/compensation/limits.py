"""Goodwill reservations against the per-customer rolling cap and the monthly budgets.

Both are enforced under concurrency with single-document atomic updates, keyed by offer
id so that a redelivered proposal never charges twice:
- a category's month: one small document with the month's total (`spent_cents`) and the
  operations in flight (`pending`); each offer's charge is its own document in
  `budget_charges`. A change of an offer's charge (charge, release, settle) is one
  numbered operation: a conditional $inc of the total that also records the operation as
  pending (and matches only while enough budget is left, for a charge), then the charge
  document records it as done, then it leaves `pending`. A redelivery after a crash finds
  the operation pending or done and does not apply it twice; the month's document never
  grows with the number of offers;
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
        self.budget_charges = db["budget_charges"]
        self.customers = db["goodwill"]

    async def _ensure(self, collection: Any, document_id: str, fields: Document) -> None:
        # An upsert, not an insert that fails when the document exists: a write that
        # fails would abort the transaction its batch commits in (runtime/coalescing.py).
        with contextlib.suppress(DuplicateKeyError):  # created by another instance just now
            await collection.update_one({"_id": document_id}, {"$setOnInsert": fields}, upsert=True)

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
        charge = await self.budget_charges.find_one({"_id": offer_id}) if offer_id else None
        own = charge["cents"] if charge and charge.get("budget") == budget_key else 0
        return Decimal(doc.get("spent_cents", 0) - own) / 100

    # --- charging --------------------------------------------------------------------

    async def charge_budget(
        self, document_id: str, offer_id: str, amount: Decimal, budget: Decimal | None
    ) -> bool:
        """Charge ``amount`` once for ``offer_id`` if the month's budget allows it.

        ``document_id`` is ``<category>:<YYYY-MM>``; a ``budget`` of None records the
        charge without a limit (an approver overrode it).
        """
        charge = await self.budget_charges.find_one({"_id": offer_id})
        if (
            charge is not None
            and charge.get("budget") == document_id
            and charge.get("cents") == cents(amount)
        ):
            # Charged before (a redelivery); a crash may have left its operation pending.
            # A charge released since (the customer's cap refused it and the offer is
            # decided again) is at 0 and is charged again below: found by make chaos.
            await self.budgets.update_one(
                {"_id": document_id, "pending": {"$in": charge.get("done", [])}},
                {"$pull": {"pending": {"$in": charge.get("done", [])}}},
            )
            return True
        return await self._change_charge(document_id, offer_id, charge, cents(amount), budget)

    async def release_budget(self, budget_key: str, offer_id: str) -> None:
        """Take ``offer_id``'s charge back entirely, as if it had never been made."""
        charge = await self.budget_charges.find_one({"_id": offer_id})
        if charge is not None and charge.get("budget") == budget_key and charge["cents"]:
            await self._change_charge(budget_key, offer_id, charge, 0, None)

    async def settle_budget(self, budget_key: str, offer_id: str, amount: Decimal) -> None:
        """Bring ``offer_id``'s charge down (or up) to ``amount``: what was really given.

        Idempotent: settling twice to the same amount changes nothing. The offer's charge
        document stays, so a redelivered proposal cannot charge it again.
        """
        charge = await self.budget_charges.find_one({"_id": offer_id})
        if charge is None or charge.get("budget") != budget_key or charge["cents"] == cents(amount):
            return
        await self._change_charge(budget_key, offer_id, charge, cents(amount), None)

    async def _change_charge(
        self, budget_key: str, offer_id: str, charge: Document | None, new_cents: int,
        budget: Decimal | None,
    ) -> bool:  # fmt: skip
        """Move ``offer_id``'s charge from what ``charge`` says to ``new_cents``, once.

        False when ``budget`` (if given) has no room for it. The operation's id is the
        offer and the number of operations done on its charge, so a redelivery that read
        the same charge document retries the same operation.
        """
        done = list((charge or {}).get("done", []))
        operation = f"{offer_id}#{len(done)}"
        delta = new_cents - int((charge or {}).get("cents", 0))
        room = (
            {} if budget is None or delta <= 0 else {"spent_cents": {"$lte": cents(budget) - delta}}
        )
        for attempt in range(2):
            result = await self.budgets.update_one(
                {"_id": budget_key, "pending": {"$ne": operation}, **room},
                {"$inc": {"spent_cents": delta}, "$push": {"pending": operation}},
            )
            if result.modified_count:
                break
            doc = await self.budgets.find_one({"_id": budget_key})
            if doc is None and attempt == 0:  # the month's first charge: create it, again
                await self._ensure(self.budgets, budget_key, {"spent_cents": 0, "pending": []})
                continue
            if operation not in (doc or {}).get("pending", []):
                return False  # no room left in the month's budget
            break
        await self.budget_charges.update_one(
            {"_id": offer_id},
            {"$set": {"budget": budget_key, "cents": new_cents}, "$addToSet": {"done": operation}},
            upsert=True,
        )
        await self.budgets.update_one({"_id": budget_key}, {"$pull": {"pending": operation}})
        return True

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
        for _ in range(CAS_ATTEMPTS):
            doc = await self.customers.find_one({"_id": customer_id}) or {}
            charges = doc.get("charges", [])
            if any(charge["offer_id"] == offer_id for charge in charges):
                return True  # charged before (a redelivery)
            recent = [charge for charge in charges if charge["at"] >= now - window]
            used = sum(charge["cents"] for charge in recent)
            if cap is not None and used + cents(amount) > cents(cap):
                return False
            try:
                # An upsert: the customer's first charge creates the document (version 0
                # stands for "none yet"); a version someone else moved on is a duplicate key.
                await self.customers.update_one(
                    {"_id": customer_id, "version": doc.get("version", 0)},
                    {"$set": {"charges": [*recent, {"offer_id": offer_id, "cents": cents(amount),
                                                    "at": now}]},
                     "$inc": {"version": 1}},
                    upsert=True,
                )  # fmt: skip
                return True
            except DuplicateKeyError:
                continue  # another charge came first: read again
        return False  # too much contention: the caller asks for approval instead

    async def release_customer(self, customer_id: str, offer_id: str) -> None:
        """Take ``offer_id``'s charge off the customer's window, as if never made."""
        await self._rewrite_charge(customer_id, offer_id, None)
