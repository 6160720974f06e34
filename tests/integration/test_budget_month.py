"""Goodwill charges that a crash or a redelivery interrupted come out right (each case was
found by make chaos): the month charged is the one first charged, a released charge is
charged again, a charge cut short between its two writes is finished before the offer is
decided again, and a customer's charge decided again replaces the first."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import pytest
from pymongo import AsyncMongoClient

from services.compensation.limits import Limits
from tests.support.infra import Infra
from tests.support.isolated import Isolated
from tests.support.system import FakeClock

TRIAGED_AT = datetime(2026, 11, 30, 23, 58, tzinfo=UTC)  # the last minutes of November


def triaged(case: str, customer: str) -> bytes:
    data = {"case_number": case, "category": "delivery", "urgency": "urgent", "reasons": ["t"],
            "first_response_due": TRIAGED_AT.isoformat(), "resolution_due": TRIAGED_AT.isoformat(),
            "escalated": False, "escalation_reasons": [], "policy_version": "test",
            "channel": "app", "customer_id": customer, "language": "en", "revision": 1}  # fmt: skip
    return json.dumps({"specversion": "1.0", "id": f"t-{case}", "source": "/tests",
                       "type": "complaint.case.triaged", "time": TRIAGED_AT.isoformat(),
                       "subject": case, "data": data}).encode()  # fmt: skip


@pytest.mark.timeout(120)
async def test_a_redelivered_triage_in_the_next_month_does_not_charge_twice(
    infra: Infra, namespace: str
) -> None:
    clock = FakeClock(TRIAGED_AT + timedelta(minutes=5))  # handled again in December
    async with Isolated(infra, namespace, clock, ("compensation",)) as p:
        case, customer = f"CS20261130-9{uuid.uuid4().int % 1000:03d}", f"C-m{uuid.uuid4().hex[:6]}"
        offer_id = f"{case}-O1"
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            infra.mongodb_uri, tz_aware=True
        )
        db = client[f"{p.namespace}_compensation"]
        try:
            # The first attempt, in November: the goodwill reserved, then the process died
            # before the offer was stored (its record is redelivered).
            limits = Limits(db)
            assert await limits.charge_budget("delivery:2026-11", offer_id, Decimal(300), None)
            assert await limits.charge_customer(customer, offer_id, Decimal(300), None,
                                                TRIAGED_AT, timedelta(days=90))  # fmt: skip
            await p.send("cases.triaged", triaged(case, customer), key=case)
            (proposed,) = await p.reader.wait_for(
                lambda s: (
                    s.type == "complaint.compensation.proposed" and s.data["case_number"] == case
                )
            )
            coupon = max(Decimal(o["value"]["amount"]) for o in proposed.data["options"]
                         if o["kind"] == "coupon")  # fmt: skip
            # One charge, in November, of what the offer says (December charged nothing).
            charge = await db["budget_charges"].find_one({"_id": offer_id})
            assert charge is not None
            assert (charge["budget"], charge["cents"]) == ("delivery:2026-11", int(coupon * 100))
            months = {doc["_id"]: doc["spent_cents"] async for doc in db["budgets"].find(
                {"_id": {"$in": ["delivery:2026-11", "delivery:2026-12"]}})}  # fmt: skip
            assert months.get("delivery:2026-11") == int(coupon * 100), months
            assert months.get("delivery:2026-12", 0) == 0, months
        finally:
            await client.close()


@pytest.mark.timeout(60)
async def test_a_charge_released_and_decided_again_is_charged_again(infra: Infra) -> None:
    """The customer's cap refused an offer after its budget was charged: the budget charge is
    released and the offer decided again; the new charge must count (found by make chaos:
    the released charge document made the second charge look like a redelivery, so the
    month's budget held 0 for an offer the customer's cap held 400 for)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_uri, tz_aware=True)
    db = client[f"released{uuid.uuid4().hex[:8]}_compensation"]
    try:
        limits, offer_id, month = Limits(db), "CS20261202-0001-O1", "billing:2026-12"
        assert await limits.charge_budget(month, offer_id, Decimal(500), Decimal(10_000))
        await limits.release_budget(month, offer_id)
        assert await limits.charge_budget(month, offer_id, Decimal(400), Decimal(10_000))
        assert await limits.charge_budget(month, offer_id, Decimal(400), Decimal(10_000))  # again
        charge = await db["budget_charges"].find_one({"_id": offer_id})
        assert charge is not None and charge["cents"] == 40_000
        budget = await db["budgets"].find_one({"_id": month})
        assert budget is not None and (budget["spent_cents"], budget["pending"]) == (40_000, [])
    finally:
        await client.drop_database(db.name)
        await client.close()


