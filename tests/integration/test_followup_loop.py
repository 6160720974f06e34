"""The whole loop on the real broker and store, days in milliseconds: resolve, check,
an unhappy answer, reopen, re-triage, resolve again, a second check."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.infra import Infra
from tests.support.isolated import Isolated
from tests.support.system import FakeClock

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 in Taipei
ALL = ("intake", "triage", "compensation", "followup")


def action(case: str, kind: str, at: datetime, **extra: Any) -> bytes:
    return json.dumps({"action_id": f"{kind}-{uuid.uuid4().hex}", "case_number": case,
                       "type": kind, "actor": "agent-7", "at": at.isoformat(), **extra}).encode()  # fmt: skip


def one(p: Isolated, case: str, kind: str, **match: Any) -> Any:
    return lambda s: (
        s.type == kind
        and s.data.get("case_number") == case
        and all(s.data.get(k) == v for k, v in match.items())
    )


@pytest.mark.timeout(180)
async def test_unhappy_customer_reopens_and_gets_a_second_check(
    infra: Infra, namespace: str
) -> None:
    clock = FakeClock(T0)
    async with Isolated(infra, namespace, clock, ALL) as p:
        ref = f"loop-{uuid.uuid4().hex[:8]}"
        form = {
            "submission_id": ref,
            "message": "包裹已經延遲五天了",
            "submitted_at": T0.isoformat(),
        }
        await p.send(
            "complaints.inbound.app",
            json.dumps(form).encode(),
            headers={"received-at": T0.isoformat()},
        )
        (opened,) = await p.reader.wait_for(
            lambda s: s.type == "complaint.case.opened" and s.data["source_ref"] == ref
        )
        case = opened.data["case_number"]
        await p.reader.wait_for(one(p, case, "complaint.compensation.proposed"))

        # The agent answered within the app's 15-minute first-response target.
        await p.send(
            "cases.actions", action(case, "first_response", T0 + timedelta(minutes=5)), key=case
        )
        first_resolve = action(case, "resolve", T0 + timedelta(hours=1),
                               resolution={"summary": "re-shipped", "root_cause": "one_off"})  # fmt: skip
        await p.send("cases.actions", first_resolve, key=case)
        (scheduled,) = await p.reader.wait_for(one(p, case, "complaint.followup.scheduled"))
        (resolved,) = await p.reader.wait_for(one(p, case, "complaint.case.resolved"))
        assert resolved.topic.endswith("cases.resolved")
        assert resolved.data["category"] == "delivery" and resolved.data["urgency"] == "normal"
        assert resolved.data["sla_met"] is True
        assert scheduled.data["due_at"] == "2026-11-26T11:00:00+08:00"  # 3 days, inside 09–20
        first_check = scheduled.data["followup_id"]

        clock.advance(timedelta(days=3, hours=1, minutes=1))  # past the due time
        await p.reader.wait_for(one(p, case, "complaint.followup.sent", followup_id=first_check))
        invitation = await p.reader.wait_for(
            lambda s: s.type == "complaint.notification.requested" and s.data.get("case_number") == case
            and s.data["template"].startswith("satisfaction_survey")
        )  # fmt: skip
        assert case in invitation[0].data["body"]
        # The offer expired meanwhile (72 h): the resolved record is revised with its fallback.
        await p.reader.wait_for(one(p, case, "complaint.case.resolved", revision=2))

        await p.send("cases.actions", action(case, "survey_response", clock.now, score=1,
                                             comment="still broken"), key=case)  # fmt: skip
        await p.reader.wait_for(one(p, case, "complaint.followup.answered", score=1))
        (reopened,) = await p.reader.wait_for(one(p, case, "complaint.case.reopened"))
        assert "1" in reopened.data["reason"]
        (retriaged,) = await p.reader.wait_for(one(p, case, "complaint.case.triaged", revision=2))
        assert retriaged.data["urgency"] == "high"
        assert any("reopened" in reason for reason in retriaged.data["reasons"])
        assert datetime.fromisoformat(retriaged.data["first_response_due"]) > clock.now

        second_resolve = action(case, "resolve", clock.now + timedelta(hours=2),
                                resolution={"summary": "refund issued", "root_cause": "systemic"})  # fmt: skip
        await p.send("cases.actions", second_resolve, key=case)
        await p.reader.wait_for(one(p, case, "complaint.case.resolved"), count=2)
        checks = await p.reader.wait_for(one(p, case, "complaint.followup.scheduled"), count=2)
        second_check = checks[1].data["followup_id"]
        assert second_check != first_check

        # The same resolve again, as a redelivery brings it, then an answer behind it on the
        # same key: once the answer is out, the copy has been handled.
        await p.send("cases.actions", second_resolve, key=case)
        await p.send("cases.actions", action(case, "survey_response", clock.now, score=5), key=case)
        await p.reader.wait_for(one(p, case, "complaint.followup.answered", score=5))
        records = p.reader.of_case(case, "complaint.case.resolved")
        assert len({s.event["id"] for s in records}) == len(records)
        # Two resolutions; the first revised once when its offer expired with the fallback
        # three days after it (nothing had been accepted when it was resolved).
        assert [(s.data["resolved_at"], s.data["revision"]) for s in records] == [
            (resolved.data["resolved_at"], 1), (resolved.data["resolved_at"], 2),
            (records[2].data["resolved_at"], 1),
        ]  # fmt: skip
        assert records[1].data["compensation"]["granted_on_expiry"] is True
        assert records[2].data["compensation"] == records[1].data["compensation"]
        assert len(p.reader.of_case(case, "complaint.followup.scheduled")) == 2
        # The reopening brought one new offer (the first had expired meanwhile), no more.
        await p.reader.wait_for(
            one(p, case, "complaint.compensation.proposed", offer_id=f"{case}-O2")
        )
        await p.reader.wait_for(one(p, case, "complaint.compensation.expired"))
        proposals = p.reader.of_case(case, "complaint.compensation.proposed")
        assert [s.data["offer_id"] for s in proposals] == [f"{case}-O1", f"{case}-O2"]
        assert len(p.reader.of_case(case, "complaint.compensation.expired")) == 1
