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

    ``expect`` adds optimistic-concurrency conditions (e.g. the revision read).
    Returns False when the cause was already applied; raises RetryLater when the
    document changed under us (the record is redelivered and decided afresh).
    """
    update = dict(update)
    update["$push"] = {**update.get("$push", {}), APPLIED: cause_id}
    query: Document = {"_id": document_id, APPLIED: {"$ne": cause_id}, **(expect or {})}
    try:
        result = await collection.update_one(query, update, upsert=True)
    except DuplicateKeyError:
        result = None
    if result is not None and (result.upserted_id is not None or result.modified_count):
        return True
    current = await collection.find_one({"_id": document_id}, {APPLIED: 1})
    if current and cause_id in current.get(APPLIED, []):
        return False
    raise RetryLater(f"{document_id} changed concurrently")
