"""Intake's documents: cases (with their pending events), source claims, counters, customers.

Every write is a single-document atomic operation, so a redelivered record either
finds its effect already stored or stores it now; never half of it.
"""

from __future__ import annotations

import contextlib
from datetime import date, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.runtime.errors import RetryLater
from services.runtime.kafka import OutboundMessage
from services.runtime.outbox import add_to_outbox
from services.runtime.per_turn import PerTurn

Document = dict[str, Any]
# Where a customer's profile holds each kind of identity (all indexed).
CUSTOMER_FIELDS = {"id": "_id", "email": "emails", "phone": "phones", "social": "social_ids"}


class SequenceCounter:
    """Per-key sequence numbers; the requests of one event-loop turn share one increment.

    A counter is created by a plain insert before it is incremented, so no increment ever
    races a creation: some stores (SecantusDB 0.5) answer a findAndModify upsert that lost
    a creation race without the document.
    """

    def __init__(self, counters: AsyncCollection[Document]) -> None:
        self.counters = counters
        self.next = PerTurn(self._take)

    async def _take(self, keys: list[str]) -> list[int]:
        last = {key: await self._increment(key, keys.count(key)) for key in dict.fromkeys(keys)}
        given: dict[str, int] = {}
        numbers = []
        for key in keys:
            given[key] = given.get(key, 0) + 1
            numbers.append(last[key] - keys.count(key) + given[key])
        return numbers

    async def _increment(self, key: str, count: int) -> int:
        for _ in range(2):
            counter = await self.counters.find_one_and_update(
                {"_id": key}, {"$inc": {"seq": count}}, return_document=ReturnDocument.AFTER
            )
            if counter is not None:
                return int(counter["seq"])
            with contextlib.suppress(DuplicateKeyError):  # another instance created it
                await self.counters.insert_one({"_id": key, "seq": 0})
        raise RuntimeError(f"counter {key} vanished")  # counters are never deleted


class IntakeStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.cases = db["cases"]
        self.sources = db["sources"]
        self.counters = db["counters"]
        self.customers = db["customers"]
        self.fingerprints = db["fingerprints"]
        self.sequences = SequenceCounter(self.counters)
        self._customer_by = PerTurn(self._customers_by)

    async def ensure_indexes(self) -> None:
        await self.customers.create_index([("emails", ASCENDING)])
        await self.customers.create_index([("phones", ASCENDING)])
        await self.customers.create_index([("social_ids", ASCENDING)])
        await self.cases.create_index([("customer_id", ASCENDING), ("received_at", ASCENDING)])

    # --- case numbers ----------------------------------------------------------------

    async def next_sequence(self, day: date) -> int:
        """The day's next case sequence number, unique however many ask at once."""
        return await self.sequences.next(f"case-{day:%Y%m%d}")

    # --- source claims ---------------------------------------------------------------

    async def source(self, source_key: str) -> Document | None:
        return await self.sources.find_one({"_id": source_key})

    async def claim_source(self, source_key: str, case_number: str, kind: str) -> Document:
        """Record which case a source belongs to; the first claim wins."""
        try:
            document = {"_id": source_key, "case_number": case_number, "kind": kind}
            await self.sources.insert_one(document)
            return document
        except DuplicateKeyError:
            existing = await self.source(source_key)
            if existing is None:  # pragma: no cover - deleted between the two calls
                raise
            return existing

    async def case_for_sources(self, source_keys: list[str]) -> str | None:
        if not source_keys:
            return None
        found = await self.sources.find_one(
            {"_id": {"$in": source_keys}, "kind": {"$ne": "ignored"}}
        )
        return str(found["case_number"]) if found else None

    async def claim_fingerprint(
        self, fingerprint: str, source_key: str, at: datetime, window: timedelta
    ) -> str:
        """The source key that sent this content within ±window of ``at`` (maybe us).

        Symmetric on purpose: records can arrive out of order, with receipt times
        before or after an earlier claim's.
        """
        try:
            await self.fingerprints.insert_one({"_id": fingerprint, "source_key": source_key,
                                                "at": at})  # fmt: skip
            return source_key
        except DuplicateKeyError:
            claim = await self.fingerprints.find_one({"_id": fingerprint})
        if claim is None:  # pragma: no cover - fingerprints are never deleted
            return source_key
        if claim["source_key"] == source_key or abs(claim["at"] - at) <= window:
            return str(claim["source_key"])
        # The earlier claim is outside the window: take it over, unless someone just did.
        retaken = await self.fingerprints.find_one_and_update(
            {"_id": fingerprint, "at": claim["at"]},
            {"$set": {"source_key": source_key, "at": at}},
            return_document=ReturnDocument.AFTER,
        )
        if retaken is None:
            current = await self.fingerprints.find_one({"_id": fingerprint})
            return str(current["source_key"]) if current else source_key
        return source_key

    # --- cases -----------------------------------------------------------------------

    async def case_exists(self, case_number: str) -> bool:
        return await self.cases.find_one({"_id": case_number}, {"_id": 1}) is not None

    async def create_case(self, case: Document) -> None:
        await self.cases.update_one({"_id": case["_id"]}, {"$setOnInsert": case}, upsert=True)

    async def add_message(
        self, case_number: str, message: Document, outbox: list[OutboundMessage]
    ) -> None:
        """Add the message once. The guard is a list of plain keys: ``$ne`` through an array
        of sub-documents (``messages.source_key``) matches anyway on some MongoDB-wire
        servers (FerretDB 1.x), which stored a re-sent reply again and re-published its
        event under the same id with a new time. Cases stored before ``message_keys`` still
        have the sub-document guard (it holds on MongoDB)."""
        key = message["source_key"]
        result = await self.cases.update_one(
            {"_id": case_number, "message_keys": {"$ne": key}, "messages.source_key": {"$ne": key}},
            {"$push": {"messages": message, "message_keys": key}, "$set": add_to_outbox(outbox)},
        )
        if result.matched_count == 0 and not await self.case_exists(case_number):
            # The thread's source is claimed, its case not stored yet (its first record is
            # still being handled, or will be redelivered): wait rather than drop the message.
            raise RetryLater(f"case {case_number} is not stored yet")

    # --- customers -------------------------------------------------------------------

    async def find_customer(self, identities: list[tuple[str, str]]) -> Document | None:
        """The first identity (id, e-mail, phone, social id) that names a known customer."""
        for identity in identities:
            found = await self._customer_by(identity)
            if found:
                return found
        return None

    async def _customers_by(self, identities: list[tuple[str, str]]) -> list[Document | None]:
        """One query per kind of identity asked for in this turn (all indexed fields)."""
        found: dict[tuple[str, str], Document] = {}
        for kind in dict.fromkeys(kind for kind, _ in identities):
            field = CUSTOMER_FIELDS[kind]
            values = list(dict.fromkeys(value for k, value in identities if k == kind))
            async for customer in self.customers.find({field: {"$in": values}}):
                held = customer.get(field)
                for value in held if isinstance(held, list) else [held]:
                    found.setdefault((kind, str(value)), customer)
        return [found.get(identity) for identity in identities]
