"""Where insights live. Every document has a fixed size or a bound, whatever the surge.

- ``insight_keys``: per key (category + product / courier / city / phrase): ``live``
  (per hour, the customers whose latest sighting of the key is in it: the window's
  distinct customers), ``days`` (per UTC day, its cases: the baseline), stale buckets
  dropped in the same update; ``recent`` (the last ``max_tracked_cases`` case numbers and
  times: the detected event's case list) and a few ``samples``; ``since`` (first
  sighting: cold start), ``last_at``; ``open_insight`` (its one open insight, claimed in
  the key's own update) and ``generation`` (how many it had); ``seen`` (per hour of the
  window, the marks of the cases counted in it, a customer digest and a case digest
  each, at most ``SEEN_PER_HOUR``: who is already counted, and which cases; dropped
  with the hour buckets; a case older than those hours counts nothing).
- ``insight_counted``: per counted case, the keys it was counted in (an erasure finds
  their marks of it there) and the insights it joined then (a systemic resolution is
  linked to them); removed with the case's personal data.
- ``product_terms``: per folded word of a product name on app forms, the SKUs it was
  used for (a few: a word of several products names none).
- ``insights``: per insight its window, counts, the first ``max_listed_cases`` case
  numbers and ``case_total``, samples, acknowledgement, systemic resolutions,
  ``check_at`` (due-time index for the subsiding check and a throttled update) and its
  outbox of events.
- ``insight_cases``: one small document per case an insight had when it was detected
  (``_id`` insight|case); cases joining later name it in their ``insight_counted``.

A turn's writes are sent together (one bulkWrite, one transaction, through the
coalescing store client): the counts, the customers' guards and the insights' changes
are stored all or nothing; no document per customer or case is written for counting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from services.runtime.kafka import OutboundMessage
from services.runtime.outbox import add_to_outbox, as_outbox, flush_outbox
from services.triage.insights.turn import DIGEST_CHARS, Observed, Plan, case_digest, compact

Document = dict[str, Any]
Publish = Callable[[list[Document]], Awaitable[None]]
# A word used for two products names neither (infer_products wants exactly one): no
# need to remember more than two (each one more is a write).
TERM_SKUS = 2
# How long an instance trusts what it read of product words, and how many it keeps.
TERMS_TTL_SECONDS = 60.0
TERMS_CACHED = 20_000


class InsightStore:
    def __init__(self, db: AsyncDatabase[Document], cases: AsyncCollection[Document]) -> None:
        self.keys = db["insight_keys"]
        self.terms = db["product_terms"]
        self.insights = db["insights"]
        self.insight_cases = db["insight_cases"]
        self.counted = db["insight_counted"]
        self.cases = cases
        # Product word -> (trusted until, SKUs or None): see skus_by_term.
        self._terms: dict[str, tuple[float, list[str] | None]] = {}

    async def ensure_indexes(self) -> None:
        await self.keys.create_index([("last_at", 1)])
        # An erasure finds what a customer's cases left behind by case number.
        await self.keys.create_index([("recent.c", 1)])
        await self.keys.create_index([("samples.c", 1)])
        await self.insights.create_index([("sample_texts.c", 1)])
        await self.insights.create_index([("check_at", 1)])
        await self.insights.create_index([("status", 1)])
        await self.insights.create_index([("detected_at", 1)])
        await self.insight_cases.create_index([("case_number", 1)])

    # --- products -----------------------------------------------------------------------

    async def skus_by_term(self, terms: Iterable[str]) -> dict[str, list[str]]:
        """The SKUs each word was used for. Answers are kept for ``TERMS_TTL_SECONDS``: a
        complaint's ten words were ten lookups per case, and what app forms teach
        changes slowly (this instance's own lessons are seen at once; another
        instance's within the TTL)."""
        wanted = list(dict.fromkeys(terms))
        now = time.monotonic()
        missing = [t for t in wanted if self._terms.get(t, (0.0, None))[0] <= now]
        if missing:
            found = await asyncio.gather(*(self.terms.find_one({"_id": t}) for t in missing))
            if len(self._terms) > TERMS_CACHED:
                self._terms.clear()
            for term, doc in zip(missing, found, strict=True):
                skus = list(doc.get("skus") or []) if doc is not None else None
                self._terms[term] = (now + TERMS_TTL_SECONDS, skus)
        answers = {term: self._terms[term][1] for term in wanted}
        return {term: list(skus) for term, skus in answers.items() if skus is not None}

    async def learn_terms(
        self, pairs: Sequence[tuple[str, str]], known: dict[str, list[str]]
    ) -> None:
        """Remember which product each word was used for; only what is new is written."""
        new = [(term, sku) for term, sku in pairs
               if sku not in known.get(term, []) and len(known.get(term, [])) < TERM_SKUS]  # fmt: skip
        await asyncio.gather(*(
            self.terms.update_one({"_id": term}, {"$addToSet": {"skus": sku}}, upsert=True)
            for term, sku in new
        ))  # fmt: skip
        for term, _ in new:  # read again next time: the store has the merged list
            self._terms.pop(term, None)

    # --- a turn -----------------------------------------------------------------------------

    async def load(self, key_ids: Sequence[str]) -> tuple[dict[str, Document], dict[str, Document]]:
        """The turn's keys and their open insights (two finds by _id). Keys come without
        their recent cases and samples, which only opening an insight reads
        (``keys_in_full``)."""
        keys = await _by_ids(self.keys, key_ids, {"recent": 0, "samples": 0})
        open_ids = [str(doc["open_insight"]) for doc in keys.values() if doc.get("open_insight")]
        insights = await _by_ids(self.insights, open_ids, {"outbox": 0}) if open_ids else {}
        return keys, insights

    async def keys_in_full(self, key_ids: Sequence[str]) -> dict[str, Document]:
        return await _by_ids(self.keys, key_ids)

    async def apply(self, plan: Plan) -> None:
        """The turn's writes, made in one go (one bulkWrite and transaction when coalesced)."""
        writes: list[Awaitable[Any]] = [
            *(self.keys.update_one({"_id": key_id}, compact(update), upsert=True)
              for key_id, update in plan.keys.items()),
            *(self.insights.update_one({"_id": doc["_id"]}, {"$setOnInsert": {
                  **{k: v for k, v in doc.items() if k != "__messages"},
                  "outbox": as_outbox(doc["__messages"])}}, upsert=True)
              for doc in plan.created),
            *(self.insights.update_one({"_id": insight_id, "status": "open"}, compact(update))
              for insight_id, update in plan.joined.items()),
            *(self.insight_cases.update_one({"_id": doc["_id"]}, {"$setOnInsert": doc},
                                            upsert=True)
              for doc in plan.insight_cases),
            *(self.counted.update_one({"_id": case}, counted_update(observed), upsert=True)
              for case, observed in plan.observed.items() if observed.keys),
        ]  # fmt: skip
        await asyncio.gather(*writes)

    async def flush(self, insight_id: str, publish: Publish) -> None:
        await flush_outbox(self.insights, insight_id, publish)

    # --- insights -------------------------------------------------------------------------

    async def insight(self, insight_id: str) -> Document | None:
        return await self.insights.find_one({"_id": insight_id})

    async def key(self, key_id: str) -> Document | None:
        return await self.keys.find_one({"_id": key_id})

    async def release(self, key_id: str, insight_id: str) -> None:
        await self.keys.update_one(
            {"_id": key_id, "open_insight": insight_id}, {"$set": {"open_insight": None}}
        )

    async def stale_keys(self, before: datetime, batch: int) -> list[str]:
        """Keys nobody has mentioned since ``before``: a range of the ``last_at`` index."""
        found = self.keys.find({"last_at": {"$lt": before}}, {"_id": 1, "open_insight": 1})
        return [doc["_id"] for doc in await found.sort("last_at", 1).to_list(batch)
                if not doc.get("open_insight")]  # fmt: skip

    async def forget_keys(self, ids: list[str], before: datetime) -> int:
        if not ids:
            return 0
        result = await self.keys.delete_many(
            {"_id": {"$in": ids}, "last_at": {"$lt": before}, "open_insight": None}
        )
        return int(result.deleted_count)

    async def resolved_as_systemic(self, case_numbers: Sequence[str]) -> list[str]:
        """Which of these cases were already resolved with root cause ``systemic``."""
        if not case_numbers:
            return []
        found = self.cases.find(
            {"_id": {"$in": list(case_numbers)}, "resolution_root_cause": "systemic"}, {"_id": 1}
        )
        return [doc["_id"] for doc in await found.to_list(None)]

    async def insights_of_case(self, case_number: str) -> list[Document]:
        """The insights a case is in: those it joined when it was counted
        (``insight_counted``), or listed at detection (``insight_cases``: it came before)."""
        case, listed = await asyncio.gather(
            self.counted.find_one({"_id": case_number}, {"insights": 1}),
            self.insight_cases.find({"case_number": case_number}, {"insight_id": 1}).to_list(None),
        )
        ids = [*(str(i) for i in (case or {}).get("insights") or []),
               *(str(doc["insight_id"]) for doc in listed)]  # fmt: skip
        return list((await _by_ids(self.insights, ids)).values()) if ids else []

    async def link_systemic(
        self, insight_id: str, link: Document, message: OutboundMessage
    ) -> bool:
        result = await self.insights.update_one(
            {"_id": insight_id, "systemic.case_number": {"$ne": link["case_number"]}},
            {"$push": {"systemic": link}, "$set": add_to_outbox([message])},
        )
        return bool(result.modified_count)

    async def acknowledge(
        self, insight_id: str, acknowledged: Document, message: OutboundMessage
    ) -> bool:
        result = await self.insights.update_one(
            {"_id": insight_id, "acknowledged": None},
            {"$set": {"acknowledged": acknowledged, **add_to_outbox([message])}},
        )
        return bool(result.modified_count)

    async def reschedule(self, insight_id: str, owner: str, update: Document) -> None:
        await self.insights.update_one(
            {"_id": insight_id, "check_owner": owner},
            {"$set": {**update, "check_lease": None}},
        )

    async def subside(
        self, insight_id: str, owner: str, update: Document, message: OutboundMessage
    ) -> bool:
        result = await self.insights.update_one(
            {"_id": insight_id, "check_owner": owner, "status": "open"},
            {"$set": {**update, "status": "subsided", "check_at": None, "check_lease": None,
                      "update_pending": False, **add_to_outbox([message])}},
        )  # fmt: skip
        return bool(result.modified_count)

    async def open_insights(self) -> list[Document]:
        """The open insights (an equality range of the status index: few documents)."""
        found = self.insights.find(
            {"status": "open"},
            {"kind": 1, "category": 1, "acknowledged": 1, "key_id": 1, "key": 1, "count": 1},
        )
        return list(await found.to_list(None))

    async def since(self, moment: datetime) -> list[Document]:
        """Insights detected since ``moment``, and the older ones still open (for reports)."""
        recent = await self.insights.find({"detected_at": {"$gte": moment}}, {"outbox": 0}).to_list(
            None
        )
        still_open = await self.insights.find({"status": "open"}, {"outbox": 0}).to_list(None)
        merged = {doc["_id"]: doc for doc in [*still_open, *recent]}
        return list(merged.values())

    # --- erasure ----------------------------------------------------------------------------

    async def erase_cases(self, case_numbers: Sequence[str]) -> list[str]:
        """Remove what ``case_numbers`` left in keys and insights: their sample texts and
        their marks (the customer's digest). The keys are those their ``insight_counted``
        name, and those that list them among their recent cases or samples. Case numbers
        in keys' and insights' case lists stay, as they stay everywhere (statistics). The
        ids of the documents changed."""
        cases = sorted(set(case_numbers))
        if not cases:
            return []
        triaged, sampled, listed, insights = await asyncio.gather(
            self.counted.find({"_id": {"$in": cases}}, {"keys": 1}).to_list(None),
            self.keys.find({"samples.c": {"$in": cases}}, {"_id": 1}).to_list(None),
            self.keys.find({"recent.c": {"$in": cases}}, {"_id": 1}).to_list(None),
            self.insights.find({"sample_texts.c": {"$in": cases}}, {"_id": 1}).to_list(None),
        )
        key_ids = {str(key) for doc in triaged for key in doc.get("keys") or []}
        key_ids |= {str(doc["_id"]) for doc in [*sampled, *listed]}
        keys = await _by_ids(self.keys, sorted(key_ids), {"seen": 1, "samples.c": 1})
        digests = {case_digest(case) for case in cases}
        changed: list[str] = []
        writes: list[Awaitable[Any]] = []
        for key_id, doc in keys.items():
            pull: Document = {}
            for hour, marks in (doc.get("seen") or {}).items():
                gone = [mark for mark in marks or [] if mark[DIGEST_CHARS:] in digests]
                if gone:
                    pull[f"seen.{hour}"] = {"$in": gone}
            if any(sample.get("c") in cases for sample in doc.get("samples") or []):
                pull["samples"] = {"c": {"$in": cases}}
            if pull:
                changed.append(key_id)
                writes.append(self.keys.update_one({"_id": key_id}, {"$pull": pull}))
        writes.extend(self.insights.update_one({"_id": doc["_id"]}, {"$pull": {
            "sample_texts": {"c": {"$in": cases}}}}) for doc in insights)  # fmt: skip
        writes.append(self.counted.delete_many({"_id": {"$in": cases}}))
        await asyncio.gather(*writes)
        return [*changed, *(str(doc["_id"]) for doc in insights)]


def counted_update(observed: Observed) -> Document:
    """A counted case's record: its keys (an erasure finds its marks through them) and
    the insights it was told it joins (a systemic resolution is linked to them)."""
    update: Document = {"$setOnInsert": {"keys": observed.keys}}
    if observed.insights:
        update["$addToSet"] = {"insights": {"$each": observed.insights}}
    return update


async def _by_ids(
    collection: AsyncCollection[Document], ids: Sequence[str],
    projection: Document | None = None,
) -> dict[str, Document]:  # fmt: skip
    """Documents by ``_id``, one ``find $in`` (an index lookup)."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    found = await collection.find({"_id": {"$in": wanted}}, projection).to_list(None)
    return {str(doc["_id"]): doc for doc in found}
