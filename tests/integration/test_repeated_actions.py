"""An action seen before is ignored (CONTRACT.md), whatever happened to the case since:
found by the chaos runs (tests/chaos), where the desk double-clicks and crashes redeliver."""

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


def event(event_type: str, case: str, **data: Any) -> bytes:
    return json.dumps({"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/test",
                       "type": event_type, "time": T0.isoformat(), "subject": case,
                       "data": {"case_number": case, **data}}).encode()  # fmt: skip


def action(case: str, kind: str, at: datetime, **extra: Any) -> bytes:
    return json.dumps({"action_id": f"{kind}-{uuid.uuid4().hex}", "case_number": case,
                       "type": kind, "actor": "agent-7", "at": at.isoformat(), **extra}).encode()  # fmt: skip


def of(case: str, kind: str) -> Any:
    return lambda s: s.type == kind and s.data.get("case_number") == case


@pytest.mark.timeout(120)
async def test_a_survey_answer_sent_again_after_it_reopened_the_case_is_ignored(
    infra: Infra, namespace: str
) -> None:
    clock = FakeClock(T0)
    async with Isolated(infra, namespace, clock, ("followup",)) as p:
        case = f"CS20261123-9{uuid.uuid4().int % 1000:03d}"
        await p.send("cases.opened", event("complaint.case.opened", case, channel="app",
                     customer_id=None, language="en", received_at=T0.isoformat(),
                     subject="late", text="late", source_ref=case), key=case)  # fmt: skip
        await p.send("cases.triaged", event("complaint.case.triaged", case, category="delivery",
                     urgency="normal", revision=1), key=case)  # fmt: skip
        resolve = action(case, "resolve", T0, resolution={"summary": "re-shipped"})
        await p.send("cases.actions", resolve, key=case)
        await p.reader.wait_for(of(case, "complaint.followup.scheduled"))
        clock.advance(timedelta(days=4))
        await p.reader.wait_for(of(case, "complaint.followup.sent"))

        unhappy = action(case, "survey_response", clock.now, score=1)
        await p.send("cases.actions", unhappy, key=case)
        await p.reader.wait_for(of(case, "complaint.case.reopened"))
        # The same answer again (a double click, or a redelivery after a crash), then a
        # second resolve behind it on the same key: once that is out, the copy was handled.
        await p.send("cases.actions", unhappy, key=case)
        await p.send("cases.actions", action(case, "resolve", clock.now,
                                             resolution={"summary": "refunded"}), key=case)  # fmt: skip
        await p.reader.wait_for(of(case, "complaint.case.resolved"), count=2)
        rejected = p.reader.matching(lambda s: s.type == "complaint.input.rejected")
        assert rejected == [], [s.data["reason"] for s in rejected]
        assert len(p.reader.matching(of(case, "complaint.followup.answered"))) == 1
        assert len(p.reader.matching(of(case, "complaint.case.reopened"))) == 1
