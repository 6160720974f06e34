"""Offers through Kafka with an injected clock: acceptance, approval, rejection, expiry
and a reopened case, each checked in the outbound events and in the limits' store."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from services.policy.model import DEFAULT_POLICY_FILE
from tests.support.infra import Infra
from tests.support.isolated import Isolated
from tests.support.system import FakeClock

from .test_followup_loop import T0, action, one

PROPOSED = "complaint.compensation.proposed"
DLQ = "complaint.input.rejected"


def triaged(case: str, customer: str, category: str = "delivery", urgency: str = "urgent",
            **extra: Any) -> bytes:  # fmt: skip
    data = {"case_number": case, "category": category, "urgency": urgency, "reasons": ["test"],
            "first_response_due": T0.isoformat(), "resolution_due": T0.isoformat(),
            "escalated": False, "escalation_reasons": [], "policy_version": "test",
            "channel": "app", "customer_id": customer, "language": "en", "revision": 1,
            **extra}  # fmt: skip
    return json.dumps({"specversion": "1.0", "id": f"t-{case}-{uuid.uuid4().hex[:6]}",
                       "source": "/tests", "type": "complaint.case.triaged",
                       "time": T0.isoformat(), "subject": case,
                       "datacontenttype": "application/json", "data": data}).encode()  # fmt: skip


def reopened(case: str, at: datetime) -> bytes:
    return json.dumps({"specversion": "1.0", "id": f"r-{case}", "source": "/tests",
                       "type": "complaint.case.reopened", "time": at.isoformat(),
                       "subject": case, "datacontenttype": "application/json",
                       "data": {"case_number": case, "reason": "score 1"}}).encode()  # fmt: skip


def option(proposed: Any, kind: str) -> dict[str, Any]:
    return next(o for o in proposed.data["options"] if o["kind"] == kind)


class Store:
    """The compensation service's own records, read back to check the money."""

    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str) -> None:
        self.db = client[database]

    async def budget_cents(self, category: str) -> int:
        doc = await self.db["budgets"].find_one({"_id": f"{category}:{T0:%Y-%m}"}) or {}
        return int(doc.get("spent_cents", 0))

    async def customer_cents(self, customer: str) -> int:
        doc = await self.db["goodwill"].find_one({"_id": customer}) or {}
        return sum(int(c["cents"]) for c in doc.get("charges", []))

    async def case(self, case: str) -> dict[str, Any]:
        return await self.db["cases"].find_one({"_id": case}) or {}


@asynccontextmanager
async def pipeline(
    infra: Infra, namespace: str, clock: FakeClock, tmp_path: Path, authority: str = "500"
) -> AsyncIterator[tuple[Isolated, Store]]:
    policy = tmp_path / "policy.toml"
    policy.write_text(DEFAULT_POLICY_FILE.read_text(encoding="utf-8").replace(
        'system_authority_limit = "500"', f'system_authority_limit = "{authority}"'),
        encoding="utf-8")  # fmt: skip
    async with Isolated(infra, namespace, clock, ("compensation",), policy_file=policy) as p:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_uri)
        try:
            yield p, Store(client, f"{p.namespace}_compensation")
        finally:
            await client.close()


async def settled(p: Isolated, case: str, marker_kind: str = "accept_offer") -> Any:
    """Send an action that must be dead-lettered, and wait for it: every earlier record
    of this case (same key, same partition) has then been handled."""
    marker = action(case, marker_kind, T0, offer_id=f"{case}-O9", option_id="x")
    await p.send("cases.actions", marker, key=case)
    marker_id = json.loads(marker)["action_id"]
    return await p.reader.wait_for(
        lambda s: (
            s.type == DLQ and marker_id.encode() in base64.b64decode(s.data.get("original", ""))
        )
    )


