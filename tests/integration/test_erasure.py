"""The right to erasure on the real broker and store: a customer with an e-mail case (and
a reply), a social case, an app case (accepted offer, resolution, an unhappy survey
comment that reopened it) and a mail from an address only the request names; after
``erase_customer`` no collection of any service holds their address, phone, name, ids or
words, the case statistics stand, each service reports once, and a repeated request
changes nothing. A crash in the middle of an erasure is resumed by the redelivery."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from schemas.inbound import EraseCustomer
from services.intake.privacy import IntakePrivacy
from services.intake.store import IntakeStore
from services.runtime.metrics import STORE_LISTENERS
from tests.support.infra import Infra
from tests.support.isolated import Isolated
from tests.support.query_plans import QueryRecorder, full_scans
from tests.support.system import FakeClock
from tests.support.wait import eventually

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 in Taipei
SERVICES = ("intake", "triage", "compensation", "followup")


def action(case: str, kind: str, at: datetime, **extra: Any) -> bytes:
    return json.dumps({"action_id": f"{kind}-{uuid.uuid4().hex}", "case_number": case,
                       "type": kind, "actor": "agent-7", "at": at.isoformat(), **extra}).encode()  # fmt: skip


class Customer:
    """One customer's personal data, unique to the run, and where it goes in."""

    def __init__(self) -> None:
        run = uuid.uuid4().hex[:8]
        digits = str(int(run, 16))[-4:].rjust(4, "0")
        self.run = run
        self.customer_id = f"C-{run}"
        self.email = f"wang.{run}@example.tw"
        self.other_email = f"xm.{run}@mail.example.net"  # not in the CRM profile
        self.phone = f"+88691234{digits}"
        self.phone_in_text = f"0912-34-{digits}"
        self.name = f"王小明{run[:3]}"
        self.line_id = f"line-u-{run}"
        self.handle = f"xiaoming.{run}"
        self.message_id = f"erase-{run}@mail.example.tw"
        self.words = {
            "email": f"我的信用卡被重複扣款了，鄰居郭先生{run}也看到帳單",
            "reply": f"補充：銀行行員說編號{run}的交易已經入帳",
            "social": f"熱水瓶按鍵卡住了，我家小孩{run}差點燙到",
            "app": f"包裹延遲一週，我住在新北市板橋區文化路{run}號",
            "other": f"另一封信：我的過敏藥{run}也一起寄丟了",
            "comment": f"客服一直推託{run}，非常失望",
            "summary": f"已致電{self.name}本人並退款",
        }

    def needles(self) -> list[str]:
        return [self.customer_id, self.email, self.other_email, self.phone, self.phone_in_text,
                self.phone_in_text.replace("-", ""), self.name, self.line_id, self.handle,
                self.message_id, *self.words.values()]  # fmt: skip

    def profile(self) -> dict[str, Any]:
        return {"customer_id": self.customer_id, "tier": "standard", "emails": [self.email],
                "phones": [self.phone], "social": {"line": self.line_id}}  # fmt: skip

    def mail(self, sender: str, message_id: str, text: str, reply_to: str | None = None) -> bytes:
        threading = f"In-Reply-To: <{reply_to}>\r\n" if reply_to else ""
        return (
            f"From: Wang <{sender}>\r\nTo: service@shop.example\r\n"
            f"Subject: =?utf-8?b?5a6i6K+J?= {self.run}\r\nMessage-ID: <{message_id}>\r\n"
            f"{threading}Date: Mon, 23 Nov 2026 10:00:00 +0800\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            f"{text}\r\n我的電話 {self.phone_in_text}\r\n\r\n{self.name} 敬上\r\n"
        ).encode()

    def post(self) -> dict[str, Any]:
        return {"platform": "line", "post_id": f"line-{self.run}", "visibility": "private",
                "author": {"id": self.line_id, "handle": self.handle, "name": self.name},
                "text": self.words["social"], "url": f"https://line.example/{self.handle}",
                "created_at": T0.isoformat()}  # fmt: skip

    def form(self) -> dict[str, Any]:
        return {"submission_id": f"app-{self.run}", "customer_id": self.customer_id,
                "order_id": f"O-{self.run}", "order_value": {"amount": "1290.00", "currency": "TWD"},
                "message": self.words["app"], "category_hint": "delivery",
                "contact": {"email": self.email, "phone": self.phone},
                "submitted_at": T0.isoformat()}  # fmt: skip


