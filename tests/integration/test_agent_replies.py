"""Agents' replies through Kafka with an injected clock: the first one stops the
first-response clock; one that breaks the house rules is flagged, a clean one is not,
and neither is ever held back."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.support.infra import Infra
from tests.support.metrics import metric
from tests.support.system import FakeClock

from .test_deadline_watch import T0, Isolated, action, opened_event

FLAGGED = "complaint.reply.flagged"


@pytest.mark.timeout(120)
async def test_a_flagged_reply_and_a_clean_one(infra: Infra, namespace: str) -> None:
    async with Isolated(infra, namespace, FakeClock(T0)) as p:
        rude, polite, silent = "CS20261123-8001", "CS20261123-8002", "CS20261123-8003"
        for case in (rude, polite, silent):
            await p.send("cases.opened", opened_event(case, "email", "包裹延遲", T0), case)
            await p.reader.wait_for(lambda s, c=case: s.type == "complaint.case.triaged"
                                    and s.data["case_number"] == c)  # fmt: skip

        rude_reply = action(rude, "reply", T0 + timedelta(hours=1), text="您應該先看說明書。",
                            first=True)  # fmt: skip
        await p.send("cases.actions", rude_reply, rude)
        clean = ("您好，謝謝您的來信，包裹延遲造成不便，非常抱歉。"
                 "我們會請物流今天重新派送，明天 18:00 前告訴您結果。")  # fmt: skip
        await p.send("cases.actions", action(polite, "reply", T0 + timedelta(hours=2), text=clean),
                     polite)  # fmt: skip
        # Later replies on the same case are held to the banned phrases only: a clean one,
        # then one that is not (and, flagged, shows the earlier ones were checked).
        for text in ("已經幫您確認，包裹明天到。", "請冷靜，我已經說過了。"):
            later = action(polite, "reply", T0 + timedelta(hours=3), text=text)
            await p.send("cases.actions", later, polite)

        (flagged,) = await p.reader.wait_for(
            lambda s: s.type == FLAGGED and s.data["case_number"] == rude
        )
        assert flagged.data["action_id"] == json.loads(rude_reply)["action_id"]
        assert flagged.data["problem_codes"] == [
            "banned_phrase", "no_thanks", "no_apology", "no_next_step", "no_time"
        ]  # fmt: skip
        assert any("您應該" in problem for problem in flagged.data["problems"])
        assert flagged.data["first"] is True and flagged.topic.endswith("cases.triaged")

        # Advisory: both replies stopped the first-response clock (email: due in 24 h).
        await p.clock_stopped(rude, "first_response")
        await p.clock_stopped(polite, "first_response")
        p.clock.advance(timedelta(hours=24, minutes=1))
        await p.wait_warning(silent, "first_response", "breached")
        assert ("first_response", "breached") not in p.warnings(rude)
        assert ("first_response", "breached") not in p.warnings(polite)
        (impatient,) = await p.reader.wait_for(
            lambda s: s.type == FLAGGED and s.data["case_number"] == polite
        )
        assert impatient.data["action_id"] == json.loads(later)["action_id"]
        assert impatient.data["problem_codes"] == ["banned_phrase", "banned_phrase"]
        assert impatient.data["first"] is False
        assert len(p.reader.of_case(rude, FLAGGED)) == 1
        triage = p.apps["triage"]
        counted = {"banned_phrase": 3, "no_thanks": 1, "no_apology": 1, "no_next_step": 1,
                   "no_time": 1}  # fmt: skip
        for code, count in counted.items():
            assert await metric(triage, "complaints_replies_flagged_total", problem=code) == count
