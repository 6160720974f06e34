"""Idempotent single-document updates keyed by the event that caused them."""

from __future__ import annotations

import contextlib
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

    A missing document is created first (holding only ``_id`` and ``applied`` until the
    update lands): readers treat a document without their fields as not there yet.

    ``expect`` adds optimistic-concurrency conditions (e.g. the revision read).
    Returns False when the cause was already applied; raises RetryLater when the
    document changed under us (the record is redelivered and decided afresh).
    """
    # Read by _id first, and create a missing document with a plain insert, so that the
    # guarded update below normally matches: on FerretDB 1.x a filter beyond _id that
    # matches nothing costs a scan of the whole collection (MongoDB uses the _id index).
    current = await collection.find_one({"_id": document_id}, {APPLIED: 1})
    if current is not None and cause_id in current.get(APPLIED, []):
        return False
    if current is None:
        with contextlib.suppress(DuplicateKeyError):  # someone else created it just now
            await collection.insert_one({"_id": document_id, APPLIED: []})
    update = dict(update)
    update["$push"] = {**update.get("$push", {}), APPLIED: cause_id}
    query: Document = {"_id": document_id, APPLIED: {"$ne": cause_id}, **(expect or {})}
    result = await collection.update_one(query, update)
    if result.modified_count:
        return True
    current = await collection.find_one({"_id": document_id}, {APPLIED: 1})
    if current and cause_id in current.get(APPLIED, []):
        return False
    raise RetryLater(f"{document_id} changed concurrently")
