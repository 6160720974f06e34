"""The insight store on the real store, through the coalescing client the services use:
a turn's cases count once whatever is redelivered, the documents stay the same size
however big the surge, one open insight per key with every case in insight_cases,
quiet keys go, and erasure removes what a case left."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient

from services.policy import load_policy
from services.runtime.coalescing import CoalescingDatabase, StoreBatcher
from services.triage.insights.detection import Detector, InsightMetrics, keys_of
from services.triage.insights.detector import day_key, evaluate, hour_key
from services.triage.insights.keys import CaseKey
from services.triage.insights.store import InsightStore
from services.triage.insights.turn import SEEN_PER_HOUR, case_mark
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


class Published(list[dict[str, Any]]):
    async def __call__(self, messages: list[dict[str, Any]]) -> None:
        self.extend(messages)


def detector(store: InsightStore, published: Published, now: datetime = T0) -> Detector:
    return Detector(store, lambda: POLICY, lambda: now, published,
                    InsightMetrics(CollectorRegistry()))  # fmt: skip


def opened(number: int, text: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {"case_number": f"CS20261123-{number:04d}", "customer_id": f"C-{number}",
            "received_at": at.isoformat(), "subject": "", "text": text, **extra}  # fmt: skip


def form(number: int, at: datetime, customer: str | None = None) -> dict[str, Any]:
    case = opened(number, "", at, items=[{"sku": "MUG-01"}])
    return {**case, "customer_id": customer or case["customer_id"]}


async def history(store: InsightStore, days: int = 14, per_day: int = 1) -> None:
    """The key as two weeks of one mug complaint a day left it."""
    await store.keys.update_one({"_id": KEY.id}, {"$set": {
        "kind": KEY.kind, "category": KEY.category, "value": KEY.value,
        "days": {day_key(T0 - timedelta(days=d)): per_day for d in range(1, days + 1)},
        "since": T0 - timedelta(days=days), "last_at": T0 - timedelta(days=1),
        "open_insight": None, "generation": 0}}, upsert=True)  # fmt: skip


async def turn(found: Detector, cases: list[dict[str, Any]]) -> list[Any]:
    """Cases handled side by side, as a batch's lanes do: counted in few turns."""
    return list(await asyncio.gather(*(found.observe(c, "product_defect") for c in cases)))


async def test_a_turn_counts_each_customer_once_and_a_redelivered_turn_nothing(
    store: InsightStore,
) -> None:
    published = Published()
    found = detector(store, published)
    cases = [form(1, T0), form(2, T0 + timedelta(minutes=5), "C-1"), form(3, T0)]
    await turn(found, cases)
    await turn(found, cases)  # the batch again, as a rewound consumer delivers it
    key = await store.key(KEY.id)
    assert key is not None
    assert sum(key["live"].values()) == 2  # C-1 twice is one voice; CS-3 is C-3
    assert sum(key["days"].values()) == 3  # every case counts in the baseline once
    # Oldest first (the turn counts its cases in the order they came in).
    assert [entry["c"] for entry in key["recent"]] == [cases[i]["case_number"] for i in (0, 2, 1)]
    # The guard is the key's own marks: no document per customer or case.
    marks = [mark for hour in key["seen"].values() for mark in hour]
    assert sorted(marks) == sorted(case_mark(f"customer:{c['customer_id']}", c["case_number"])
                                   for c in cases)  # fmt: skip
    assert "insight_customers" not in await store.keys.database.list_collection_names()
    assert published == []


