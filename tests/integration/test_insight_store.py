"""The insight store on the real store, through the coalescing client the services use:
a case counts once per key whatever is redelivered, one open insight per key, stale
hours and quiet keys go, and the detector's reads and writes stay index lookups."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from services.policy import load_policy
from services.runtime.coalescing import CoalescingDatabase, StoreBatcher
from services.triage.insights.detection import Detector, InsightMetrics
from services.triage.insights.detector import Sighting, evaluate
from services.triage.insights.keys import CaseKey
from services.triage.insights.store import InsightStore, sightings
from tests.support.infra import Infra

POLICY = load_policy()
RULES = POLICY.insights
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
KEY = CaseKey("product", "product_defect", "MUG-01")


@pytest.fixture
async def store(infra: Infra, namespace: str) -> AsyncIterator[InsightStore]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_uri, tz_aware=True)
    db = CoalescingDatabase(client, f"{namespace}store{uuid.uuid4().hex[:6]}", StoreBatcher(client))
    found = InsightStore(db, db["cases"])
    await found.ensure_indexes()
    yield found
    await client.close()


def opened(number: int, text: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {"case_number": f"CS20261123-{number:04d}", "customer_id": f"C-{number}",
            "received_at": at.isoformat(), "subject": "", "text": text, **extra}  # fmt: skip


async def test_a_case_counts_once_per_key_even_when_counted_again_concurrently(
    store: InsightStore,
) -> None:
    sighting = Sighting("CS20261123-0001", "customer:C-1", T0)
    first = await asyncio.gather(*(store.count(KEY, sighting, "s", 200, 3) for _ in range(3)))
    again = await store.count(KEY, sighting, "s", 200, 3)
    assert sorted(first) == [False, False, True] and again is False
    other = Sighting("CS20261123-0002", "customer:C-2", T0 + timedelta(minutes=5))
    assert await store.count(KEY, other, "t", 200, 3)
    document = (await store.key_documents([KEY.id]))[KEY.id]
    assert document["hours"] == {"2026112302": 2}
    assert [s.case_number for s in sightings(document)] == ["CS20261123-0001", "CS20261123-0002"]
    assert [x["s"] for x in document["samples"]] == ["s", "t"]
    assert document["open_insight"] is None
    await store.trim(KEY.id, ["2026112302"])
    assert (await store.key_documents([KEY.id]))[KEY.id]["hours"] == {}


async def test_sightings_and_samples_stay_bounded(store: InsightStore) -> None:
    for number in range(12):
        sighting = Sighting(f"CS20261123-{number:04d}", f"customer:C-{number}", T0)
        await store.count(KEY, sighting, f"sample {number}", 10, 3)
    document = (await store.key_documents([KEY.id]))[KEY.id]
    assert next(s.case_number for s in sightings(document)) == "CS20261123-0002"
    assert len(document["recent"]) == 10 and document["hours"] == {"2026112302": 12}
    assert [x["s"] for x in document["samples"]] == ["sample 9", "sample 10", "sample 11"]
    assert document["samples"][0]["c"] == "CS20261123-0009"


async def test_sightings_no_window_reads_again_are_trimmed(store: InsightStore) -> None:
    for number in range(6):
        at = T0 + timedelta(hours=number)
        await store.count(KEY, Sighting(f"CS20261123-{number:04d}", "customer:C", at), "s", 200, 3)
    await store.trim(KEY.id, [], sightings_before=T0 + timedelta(hours=4))
    document = (await store.key_documents([KEY.id]))[KEY.id]
    assert [s.case_number for s in sightings(document)] == ["CS20261123-0004", "CS20261123-0005"]
    assert sum(document["hours"].values()) == 6  # the baseline keeps its counts


async def test_one_open_insight_per_key(store: InsightStore) -> None:
    await store.count(KEY, Sighting("CS20261123-0001", "customer:C-1", T0), "s", 200, 3)
    claims = await asyncio.gather(store.claim(KEY.id, "INS-a", 0), store.claim(KEY.id, "INS-b", 0))
    assert claims[0] == claims[1] and claims[0] in {"INS-a", "INS-b"}
    await store.release(KEY.id, "INS-other")  # not the open one: nothing happens
    assert await store.claim(KEY.id, "INS-c", 1) == claims[0]
    await store.release(KEY.id, claims[0])
    assert await store.claim(KEY.id, "INS-c", 0) is None  # a claim from before the first
    assert await store.claim(KEY.id, "INS-c", 1) == "INS-c"
    assert (await store.key_documents([KEY.id]))[KEY.id]["generation"] == 2


async def test_quiet_keys_are_forgotten_and_open_ones_kept(store: InsightStore) -> None:
    quiet, busy = CaseKey("phrase", "other", "某詞"), CaseKey("phrase", "other", "另一詞")
    for key in (quiet, busy):
        await store.count(key, Sighting("CS20261101-0001", "customer:C-1", T0), "s", 200, 3)
    await store.claim(busy.id, "INS-open", 0)
    later = T0 + timedelta(days=20)
    stale = await store.stale_keys(later, 100)
    assert quiet.id in stale and busy.id not in stale
    assert await store.forget_keys(stale, later) >= 1
    assert set(await store.key_documents([quiet.id, busy.id])) == {busy.id}


async def test_the_detector_counts_products_learnt_from_app_forms(store: InsightStore) -> None:
    published: list[dict[str, Any]] = []

    async def publish(messages: list[dict[str, Any]]) -> None:
        published.extend(messages)

    from prometheus_client import CollectorRegistry

    detector = Detector(
        store, lambda: POLICY, lambda: T0, publish, InsightMetrics(CollectorRegistry())
    )
    form = opened(1, "馬克杯把手裂了", T0, items=[{"sku": "mug-01", "name": "陶瓷馬克杯"}])
    mail = opened(2, "我的马克杯有裂痕", T0 + timedelta(hours=1))
    assert {k.id for k in await detector.keys_of(form, "product_defect")} >= {KEY.id}
    assert KEY.id in {k.id for k in await detector.keys_of(mail, "product_defect")}
    for case in (form, mail):
        assert (await detector.observe(case, "product_defect")).insights == []
        await detector.observe(case, "product_defect")  # a redelivery counts nothing
    document = (await store.key_documents([KEY.id]))[KEY.id]
    verdict = evaluate(sightings(document), document["hours"], "product", "product_defect", RULES)
    assert verdict.count == 2 and verdict.cases == [form["case_number"], mail["case_number"]]
    assert published == []
