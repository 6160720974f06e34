"""One truthful story per case, through Kafka with an injected clock: an acceptance and a
resolve published together give one resolved record that carries the acceptance, in
whichever order they reach the follow-up service; a resolve pressed twice is one
resolution; a check that will not happen is announced, and only then."""

from __future__ import annotations

import base64
import json
import uuid
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from services.policy import load_policy
from tests.support.infra import Infra
from tests.support.isolated import FAST, Isolated
from tests.support.kafka import Seen
from tests.support.metrics import metric
from tests.support.system import FakeClock, start_services
from tests.support.wait import eventually

from .test_compensation_lifecycle import DLQ, PROPOSED, option, triaged
from .test_followup_loop import T0, action, one

RESOLVED = "complaint.case.resolved"
SCHEDULED = "complaint.followup.scheduled"
CANCELLED = "complaint.followup.cancelled"
# Every banned phrase of the bundled policy, as the services check them (case-folded).
BANNED = tuple(phrase.casefold() for phrase in load_policy().replies.banned_phrases)


def opened(case: str, customer: str) -> bytes:
    data = {"case_number": case, "channel": "app", "customer_id": customer, "language": "en",
            "received_at": T0.isoformat(), "subject": "refund", "text": "still no refund",
            "source_ref": f"app-{case}"}  # fmt: skip
    return json.dumps({"specversion": "1.0", "id": f"o-{case}", "source": "/tests",
                       "type": "complaint.case.opened", "time": T0.isoformat(), "subject": case,
                       "datacontenttype": "application/json", "data": data}).encode()  # fmt: skip


def resolve(case: str, **at: Any) -> bytes:
    return action(case, "resolve", T0 + timedelta(**at) if at else T0,
                  resolution={"summary": "refunded", "root_cause": "one_off"})  # fmt: skip


async def open_case(p: Isolated, case: str, customer: str, **triage: Any) -> None:
    await p.send("cases.opened", opened(case, customer), key=case)
    await p.send("cases.triaged", triaged(case, customer, **triage), key=case)


async def handled(p: Isolated, case: str) -> None:
    """Send an action only the follow-up service refuses, and wait for its dead letter: the
    case's earlier actions (same key, same lane) have all been handled by then."""
    marker = action(case, "no_such_action", T0)
    marker_id = json.loads(marker)["action_id"].encode()
    await p.send("cases.actions", marker, key=case)
    await p.reader.wait_for(
        lambda s: s.type == DLQ and marker_id in base64.b64decode(s.data.get("original", ""))
    )


def the_one(p: Isolated, case: str, event_type: str) -> Seen:
    (found,) = p.reader.of_case(case, event_type)
    return found


