"""Coalesced store calls answer exactly like single calls, in fewer commands (real store)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.runtime.coalescing import CoalescingDatabase, StoreBatcher
from tests.support.infra import Infra

Document = dict[str, Any]


class Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture(params=[True, False], ids=["in-transactions", "plain-bulk-write"])
async def stores(
    infra: Infra, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[AsyncDatabase[Document], AsyncDatabase[Document], Commands]]:
    """(a coalescing database, the same database plain, the commands the first sent), with
    the batch's writes committed as one transaction or not."""
    commands = Commands()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        infra.mongodb_uri, tz_aware=True, event_listeners=[commands]
    )
    name = f"coalesce_{uuid.uuid4().hex[:8]}"
    batched = CoalescingDatabase(client, name, StoreBatcher(client, transactions=request.param))
    yield batched, client[name], commands
    await client.drop_database(name)
    await client.close()


async def test_concurrent_reads_by_id_are_one_find(
    stores: tuple[AsyncDatabase[Document], AsyncDatabase[Document], Commands],
) -> None:
    batched, plain, commands = stores
    await plain["cases"].insert_many([{"_id": f"c{n}", "n": n, "nested": {"k": n}}
                                      for n in range(20)])  # fmt: skip
    commands.names.clear()
    wanted = [f"c{n}" for n in range(20)] + ["missing", "c3"]
    found = await asyncio.gather(*(batched["cases"].find_one({"_id": w}) for w in wanted))
    assert commands.names == ["find"]
    expected = [await plain["cases"].find_one({"_id": w}) for w in wanted]
    assert found == expected
    # Two callers of one document get their own copies.
    found[3]["nested"]["k"] = "changed"  # type: ignore[index]
    assert found[-1]["nested"]["k"] == 3  # type: ignore[index]
    # A projection is honoured; other filters are plain calls.
    assert await batched["cases"].find_one({"_id": "c5"}, {"n": 1}) == {"_id": "c5", "n": 5}
    assert (await batched["cases"].find_one({"n": 7}) or {})["_id"] == "c7"


async def test_concurrent_writes_are_one_bulk_write_with_each_callers_outcome(
    stores: tuple[AsyncDatabase[Document], AsyncDatabase[Document], Commands],
) -> None:
    batched, plain, commands = stores
    await plain["cases"].insert_one({"_id": "taken", "v": 0})
    commands.names.clear()
    cases, other = batched["cases"], batched["other"]
    outcomes = await asyncio.gather(
        cases.insert_one({"_id": "new", "v": 1}),
        cases.insert_one({"_id": "taken", "v": 2}),
        cases.update_one({"_id": "taken", "v": 0}, {"$set": {"v": 3}}),
        cases.update_one({"_id": "absent"}, {"$set": {"v": 4}}),
        cases.update_one({"_id": "up"}, {"$set": {"v": 5}}, upsert=True),
        other.replace_one({"_id": "r"}, {"v": 6}, upsert=True),
        cases.delete_one({"_id": "nothing"}),
        return_exceptions=True,
    )
    # In a transaction, the duplicate aborts the first try; the rest commit in a second.
    expected = (
        ["bulkWrite", "abortTransaction", "bulkWrite", "commitTransaction"]
        if batched.batcher.transactions
        else ["bulkWrite"]
    )  # type: ignore[attr-defined]
    assert commands.names == expected, commands.names
    inserted, duplicate, updated, unmatched, upserted, replaced, deleted = outcomes
    assert inserted.inserted_id == "new"  # type: ignore[union-attr]
    assert isinstance(duplicate, DuplicateKeyError)
    assert (updated.matched_count, updated.modified_count) == (1, 1)  # type: ignore[union-attr]
    assert (unmatched.matched_count, unmatched.upserted_id) == (0, None)  # type: ignore[union-attr]
    assert upserted.upserted_id == "up"  # type: ignore[union-attr]
    assert replaced.upserted_id == "r"  # type: ignore[union-attr]
    assert deleted.deleted_count == 0  # type: ignore[union-attr]
    assert await plain["cases"].find_one({"_id": "taken"}) == {"_id": "taken", "v": 3}
    assert await plain["other"].find_one({"_id": "r"}) == {"_id": "r", "v": 6}


async def test_without_bulk_write_the_writes_go_one_by_one_with_the_same_outcomes(
    stores: tuple[AsyncDatabase[Document], AsyncDatabase[Document], Commands],
) -> None:
    batched, plain, commands = stores
    assert isinstance(batched, CoalescingDatabase)
    batched.batcher.bulk_write_supported = False  # as on MongoDB 7
    await plain["cases"].insert_one({"_id": "taken", "v": 0})
    commands.names.clear()
    outcomes = await asyncio.gather(
        batched["cases"].insert_one({"_id": "taken"}),
        batched["cases"].update_one({"_id": "taken"}, {"$inc": {"v": 1}}),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], DuplicateKeyError)
    assert outcomes[1].modified_count == 1  # type: ignore[union-attr]
    assert sorted(commands.names) == ["insert", "update"]