class KilledBeforeWriting:
    """The ``budget_charges`` collection of a process killed (kill -9) before its next write
    reached the store: reads work, the write never happens."""

    def __init__(self, collection: Any) -> None:
        self.collection = collection

    async def find_one(self, *args: Any, **kwargs: Any) -> Any:
        return await self.collection.find_one(*args, **kwargs)

    async def update_one(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("killed before writing the charge document")


class CrashAfterCounting(Limits):
    """A process that dies once an operation is counted in the month's total, before its
    charge document records it."""

    def __init__(self, db: Any) -> None:
        super().__init__(db)
        self.budget_charges = cast(Any, KilledBeforeWriting(self.budget_charges))


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("redecided", "charged"),
    [("the same offer", 50_000), ("a smaller offer", 30_000), ("an approval instead", 0)],
)
async def test_a_charge_cut_short_by_a_crash_is_finished_before_the_offer_is_decided_again(
    infra: Infra, redecided: str, charged: int
) -> None:
    """Found by make chaos (seeds 1601, 1602): the month's total counted an offer whose
    process died before its charge document was written; the redelivered offer saw its own
    uncounted charge as spent, was decided differently and left the total 200 above what
    the offers charged, with the operation pending for ever."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_uri, tz_aware=True)
    db = client[f"cut{uuid.uuid4().hex[:8]}_compensation"]
    try:
        offer_id, month, budget = "CS20261203-0001-O1", "technical:2026-12", Decimal(10_000)
        with pytest.raises(ConnectionError):
            await CrashAfterCounting(db).charge_budget(month, offer_id, Decimal(500), budget)
        limits = Limits(db)  # the restarted process
        # What the redelivered decision reads: nothing spent but this offer's own charge.
        assert await limits.budget_spent(month, offer_id) == 0
        if redecided == "the same offer":
            assert await limits.charge_budget(month, offer_id, Decimal(500), budget)
        elif redecided == "a smaller offer":
            assert await limits.charge_budget(month, offer_id, Decimal(300), budget)
        else:
            await limits.release_budget(month, offer_id)
        charge = await db["budget_charges"].find_one({"_id": offer_id})
        assert charge is not None and charge["cents"] == charged
        total = await db["budgets"].find_one({"_id": month})
        assert total is not None and (total["spent_cents"], total["pending"]) == (charged, [])
    finally:
        await client.drop_database(db.name)
        await client.close()


@pytest.mark.timeout(60)
async def test_a_customer_charge_decided_again_at_another_amount_replaces_the_first(
    infra: Infra,
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_uri, tz_aware=True)
    db = client[f"cust{uuid.uuid4().hex[:8]}_compensation"]
    try:
        limits, now, window = Limits(db), TRIAGED_AT, timedelta(days=90)
        other = ("C-1", "CS20261130-0002-O1", Decimal(100), Decimal(800), now, window)
        assert await limits.charge_customer(*other)
        assert await limits.charge_customer("C-1", "CS20261130-0001-O1", Decimal(500),
                                            Decimal(800), now, window)  # fmt: skip
        # Decided again after a crash: 600 replaces its own 500 (fits beside 100); 750 does not
        assert await limits.charge_customer("C-1", "CS20261130-0001-O1", Decimal(600),
                                            Decimal(800), now, window)  # fmt: skip
        assert not await limits.charge_customer("C-1", "CS20261130-0001-O1", Decimal(750),
                                                Decimal(800), now, window)  # fmt: skip
        doc = await db["goodwill"].find_one({"_id": "C-1"})
        assert doc is not None
        assert sorted((c["offer_id"], c["cents"]) for c in doc["charges"]) == [
            ("CS20261130-0001-O1", 60_000), ("CS20261130-0002-O1", 10_000)
        ]  # fmt: skip
    finally:
        await client.drop_database(db.name)
        await client.close()
