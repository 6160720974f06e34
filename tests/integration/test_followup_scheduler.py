"""Two follow-up instances on one store fire every due check exactly once, and take over
the checks of an instance that died holding them once its lease runs out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient

from services.runtime.kafka import topic_partitions
from tests.support.infra import Infra
from tests.support.isolated import Isolated
from tests.support.system import FakeClock
from tests.support.wait import eventually

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
DUE_TOGETHER = 300
ORPHANED = 20  # claimed by an instance that died: lease ran out at T0+1h+30s
HELD = 10  # claimed by an instance that is alive: lease until T0+10h


def check(n: int, **state: Any) -> dict[str, Any]:
    due = T0 + timedelta(hours=1)
    return {"_id": f"F-{n:04d}", "case_number": f"CS20261123-{n:04d}", "due_at": due,
            "next_at": due, "stage": "check", "reasons": ["test"], "status": "scheduled",
            "lease_until": None, "channel": "email", "customer_id": f"C-{n:04d}", "language": "en",
            **state}  # fmt: skip


async def records_in(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        partitions = await topic_partitions(bootstrap, [topic])
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        return sum(ends[p] - starts[p] for p in partitions)
    finally:
        await consumer.stop()


@pytest.mark.timeout(240)
async def test_two_instances_fire_each_due_check_once(infra: Infra, namespace: str) -> None:
    clock = FakeClock(T0)
    async with Isolated(infra, namespace, clock, ("followup",)) as p:
        await p.start(("followup",))  # the second instance, same store and group
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            infra.mongodb_uri, tz_aware=True
        )
        followups = client[f"{p.namespace}_followup"]["followups"]
        dead = {
            "owner": "dead-1",
            "lease_until": T0 + timedelta(hours=1, seconds=30),
        }
        alive = {"owner": "alive-1", "lease_until": T0 + timedelta(hours=10)}
        await followups.insert_many(
            [check(n) for n in range(DUE_TOGETHER)]
            + [check(DUE_TOGETHER + n, **dead) for n in range(ORPHANED)]
            + [check(DUE_TOGETHER + ORPHANED + n, **alive) for n in range(HELD)]
        )
        clock.advance(timedelta(hours=2))  # everything due, the dead lease expired

        async def all_sent() -> bool:
            return await followups.count_documents({"status": "sent"}) == DUE_TOGETHER + ORPHANED

        await eventually(all_sent, 180, "every due check to be sent")
        # Events are published before a check is marked sent: the topic now holds all.
        topic = p.prefix + "cases.followups"
        assert await records_in(infra.kafka_bootstrap_servers, topic) == DUE_TOGETHER + ORPHANED
        sent = await p.reader.wait_for(
            lambda s: s.type == "complaint.followup.sent", count=DUE_TOGETHER + ORPHANED
        )
        ids = [s.data["followup_id"] for s in sent]
        assert len(ids) == len(set(ids)) == DUE_TOGETHER + ORPHANED
        assert await followups.count_documents({"owner": "alive-1", "status": "scheduled"}) == HELD
        owners = {doc["owner"] async for doc in followups.find({"status": "sent"}, {"owner": 1})}
        assert len(owners) == 2, "both instances should have fired some checks"
        stamps = [s.timestamp_ms for s in sent]
        rate = (len(stamps) - 1) / ((max(stamps) - min(stamps)) / 1000)
        print(f"two schedulers fired {len(stamps)} due checks at {rate:.1f} checks/s")
        await client.close()


@pytest.mark.timeout(120)
async def test_no_answer_gets_one_reminder_then_closes_and_opt_out_cancels(
    infra: Infra, namespace: str
) -> None:
    clock = FakeClock(T0)
    async with Isolated(infra, namespace, clock, ("followup",)) as p:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            infra.mongodb_uri, tz_aware=True
        )
        followups = client[f"{p.namespace}_followup"]["followups"]
        silent, opted_out = check(1), check(2)
        await followups.insert_many([silent, opted_out])
        profile = {"customer_id": opted_out["customer_id"], "followup_opt_out": True}
        await p.send("customers.profiles", json.dumps(profile).encode(), key=profile["customer_id"])

        async def status_of(followup: dict[str, Any], status: str) -> bool:
            doc = await followups.find_one({"_id": followup["_id"]})
            return bool(doc and doc["status"] == status)

        await eventually(lambda: status_of(opted_out, "cancelled"), 30, "the opt-out to cancel")
        clock.advance(timedelta(hours=2))
        await p.reader.wait_for(lambda s: s.type == "complaint.followup.sent")
        await eventually(lambda: status_of(silent, "sent"), 30, "the survey to be sent")
        clock.advance(timedelta(days=7))
        (reminder,) = await p.reader.wait_for(
            lambda s: (
                s.type == "complaint.notification.requested"
                and s.data["template"].startswith("satisfaction_survey_reminder")
            )
        )
        assert reminder.data["case_number"] == silent["case_number"]
        await eventually(lambda: status_of(silent, "reminded"), 30, "the reminder to be recorded")
        clock.advance(timedelta(days=7))
        await eventually(lambda: status_of(silent, "closed_no_answer"), 30, "the loop to close")
        sent = p.reader.matching(lambda s: s.type == "complaint.followup.sent")
        assert [s.data["followup_id"] for s in sent] == [silent["_id"]]
        notes = p.reader.matching(lambda s: s.type == "complaint.notification.requested")
        assert len(notes) == 2  # the survey and one reminder; nothing after closing
        await client.close()
