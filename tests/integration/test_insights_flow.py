"""Systemic issues end to end through real Kafka and the real store, on an injected clock.

Intake, triage and triage's insights worker run on a private topic prefix. Fourteen days of background complaints
come in at a steady rate (app forms: cracked or faulty mugs 2.5 a day, teapots, late
parcels of one courier in one city, double charges), then eight customers complain
about a cracked mug within six hours, in Traditional and Simplified Chinese and in
English, by mail (no SKU) and by app form (with the SKU). One insight is detected with
all eight cases, none for the background; a ninth case joins it; ops acknowledge it, a
systemic resolution is linked, it subsides once the window has passed, and the whole
burst delivered again creates nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from services.runtime.kafka import topic_partitions
from services.runtime.metrics import STORE_LISTENERS
from services.triage.insights.report import load_insights, report_lines
from services.triage.settings import TriageSettings
from tests.support.infra import Infra
from tests.support.isolated import Isolated
from tests.support.kafka import Seen
from tests.support.query_plans import QueryRecorder, full_scans
from tests.support.system import FakeClock
from tests.support.wait import eventually

BURST = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 in Taipei
RUN = uuid.uuid4().hex[:6]
INSIGHT_EVENTS = "complaint.insight."


def app_form(number: str, customer: str, text: str, items: list[dict[str, str]] | None = None,
             hint: str | None = None) -> bytes:  # fmt: skip
    form: dict[str, Any] = {"submission_id": f"app-{RUN}-{number}", "customer_id": customer,
                            "message": text, "submitted_at": BURST.isoformat()}  # fmt: skip
    if items:
        form["items"] = items
    if hint:
        form["category_hint"] = hint
    return json.dumps(form, ensure_ascii=False).encode()


def mail(number: str, sender: str, subject: str, text: str, charset: str = "utf-8") -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "service@shop.example"
    message["Subject"] = subject
    message["Message-ID"] = f"<{RUN}-{number}@mail.example>"
    message.set_content(text, charset=charset)
    return bytes(message)


MUG_ZH = [{"sku": "MUG-01", "name": "陶瓷馬克杯"}]
MUG_HANS = [{"sku": "MUG-01", "name": "陶瓷马克杯"}]
MUG_EN = [{"sku": "MUG-01", "name": "Ceramic mug"}]
TEAPOT = [{"sku": "TEA-02", "name": "陶瓷茶壺"}]


def background_day(day: int) -> list[tuple[str, bytes]]:
    """One day's steady complaints: (topic, record); the same mix every day."""
    mugs = [
        app_form(f"bg{day}-m1", f"C-BM{day}a", "馬克杯有瑕疵，杯口不平", MUG_ZH, "product_defect"),
        app_form(
            f"bg{day}-m2",
            f"C-BM{day}b",
            "The mug is defective, the glaze is uneven",
            MUG_EN,
            "product_defect",
        ),
    ]
    if day % 2:  # 2 and 3 a day: 35 in 14 days, a mean of 2.5
        mugs.append(app_form(f"bg{day}-m3", f"C-BM{day}c", "马克杯有瑕疵，颜色不对", MUG_HANS,
                             "product_defect"))  # fmt: skip
    others = [
        app_form(f"bg{day}-t", f"C-BT{day}", "茶壺收到就破損了", TEAPOT, "product_defect"),
        app_form(f"bg{day}-d1", f"C-BD{day}a", "黑貓宅急便送台北的包裹延遲三天還沒到"),
        app_form(f"bg{day}-d2", f"C-BD{day}b", "包裹還沒到，黑貓說台北站延遲"),
        app_form(f"bg{day}-b", f"C-BB{day}", "I was charged twice for one order"),
    ]
    return [("complaints.inbound.app", value) for value in [*mugs, *others]]


PROFILES = {f"C-M{n}": f"mug.buyer{n}.{RUN}@example.tw" for n in (2, 4, 6, 8)}


def burst() -> list[tuple[str, bytes]]:
    """Eight customers, eight cracked mugs, in three scripts and two channels."""
    app, email = "complaints.inbound.app", "complaints.inbound.email"
    return [
        (app, app_form("b1", "C-M1", "馬克杯第一次倒熱水把手就裂了", MUG_ZH)),
        (email, mail("b2", PROFILES["C-M2"], "馬克杯裂了", "訂購的馬克杯收到時杯身就有裂痕。")),
        (app, app_form("b3", "C-M3", "马克杯的把手裂开了", MUG_HANS)),
        (email, mail("b4", PROFILES["C-M4"], "马克杯有裂痕", "马克杯用了两天就裂了。", "gb2312")),
        (app, app_form("b5", "C-M5", "The mug handle cracked on first use", MUG_EN)),
        (
            email,
            mail("b6", PROFILES["C-M6"], "Cracked mug", "My mug arrived cracked along the handle."),
        ),
        (app, app_form("b7", "C-M7", "杯子把手斷裂，馬克杯不能用了", MUG_ZH)),
        (email, mail("b8", PROFILES["C-M8"], "馬克杯裂開", "新買的馬克杯裂開了，很失望。")),
    ]