async def leftovers(client: AsyncMongoClient[Any], namespace: str, needles: list[str]) -> list[str]:
    """Every document of every collection of the four services that holds a needle."""
    found = []
    for service in SERVICES:
        db = client[f"{namespace}_{service}"]
        for name in await db.list_collection_names():
            async for document in db[name].find({}):
                text = json.dumps(document, default=str, ensure_ascii=False).lower()
                found += [f"{service}.{name} {document['_id']}: {needle}"
                          for needle in needles if needle.lower() in text]  # fmt: skip
    return found


@asynccontextmanager
async def recording(namespace: str, pipeline: Isolated) -> AsyncIterator[Isolated]:
    """The pipeline, its services' store clients recording every query they send."""
    recorder = QueryRecorder(namespace)
    STORE_LISTENERS.append(recorder)
    try:
        async with pipeline as started:
            STORE_LISTENERS.remove(recorder)
            started.recorder = recorder  # type: ignore[attr-defined]
            yield started
    finally:
        if recorder in STORE_LISTENERS:
            STORE_LISTENERS.remove(recorder)


async def every_query_uses_an_index(infra: Infra, pipeline: Isolated, must_see: str) -> None:
    """No query the services sent (handlers, erasure, background loops) read a whole
    collection; ``must_see`` names a query of the feature under test, so it was checked."""
    queries = pipeline.recorder.queries  # type: ignore[attr-defined]
    assert any(must_see in query.shape for query in queries), must_see
    _, scanning = await full_scans(infra.mongodb_uri, queries)
    assert scanning == [], "queries without an index:\n" + "\n".join(scanning)


def erased(erasure_id: str) -> Any:
    return lambda s: s.type == "complaint.customer.erased" and s.data["erasure_id"] == erasure_id


