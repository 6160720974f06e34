"""Due work in a collection, claimed by one instance at a time with a lease.

A document is due when its ``due_field`` is at or before now. A claim is an atomic
conditional update that takes a lease (``lease_field`` until now + lease, ``owner_field``
= the claimer); another instance can take the document only once the lease has run
out, so an instance that dies holding it delays the work, never loses it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from services.runtime.outbox import flush_outbox

Document = dict[str, Any]


class LeasedWork:
    def __init__(
        self, collection: AsyncCollection[Document], due_field: str, lease_field: str,
        owner_field: str, owner: str,
    ) -> None:  # fmt: skip
        self.collection = collection
        self.due_field, self.lease_field, self.owner_field = due_field, lease_field, owner_field
        self.owner = owner

    async def due(self, now: datetime, batch: int) -> list[Any]:
        """Up to ``batch`` ids due now, oldest first: a range of the due-time index, so the
        cost is the due items, never the collection."""
        found = self.collection.find({self.due_field: {"$lte": now}}, {"_id": 1})
        return [item["_id"] for item in await found.sort(self.due_field, 1).to_list(batch)]

    async def claim(
        self, document_id: Any, now: datetime, lease_seconds: float,
        due_by: datetime | None = None,
    ) -> Document | None:  # fmt: skip
        """The document with our lease on it, unless another instance holds a live one.

        ``due_by``: the due time to compare with, when it is not now (retention: a case is
        due when it was resolved before now minus the retention period)."""
        return await self.collection.find_one_and_update(
            {
                "_id": document_id,
                self.due_field: {"$lte": due_by or now},
                "$or": [{self.lease_field: None}, {self.lease_field: {"$lt": now}}],
            },
            {"$set": {self.lease_field: now + timedelta(seconds=lease_seconds),
                      self.owner_field: self.owner}},
            return_document=ReturnDocument.AFTER,
        )  # fmt: skip

    async def take_due(
        self, now: datetime, batch: int, lease_seconds: float,
        handle: Callable[[Document, datetime], Awaitable[bool]],
    ) -> int:  # fmt: skip
        """Claim each document due now and ``handle`` it; how many were handled."""
        handled = 0
        for document_id in await self.due(now, batch):
            document = await self.claim(document_id, now, lease_seconds)
            if document is not None and await handle(document, now):
                handled += 1
        return handled


# Set with the events a background pass stores in a document's outbox, cleared once they
# are published: handlers get their records redelivered after a failure, passes do not.
UNPUBLISHED = "unpublished_since"
# The lower bound of a range over a time index (the local store wants ranges bounded).
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def clear_unpublished(
    collection: AsyncCollection[Document], document_id: Any, marked_at: datetime
) -> None:
    """The pass published what it marked at ``marked_at`` (a newer mark stays)."""
    await collection.update_one(
        {"_id": document_id, UNPUBLISHED: marked_at}, {"$unset": {UNPUBLISHED: ""}}
    )


async def publish_stranded(
    collection: AsyncCollection[Document], older_than: datetime, publish: Any, batch: int
) -> int:
    """Publish what earlier passes stored but could not publish (the process died, or the
    store or the broker went away, in between): an index lookup on the mark, O(stranded).
    A pass still publishing its own is younger than ``older_than``."""
    found = await collection.find(
        {UNPUBLISHED: {"$gte": EPOCH, "$lte": older_than}}, {"_id": 1, UNPUBLISHED: 1}
    ).to_list(batch)
    for document in found:
        await flush_outbox(collection, document["_id"], publish)
        await clear_unpublished(collection, document["_id"], document[UNPUBLISHED])
    return len(found)
