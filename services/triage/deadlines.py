"""The deadline watcher: persisted alarms, claimed with a lease, each warning sent once.

Alarms live in the case document (with `next_alarm_at`, indexed), so they survive
restarts. A watcher claims a due case with an atomic conditional update holding a
lease; the warnings and the fired flags go in one update; a dead instance's lease runs
out and another takes over. Warning ids are derived from (case, deadline, kind, due),
so even a re-fire after a lease expiry carries the id consumers have already seen.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter, Gauge
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from schemas.events import SlaWarning
from schemas.topics import CASES_TRIAGED
from services.runtime.errors import TRANSIENT_ERRORS
from services.runtime.kafka import OutboundMessage, event_message
from services.runtime.kit import ServiceKit
from services.runtime.leases import UNPUBLISHED, clear_unpublished, publish_stranded
from services.runtime.outbox import add_to_outbox, flush_outbox
from services.triage.watch import Alarms, due_now, mark_fired, next_alarm_at

log = logging.getLogger(__name__)
SOURCE = "/complaints/triage"
LEASE = timedelta(seconds=30)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Cases taken per pass; what is left is due, so the next pass comes after poll_seconds.
DUE_BATCH = 200
# The open-deadlines gauge counts every open deadline: the one query of the watcher that
# grows with the open cases, so it runs rarely.
GAUGE_EVERY_SECONDS = 300.0


def warning_message(
    case_number: str, deadline: str, kind: str, due: datetime, now: datetime
) -> OutboundMessage:
    event = event_message(
        CASES_TRIAGED,
        f"complaint.case.sla_{kind}",
        SOURCE,
        case_number,
        SlaWarning(case_number=case_number, deadline=deadline, due=due),
        now,
        (case_number, deadline, kind, due.isoformat()),
    )
    return event


class DeadlineWatcher:
    def __init__(
        self,
        kit: ServiceKit,
        cases: AsyncCollection[dict[str, Any]],
        poll_seconds: float,
        idle_seconds: float,
    ) -> None:
        self.kit = kit
        self.cases = cases
        self.poll_seconds = poll_seconds
        self.idle_seconds = idle_seconds
        self.known_next: datetime | None = None
        self.batch = DUE_BATCH
        self._wake = asyncio.Event()
        self.owner = f"triage-{uuid.uuid4().hex[:8]}"
        self.warnings = Counter(
            "complaints_sla_warnings_total", "SLA warnings published",
            ["deadline", "kind"], registry=kit.registry,
        )  # fmt: skip
        self.open_deadlines = Gauge(
            "complaints_open_deadlines", "Cases with a deadline still being watched",
            registry=kit.registry,
        )  # fmt: skip

    async def ensure_indexes(self) -> None:
        await self.cases.create_index([("next_alarm_at", 1)])
        await self.cases.create_index([(UNPUBLISHED, 1)], sparse=True)

    async def due_cases(self, now: datetime) -> list[str]:
        """Up to a batch of case numbers with an alarm due, earliest first: a range of the
        `next_alarm_at` index, so a pass costs what is due, not what is stored."""
        found = self.cases.find({"next_alarm_at": {"$lte": now}}, {"_id": 1})
        return [case["_id"] for case in await found.sort("next_alarm_at", 1).to_list(self.batch)]

    async def claim(self, case_number: str, now: datetime) -> dict[str, Any] | None:
        """Take the case for this pass unless another watcher holds a live lease on it."""
        return await self.cases.find_one_and_update(
            {
                "_id": case_number,
                "next_alarm_at": {"$lte": now},
                "$or": [{"alarm_lease": None}, {"alarm_lease": {"$lt": now}}],
            },
            {"$set": {"alarm_lease": now + LEASE, "alarm_owner": self.owner}},
            return_document=ReturnDocument.AFTER,
        )

    async def fire(self, case: dict[str, Any], now: datetime) -> None:
        alarms: Alarms = case.get("alarms") or {}
        fired = due_now(alarms, now)
        updated = mark_fired(alarms, fired)
        messages = [
            warning_message(case["_id"], deadline, kind, alarms[deadline]["due"], now)
            for deadline, kind in fired
        ]
        # Marked until published: no redelivery brings a warning back, a later pass must.
        mark = {UNPUBLISHED: now} if messages else {}
        # Only if nobody changed the alarms since we read them (re-triage, clock stop).
        result = await self.cases.update_one(
            {"_id": case["_id"], "alarm_owner": self.owner,
             "alarm_version": case.get("alarm_version", 0)},
            {
                "$set": {
                    "alarms": updated,
                    "next_alarm_at": next_alarm_at(updated),
                    "alarm_lease": None,
                    **mark,
                    **add_to_outbox(messages),
                },
                "$inc": {"alarm_version": 1},
            },
        )  # fmt: skip
        if result.modified_count:
            for deadline, kind in fired:
                self.warnings.labels(deadline, kind).inc()
        else:  # changed under us: let go, the next pass decides afresh
            await self.cases.update_one(
                {"_id": case["_id"], "alarm_owner": self.owner}, {"$set": {"alarm_lease": None}}
            )
        await flush_outbox(self.cases, case["_id"], self.kit.publish)
        if mark and result.modified_count:
            await clear_unpublished(self.cases, case["_id"], now)

    async def fire_due(self) -> int:
        handled = 0
        now = self.kit.clock()
        await publish_stranded(self.cases, now - LEASE, self.kit.publish, 100)
        for case_number in await self.due_cases(now):
            case = await self.claim(case_number, now)
            if case is not None:
                await self.fire(case, now)
                handled += 1
        return handled

    def notify(self, alarm_at: datetime | None) -> None:
        """A handler here set an alarm: wake up early if it comes before what we know."""
        if alarm_at is not None and (self.known_next is None or alarm_at < self.known_next):
            self.known_next = alarm_at
            self._wake.set()

    async def earliest_alarm(self) -> datetime | None:
        """The first alarm within the idle interval, or None if none is that close.

        Bounded on purpose: some stores (the local one) fetch every match of a range before
        applying the limit, so an open range would cost every open deadline each pass. An
        alarm further away is found by a later pass; the watcher wakes at least every
        idle_seconds.
        """
        horizon = self.kit.clock() + timedelta(seconds=self.idle_seconds)
        found = self.cases.find(
            {"next_alarm_at": {"$gte": EPOCH, "$lt": horizon}}, {"_id": 0, "next_alarm_at": 1}
        )
        first = await found.sort("next_alarm_at", 1).to_list(1)
        return first[0]["next_alarm_at"] if first else None

    def _pause(self) -> float:
        """Seconds until the next known alarm, between the poll and the idle interval.

        The watcher sleeps until it has something to do, and handlers wake it (notify).
        Alarms set by another instance are seen within idle_seconds at worst.
        """
        if self.known_next is None:
            return self.idle_seconds
        until = (self.known_next - self.kit.clock()).total_seconds()
        return min(max(until, self.poll_seconds), self.idle_seconds)

    async def run(self) -> None:
        counted_at = 0.0
        while not self.kit.stopping.is_set():
            try:
                await self.fire_due()
                self.known_next = await self.earliest_alarm()
                if time.monotonic() - counted_at > GAUGE_EVERY_SECONDS:
                    counted_at = time.monotonic()
                    # O(open deadlines), every GAUGE_EVERY_SECONDS only.
                    self.open_deadlines.set(
                        await self.cases.count_documents({"next_alarm_at": {"$gte": EPOCH}})
                    )
            except TRANSIENT_ERRORS as outage:
                log.warning("deadline pass failed, retrying: %s", type(outage).__name__)
            except Exception:
                log.exception("deadline pass failed")
            self._wake.clear()
            await self.kit.pause(self._pause(), wake=self._wake)