@pytest.mark.timeout(240)
async def test_accept_and_resolve_together_give_one_resolution_carrying_the_acceptance(
    infra: Infra, namespace: str
) -> None:
    clock = FakeClock(T0)
    refund_case = {"category": "refund", "urgency": "high",
                   "order_value": {"amount": "1290.00", "currency": "TWD"}}  # fmt: skip
    async with Isolated(infra, namespace, clock, ("followup",)) as p, AsyncExitStack() as outer:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_uri)
        outer.push_async_callback(client.close)
        followup_cases = client[f"{p.namespace}_followup"]["cases"]

        async def start_compensation() -> AsyncExitStack:
            stack = AsyncExitStack()
            await start_services(stack, infra, p.namespace, clock, ("compensation",),
                                 topic_prefix=p.prefix, **FAST)  # fmt: skip
            return stack

        compensation = await start_compensation()

        async def stop_compensation() -> None:  # the instance running at the end
            await compensation.aclose()

        outer.push_async_callback(stop_compensation)
        first, second, later = "CS20261123-6001", "CS20261123-6002", "CS20261123-6003"
        proposals = {}
        for case in (first, second, later):
            await open_case(p, case, f"C-{case}", **refund_case)
            (proposals[case],) = await p.reader.wait_for(one(p, case, PROPOSED))
        refunds = {case: option(proposals[case], "refund") for case in (first, second, later)}

        def accept(case: str) -> bytes:
            return action(case, "accept_offer", T0, offer_id=proposals[case].data["offer_id"],
                          option_id=refunds[case]["option_id"])  # fmt: skip

        # 1. The acceptance reaches follow-up first: compensation's event is stored there
        #    before the resolve is published.
        await p.send("cases.actions", accept(first), key=first)

        async def acceptance_stored() -> bool:
            case = await followup_cases.find_one({"_id": first}) or {}
            return (case.get("compensation") or {}).get("option_id") == refunds[first]["option_id"]

        await eventually(acceptance_stored, 30, "follow-up to store the acceptance")
        await p.send("cases.actions", resolve(first), key=first)

        # 2. The resolve reaches follow-up first: both published back to back while
        #    compensation is down; follow-up holds the resolve until the outcome arrives.
        await compensation.aclose()
        waits = {"service": "followup", "topic": p.prefix + "cases.actions", "error": "retry_later"}
        before = await metric(p.apps["followup"], "complaints_redeliveries_total", **waits)
        await p.send("cases.actions", accept(second), key=second)
        await p.send("cases.actions", resolve(second), key=second)

        async def resolve_waiting() -> bool:
            after = await metric(p.apps["followup"], "complaints_redeliveries_total", **waits)
            return after > before

        await eventually(resolve_waiting, 30, "follow-up to hold the resolve back")
        assert not p.reader.of_case(second, RESOLVED)
        compensation = await start_compensation()

        for case in (first, second):
            (resolved,) = await p.reader.wait_for(one(p, case, RESOLVED))
            compensation_given = resolved.data["compensation"]
            assert compensation_given["option_id"] == refunds[case]["option_id"]
            assert compensation_given["kind"] == "refund"
            assert compensation_given["value"] == {"amount": "1290.00", "currency": "TWD"}
            assert resolved.data["revision"] == 1
            # Known as a refund when resolved: the check waits the refund's 7 days.
            (scheduled,) = await p.reader.wait_for(one(p, case, SCHEDULED))
            assert scheduled.data["due_at"] == "2026-11-30T10:00:00+08:00"
            await handled(p, case)
            assert the_one(p, case, RESOLVED).event["id"] == resolved.event["id"]

        # The customer hears back: what they chose, what happens next and by when.
        for case in (first, second):
            (notice,) = await p.reader.wait_for(
                lambda s, c=case: s.type == "complaint.notification.requested"
                and s.data["case_number"] == c and s.data["template"] == "compensation_accepted.en"
            )  # fmt: skip
            body = notice.data["body"]
            assert "Refund of TWD 1,290" in body and "by 2026-12-03" in body, body
            assert notice.data["channel"] == "app" and notice.data["recipient"] == f"C-{case}"
            assert not [phrase for phrase in BANNED if phrase in body.casefold()]

        # 3. An outcome after the resolution: resolved with nothing accepted, then the offer
        #    expires with its fallback. The record is published again, revised.
        await p.send("cases.actions", resolve(later), key=later)
        (unrevised,) = await p.reader.wait_for(one(p, later, RESOLVED))
        assert unrevised.data["compensation"] is None and unrevised.data["revision"] == 1
        clock.advance(timedelta(hours=72, minutes=1))
        (expired,) = await p.reader.wait_for(one(p, later, "complaint.compensation.expired"))
        (revised,) = await p.reader.wait_for(one(p, later, RESOLVED, revision=2))
        assert revised.event["id"] != unrevised.event["id"]
        assert revised.data["compensation"] == {
            "case_number": later, "offer_id": expired.data["offer_id"], "granted_on_expiry": True,
            **expired.data["fallback"],
        }  # fmt: skip
        same = {k: v for k, v in unrevised.data.items() if k not in {"compensation", "revision"}}
        assert {k: revised.data[k] for k in same} == same
        await handled(p, later)
        assert len(p.reader.of_case(later, RESOLVED)) == 2
        assert len(p.reader.of_case(later, SCHEDULED)) == 1