@pytest.mark.timeout(180)
async def test_acceptance_settles_the_reservation_to_the_chosen_option(
    infra: Infra, namespace: str, tmp_path: Path
) -> None:
    clock = FakeClock(T0)
    async with pipeline(infra, namespace, clock, tmp_path) as (p, store):
        coupon_case, shipping_case = "CS20261123-5001", "CS20261123-5002"
        await p.send("cases.triaged", triaged(coupon_case, "C-accept-1"), key=coupon_case)
        await p.send("cases.triaged", triaged(shipping_case, "C-accept-2"), key=shipping_case)
        (first,) = await p.reader.wait_for(one(p, coupon_case, PROPOSED))
        (second,) = await p.reader.wait_for(one(p, shipping_case, PROPOSED))
        assert await store.budget_cents("delivery") == 2 * 300_00  # both reserved

        coupon = option(first, "coupon")
        accept = action(coupon_case, "accept_offer", clock.now, offer_id=first.data["offer_id"],
                        option_id=coupon["option_id"])  # fmt: skip
        await p.send("cases.actions", accept, key=coupon_case)
        await p.send("cases.actions", accept, key=coupon_case)  # redelivered
        shipping = option(second, "shipping_refund")
        await p.send("cases.actions", action(
            shipping_case, "accept_offer", clock.now, offer_id=second.data["offer_id"],
            option_id=shipping["option_id"]), key=shipping_case)  # fmt: skip

        (accepted,) = await p.reader.wait_for(
            one(p, coupon_case, "complaint.compensation.accepted")
        )
        assert accepted.data["option_id"] == coupon["option_id"]
        await p.reader.wait_for(one(p, shipping_case, "complaint.compensation.accepted"))
        await settled(p, coupon_case)
        await settled(p, shipping_case)
        assert len(p.reader.of_case(coupon_case, "complaint.compensation.accepted")) == 1
        # The coupon keeps its 300; the shipping refund gives no goodwill: its 300 goes back.
        assert await store.budget_cents("delivery") == 300_00
        assert await store.customer_cents("C-accept-1") == 300_00
        assert await store.customer_cents("C-accept-2") == 0
        history = (await store.case(coupon_case))["offers"][first.data["offer_id"]]["history"]
        assert [step["what"] for step in history] == ["created", "accepted"]
        assert history[1]["by"] == "agent-7"


@pytest.mark.timeout(180)
async def test_approval_and_rejection_above_the_systems_authority(
    infra: Infra, namespace: str, tmp_path: Path
) -> None:
    clock = FakeClock(T0)
    async with pipeline(infra, namespace, clock, tmp_path, authority="200") as (p, store):
        approved_case, rejected_case = "CS20261123-5101", "CS20261123-5102"
        for case in (approved_case, rejected_case):
            await p.send("cases.triaged", triaged(case, f"C-{case}"), key=case)
        requests = await p.reader.wait_for(
            lambda s: s.type == "complaint.compensation.approval_requested", count=2
        )
        assert {r.data["approver_role"] for r in requests} == {"supervisor"}
        assert all(Decimal(r.data["requested"]["amount"]) == 300 for r in requests)
        assert not p.reader.matching(lambda s: s.type == PROPOSED)  # nothing offered yet
        assert await store.budget_cents("delivery") == 0  # nor reserved

        clock.advance(timedelta(hours=5))
        await p.send("cases.actions", action(approved_case, "approve_compensation", clock.now,
                                             offer_id=f"{approved_case}-O1",
                                             note="long-standing customer"),
                     key=approved_case)  # fmt: skip
        await p.send("cases.actions", action(rejected_case, "reject_compensation", clock.now,
                                             offer_id=f"{rejected_case}-O1", note="too much"),
                     key=rejected_case)  # fmt: skip

        (approved,) = await p.reader.wait_for(one(p, approved_case, PROPOSED))
        assert Decimal(option(approved, "coupon")["value"]["amount"]) == 300
        assert approved.data["expires_at"] == (clock.now + timedelta(hours=72)).isoformat()

        (rejection,) = await p.reader.wait_for(
            one(p, rejected_case, "complaint.compensation.rejected")
        )
        assert rejection.data["alternative_offer_id"] == f"{rejected_case}-O2"
        (alternative,) = await p.reader.wait_for(one(p, rejected_case, PROPOSED))
        assert alternative.data["offer_id"] == f"{rejected_case}-O2"
        assert Decimal(option(alternative, "coupon")["value"]["amount"]) == 200  # capped
        # Approved past the limit: still counted. The alternative: charged like any offer.
        assert await store.budget_cents("delivery") == 300_00 + 200_00
        assert await store.customer_cents(f"C-{rejected_case}") == 200_00
        offers = (await store.case(rejected_case))["offers"]
        assert offers[f"{rejected_case}-O1"]["status"] == "rejected"
        assert offers[f"{rejected_case}-O2"]["status"] == "proposed"

        # Approving a rejected offer is refused, not applied.
        late = action(rejected_case, "approve_compensation", clock.now,
                      offer_id=f"{rejected_case}-O1")  # fmt: skip
        await p.send("cases.actions", late, key=rejected_case)
        (refused,) = await p.reader.wait_for(
            lambda s: s.type == DLQ and "offer_not_pending" in json.dumps(s.data)
        )
        assert refused.data["reason"]