async def test_documents_stay_the_same_size_however_big_the_surge(store: InsightStore) -> None:
    await history(store)
    published = Published()
    found = detector(store, published)
    sizes = []
    for wave in range(4):  # 4 waves of 60 customers within the hour
        cases = [form(100 * wave + n, T0 + timedelta(seconds=10 * n + wave)) for n in range(60)]
        await turn(found, cases)
        key = await store.key(KEY.id)
        assert key is not None
        marks = max(len(hour) for hour in key["seen"].values())
        sizes.append((len(key["live"]), len(key["days"]), len(key["recent"]), len(key["seen"])))
        assert marks <= SEEN_PER_HOUR  # 240 customers in an hour: the rest count unmarked
    assert sizes[-1] == sizes[1] and sizes[-1][2] == RULES.max_tracked_cases
    (insight,) = await store.insights.find({}).to_list(None)
    # Every case after detection joins; at detection, the window's cases the key remembers.
    assert 240 - 60 + RULES.max_tracked_cases <= insight["case_total"] <= 240
    assert len(insight["case_numbers"]) == RULES.max_listed_cases
    # The cases it had at detection have their own document; later ones their triage.
    listed = await store.insight_cases.count_documents({"insight_id": insight["_id"]})
    assert 1 <= listed <= RULES.max_tracked_cases
    kinds = [message["type"] for message in published]
    assert kinds.count("complaint.insight.detected") == 1
    # All these cases came within a few minutes: at most one update per interval.
    assert kinds.count("complaint.insight.updated") <= 1
    verdict = evaluate(key["live"], key["days"], "product", "product_defect", RULES,
                       T0 + timedelta(minutes=15), key["since"])  # fmt: skip
    assert verdict.count == 240 and verdict.above


async def test_quiet_keys_are_forgotten_and_open_keys_kept(
    store: InsightStore,
) -> None:
    quiet, busy = CaseKey("phrase", "other", "某詞"), CaseKey("phrase", "other", "另一詞")
    for key, open_insight in ((quiet, None), (busy, "INS-open")):
        await store.keys.update_one({"_id": key.id}, {"$set": {
            "last_at": T0, "open_insight": open_insight}}, upsert=True)  # fmt: skip
    await turn(detector(store, Published()), [form(1, T0)])
    later = T0 + timedelta(days=20)
    stale = await store.stale_keys(later, 100)
    assert quiet.id in stale and busy.id not in stale
    assert await store.forget_keys(stale, later) >= 1
    assert await store.key(quiet.id) is None and await store.key(busy.id) is not None


async def test_erasure_removes_samples_and_the_marks_of_a_case(store: InsightStore) -> None:
    found = detector(store, Published())
    case = opened(7, "My mug cracked, call me on 0912-345-678", T0, items=[{"sku": "MUG-01"}])
    other = opened(8, "Mine too", T0, items=[{"sku": "MUG-01"}])
    observed = (await turn(found, [case, other]))[0]
    assert observed.keys == [KEY.id]
    # The turn recorded the keys it counted the case in (insight_counted); a key that no
    # longer lists the case among its recent ones is found through them.
    counted = await store.counted.find_one({"_id": case["case_number"]})
    assert counted is not None and counted["keys"] == observed.keys
    await store.keys.update_one({"_id": KEY.id}, {"$set": {"recent": []}})
    key = await store.key(KEY.id)
    assert key is not None and next(s["c"] for s in key["samples"]) == case["case_number"]
    mine = case_mark("customer:C-7", case["case_number"])
    assert mine in key["seen"][hour_key(T0)]
    changed = await store.erase_cases([case["case_number"]])
    assert KEY.id in changed
    key = await store.key(KEY.id)
    assert key is not None and [s["c"] for s in key["samples"]] == [other["case_number"]]
    assert key["seen"][hour_key(T0)] == [case_mark("customer:C-8", other["case_number"])]
    assert await store.counted.find_one({"_id": case["case_number"]}) is None


async def test_the_detector_counts_products_learnt_from_app_forms(store: InsightStore) -> None:
    published = Published()
    found = detector(store, published)
    app = opened(1, "馬克杯把手裂了", T0, items=[{"sku": "mug-01", "name": "陶瓷馬克杯"}])
    mail = opened(2, "我的马克杯有裂痕", T0 + timedelta(hours=1))
    assert {k.id for k in await keys_of(store, RULES, app, "product_defect", True)} >= {KEY.id}
    assert KEY.id in {k.id for k in await keys_of(store, RULES, mail, "product_defect", True)}
    for case in (app, mail):
        assert (await found.observe(case, "product_defect")).insights == []
        await found.observe(case, "product_defect")  # a redelivery counts nothing
    key = await store.key(KEY.id)
    assert key is not None
    verdict = evaluate(key["live"], key["days"], "product", "product_defect", RULES,
                       T0 + timedelta(hours=1))  # fmt: skip
    assert verdict.count == 2
    assert [entry["c"] for entry in key["recent"]] == [app["case_number"], mail["case_number"]]
    assert published == []
