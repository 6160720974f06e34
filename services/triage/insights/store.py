"""Where insights live: one document per key, per product word, per insight.

- ``insight_keys``: per key (category + product / courier / city / phrase) its per-hour
  case counts (the baseline; stale hours are dropped), its last ``max_tracked_cases``
  sightings of the last two windows (the window's distinct customers, and the guard
  that counts a case once when its record comes again soon after; older ones are
  trimmed a batch at a time),
  its last few sample texts, ``open_insight``, the one open insight it may have (set
  by a conditional update: the atomic create), and ``generation``, how many it had.
- ``product_terms``: per folded word of a product name on app forms, the SKUs it was
  used for (a few: a word of several products names none).
- ``insights``: per insight its window, counts, case list, samples, acknowledgement,
  systemic resolutions, ``check_at`` (due-time index for the subsiding check) and its
  outbox of events.

Every access is by ``_id`` or an indexed field; counting a case is one update per key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.runtime.kafka import OutboundMessage
from services.runtime.outbox import add_to_outbox, as_outbox, flush_outbox
from services.triage.insights.detector import Sighting, Verdict, hour_key
from services.triage.insights.keys import CaseKey

Document = dict[str, Any]
Publish = Callable[[list[Document]], Awaitable[None]]
# A word used for more products than this names none of them: no need to remember more.
TERM_SKUS = 3


def sightings(key_document: Document) -> list[Sighting]:
    return [
        Sighting(entry["c"], entry["u"], entry["t"]) for entry in key_document.get("recent") or []
    ]


class InsightStore:
    def __init__(self, db: AsyncDatabase[Document], cases: AsyncCollection[Document]) -> None:
        self.keys = db["insight_keys"]
        self.terms = db["product_terms"]
        self.insights = db["insights"]
        self.cases = cases

    async def ensure_indexes(self) -> None:
        await self.keys.create_index([("last_at", 1)])
        # An erasure finds what a customer's cases left in keys by case number.
        await self.keys.create_index([("recent.c", 1)])
        await self.keys.create_index([("samples.c", 1)])
        await self.insights.create_index([("sample_texts.c", 1)])
        await self.insights.create_index([("check_at", 1)])
        await self.insights.create_index([("case_numbers", 1)])
        await self.insights.create_index([("status", 1)])
        await self.insights.create_index([("detected_at", 1)])

    # --- products -----------------------------------------------------------------------

    async def skus_by_term(self, terms: Iterable[str]) -> dict[str, list[str]]:
        wanted = list(dict.fromkeys(terms))
        found = await asyncio.gather(*(self.terms.find_one({"_id": term}) for term in wanted))
        return {term: list(doc.get("skus") or []) for term, doc in zip(wanted, found, strict=True)
                if doc is not None}  # fmt: skip

    async def learn_terms(
        self, pairs: Sequence[tuple[str, str]], known: dict[str, list[str]]
    ) -> None:
        """Remember which product each word was used for; only what is new is written."""
        await asyncio.gather(*(
            self.terms.update_one({"_id": term}, {"$addToSet": {"skus": sku}}, upsert=True)
            for term, sku in pairs
            if sku not in known.get(term, []) and len(known.get(term, [])) < TERM_SKUS
        ))  # fmt: skip

    # --- keys -----------------------------------------------------------------------------

    async def count(
        self, key: CaseKey, sighting: Sighting, sample: str, tracked: int, samples: int
    ) -> bool:
        """Count ``sighting`` in ``key`` once: False when it was counted before."""
        entry = {"c": sighting.case_number, "u": sighting.customer, "t": sighting.at}
        try:
            await self.keys.update_one(
                {"_id": key.id, "recent.c": {"$ne": sighting.case_number}},
                {
                    "$inc": {f"hours.{hour_key(sighting.at)}": 1},
                    "$push": {"recent": {"$each": [entry], "$slice": -tracked},
                              "samples": {"$each": [{"c": sighting.case_number, "s": sample}],
                                          "$slice": -max(samples, 1)}},
                    "$max": {"last_at": sighting.at},
                    "$setOnInsert": {"kind": key.kind, "category": key.category,
                                     "value": key.value, "open_insight": None, "generation": 0},
                },
                upsert=True,
            )  # fmt: skip
        except DuplicateKeyError:
            # The key exists and already holds this case (a redelivery after a crash).
            return False
        return True

    async def key_documents(self, ids: Iterable[str]) -> dict[str, Document]:
        wanted = list(dict.fromkeys(ids))
        found = await asyncio.gather(*(self.keys.find_one({"_id": key_id}) for key_id in wanted))
        return {doc["_id"]: doc for doc in found if doc is not None}

    async def trim(
        self, key_id: str, hours: Sequence[str], sightings_before: datetime | None = None
    ) -> None:
        """Drop hour buckets and sightings no window or baseline will read again."""
        update: Document = {}
        if hours:
            update["$unset"] = {f"hours.{hour}": "" for hour in hours}
        if sightings_before is not None:
            update["$pull"] = {"recent": {"t": {"$lt": sightings_before}}}
        if update:
            await self.keys.update_one({"_id": key_id}, update)

    async def claim(self, key_id: str, insight_id: str, generation: int) -> str | None:
        """Make ``insight_id`` the key's open insight (its ``generation``-th) unless it has
        one or another was opened meanwhile: the open insight, if any."""
        result = await self.keys.update_one(
            {"_id": key_id, "open_insight": None, "generation": generation},
            {"$set": {"open_insight": insight_id}, "$inc": {"generation": 1}},
        )
        if result.modified_count:
            return insight_id
        current = await self.keys.find_one({"_id": key_id}, {"open_insight": 1})
        return (current or {}).get("open_insight")

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

    # --- insights -------------------------------------------------------------------------

    async def insight(self, insight_id: str) -> Document | None:
        return await self.insights.find_one({"_id": insight_id})

    async def create(self, insight: Document, messages: list[OutboundMessage]) -> bool:
        """Store a detected insight with its events; False when it exists already."""
        result = await self.insights.update_one(
            {"_id": insight["_id"]},
            {"$setOnInsert": {**insight, "outbox": as_outbox(messages)}},
            upsert=True,
        )
        return result.upserted_id is not None

    async def join(
        self, insight_id: str, case_number: str, verdict: Verdict, listed: int,
        check_at: datetime, message: OutboundMessage,
    ) -> bool:  # fmt: skip
        """Add a case to an open insight once; False when it was there (or it closed)."""
        result = await self.insights.update_one(
            {"_id": insight_id, "status": "open", "case_numbers": {"$ne": case_number}},
            {
                "$push": {"case_numbers": {"$each": [case_number], "$slice": listed}},
                "$inc": {"case_total": 1},
                "$max": {"peak": verdict.count},
                "$set": {"count": verdict.count, "baseline": verdict.baseline,
                         "threshold": verdict.threshold, "window_start": verdict.window_start,
                         "window_end": verdict.window_end, "check_at": check_at,
                         **add_to_outbox([message])},
            },
        )  # fmt: skip
        return bool(result.modified_count)

    async def flush(self, insight_id: str, publish: Publish) -> None:
        await flush_outbox(self.insights, insight_id, publish)

    async def resolved_as_systemic(self, case_numbers: Sequence[str]) -> list[str]:
        """Which of these cases were already resolved with root cause ``systemic``."""
        if not case_numbers:
            return []
        found = self.cases.find(
            {"_id": {"$in": list(case_numbers)}, "resolution_root_cause": "systemic"}, {"_id": 1}
        )
        return [doc["_id"] for doc in await found.to_list(None)]

    async def insights_of_case(self, case_number: str) -> list[Document]:
        found = self.insights.find({"case_numbers": case_number})
        return list(await found.to_list(None))

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
                      **add_to_outbox([message])}},
        )  # fmt: skip
        return bool(result.modified_count)

    async def open_insights(self) -> list[Document]:
        """The open insights (an equality range of the status index: few documents)."""
        found = self.insights.find(
            {"status": "open"}, {"kind": 1, "category": 1, "acknowledged": 1}
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
        """Remove what ``case_numbers`` left in keys and insights: their sightings (which
        name the customer) and sample texts. Case numbers in insights' case lists stay,
        as they stay everywhere (statistics). The ids of the documents changed."""
        cases = sorted(set(case_numbers))
        if not cases:
            return []
        found = await asyncio.gather(
            self.keys.find({"recent.c": {"$in": cases}}, {"_id": 1}).to_list(None),
            self.keys.find({"samples.c": {"$in": cases}}, {"_id": 1}).to_list(None),
        )
        keys = sorted({str(doc["_id"]) for docs in found for doc in docs})
        insights = await self.insights.find({"sample_texts.c": {"$in": cases}}, {"_id": 1}).to_list(
            None
        )
        await asyncio.gather(
            *(self.keys.update_one({"_id": key_id}, {"$pull": {
                "recent": {"c": {"$in": cases}}, "samples": {"c": {"$in": cases}}}})
              for key_id in keys),
            *(self.insights.update_one({"_id": doc["_id"]}, {"$pull": {
                "sample_texts": {"c": {"$in": cases}}}})
              for doc in insights),
        )  # fmt: skip
        return [*keys, *(str(doc["_id"]) for doc in insights)]
