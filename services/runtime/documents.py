"""Idempotent single-document updates keyed by the event that caused them."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from services.runtime.errors import RetryLater

Document = dict[str, Any]
APPLIED = "applied"


async def apply_once(
    collection: AsyncCollection[Document],
    document_id: str,
    cause_id: str,
    update: Document,
    expect: Document | None = None,
) -> bool:
    """Apply ``update`` to the document unless ``cause_id`` was applied before.

    One atomic upsert: the filter matches only while the cause is not yet recorded (and
    the ``expect`` conditions hold, e.g. the revision read), and the update records it. A
    missing document is created by the same operation. ``expect`` must not hold equality
    conditions for a document that may not exist yet (an upsert would copy them into it).

    Returns False when the cause was already applied; raises RetryLater when the document
    changed under us (the record is redelivered and decided afresh).
    """
    update = dict(update)
    update["$push"] = {**update.get("$push", {}), APPLIED: cause_id}
    query: Document = {"_id": document_id, APPLIED: {"$ne": cause_id}, **(expect or {})}
    try:
        await collection.update_one(query, update, upsert=True)
        return True
    except DuplicateKeyError:
        # The document exists but the filter did not match it: applied before, or changed.
        pass
    current = await collection.find_one({"_id": document_id, APPLIED: cause_id}, {"_id": 1})
    if current is not None:
        return False
    raise RetryLater(f"{document_id} changed concurrently")
