"""Two intake instances in one consumer group share the load without duplicating anything.

Copies of the same complaint are sent under different keys, so they land on different
partitions and are taken by different instances at the same moment.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from contextlib import AsyncExitStack
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from tests.support.infra import Infra
from tests.support.kafka import Upstream
from tests.support.system import FakeClock, start_services
from tests.support.wait import eventually

COMPLAINTS = 90
COPIES = 3  # every complaint is sent three times, under three keys


@pytest.mark.timeout(180)
async def test_two_instances_one_group_no_duplicates(
    infra: Infra, namespace: str, upstream: Upstream
) -> None:
    group = f"{namespace}pair"
    # Own topics: on the shared ones these instances would also answer other tests'
    # complaints with case numbers from their own counter.
    prefix = f"{group}."
    async with AsyncExitStack() as stack:
        first = await start_services(
            stack, infra, group, FakeClock(), ("intake",), topic_prefix=prefix
        )
        second = await start_services(
            stack, infra, group, FakeClock(), ("intake",), topic_prefix=prefix
        )
        instances = [first["intake"], second["intake"]]

        async def both_assigned() -> bool:
            return all(
                any(sub.consumer and sub.consumer.assignment() for sub in app.broker.subscribers
                    if prefix + "complaints.inbound.app" in {t.name for t in sub.topics})
                for app in instances
            )  # fmt: skip

        await eventually(both_assigned, 60, "both instances to own partitions of the app topic")
        run = uuid.uuid4().hex[:8]
        refs = [f"conc-{run}-{n}" for n in range(COMPLAINTS)]
        sends = []
        for n, ref in enumerate(refs):
            form = {"submission_id": ref, "message": f"parcel {n} is late ({run})",
                    "submitted_at": "2026-11-23T10:00:00+08:00"}  # fmt: skip
            for copy in range(COPIES):
                sends.append(upstream.send(prefix + "complaints.inbound.app", json.dumps(form).encode(),
                                           key=f"{ref}-{copy}".encode()))  # fmt: skip
        await asyncio.gather(*sends)

        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_uri)
        store = client[f"{group}_intake"]
        keys = [f"app:{ref}" for ref in refs]

        async def all_opened() -> bool:
            pending = await store["cases"].count_documents(
                {"source_key": {"$in": keys}, "outbox": {}}
            )
            return pending >= COMPLAINTS

        await eventually(all_opened, 120, "every complaint to be opened and published")
        cases = await store["cases"].find({"source_key": {"$in": keys}}).to_list()
        claims = await store["sources"].find({"_id": {"$in": keys}}).to_list()
        await client.close()

        assert len(cases) == COMPLAINTS
        assert len({case["_id"] for case in cases}) == COMPLAINTS
        assert sorted(case["source_key"] for case in cases) == sorted(keys)
        assert len(claims) == COMPLAINTS
        by_source = {claim["_id"]: claim["case_number"] for claim in claims}
        assert all(by_source[case["source_key"]] == case["_id"] for case in cases)
        assert {sub.group_id for app in instances for sub in app.broker.subscribers
                if prefix + "complaints.inbound.app" in {t.name for t in sub.topics}} == {f"{group}.intake"}  # fmt: skip
