"""Goodwill reservations against the per-customer rolling cap and the monthly budgets.

Both are enforced under concurrency with single-document atomic updates, keyed by offer
id so that a redelivered proposal never charges twice:
- a category's month: one small document with the month's total (`spent_cents`) and the
  operations in flight (`pending`, each with the charge it moves to); each offer's charge
  is its own document in `budget_charges`. A change of an offer's charge (charge,
  release, settle) is one numbered operation: a conditional $inc of the total that also
  records the operation as pending (and matches only while enough budget is left, for a
  charge), then the charge document records it as done, then it leaves `pending`. Every
  change of an offer's charge, and every read of the budget left for it, first finishes
  what a crash left half done for that offer (counted in the total, not yet in its charge
  document), so a redelivery decided differently starts from the truth and nothing stays
  pending; the month's document never grows with the number of offers;
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
        month = await self.budgets.find_one({"_id": budget_key}) or {}
        charge = await self._finished_charge(budget_key, offer_id, month) if offer_id else None
        own = charge["cents"] if charge and charge.get("budget") == budget_key else 0
        return Decimal(month.get("spent_cents", 0) - own) / 100

    # --- charging --------------------------------------------------------------------

    async def charge_budget(
        self, document_id: str, offer_id: str, amount: Decimal, budget: Decimal | None
    ) -> bool:
        """Charge ``amount`` once for ``offer_id`` if the month's budget allows it.

        ``document_id`` is ``<category>:<YYYY-MM>``; a ``budget`` of None records the
        charge without a limit (an approver overrode it). Charged before at the same amount
        (a redelivery): True and nothing changes. A charge released since (the customer's
        cap refused it and the offer is decided again) is at 0 and is charged again (found
        by make chaos).
        """
        return await self._move_charge(document_id, offer_id, cents(amount), budget)

    async def release_budget(self, budget_key: str, offer_id: str) -> None:
        """Take ``offer_id``'s charge back entirely, as if it had never been made: from the
        month it was charged to, which may be before ``budget_key`` (an approval timing
        out in the next month)."""
        charge = await self._finished_charge(budget_key, offer_id) or {}  # half done here?
        await self._move_charge(charge.get("budget", budget_key), offer_id, 0, None)

    async def settle_budget(self, budget_key: str, offer_id: str, amount: Decimal) -> None:
        """Bring ``offer_id``'s charge down (or up) to ``amount``: what was really given.

        Idempotent: settling twice to the same amount changes nothing. The offer's charge
        document stays, so a redelivered proposal cannot charge it again.
        """
        await self._move_charge(budget_key, offer_id, cents(amount), None)

    async def _move_charge(
        self, budget_key: str, offer_id: str, new_cents: int, budget: Decimal | None
    ) -> bool:
        """Bring ``offer_id``'s charge in ``budget_key`` to ``new_cents``; False when
        ``budget`` (if given) has no room for the difference.

        Rounds, because an operation found half done with another amount (a crash, then a
        redelivery decided differently) is finished first and the change starts again
        from what it charged.
        """
        for _ in range(3):
            charge = await self._finished_charge(budget_key, offer_id)
            if charge and charge.get("budget") != budget_key:
                if charge["cents"]:
                    return True  # charged to another month, and settled there
                charge = {**charge, "cents": 0}  # released there: charged here from 0
            if int((charge or {}).get("cents", 0)) == new_cents:
                return True
            moved = await self._change_charge(budget_key, offer_id, charge, new_cents, budget)
            if moved is not None:
                return moved
        raise RuntimeError(f"the budget charge of {offer_id} kept changing under us")

    async def _change_charge(
        self, budget_key: str, offer_id: str, charge: Document | None, new_cents: int,
        budget: Decimal | None,
    ) -> bool | None:  # fmt: skip
        """Move ``offer_id``'s charge from what ``charge`` says to ``new_cents``, once.

        False when ``budget`` (if given) has no room for it; None when the operation was
        found pending with another amount (finish it and start again). The operation's id
        is the offer and the number of operations done on its charge, so a redelivery that
        read the same charge document retries the same operation.
        """
        operation = f"{offer_id}#{len((charge or {}).get('done', []))}"
        delta = new_cents - int((charge or {}).get("cents", 0))
        room = (
            {} if budget is None or delta <= 0 else {"spent_cents": {"$lte": cents(budget) - delta}}
        )
        for attempt in range(2):
            result = await self.budgets.update_one(
                {"_id": budget_key, "pending.op": {"$ne": operation}, **room},
                {"$inc": {"spent_cents": delta},
                 "$push": {"pending": {"op": operation, "cents": new_cents}}},
            )  # fmt: skip
            if result.modified_count:
                break
            month = await self.budgets.find_one({"_id": budget_key})
            if month is None and attempt == 0:  # the month's first charge: create it, again
                await self._ensure(self.budgets, budget_key, {"spent_cents": 0, "pending": []})
                continue
            mine = [entry for entry in (month or {}).get("pending", []) if entry["op"] == operation]
            if not mine:
                return False  # no room left in the month's budget
            if mine[0]["cents"] != new_cents:
                return None
            break
        await self._record(budget_key, offer_id, {"op": operation, "cents": new_cents}, charge)
        return True

    async def _finished_charge(
        self, budget_key: str, offer_id: str, month: Document | None = None
    ) -> Document | None:
        """``offer_id``'s charge document, after finishing what a crash left half done.

        An operation counted in the month's total but missing from the charge document is
        recorded there with the amount it counted; one recorded but still pending leaves
        the list. Without this a redelivery decided differently (the budget left looked
        smaller by the offer's own uncounted charge) left the month's total above what the
        offers charged, for ever (make chaos, seeds 1601 and 1602).
        """
        charge = await self.budget_charges.find_one({"_id": offer_id})
        if month is None:
            month = await self.budgets.find_one({"_id": budget_key}) or {}
        for entry in month.get("pending", []):
            if entry["op"].rpartition("#")[0] == offer_id:
                charge = await self._record(budget_key, offer_id, entry, charge)
        return charge

    async def _record(
        self, budget_key: str, offer_id: str, entry: Document, charge: Document | None
    ) -> Document:
        """Record the counted operation ``entry`` in the charge document, then take it off
        the month's pending list; returns the charge document as it now is."""
        done = list((charge or {}).get("done", []))
        if entry["op"] not in done:
            # Conditional: a late writer of an operation finished meanwhile (a paused
            # instance waking up) must not put back an amount a later operation replaced.
            with contextlib.suppress(DuplicateKeyError):  # that writer's document exists
                await self.budget_charges.update_one(
                    {"_id": offer_id, "done": {"$ne": entry["op"]}},
                    {"$set": {"budget": budget_key, "cents": entry["cents"]},
                     "$push": {"done": entry["op"]}},
                    upsert=True,
                )  # fmt: skip
            charge = {"_id": offer_id, "budget": budget_key, "cents": entry["cents"],
                      "done": [*done, entry["op"]]}  # fmt: skip
        await self.budgets.update_one(
            {"_id": budget_key}, {"$pull": {"pending": {"op": entry["op"]}}}
        )
        return charge or {}

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
            if any(c["offer_id"] == offer_id and c["cents"] == cents(amount) for c in charges):
                return True  # charged before (a redelivery)
            # A charge of this offer at another amount (a crash, then a redelivery decided
            # differently) is replaced, not added to.
            recent = [charge for charge in charges
                      if charge["at"] >= now - window and charge["offer_id"] != offer_id]  # fmt: skip
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