@pytest.mark.timeout(300)
async def test_erase_customer_leaves_no_trace_and_keeps_the_statistics(
    infra: Infra, namespace: str
) -> None:
    who = Customer()
    clock = FakeClock(T0)
    client: AsyncMongoClient[Any] = AsyncMongoClient(infra.mongodb_uri, tz_aware=True)
    async with recording(namespace, Isolated(infra, namespace, clock, SERVICES)) as p:
        await p.upstream.send_json(p.prefix + "customers.profiles", who.profile(), who.customer_id)
        profiles = [client[f"{p.namespace}_{s}"]["customers"] for s in SERVICES]

        async def profile_everywhere() -> bool:
            return all([await c.find_one({"_id": who.customer_id}) for c in profiles])

        await eventually(profile_everywhere, 60, "the profile in every service")
        await p.send("complaints.inbound.email",
                     who.mail(who.email, who.message_id, who.words["email"]))  # fmt: skip
        await p.send("complaints.inbound.social", json.dumps(who.post()).encode())
        await p.send("complaints.inbound.app", json.dumps(who.form()).encode())
        await p.send("complaints.inbound.email",
                     who.mail(who.other_email, f"other-{who.run}@x.example", who.words["other"]))  # fmt: skip
        refs = [
            f"<{who.message_id}>",
            f"line-{who.run}",
            f"app-{who.run}",
            f"<other-{who.run}@x.example>",
        ]
        cases = {}
        for ref in refs:
            (opened,) = await p.reader.wait_for(
                lambda s, ref=ref: s.type == "complaint.case.opened" and s.data["source_ref"] == ref
            )
            cases[ref] = opened.data["case_number"]
        assert opened.data["customer_id"] is None  # the other address names no profile
        mail_case, app_case = cases[refs[0]], cases[refs[2]]
        await p.send("complaints.inbound.email", who.mail(
            who.email, f"reply-{who.run}@mail.example.tw", who.words["reply"], who.message_id))  # fmt: skip
        await p.reader.wait_for(
            lambda s: (
                s.type == "complaint.case.message_added" and s.data["case_number"] == mail_case
            )
        )
        for case in cases.values():
            await p.reader.wait_for(lambda s, case=case: s.data.get("case_number") == case and s.type
                                    in ("complaint.compensation.proposed",
                                        "complaint.compensation.approval_requested"))  # fmt: skip

        # The app case: an accepted offer, a resolution, an unhappy comment that reopens it.
        (offer,) = p.reader.matching(lambda s: s.type == "complaint.compensation.proposed"
                                     and s.data["case_number"] == app_case)  # fmt: skip
        paid = next(o for o in offer.data["options"] if o["kind"] == "coupon")  # goodwill
        await p.send("cases.actions", action(app_case, "accept_offer", T0 + timedelta(hours=1),
                     offer_id=offer.data["offer_id"], option_id=paid["option_id"]), key=app_case)  # fmt: skip
        await p.reader.wait_for(lambda s: s.type == "complaint.compensation.accepted"
                                and s.data["case_number"] == app_case)  # fmt: skip
        await p.send("cases.actions", action(app_case, "resolve", T0 + timedelta(hours=2),
                     resolution={"summary": who.words["summary"], "root_cause": "one_off"}),
                     key=app_case)  # fmt: skip
        await p.reader.wait_for(lambda s: s.type == "complaint.followup.scheduled"
                                and s.data["case_number"] == app_case)  # fmt: skip
        await p.send("cases.actions", action(app_case, "survey_response", T0 + timedelta(hours=3),
                     score=1, comment=who.words["comment"]), key=app_case)  # fmt: skip
        await p.reader.wait_for(lambda s: s.type == "complaint.case.triaged"
                                and s.data["case_number"] == app_case
                                and any(who.words["comment"] in r for r in s.data["reasons"]))  # fmt: skip
        await p.reader.wait_for(lambda s: s.type == "complaint.compensation.proposed"
                                and s.data["case_number"] == app_case, count=2)  # fmt: skip
        before = await leftovers(client, p.namespace, who.needles())
        assert {line.split(".")[0] for line in before} == set(SERVICES)  # all of it was there

        erasure_id = f"erase-{who.run}"
        request = {"action_id": erasure_id, "case_number": "", "type": "erase_customer",
                   "actor": "privacy-officer", "at": (T0 + timedelta(hours=4)).isoformat(),
                   "customer_id": who.customer_id,
                   "identities": {"emails": [who.other_email.upper()], "phones": [who.phone],
                                  "social": {"LINE": who.line_id}}}  # fmt: skip
        await p.upstream.send_json(p.prefix + "cases.actions", request, key=who.customer_id)
        reports = {
            s.data["service"]: s for s in await p.reader.wait_for(erased(erasure_id), count=4)
        }
        assert set(reports) == set(SERVICES)
        records = [client[f"{p.namespace}_{s}"]["erasures"] for s in SERVICES]

        async def reports_flushed() -> bool:
            # A report leaves its record's outbox just after it is published (it names
            # the CRM id the request gave, as the contract says): until then it is there.
            found = [await r.find_one({"_id": erasure_id}) or {} for r in records]
            return all(f.get("status") == "done" and not f.get("outbox") for f in found)

        await eventually(reports_flushed, 30, "every service's report out of its outbox")
        assert await leftovers(client, p.namespace, who.needles()) == []
        intake = reports["intake"].data
        assert intake["customer_id"] == who.customer_id
        assert sorted(intake["case_numbers"]) == sorted(cases.values())
        assert intake["counts"] == {"cases": 4, "messages": 1, "customer_profiles": 1}
        assert reports["triage"].data["counts"] == {"cases": 4, "customer_profiles": 1}
        assert reports["followup"].data["counts"]["followups"] == 1
        assert reports["compensation"].data["counts"]["cases"] == 4
        for report in reports.values():
            assert report.key == who.customer_id.encode()
            assert not ({"email", "phone", "text"} & set(json.dumps(report.event)))

        await statistics_stand(client, p.namespace, cases, app_case)

        # The same request again changes nothing; a second request finds nothing left.
        await p.upstream.send_json(p.prefix + "cases.actions", request, key=who.customer_id)
        again = {**request, "action_id": f"{erasure_id}-again"}
        await p.upstream.send_json(p.prefix + "cases.actions", again, key=who.customer_id)
        second = await p.reader.wait_for(erased(again["action_id"]), count=4)
        assert {s.data["service"]: s.data["counts"].get("cases", 0) for s in second}["intake"] == 0
        assert len(p.reader.matching(erased(erasure_id))) == 4
        await every_query_uses_an_index(infra, p, "erasures")
    await client.close()


