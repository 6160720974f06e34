"""Two compensation instances racing on one customer and one budget never overspend."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from services.policy.model import DEFAULT_POLICY_FILE
from tests.support.infra import Infra
from tests.support.isolated import Isolated
from tests.support.system import FakeClock

from .test_compensation_lifecycle import triaged
from .test_followup_loop import T0

PER_RACE = 30
OUTCOMES = ("complaint.compensation.proposed", "complaint.compensation.approval_requested")


def goodwill(offer: Any) -> Decimal:
    values = [Decimal(o["value"]["amount"]) for o in offer.data["options"] if o["kind"] == "coupon"]
    return max(values, default=Decimal(0))


@pytest.mark.timeout(300)
async def test_two_instances_never_overspend_a_cap_or_a_budget(
    infra: Infra, namespace: str, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(DEFAULT_POLICY_FILE.read_text(encoding="utf-8").replace(
        'technical = "10000"', 'technical = "1000"'), encoding="utf-8")  # fmt: skip
    async with Isolated(
        infra, namespace, FakeClock(T0), ("compensation",), policy_file=policy
    ) as p:
        await p.start(("compensation",))  # the second instance
        cases = []
        for n in range(PER_RACE):  # one customer, cap 2,000, coupon 300 each (urgent)
            cases.append((f"CS20261123-7{n:03d}", "delivery", "C-race"))
        for n in range(PER_RACE):  # many customers, technical budget 1,000 this month
            cases.append((f"CS20261123-8{n:03d}", "technical", f"C-budget-{n}"))
        for case, category, customer in cases:
            await p.send("cases.triaged", triaged(case, customer, category=category), key=case)
        outcomes = await p.reader.wait_for(
            lambda s: s.type in OUTCOMES, count=len(cases), timeout=240
        )

        by_case: dict[str, list[Any]] = {}
        for seen in outcomes:
            by_case.setdefault(seen.data["case_number"], []).append(seen)
        assert sorted(by_case) == sorted(case for case, _, _ in cases)
        assert all(len(items) == 1 for items in by_case.values()), "one outcome per case"

        proposed = [s for s in outcomes if s.type == OUTCOMES[0]]
        customer_spend = sum(
            goodwill(s) for s in proposed if s.data["case_number"].startswith("CS20261123-7")
        )
        budget_spend = sum(
            goodwill(s) for s in proposed if s.data["case_number"].startswith("CS20261123-8")
        )
        assert customer_spend <= Decimal(2000)
        assert budget_spend <= Decimal(1000)
        assert customer_spend >= Decimal(2000) - Decimal(300)  # the cap was used, not just avoided
        assert budget_spend >= Decimal(1000) - Decimal(300)

        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_uri)
        db = client[f"{p.namespace}_compensation"]
        charges = (await db["goodwill"].find_one({"_id": "C-race"}) or {}).get("charges", [])
        assert sum(c["cents"] for c in charges) == int(customer_spend * 100)
        month = (await db["budgets"].find_one({"_id": {"$regex": "^technical:"}})) or {}
        assert month.get("spent_cents") == int(budget_spend * 100)
        async for case in db["cases"].find({"offers": {"$exists": True}}):
            live = [
                o
                for o in case["offers"].values()
                if o["status"] in ("proposed", "pending_approval")
            ]
            assert len(live) <= 1, case["_id"]
        await client.close()
        print(
            f"customer goodwill {customer_spend} of 2000, technical budget {budget_spend} of 1000"
        )
