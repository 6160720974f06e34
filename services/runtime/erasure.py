"""Erasing a customer's personal data: once per request, resumable after a crash.

Each service erases its own copy (services/<service>/privacy.py says which fields, pure)
and keeps one record per request in its ``erasures`` collection, keyed by the request's
``action_id``. While it runs, the record collects the ids of what was erased so far
(``erased.<kind>``): a redelivered request after a crash runs the same steps again, finds
only what is left (masked documents no longer match the customer's indexes) and counts
exactly. The update that marks it done also puts ``complaint.customer.erased`` in the
record's outbox, and the id lists give way to the counts: the record keeps no customer id.

A masked document carries ``masked`` ({by: erasure | retention, erasure_id, at}); a
handler that writes to it later (a late event, a redelivery) has it masked again when it
flushes its outbox (``flush_outbox(..., erased=...)``), so an erased case stays erased.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client import Counter
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from schemas.cloudevents import make_event, stable_event_id
from schemas.events import CustomerErased
from schemas.topics import CUSTOMER_ERASURES
from services.runtime.kafka import OutboundMessage
from services.runtime.outbox import MASKED, add_to_outbox, flush_outbox

Document = dict[str, Any]
ERASED = "[erased]"
# The kinds of identity a complaint or a profile names a customer by.
IdentityKind = str  # "email" | "phone" | "social"


def pseudonym(erasure_id: str) -> str:
    """What replaces an erased customer's id: the same in every service for one request
    (their cases still count as one customer's), derived from nothing personal."""
    return f"erased-{stable_event_id('customer.erased', erasure_id)}"


def marker(by: str, at: datetime, erasure_id: str | None = None) -> Document:
    return {"by": by, "erasure_id": erasure_id, "at": at}


def marker_pseudonym(masked: Document) -> str | None:
    """The customer id a masked document keeps: the erasure's pseudonym, or none at all
    (retention unlinks the case from the customer)."""
    erasure_id = masked.get("erasure_id")
    return pseudonym(str(erasure_id)) if erasure_id else None


# A reopening's reason quotes the customer's survey comment ("reopened: satisfaction score 2:
# …"); triage puts it among a decision's reasons, which the other services keep too.
REOPENED_PREFIX = "reopened: "
REOPENED_ERASED = "reopened (the customer's words are erased)"


def mask_reasons(reasons: Iterable[str]) -> list[str]:
    """Decision reasons without the one that quotes the customer."""
    return [REOPENED_ERASED if str(reason).startswith(REOPENED_PREFIX) else str(reason)
            for reason in reasons]  # fmt: skip


def mask_opened(opened: Document, customer_id: str | None) -> Document:
    """A ``complaint.case.opened`` payload as triage and followup keep it, without its
    personal data (channel, language, times, order, category hint, followers stay)."""
    masked = {**opened, "subject": ERASED, "text": ERASED, "source_ref": ERASED,
              "customer_id": customer_id}  # fmt: skip
    if opened.get("attachments"):
        masked["attachments"] = [{**item, "filename": None} for item in opened["attachments"]]
    return masked


def _normalised(kind: IdentityKind, value: str) -> str:
    value = value.strip()
    if kind == "email":
        return value.lower()
    if kind == "phone":
        return re.sub(r"[^\d+]", "", value)
    if kind == "social":  # "platform:author id"
        platform, _, author = value.partition(":")
        return f"{platform.lower()}:{author}"
    return value


def identity_digest(kind: IdentityKind, value: str) -> str:
    """A one-way digest of an identity: lets the store find a sender's cases at erasure
    without keeping the address itself."""
    return hashlib.sha256(f"{kind}:{_normalised(kind, value)}".encode()).hexdigest()[:40]


def identity_digests(identities: Iterable[tuple[IdentityKind, str]]) -> list[str]:
    return sorted({identity_digest(kind, value) for kind, value in identities if value})


def profile_identities(profile: Document) -> list[tuple[IdentityKind, str]]:
    """The identities a stored CRM profile (services/runtime/customers.py) names."""
    return [
        *(("email", str(address)) for address in profile.get("emails") or []),
        *(("phone", str(number)) for number in profile.get("phones") or []),
        *(("social", str(social)) for social in profile.get("social_ids") or []),
    ]


@dataclass(frozen=True)
class Erasure:
    """One erase_customer request as a service sees it (never stored as such)."""

    erasure_id: str
    at: datetime
    # The CRM ids of the customer (asked for, or found by the identities).
    customer_ids: tuple[str, ...] = ()
    # The cases to erase, when another service found them (intake's event lists them).
    case_numbers: tuple[str, ...] = ()
    identities: tuple[tuple[IdentityKind, str], ...] = field(default=(), repr=False)

    @property
    def customer_id(self) -> str | None:
        return self.customer_ids[0] if self.customer_ids else None

    @property
    def pseudonym(self) -> str:
        return pseudonym(self.erasure_id)

    def marker(self, now: datetime) -> Document:
        return marker("erasure", now, self.erasure_id)


def erased_message(
    service: str, erasure: Erasure, counts: dict[str, int], case_numbers: Sequence[str],
    now: datetime,
) -> OutboundMessage:  # fmt: skip
    data = CustomerErased(
        customer_id=erasure.customer_id, erased_at=now, counts=counts, service=service,
        erasure_id=erasure.erasure_id, case_numbers=list(case_numbers),
        customer_ids=list(erasure.customer_ids),
    )  # fmt: skip
    who = (
        f"customer/{erasure.customer_id}"
        if erasure.customer_id
        else f"erasure/{erasure.erasure_id}"
    )
    event = make_event(
        event_type="complaint.customer.erased", source=f"/complaints/{service}", subject=who,
        data=data, time=now, fact=(erasure.erasure_id, service),
    )  # fmt: skip
    return OutboundMessage.of(CUSTOMER_ERASURES, erasure.customer_id or erasure.erasure_id, event)


Step = Callable[[Erasure, "ErasureLog"], Awaitable[None]]


class ErasureLog:
    """The service's erasure records, and the run of one request's steps."""

    def __init__(self, db: AsyncDatabase[Document], service: str, registry: Any) -> None:
        self.records: AsyncCollection[Document] = db["erasures"]
        self.service = service
        self.erased = Counter(
            "complaints_erased_total",
            "Documents (or parts of them) whose personal data an erase_customer request erased",
            ["kind"], registry=registry,
        )  # fmt: skip

    async def begin(self, erasure_id: str, now: datetime) -> Document:
        """The request's record, created the first time it is seen."""
        await self.records.update_one(
            {"_id": erasure_id},
            {"$setOnInsert": {"status": "running", "started_at": now}},
            upsert=True,
        )
        return await self.records.find_one({"_id": erasure_id}) or {"_id": erasure_id}

    async def remember(self, erasure_id: str, name: str, values: Iterable[str]) -> None:
        """Keep ``values`` (e.g. the customer ids found by the identities) for a resumed run,
        until the request is done: what they were found by may be erased by then."""
        found = sorted(set(values))
        if found:
            await self.records.update_one(
                {"_id": erasure_id}, {"$addToSet": {f"work.{name}": {"$each": found}}}
            )

    async def note(self, erasure: Erasure, kind: str, ids: Iterable[str]) -> None:
        """Record that ``ids`` of ``kind`` are (being) erased: call before erasing them."""
        found = sorted(set(ids))
        if found:
            await self.records.update_one(
                {"_id": erasure.erasure_id}, {"$addToSet": {f"erased.{kind}": {"$each": found}}}
            )

    async def run(
        self, erasure: Erasure, steps: Sequence[Step], now: datetime,
        publish: Callable[[list[Document]], Awaitable[None]],
    ) -> None:  # fmt: skip
        """Run ``steps`` (each idempotent) unless the request is done, then report it."""
        record = await self.begin(erasure.erasure_id, now)
        if record.get("status") != "done":
            for step in steps:
                await step(erasure, self)
            await self._finish(erasure, now)
        await flush_outbox(self.records, erasure.erasure_id, publish)

    async def _finish(self, erasure: Erasure, now: datetime) -> None:
        record = await self.records.find_one({"_id": erasure.erasure_id}) or {}
        erased: dict[str, list[str]] = record.get("erased") or {}
        counts = {kind: len(ids) for kind, ids in sorted(erased.items())}
        case_numbers = sorted(erased.get("cases", []))
        message = erased_message(self.service, erasure, counts, case_numbers, now)
        result = await self.records.update_one(
            {"_id": erasure.erasure_id, "status": "running"},
            {"$set": {"status": "done", "finished_at": now, "counts": counts,
                      "case_numbers": case_numbers, **add_to_outbox([message])},
             "$unset": {"erased": "", "work": ""}},
        )  # fmt: skip
        if result.modified_count:
            for kind, count in counts.items():
                self.erased.labels(kind).inc(count)


# --- steps every service takes -----------------------------------------------------------

Mask = Callable[[Any, Document], Awaitable[object]]


async def erase_cases(
    log: ErasureLog, erasure: Erasure, cases: AsyncCollection[Document], mask: Mask,
    publish: Callable[[list[Document]], Awaitable[None]], now: datetime,
    by_customer: str | None = None,
) -> None:  # fmt: skip
    """The cases intake found for the customer (and those this collection finds by the
    indexed ``by_customer`` field): what they still have to publish goes out first, then
    their personal data is masked. A case this service has not seen yet becomes a masked
    stub: whatever arrives for it later is masked as it is stored (``flush_outbox``)."""
    numbers = list(erasure.case_numbers)
    if by_customer and erasure.customer_ids:
        found = cases.find(
            {by_customer: {"$in": list(erasure.customer_ids)}, MASKED: None}, {"_id": 1}
        )
        numbers += [str(case["_id"]) for case in await found.to_list(None)]
    for number in dict.fromkeys(numbers):
        await log.note(erasure, "cases", [number])
        await flush_outbox(cases, number, publish)
        await cases.update_one(
            {"_id": number},
            {"$setOnInsert": {MASKED: erasure.marker(now), "customer_id": erasure.pseudonym}},
            upsert=True,
        )
        await mask(number, erasure.marker(now))


async def erase_profiles(
    log: ErasureLog, erasure: Erasure, customers: AsyncCollection[Document]
) -> None:
    """The service's copies of the customer's CRM profiles (the CRM's own tombstone on
    customers.profiles removes them too, if it publishes one)."""
    ids = list(erasure.customer_ids)
    if not ids:
        return
    held = await customers.find({"_id": {"$in": ids}}, {"_id": 1}).to_list(None)
    await log.note(erasure, "customer_profiles", [str(profile["_id"]) for profile in held])
    await customers.delete_many({"_id": {"$in": ids}})


def erasure_found_by_intake(event: Document) -> Erasure | None:
    """The request as intake reported it (customer ids and cases found), for the other
    services; None for any other service's report."""
    data = event.get("data") or {}
    if event.get("type") != "complaint.customer.erased" or data.get("service") != "intake":
        return None
    ids = data.get("customer_ids") or ([data["customer_id"]] if data.get("customer_id") else [])
    return Erasure(
        erasure_id=str(data["erasure_id"]), at=datetime.fromisoformat(str(data["erased_at"])),
        customer_ids=tuple(str(i) for i in ids),
        case_numbers=tuple(str(n) for n in data.get("case_numbers") or []),
    )  # fmt: skip
