"""Due work in a collection, claimed by one instance at a time with a lease.

A document is due when its ``due_field`` is at or before now. A claim is an atomic
conditional update that takes a lease (``lease_field`` until now + lease, ``owner_field``
= the claimer); another instance can take the document only once the lease has run
out, so an instance that dies holding it delays the work, never loses it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

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
