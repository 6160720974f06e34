"""The single-document atomicity the services are built on, checked on the server in use.

MongoDB guarantees these, and so does the local store (secantusd-rs, on WiredTiger),
with no proxy of ours in front. If a store fails here, case numbers, budgets and
follow-up claims are not safe on it.

One thing the services do NOT rely on: the reply of a findAndModify *upsert* that loses
a race to create its document. secantusd-rs 0.5.3 applies the update but answers without
the document (MongoDB answers with it); FerretDB 1.24 and mongo-java-server 1.47 hand out
duplicate numbers there. So counters are created by a plain insert first and then only
incremented (services/intake/store.py), and no service code asks for that reply
(tests/unit/test_store_usage.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.intake.store import SequenceCounter
from tests.support.infra import Infra

RACERS = 60


@pytest.fixture
async def db(infra: Infra) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        infra.mongodb_uri, maxPoolSize=RACERS
    )
    name = f"atomic_{uuid.uuid4().hex[:8]}"
    yield client[name]
    await client.drop_database(name)
    await client.close()


async def test_concurrent_increments_are_not_lost(db: AsyncDatabase[dict[str, Any]]) -> None:
    """Each of 60 racing increments of an existing counter sees its own value."""
    counters = db["counters"]
    await counters.insert_one({"_id": "day", "seq": 0})

    async def next_number() -> int:
        doc = await counters.find_one_and_update(
            {"_id": "day"}, {"$inc": {"seq": 1}}, return_document=ReturnDocument.AFTER
        )
        assert doc is not None
        return int(doc["seq"])

    numbers = await asyncio.gather(*(next_number() for _ in range(RACERS)))
    assert sorted(numbers) == list(range(1, RACERS + 1))


async def test_case_numbers_are_unique_from_racing_instances(
    db: AsyncDatabase[dict[str, Any]],
) -> None:
    """The case-number counter as intake uses it: two instances racing on a new day
    (the counter's creation included) hand out 1..60, each number once."""
    instances = [SequenceCounter(db["counters"]), SequenceCounter(db["counters"])]
    numbers = await asyncio.gather(*(instances[n % 2].next("case-20261124") for n in range(RACERS)))
    assert sorted(numbers) == list(range(1, RACERS + 1))


async def test_conditional_update_never_oversteps(db: AsyncDatabase[dict[str, Any]]) -> None:
    budget = db["budget"]
    await budget.insert_one({"_id": "b", "left": 1000})

    async def spend() -> int:
        result = await budget.update_one(
            {"_id": "b", "left": {"$gte": 100}}, {"$inc": {"left": -100}}
        )
        return result.modified_count

    spent = sum(await asyncio.gather(*(spend() for _ in range(30))))
    assert spent == 10
    assert (await budget.find_one({"_id": "b"}) or {})["left"] == 0


async def test_compare_and_set_has_one_winner(db: AsyncDatabase[dict[str, Any]]) -> None:
    leases = db["leases"]
    await leases.insert_one({"_id": "job", "owner": None})

    async def claim(who: int) -> int:
        result = await leases.update_one({"_id": "job", "owner": None}, {"$set": {"owner": who}})
        return result.modified_count

    assert sum(await asyncio.gather(*(claim(i) for i in range(RACERS)))) == 1


async def test_unique_insert_has_one_winner(db: AsyncDatabase[dict[str, Any]]) -> None:
    claims = db["claims"]

    async def claim(who: int) -> int:
        try:
            await claims.insert_one({"_id": "source", "by": who})
        except DuplicateKeyError:
            return 0
        return 1

    assert sum(await asyncio.gather(*(claim(i) for i in range(RACERS)))) == 1
