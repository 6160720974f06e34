"""What followup keeps about a customer, and how it is erased or masked.

Followup's documents that name a customer:
- ``cases``: the opened event as received (subject, text, source ref, attachment names,
  customer id), the triage decision (customer id, reasons that may quote a survey
  comment), the resolution's summary (an agent's free text), the last resolved record
  (kept for its revisions), pending events (the resolved record, the reopening's reason
  with the customer's comment);
- ``followups``: the satisfaction checks, sent to the customer id (the recipient), with
  pending survey notifications;
- ``customers``: the copy of the CRM profile.
Masking keeps the status, dates, scores, the compensation given, the root cause and the
checks' outcomes; an erased customer's open checks are cancelled (never surveyed again).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.runtime.erasure import (
    ERASED,
    Erasure,
    ErasureLog,
    erase_cases,
    erase_profiles,
    marker_pseudonym,
    mask_opened,
    mask_reasons,
)
from services.runtime.outbox import MASKED, flush_outbox

Document = dict[str, Any]
Publish = Callable[[list[Document]], Awaitable[None]]
OPEN = ("scheduled", "sent", "reminded")


def mask_case(case: Document, masked: Document) -> Document:
    customer_id = marker_pseudonym(masked)
    update: Document = {MASKED: masked}
    if case.get("opened"):
        update["opened"] = mask_opened(case["opened"], customer_id)
    if case.get("triage"):
        triage = {**case["triage"], "customer_id": customer_id}
        for field in ("reasons", "escalation_reasons"):
            if triage.get(field):
                triage[field] = mask_reasons(triage[field])
        update["triage"] = triage
    if (case.get("resolution") or {}).get("summary"):
        update["resolution.summary"] = ERASED
    if case.get("resolved_record"):
        # The last resolved record, kept to publish its revisions: the same data again.
        record = {**case["resolved_record"], "customer_id": customer_id}
        if (record.get("resolution") or {}).get("summary"):
            record["resolution"] = {**record["resolution"], "summary": ERASED}
        update["resolved_record"] = record
    return {"$set": update}


def mask_followup(followup: Document, masked: Document) -> Document:
    update: Document = {"customer_id": marker_pseudonym(masked), MASKED: masked}
    if masked.get("by") == "erasure" and followup.get("status") in OPEN:
        update |= {"status": "cancelled", "cancel_reason": "customer's data erased",
                   "next_at": None}  # fmt: skip
    return {"$set": update}


class FollowupPrivacy:
    def __init__(self, db: AsyncDatabase[Document], registry: Any, publish: Publish) -> None:
        self.cases = db["cases"]
        self.followups = db["followups"]
        self.customers = db["customers"]
        self.publish = publish
        self.log = ErasureLog(db, "followup", registry)

    async def mask_case(self, case_number: str, masked: Document) -> None:
        """The case and its satisfaction checks."""
        case = await self.cases.find_one({"_id": case_number})
        if case is not None:
            await self.cases.update_one({"_id": case_number}, mask_case(case, masked))
        async for followup in self.followups.find({"case_number": case_number}):
            await self.mask_followup(followup, masked)

    async def mask_followup(self, followup: Document, masked: Document) -> None:
        # A survey already decided is sent (nothing is lost), then the check is masked.
        await flush_outbox(self.followups, followup["_id"], self.publish)
        await self.followups.update_one({"_id": followup["_id"]}, mask_followup(followup, masked))

    async def remask(self, case_number: str) -> None:
        """Mask again a case erased before, after a late write to it."""
        case = await self.cases.find_one({"_id": case_number}, {MASKED: 1})
        if case and case.get(MASKED):
            await self.mask_case(case_number, case[MASKED])

    async def erase(self, erasure: Erasure, now: datetime, publish: Publish) -> None:
        async def cases(erasure: Erasure, log: ErasureLog) -> None:
            await erase_cases(log, erasure, self.cases, self.mask_case, publish, now)

        async def checks(erasure: Erasure, log: ErasureLog) -> None:
            """The customer's checks: of the cases found, and any other sent to their id."""
            found: dict[Any, Document] = {}
            for field, values in (("case_number", erasure.case_numbers),
                                  ("customer_id", erasure.customer_ids)):  # fmt: skip
                if values:
                    async for followup in self.followups.find({field: {"$in": list(values)}}):
                        found[followup["_id"]] = followup
            await log.note(erasure, "followups", [str(followup_id) for followup_id in found])
            for followup in found.values():
                await self.mask_followup(followup, erasure.marker(now))

        async def profile_copies(erasure: Erasure, log: ErasureLog) -> None:
            await erase_profiles(log, erasure, self.customers)

        await self.log.run(erasure, [cases, checks, profile_copies], now, publish)