async def statistics_stand(
    client: AsyncMongoClient[Any], namespace: str, cases: dict[str, str], app_case: str
) -> None:
    """What the business keeps: numbers, channels, categories, urgencies, amounts, dates."""
    intake = await client[f"{namespace}_intake"]["cases"].find(
        {"_id": {"$in": list(cases.values())}}).to_list(None)  # fmt: skip
    assert len(intake) == 4
    assert {case["channel"] for case in intake} == {"email", "social", "app"}
    assert all(case["received_at"] and case["masked"]["by"] == "erasure" for case in intake)
    pseudonyms = {case["customer_id"] for case in intake}
    assert len(pseudonyms) == 1 and pseudonyms.pop().startswith("erased-")
    app = next(case for case in intake if case["_id"] == app_case)
    assert app["extra"]["order_value"] == {"amount": "1290.00", "currency": "TWD"}
    triage = await client[f"{namespace}_triage"]["cases"].find(
        {"_id": {"$in": list(cases.values())}}).to_list(None)  # fmt: skip
    assert all(case["decision"]["category"] and case["decision"]["urgency"] for case in triage)
    assert all(case["decision"]["first_response_due"] for case in triage)
    offers = await client[f"{namespace}_compensation"]["cases"].find_one({"_id": app_case})
    assert offers is not None
    accepted = [o for o in offers["offers"].values() if o["status"] == "accepted"]
    assert accepted and accepted[0]["accepted_option"]["value"]
    ledger = await client[f"{namespace}_compensation"]["ledger"].find(
        {"case_number": app_case}).to_list(None)  # fmt: skip
    assert ledger and ledger[0]["cents"] > 0 and ledger[0]["customer_id"].startswith("erased-")
    followup = await client[f"{namespace}_followup"]["cases"].find_one({"_id": app_case})
    assert followup is not None
    assert followup["status"] == "reopened" and followup["last_score"] == 1
    assert followup["resolved_at"] and followup["resolution"]["root_cause"] == "one_off"
    assert followup["triage"]["category"]


@pytest.mark.timeout(180)
async def test_an_erasure_interrupted_midway_is_finished_by_the_redelivery(
    infra: Infra, namespace: str
) -> None:
    who = Customer()
    client: AsyncMongoClient[Any] = AsyncMongoClient(infra.mongodb_uri, tz_aware=True)
    async with Isolated(infra, namespace, FakeClock(T0), ("intake",)) as p:
        for n in range(3):
            form = {**who.form(), "submission_id": f"app-{who.run}-{n}",
                    "message": f"{who.words['app']} ({n})"}  # fmt: skip
            await p.send("complaints.inbound.app", json.dumps(form).encode())
        opened = await p.reader.wait_for(lambda s: s.type == "complaint.case.opened"
                                         and s.data["customer_id"] == who.customer_id, count=3)  # fmt: skip
        db = client[f"{p.namespace}_intake"]
        privacy = IntakePrivacy(db, IntakeStore(db), registry=None)
        published: list[dict[str, Any]] = []

        async def publish(messages: list[dict[str, Any]]) -> None:
            published.extend(messages)

        masked = 0
        original = privacy.mask_case

        async def crash_after_the_first(case_number: str, marker: dict[str, Any]) -> None:
            nonlocal masked
            if masked == 1:
                raise ConnectionError("the process died here")
            await original(case_number, marker)
            masked += 1

        privacy.mask_case = crash_after_the_first  # type: ignore[method-assign]
        request = EraseCustomer(action_id=f"erase-{who.run}", type="erase_customer",
                                actor="privacy-officer", at=T0, customer_id=who.customer_id)  # fmt: skip
        with pytest.raises(ConnectionError):
            await privacy.erase(request, T0, publish)
        assert published == []
        privacy.mask_case = original  # type: ignore[method-assign]
        await privacy.erase(request, T0, publish)  # the redelivery
        await privacy.erase(request, T0, publish)  # and one more: nothing twice
        (report,) = [
            json.loads(m["value"]) for m in published if m["topic"] == "customers.erasures"
        ]
        assert report["data"]["counts"]["cases"] == 3
        assert sorted(report["data"]["case_numbers"]) == sorted(
            s.data["case_number"] for s in opened
        )
        assert await leftovers(client, p.namespace.removesuffix("_intake"), [who.email]) == []
    await client.close()