@pytest.mark.timeout(180)
async def test_an_offer_nobody_chose_expires_once_with_the_fallback(
    infra: Infra, namespace: str, tmp_path: Path
) -> None:
    clock = FakeClock(T0)
    async with pipeline(infra, namespace, clock, tmp_path) as (p, store):
        await p.start(("compensation",))  # two instances: one expiry each, not two
        case = "CS20261123-5201"
        await p.send("cases.triaged", triaged(case, "C-expiry"), key=case)
        (proposed,) = await p.reader.wait_for(one(p, case, PROPOSED))
        assert proposed.data["expires_at"] == (T0 + timedelta(hours=72)).isoformat()

        clock.advance(timedelta(hours=71, minutes=59))
        await settled(p, case)
        assert not p.reader.of_case(case, "complaint.compensation.expired")

        clock.advance(timedelta(minutes=2))
        (expired,) = await p.reader.wait_for(one(p, case, "complaint.compensation.expired"))
        assert expired.data["fallback"]["kind"] == "coupon"
        assert Decimal(expired.data["fallback"]["value"]["amount"]) == 300
        notices = await p.reader.wait_for(
            lambda s: (
                s.type == "complaint.notification.requested"
                and s.data.get("template") == "compensation_expired.en"
            )
        )
        assert "Store credit of TWD 300" in notices[0].data["body"]

        late = action(case, "accept_offer", clock.now, offer_id=proposed.data["offer_id"],
                      option_id=option(proposed, "shipping_refund")["option_id"])  # fmt: skip
        await p.send("cases.actions", late, key=case)
        await p.reader.wait_for(lambda s: s.type == DLQ and "offer_not_open" in json.dumps(s.data))
        await settled(p, case)
        assert len(p.reader.of_case(case, "complaint.compensation.expired")) == 1
        assert not p.reader.of_case(case, "complaint.compensation.accepted")
        # The fallback coupon is what the reservation now holds, booked as given.
        assert await store.budget_cents("delivery") == 300_00
        document = await store.case(case)
        assert "unsettled" not in document and document["offer_expires_at"] is None
        ledger = await store.db["ledger"].find_one({"_id": proposed.data["offer_id"]})
        assert ledger is not None and ledger["how"] == "expired" and ledger["cents"] == 300_00


@pytest.mark.timeout(180)
async def test_a_reopened_case_gets_a_new_offer_that_counts_what_was_given(
    infra: Infra, namespace: str, tmp_path: Path
) -> None:
    clock = FakeClock(T0)
    async with pipeline(infra, namespace, clock, tmp_path) as (p, store):
        case = "CS20261123-5301"
        await p.send("cases.triaged", triaged(case, "C-reopen", urgency="normal"), key=case)
        (first,) = await p.reader.wait_for(one(p, case, PROPOSED))
        assert Decimal(option(first, "coupon")["value"]["amount"]) == 100
        await p.send("cases.actions", action(case, "accept_offer", clock.now,
                                             offer_id=first.data["offer_id"],
                                             option_id=option(first, "coupon")["option_id"]),
                     key=case)  # fmt: skip
        await p.reader.wait_for(one(p, case, "complaint.compensation.accepted"))

        clock.advance(timedelta(days=5))
        await p.send("cases.followups", reopened(case, clock.now), key=case)
        await p.send("cases.followups", reopened(case, clock.now), key=case)  # redelivered
        (second,) = await p.reader.wait_for(one(p, case, PROPOSED, offer_id=f"{case}-O2"))
        # Reopened: at least high urgency (200), one tier more (300), less the 100 given.
        assert Decimal(option(second, "coupon")["value"]["amount"]) == 200
        await settled(p, case)
        assert len(p.reader.of_case(case, PROPOSED)) == 2
        offers = (await store.case(case))["offers"]
        assert [o["status"] for _, o in sorted(offers.items())] == ["accepted", "proposed"]
        inputs = offers[f"{case}-O2"]["inputs"]  # what the engine saw, for the audit
        assert inputs["already_given"] == "100" and inputs["reopen_count"] == 1
        assert Decimal(inputs["customer_goodwill_used"]) == 100
        assert Decimal(inputs["category_budget_left"]) == 20000 - 100
        assert await store.customer_cents("C-reopen") == 100_00 + 200_00
        assert sum(1 for o in offers.values() if o["status"] == "proposed") == 1
        assert Decimal(offers[f"{case}-O2"]["requested_goodwill"]) == 200