@pytest.mark.timeout(240)
async def test_one_resolution_per_resolve_and_every_dropped_check_announced(
    infra: Infra, namespace: str
) -> None:
    clock = FakeClock(T0)
    async with Isolated(infra, namespace, clock, ("followup",)) as p:
        twice, reopened, opted_out, opted_out_later = (f"CS20261123-61{n:02d}" for n in range(1, 5))
        out = f"C-out-{uuid.uuid4().hex[:6]}"
        for case, customer in ((twice, "C-twice"), (reopened, "C-reopen"), (opted_out, out),
                               (opted_out_later, out)):  # fmt: skip
            await open_case(p, case, customer, urgency="normal")

        # Resolve, then "resolve" again five minutes later (a new action id), and that
        # second one redelivered: one resolution, one check, one ignored action.
        await p.send("cases.actions", resolve(twice), key=twice)
        await p.reader.wait_for(one(p, twice, RESOLVED))
        again = resolve(twice, minutes=5)
        await p.send("cases.actions", again, key=twice)
        await p.send("cases.actions", again, key=twice)
        await handled(p, twice)
        assert len(p.reader.of_case(twice, RESOLVED)) == 1
        assert len(p.reader.of_case(twice, SCHEDULED)) == 1
        ignored = {"type": "resolve", "reason": "already_resolved"}
        assert await metric(p.apps["followup"], "complaints_actions_ignored_total", **ignored) == 1

        # Resolve, the check goes out, a score of 1 reopens, resolve again: two resolutions,
        # two checks, and nothing cancelled (the first check happened).
        await p.send("cases.actions", resolve(reopened), key=reopened)
        (first_check,) = await p.reader.wait_for(one(p, reopened, SCHEDULED))
        clock.advance(timedelta(days=3, minutes=1))
        await p.reader.wait_for(one(p, reopened, "complaint.followup.sent"))
        await p.send("cases.actions", action(reopened, "survey_response", clock.now, score=1),
                     key=reopened)  # fmt: skip
        await p.reader.wait_for(one(p, reopened, "complaint.case.reopened"))
        await p.send("cases.actions", resolve(reopened, days=3, hours=2), key=reopened)
        resolutions = await p.reader.wait_for(one(p, reopened, RESOLVED), count=2)
        checks = await p.reader.wait_for(one(p, reopened, SCHEDULED), count=2)
        assert len({r.event["id"] for r in resolutions}) == 2
        assert checks[1].data["followup_id"] != first_check.data["followup_id"]

        # A check scheduled, then the customer opts out: that check is cancelled, announced.
        await p.send("cases.actions", resolve(opted_out, days=3), key=opted_out)
        (dropped,) = await p.reader.wait_for(one(p, opted_out, SCHEDULED))
        profile = {"customer_id": out, "followup_opt_out": True}
        await p.send("customers.profiles", json.dumps(profile).encode(), key=out)
        (cancelled,) = await p.reader.wait_for(one(p, opted_out, CANCELLED))
        assert cancelled.data == {"case_number": opted_out, "reason": "customer opted out",
                                  "followup_id": dropped.data["followup_id"]}  # fmt: skip
        # Resolved after the opt-out: the check is announced and withdrawn with it.
        await p.send("cases.actions", resolve(opted_out_later, days=3), key=opted_out_later)
        (withdrawn,) = await p.reader.wait_for(one(p, opted_out_later, CANCELLED))
        assert (
            withdrawn.data["followup_id"]
            == the_one(p, opted_out_later, SCHEDULED).data["followup_id"]
        )

        clock.advance(timedelta(days=8))  # past every check that is still on
        await p.reader.wait_for(one(p, reopened, "complaint.followup.sent"), count=2)
        for case in (twice, reopened, opted_out, opted_out_later):
            await handled(p, case)
        assert not p.reader.of_case(twice, CANCELLED) and not p.reader.of_case(reopened, CANCELLED)
        assert len(p.reader.of_case(opted_out, CANCELLED)) == 1
        assert len(p.reader.of_case(opted_out_later, CANCELLED)) == 1
        sent = {s.data["followup_id"] for s in p.reader.matching(
            lambda s: s.type == "complaint.followup.sent")}  # fmt: skip
        assert dropped.data["followup_id"] not in sent
        assert withdrawn.data["followup_id"] not in sent


def accepted_event(case: str, offer_id: str, option_id: str) -> bytes:
    data = {"case_number": case, "offer_id": offer_id, "option_id": option_id, "kind": "coupon",
            "value": {"amount": "100.00", "currency": "TWD"}, "description": "Store credit"}  # fmt: skip
    return json.dumps({"specversion": "1.0", "id": f"a-{case}", "source": "/tests",
                       "type": "complaint.compensation.accepted", "time": T0.isoformat(),
                       "subject": case, "datacontenttype": "application/json",
                       "data": data}).encode()  # fmt: skip


@pytest.mark.timeout(120)
async def test_a_resolve_waits_a_bounded_time_and_a_late_acceptance_revises_the_record(
    infra: Infra, namespace: str
) -> None:
    clock = FakeClock(T0)
    # Compensation plays no part here: its acceptance comes late, or never.
    async with Isolated(infra, namespace, clock, ("followup",), acceptance_wait_seconds=1) as p:
        case = "CS20261123-6201"
        await open_case(p, case, "C-late")
        accept = action(case, "accept_offer", T0, offer_id=f"{case}-O1", option_id=f"{case}-O1-2")
        await p.send("cases.actions", accept, key=case)
        await p.send("cases.actions", resolve(case), key=case)
        (first,) = await p.reader.wait_for(one(p, case, RESOLVED))
        assert first.data["compensation"] is None and first.data["revision"] == 1

        await p.send("cases.compensation", accepted_event(case, f"{case}-O1", f"{case}-O1-2"),
                     key=case)  # fmt: skip
        (revised,) = await p.reader.wait_for(one(p, case, RESOLVED, revision=2))
        assert revised.data["compensation"]["option_id"] == f"{case}-O1-2"
        assert revised.data["resolved_at"] == first.data["resolved_at"]
        assert revised.event["id"] != first.event["id"]
        # The same outcome again (a redelivery) changes nothing.
        await p.send("cases.compensation", accepted_event(case, f"{case}-O1", f"{case}-O1-2"),
                     key=case)  # fmt: skip
        await p.send("cases.actions", resolve(case, minutes=1), key=case)  # ignored
        await handled(p, case)
        # Bytes follow-up refuses, on the same key: the redelivered outcome came before them.
        marker = f"not an event {uuid.uuid4().hex}".encode()
        await p.send("cases.compensation", marker, key=case)
        await p.reader.wait_for(lambda s: s.type == DLQ and base64.b64decode(
            s.data.get("original", "")) == marker)  # fmt: skip
        ignored = {"type": "resolve", "reason": "already_resolved"}

        async def counted() -> bool:
            return (
                await metric(p.apps["followup"], "complaints_actions_ignored_total", **ignored) == 1
            )

        await eventually(counted, 10, "the second resolve to be ignored")
        assert [s.data["revision"] for s in p.reader.of_case(case, RESOLVED)] == [1, 2]