class Flow(Isolated):
    queries: QueryRecorder

    def insight_events(self) -> list[Seen]:
        return self.reader.matching(lambda s: s.type.startswith(INSIGHT_EVENTS))

    async def send_at(self, topic: str, value: bytes, at: datetime) -> None:
        await self.send(topic, value, headers={"received-at": at.isoformat()})

    async def triaged(self, count: int) -> list[Seen]:
        return await self.reader.wait_for(
            lambda s: s.type == "complaint.case.triaged", count=count, timeout=60
        )

    async def drained(self, service: str, topics: tuple[str, ...]) -> None:
        """Until ``service`` has committed every record of ``topics`` (all handled)."""
        bootstrap = self.infra.kafka_bootstrap_servers
        partitions = await topic_partitions(bootstrap, [self.prefix + t for t in topics])

        async def committed_to_the_end() -> bool:
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
            consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
            await admin.start()
            await consumer.start()
            try:
                committed = await admin.list_consumer_group_offsets(
                    f"{self.namespace}.{service}", partitions=partitions
                )
                ends = await consumer.end_offsets(partitions)
            finally:
                await consumer.stop()
                await admin.close()
            return all(
                ends[p] == 0 or (p in committed and committed[p].offset >= ends[p])
                for p in partitions
            )

        await eventually(committed_to_the_end, 30, f"{service} to handle {topics}")


@pytest.fixture
async def flow(infra: Infra, namespace: str) -> AsyncIterator[Flow]:
    setup = Flow(infra, namespace, FakeClock(BURST - timedelta(days=15)),
                 names=("intake", "triage", "insights"), insights_poll_seconds=0.1,
                 insights_open_refresh_seconds=0)  # fmt: skip
    # Every query the services send (handlers, the insights' loop), explained at the end.
    setup.queries = QueryRecorder(setup.namespace)
    STORE_LISTENERS.append(setup.queries)
    try:
        async with setup:
            yield setup
    finally:
        STORE_LISTENERS.remove(setup.queries)


def action(kind: str, case: str, at: datetime, **extra: Any) -> bytes:
    return json.dumps({"action_id": f"{kind}-{uuid.uuid4().hex}", "case_number": case,
                       "type": kind, "actor": "ops-1", "at": at.isoformat(), **extra}).encode()  # fmt: skip


