"""Pending events kept inside the document whose change produced them.

A handler stores its effect and the events announcing it in ONE atomic update, then
publishes them and removes them. A crash in between leaves them in the document and
the redelivered record publishes them again, with the same ids.

The outbox is a sub-document keyed by event id (uuid strings: no '.' or '$'), cleared
with ``$unset`` (some MongoDB-wire servers, FerretDB 1.24 among them, ignore ``$pull``
with a query condition). Each entry carries its own sequence, because such servers may
return sub-document keys sorted rather than in insertion order, and one case's events
must go out in the order they happened.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from services.runtime.kafka import OutboundMessage

Document = dict[str, Any]
OUTBOX = "outbox"


class _Turn:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


_FLUSHING: dict[tuple[str, str], _Turn] = {}


def _sequenced(messages: Iterable[OutboundMessage]) -> list[Document]:
    # Nanoseconds since the epoch, then position: later updates sort after earlier ones.
    queued = time.time_ns()
    return [
        {**message, "seq": f"{queued:020d}.{position:04d}"}
        for position, message in enumerate(messages)
    ]


def as_outbox(messages: Iterable[OutboundMessage]) -> Document:
    return {message["id"]: message for message in _sequenced(messages)}


def add_to_outbox(messages: Iterable[OutboundMessage]) -> Document:
    """A ``$set`` fragment adding ``messages`` to the outbox."""
    return {f"{OUTBOX}.{message['id']}": message for message in _sequenced(messages)}


def pending(document: Mapping[str, Any] | None) -> list[Document]:
    """The document's unpublished events, in the order they were stored."""
    if not document:
        return []
    entries = list((document.get(OUTBOX) or {}).values())
    return sorted(entries, key=lambda entry: str(entry.get("seq", "")))


async def flush_outbox(
    collection: AsyncCollection[Document],
    document_id: Any,
    publish: Any,
) -> int:
    """Publish what ``document_id`` still has pending, then forget it. Returns the count.

    Handlers of different topics may flush the same document at once (a case's triage
    and its actions); within one process they take turns, so the second finds the
    outbox already cleared instead of publishing the same events again. Across
    processes a duplicate stays possible, with the same event ids (at-least-once).
    """
    key = (collection.full_name, str(document_id))
    turn = _FLUSHING.setdefault(key, _Turn())
    turn.users += 1
    try:
        async with turn.lock:
            document = await collection.find_one({"_id": document_id}, {OUTBOX: 1})
            messages = pending(document)
            if messages:
                await publish(messages)
                await collection.update_one(
                    {"_id": document_id},
                    {"$unset": {f"{OUTBOX}.{message['id']}": "" for message in messages}},
                )
            return len(messages)
    finally:
        turn.users -= 1
        if turn.users == 0:
            del _FLUSHING[key]
