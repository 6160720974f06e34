"""Approvals nobody decides, through Kafka with an injected clock: a reminder at 4 h, the
manager at 12 h, the manager's reminder 4 h later and the expiry 24 h after that, with
the fallback cut to the system's authority and a notice to the customer; never a minute
early, and nothing for an approval that was decided."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.support.infra import Infra
from tests.support.isolated import Isolated
from tests.support.system import FakeClock

from .test_compensation_lifecycle import PROPOSED, pipeline, triaged
from .test_followup_loop import T0, action, one

REQUESTED = "complaint.compensation.approval_requested"
EXPIRED = "complaint.compensation.expired"
MINUTE = timedelta(minutes=1)


def requests(p: Isolated, case: str) -> list[dict[str, Any]]:
    return [s.data for s in p.reader.of_case(case, REQUESTED)]


@pytest.mark.timeout(240)
async def test_a_pending_approval_is_reminded_moved_up_and_expires_at_the_policys_hours(
    infra: Infra, namespace: str, tmp_path: Path
) -> None:
    clock = FakeClock(T0)
    # Above 200 the system asks a supervisor: every urgent coupon (300) needs approval.
    async with pipeline(infra, namespace, clock, tmp_path, authority="200") as (p, store):
        # `pacer` is asked a minute before `case`: each of its steps proves the loop ran at
        # that moment, when the same step of `case` is one minute early.
        pacer, case, decided = "CS20261123-7001", "CS20261123-7002", "CS20261123-7003"
        for number in (pacer, decided):
            await p.send("cases.triaged", triaged(number, f"C-{number}"), key=number)
            await p.reader.wait_for(one(p, number, REQUESTED))
        clock.advance(MINUTE)
        await p.send("cases.triaged", triaged(case, f"C-{case}", language="zh-Hant"), key=case)
        (asked,) = await p.reader.wait_for(one(p, case, REQUESTED))
        assert asked.data["approver_role"] == "supervisor" and asked.data.get("reminder") is None
        approve = action(decided, "approve_compensation", clock.now, offer_id=f"{decided}-O1")
        await p.send("cases.actions", approve, key=decided)
        await p.reader.wait_for(one(p, decided, PROPOSED))

        async def step_at(moment: datetime, event_type: str, **match: Any) -> None:
            """At ``moment`` the pacer takes the step and ``case`` does not; a minute later
            ``case`` takes it too."""
            clock.now = moment
            await p.reader.wait_for(one(p, pacer, event_type, **match))
            assert not p.reader.matching(one(p, case, event_type, **match)), "a minute early"
            clock.advance(MINUTE)
            await p.reader.wait_for(one(p, case, event_type, **match))

        await step_at(T0 + timedelta(hours=4), REQUESTED, reminder=1)
        await step_at(T0 + timedelta(hours=12), REQUESTED, approver_role="manager")
        await step_at(T0 + timedelta(hours=16), REQUESTED, reminder=2)
        assert [(r["approver_role"], r.get("reminder"), r.get("escalated_from"))
                for r in requests(p, case)] == [
            ("supervisor", None, None), ("supervisor", 1, None), ("manager", None, "supervisor"),
            ("manager", 2, None),
        ]  # fmt: skip
        assert {r["offer_id"] for r in requests(p, case)} == {f"{case}-O1"}

        await step_at(T0 + timedelta(hours=36), EXPIRED)
        (expired,) = p.reader.of_case(case, EXPIRED)
        fallback = expired.data["fallback"]
        # The 300 coupon was never approved: what the customer gets stays inside the 200
        # the system may give on its own.
        assert fallback["kind"] == "coupon" and Decimal(fallback["value"]["amount"]) == 200
        (notice,) = await p.reader.wait_for(
            lambda s: s.type == "complaint.notification.requested"
            and s.data["case_number"] == case
            and s.data["template"] == "compensation_approval_expired.zh-Hant"
        )  # fmt: skip
        assert case in notice.data["body"] and "購物金 TWD 200" in notice.data["body"]

        # The decided approval was never chased; the expired ones are charged what they give.
        assert requests(p, decided)[1:] == []
        assert await store.budget_cents("delivery") == 300_00 + 2 * 200_00
        ledger = await store.db["ledger"].find_one({"_id": f"{case}-O1"})
        assert ledger is not None and ledger["how"] == "expired" and ledger["cents"] == 200_00
        history = (await store.case(case))["offers"][f"{case}-O1"]["history"]
        assert [step["what"] for step in history] == [
            "created", "reminded", "escalated", "reminded", "expired"
        ]  # fmt: skip
        document = await store.case(case)
        assert document["approval_due_at"] is None and "unsettled" not in document