@pytest.mark.timeout(180)
async def test_a_burst_of_cracked_mugs_is_one_insight_and_the_background_none(flow: Flow) -> None:
    for customer, address in PROFILES.items():
        profile = {"customer_id": customer, "emails": [address]}
        await flow.send("customers.profiles", json.dumps(profile).encode(), key=customer)
    sent = 0
    for day in range(14, 0, -1):  # Taipei 02:00-07:00 on each of the 14 days before
        for index, (topic, value) in enumerate(background_day(day)):
            at = BURST - timedelta(days=day, hours=8) + timedelta(minutes=40 * index)
            await flow.send_at(topic, value, at)
            sent += 1
        # A day at a time, as days pass: the worker counts a key's cases in about the
        # order they came (a case more than a window older than its key's latest is
        # told, not counted: it could not be told from a redelivery).
        await flow.triaged(sent)
        await flow.drained("insights", ("cases.triaged",))
    assert sent == 14 * 6 + 7
    await flow.drained("triage", ("cases.opened",))
    assert flow.insight_events() == [], "the steady background made an insight"

    flow.clock.now = BURST
    burst_cases: list[str] = []
    for index, (topic, value) in enumerate(burst()):
        await flow.send_at(topic, value, BURST + timedelta(minutes=45 * index))
        triaged = await flow.triaged(sent + index + 1)
        burst_cases.append(triaged[-1].data["case_number"])
        assert triaged[-1].data["category"] == "product_defect", triaged[-1].data
        if index < 7:
            await flow.drained("insights", ("cases.triaged",))
            early = [seen.data for seen in flow.insight_events()]
            assert early == [], f"an insight after {index + 1} cases: {early}"

    (detected,) = await flow.reader.wait_for(lambda s: s.type == f"{INSIGHT_EVENTS}detected")
    data = detected.data
    assert sorted(data["case_numbers"]) == sorted(burst_cases)
    shared = {name: value for name, value in data["key"].items() if value is not None}
    assert (data["kind"], shared) == ("product", {"category": "product_defect", "sku": "MUG-01"})
    assert (data["count"], data["baseline"], data["threshold"]) == (8, 2.5, 8)
    assert (
        data["first_seen"]
        == BURST.astimezone(datetime.fromisoformat(data["first_seen"]).tzinfo).isoformat()
    )
    assert detected.key == data["insight_id"].encode()
    assert 1 <= len(data["sample_texts"]) <= 3
    assert not any("@" in text or "example" in text for text in data["sample_texts"])
    insight_id = data["insight_id"]
    # The eighth case opened it (the worker counts after triage): listed, not told.
    (last,) = flow.reader.of_case(burst_cases[-1], "complaint.case.triaged")
    assert not any(insight_id in reason for reason in last.data["reasons"])

    # A ninth customer: the insight grows.
    await flow.send_at("complaints.inbound.app",
                       app_form("b9", "C-M9", "Another cracked mug, the handle split", MUG_EN),
                       BURST + timedelta(hours=6))  # fmt: skip
    ninth = (await flow.triaged(sent + 9))[-1]
    assert any(insight_id in reason for reason in ninth.data["reasons"])
    (grown,) = await flow.reader.wait_for(lambda s: s.type == f"{INSIGHT_EVENTS}updated")
    assert set(grown.data["case_numbers"]) == {*burst_cases, ninth.data["case_number"]}
    assert grown.data["count"] == 9 and grown.data["insight_id"] == insight_id

    # Ops own it; an agent finds the cause is systemic.
    now = BURST + timedelta(hours=7)
    await flow.send("cases.actions", action("acknowledge_insight", burst_cases[0], now,
                                             insight_id=insight_id, owner="quality-team"))  # fmt: skip
    await flow.send("cases.actions", action("resolve", burst_cases[1], now, resolution={
        "summary": "glaze batch 2611 faulty", "root_cause": "systemic"}), key=burst_cases[1])  # fmt: skip
    updates = await flow.reader.wait_for(lambda s: s.type == f"{INSIGHT_EVENTS}updated", count=3)
    assert any(u.data["status"] == "acknowledged" for u in updates)
    assert max(u.data["systemic_resolutions"] for u in updates) == 1

    # The window passes without a new case: it subsides.
    flow.clock.now = BURST + timedelta(hours=6 + 25)
    (subsided,) = await flow.reader.wait_for(lambda s: s.type == f"{INSIGHT_EVENTS}subsided")
    assert subsided.data["insight_id"] == insight_id and subsided.data["count"] == 0
    assert subsided.data["owner"] == "quality-team"

    # The whole burst delivered again, as channels and the broker may: nothing new.
    before = [s.event["id"] for s in flow.insight_events()]
    opened = flow.reader.matching(lambda s: s.type == "complaint.case.opened"
                                  and s.data["case_number"] in burst_cases)  # fmt: skip
    decided = flow.reader.matching(lambda s: s.type == "complaint.case.triaged"
                                   and s.data["case_number"] in burst_cases)  # fmt: skip
    for topic, seen in [*(("cases.opened", s) for s in opened),
                        *(("cases.triaged", s) for s in decided)]:  # fmt: skip
        await flow.send(topic, json.dumps(seen.event).encode(), key=seen.data["case_number"])
    for index, (topic, value) in enumerate(burst()):
        await flow.send_at(topic, value, BURST + timedelta(minutes=45 * index))
    await flow.drained("intake", ("complaints.inbound.app", "complaints.inbound.email"))
    await flow.drained("triage", ("cases.opened",))
    await flow.drained("insights", ("cases.triaged",))
    assert [s.event["id"] for s in flow.insight_events()] == before
    opened_cases = {s.data["case_number"] for s in flow.reader.matching(
        lambda s: s.type == "complaint.case.opened")}  # fmt: skip
    assert len(opened_cases) == sent + 9

    # The report ops read.
    settings = TriageSettings(mongodb_uri=flow.infra.mongodb_uri,
                              mongodb_database_prefix=flow.namespace)  # fmt: skip
    insights = await load_insights(settings, flow.clock.now - timedelta(days=30))
    lines = "\n".join(report_lines(insights, flow.clock.now))
    assert insight_id in lines and "subsided" in lines and "1 resolved as systemic" in lines

    # Every store access of the flow, the insights' included, used an index.
    recorded = {q.collection for q in flow.queries.queries}
    assert {"insight_keys", "product_terms", "insights"} <= recorded, recorded
    shapes, scanning = await full_scans(flow.infra.mongodb_uri, flow.queries.queries)
    assert shapes >= 20, f"only {shapes} query shapes recorded"
    assert scanning == [], "queries without an index:\n" + "\n".join(scanning)