@pytest.mark.timeout(240)
async def test_retention_masks_a_case_730_days_after_resolution_and_not_a_minute_before(
    infra: Infra, namespace: str
) -> None:
    who = Customer()
    clock = FakeClock(T0)
    client: AsyncMongoClient[Any] = AsyncMongoClient(infra.mongodb_uri, tz_aware=True)
    pipeline = Isolated(infra, namespace, clock, SERVICES, retention_poll_seconds=0.1)
    async with recording(namespace, pipeline) as p:
        await p.send("complaints.inbound.app", json.dumps(who.form()).encode())
        (opened,) = await p.reader.wait_for(lambda s: s.type == "complaint.case.opened"
                                            and s.data["source_ref"] == f"app-{who.run}")  # fmt: skip
        case = opened.data["case_number"]
        await p.reader.wait_for(lambda s: s.type == "complaint.compensation.proposed"
                                and s.data["case_number"] == case)  # fmt: skip
        resolved_at = T0 + timedelta(hours=1)
        await p.send("cases.actions", action(case, "resolve", resolved_at,
                     resolution={"summary": who.words["summary"], "root_cause": "one_off"}),
                     key=case)  # fmt: skip
        stores = {s: client[f"{p.namespace}_{s}"]["cases"] for s in SERVICES}

        async def retention_starts_everywhere() -> bool:
            found = [await c.find_one({"_id": case}) or {} for c in stores.values()]
            return all(doc.get("retain_from") == resolved_at for doc in found)

        await eventually(retention_starts_everywhere, 60, "every service to note the resolution")

        async def passes_done() -> bool:
            due_by = (clock.now - timedelta(days=730)).timestamp()
            gauges = [app.kit.registry.get_sample_value(  # type: ignore[attr-defined]
                "complaints_retention_resolved_before_seconds") or 0 for app in p.apps.values()]  # fmt: skip
            return all(gauge >= due_by for gauge in gauges)

        clock.now = resolved_at + timedelta(days=730) - timedelta(minutes=1)
        await eventually(passes_done, 60, "a retention pass in every service a minute early")
        for service, store in stores.items():
            kept = await store.find_one({"_id": case})
            assert kept is not None and not kept.get("masked"), service
        needles = [who.words["app"], who.words["summary"], f"app-{who.run}", who.email,
                   who.phone]  # fmt: skip
        before = await leftovers(client, p.namespace, needles)
        # Compensation keeps no texts or contacts of its own: amounts and decisions.
        assert {line.split(".")[0] for line in before} == {"intake", "triage", "followup"}

        clock.advance(timedelta(minutes=1))
        await eventually(passes_done, 60, "a retention pass in every service on the day")

        async def masked_everywhere() -> bool:
            found = [await c.find_one({"_id": case}) or {} for c in stores.values()]
            return all((doc.get("masked") or {}).get("by") == "retention" for doc in found)

        await eventually(masked_everywhere, 30, "the case masked in every service")
        assert await leftovers(client, p.namespace, needles) == []
        intake = await stores["intake"].find_one({"_id": case})
        assert intake is not None and intake["customer_id"] is None and intake["channel"] == "app"
        triage = await stores["triage"].find_one({"_id": case})
        assert triage is not None and triage["decision"]["category"] == "delivery"
        assert "retain_from" not in triage  # off the index: done
        for app in p.apps.values():
            assert app.kit.registry.get_sample_value("complaints_retention_masked_total") == 1  # type: ignore[attr-defined]
        await topics_keep_personal_data_only_as_long_as_the_policy_says(infra, p.prefix)
        await every_query_uses_an_index(infra, p, "retain_from")
    await client.close()


async def topics_keep_personal_data_only_as_long_as_the_policy_says(
    infra: Infra, prefix: str
) -> None:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap_servers)
    await admin.start()
    try:
        topics = [prefix + "complaints.dlq", prefix + "cases.opened"]
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t, {"retention.ms": None}) for t in topics]
        )
    finally:
        await admin.close()
    retention = {resource[3]: int(dict((e[0], e[1]) for e in resource[4])["retention.ms"])
                 for response in responses for resource in response.resources}  # fmt: skip
    day = 24 * 3600 * 1000
    assert retention == {prefix + "complaints.dlq": 90 * day, prefix + "cases.opened": 14 * day}
