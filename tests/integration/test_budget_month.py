"""An offer decided again after a crash charges the budget month it was first charged to
(found by make chaos: a reservation made just before the store died stayed in November
while the redelivered triage, handled in December, charged December too)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

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
