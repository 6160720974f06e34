"""What triage keeps about a customer, and how it is erased or masked.

Triage's documents that name a customer:
- ``cases``: the opened event as received (subject, text, source ref, attachment names,
  customer id), a copy of the customer's profile (addresses, phones, social ids), the
  later messages' texts, a reopening's reason (it quotes the customer's survey comment,
  and the decision's reasons repeat it), pending events;
- ``customers``: the copy of the CRM profile;
- ``insight_keys`` and ``insights`` (insights/store.py): a case's sample text, and its
  mark in each key it was counted in (a digest of the customer id and one of the case
  number; the case document's ``insight_keys`` names those keys); removed by the
  insights' step after the cases.

Masking keeps the decision (category, urgency, deadlines, alarms), the revision, the
customer's tier and lifetime value (the decision's facts) and every date.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.runtime.erasure import (
    ERASED,
    REOPENED_ERASED,
    Erasure,
    ErasureLog,
    Step,
    erase_cases,
    erase_profiles,
    marker_pseudonym,
    mask_opened,
    mask_reasons,
)
from services.runtime.outbox import MASKED

Document = dict[str, Any]
Publish = Callable[[list[Document]], Awaitable[None]]


def mask_case(case: Document, masked: Document) -> Document:
    customer_id = marker_pseudonym(masked)
    update: Document = {"customer_id": customer_id, MASKED: masked}
    if case.get("opened"):
        update["opened"] = mask_opened(case["opened"], customer_id)
    if case.get("customer"):
        profile = case["customer"]
        update["customer"] = {"tier": profile.get("tier"),
                              "lifetime_value": profile.get("lifetime_value")}  # fmt: skip
    if case.get("messages"):
        update["messages"] = [ERASED for _ in case["messages"]]
    personal = case.get("minimum_urgency_reason")
    if personal:
        update["minimum_urgency_reason"] = REOPENED_ERASED
        if (case.get("decision") or {}).get("reasons"):
            update["decision.reasons"] = mask_reasons(case["decision"]["reasons"])
    return {"$set": update}


class TriagePrivacy:
    def __init__(
        self, db: AsyncDatabase[Document], registry: Any, more_steps: Sequence[Step] = ()
    ) -> None:
        self.cases = db["cases"]
        self.customers = db["customers"]
        self.log = ErasureLog(db, "triage", registry)
        # After the cases: e.g. the insights' traces of them (insights/hook.py).
        self.more_steps = list(more_steps)

    async def mask_case(self, case_number: str, masked: Document) -> None:
        case = await self.cases.find_one({"_id": case_number})
        if case is not None:
            await self.cases.update_one({"_id": case_number}, mask_case(case, masked))

    async def erase(self, erasure: Erasure, now: datetime, publish: Publish) -> None:
        async def cases(erasure: Erasure, log: ErasureLog) -> None:
            await erase_cases(log, erasure, self.cases, self.mask_case, publish, now,
                              by_customer="customer_id")  # fmt: skip

        async def profile_copies(erasure: Erasure, log: ErasureLog) -> None:
            await erase_profiles(log, erasure, self.customers)

        await self.log.run(erasure, [cases, profile_copies, *self.more_steps], now, publish)
