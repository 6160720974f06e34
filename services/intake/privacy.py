"""What intake keeps about a customer, and how it is erased or masked.

Intake's documents that name a customer:
- ``cases``: subject, text, the original text (the whole mail with quotes and signature),
  the source ref (a Message-ID, a post id), the messages' texts, the customer id, digests
  of the sender's address/phone/social id (to find the cases again), a post's link and the
  attachments' file names; pending events (texts, the acknowledgement's recipient);
- ``customers``: the copy of the CRM profile (e-mail addresses, phones, social ids);
- ``fingerprints``: a digest of sender and words, for the duplicate window.
``sources`` and ``counters`` hold digests and numbers only.

Erasure (``erase_customer``) finds the customer's cases by customer id and by the identity
digests (both indexed), publishes what they still have pending, then masks them (pure:
``mask_case``), deletes their fingerprints and the profile copies, and reports the case
numbers: the other services erase those cases (they do not know the sender's address).
Retention masks a case the same way, unlinking it from the customer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from schemas.inbound import EraseCustomer
from services.intake.store import IntakeStore
from services.runtime.erasure import (
    ERASED,
    Erasure,
    ErasureLog,
    IdentityKind,
    erase_profiles,
    identity_digests,
    marker_pseudonym,
    profile_identities,
)
from services.runtime.outbox import MASKED, flush_outbox

Document = dict[str, Any]
Publish = Callable[[list[Document]], Awaitable[None]]
BATCH = 100


def mask_case(case: Document, masked: Document) -> Document:
    """The update that removes a case's personal data; channel, language, dates, order and
    amounts, category hint, visibility, followers and attachment types stay."""
    extra = dict(case.get("extra") or {})
    if extra.get("url"):
        extra["url"] = None
    if extra.get("attachments"):
        extra["attachments"] = [{**item, "filename": None} for item in extra["attachments"]]
    return {
        "$set": {
            "subject": ERASED, "text": ERASED, "original_text": None, "source_ref": ERASED,
            "customer_id": marker_pseudonym(masked), "identity_digests": [], "extra": extra,
            "messages": [{**message, "text": ERASED} for message in case.get("messages") or []],
            MASKED: masked,
        }
    }  # fmt: skip


def requested_identities(action: EraseCustomer) -> list[tuple[IdentityKind, str]]:
    asked = action.identities
    return [
        *(("email", address.lower()) for address in asked.emails),
        *(("phone", number) for number in asked.phones),
        *(("social", f"{platform.lower()}:{author}") for platform, author in asked.social.items()),
    ]


class IntakePrivacy:
    def __init__(self, db: AsyncDatabase[Document], store: IntakeStore, registry: Any) -> None:
        self.store = store
        self.log = ErasureLog(db, "intake", registry)

    async def ensure_indexes(self) -> None:
        await self.store.cases.create_index([("identity_digests", 1)])

    async def mask_case(self, case_number: str, masked: Document) -> None:
        """Mask one case (again: idempotent) and drop its duplicate-window claim."""
        case = await self.store.cases.find_one({"_id": case_number})
        if case is None:
            return
        await self.store.cases.update_one({"_id": case_number}, mask_case(case, masked))
        if case.get("fingerprint"):
            await self.store.fingerprints.delete_one(
                {"_id": case["fingerprint"], "source_key": case.get("source_key")}
            )

    # --- erase_customer --------------------------------------------------------------

    async def erase(self, action: EraseCustomer, now: datetime, publish: Publish) -> None:
        record = await self.log.begin(action.action_id, now)
        if record.get("status") != "done":
            work = record.get("work") or {}
            identities = requested_identities(action)
            profiles = await self.profiles_named(identities)
            ids = [*([action.customer_id] if action.customer_id else []),
                   *work.get("customers", []), *(str(p["_id"]) for p in profiles)]  # fmt: skip
            for profile in await self.store.customers.find({"_id": {"$in": ids}}).to_list(None):
                identities += profile_identities(profile)
            digests = sorted({*identity_digests(identities), *work.get("digests", [])})
            # Kept for a resumed run: the profiles they come from are deleted last.
            await self.log.remember(action.action_id, "customers", ids)
            await self.log.remember(action.action_id, "digests", digests)
            erasure = Erasure(action.action_id, action.at, tuple(dict.fromkeys(ids)))

            async def cases(erasure: Erasure, log: ErasureLog) -> None:
                await self.erase_cases(erasure, digests, now, publish)

            async def profile_copies(erasure: Erasure, log: ErasureLog) -> None:
                await erase_profiles(log, erasure, self.store.customers)

            await self.log.run(erasure, [cases, profile_copies], now, publish)
        else:
            await flush_outbox(self.log.records, action.action_id, publish)

    async def profiles_named(self, identities: list[tuple[IdentityKind, str]]) -> list[Document]:
        """The profile copies any of the identities names (one indexed query per kind)."""
        found: dict[str, Document] = {}
        for kind, field in (("email", "emails"), ("phone", "phones"), ("social", "social_ids")):
            values = [value for k, value in identities if k == kind]
            if values:
                async for profile in self.store.customers.find({field: {"$in": values}}):
                    found[str(profile["_id"])] = profile
        return list(found.values())

    async def erase_cases(
        self, erasure: Erasure, digests: list[str], now: datetime, publish: Publish
    ) -> None:
        """Every case of the customer, a batch at a time: a masked case no longer matches
        either index, so each query finds only what is left (also after a crash)."""
        queries = [{"identity_digests": {"$in": digests}}] if digests else []
        if erasure.customer_ids:
            queries.append({"customer_id": {"$in": list(erasure.customer_ids)}})
        done: set[str] = set()
        for query in queries:
            while found := await self.store.cases.find(query, {"messages": 1}).to_list(BATCH):
                if all(case["_id"] in done for case in found):
                    raise RuntimeError(f"erasure {erasure.erasure_id}: cases stay unmasked")
                for case in found:
                    number = str(case["_id"])
                    await self.log.note(erasure, "cases", [number])
                    messages = case.get("messages") or []
                    await self.log.note(erasure, "messages",
                                        [f"{number}/{i}" for i in range(len(messages))])  # fmt: skip
                    # What the case still has to publish goes out first (nothing is lost).
                    await flush_outbox(self.store.cases, number, publish)
                    await self.mask_case(number, erasure.marker(now))
                    done.add(number)
