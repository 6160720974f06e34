"""Intake handlers: parse, decide (pure), store, publish. Offsets commit after publish."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from prometheus_client import Counter

from schemas.common import Channel
from schemas.inbound import CustomerReply, EraseCustomer, Resolve
from schemas.topics import (
    CASE_ACTIONS,
    CASES_FOLLOWUPS,
    CUSTOMER_PROFILES,
    INBOUND_APP,
    INBOUND_EMAIL,
    INBOUND_SOCIAL,
)
from services.intake.cases import (
    format_case_number,
    message_for_case,
    open_case,
    opening_day,
)
from services.intake.complaint import (
    Complaint,
    from_app,
    from_email,
    from_social,
    validated,
)
from services.intake.lanes import ChannelReader
from services.intake.privacy import IntakePrivacy
from services.intake.settings import IntakeSettings
from services.intake.store import IntakeStore
from services.runtime.batches import by_case_in_action
from services.runtime.customers import apply_profile_record
from services.runtime.errors import InputRejected, RetryLater
from services.runtime.kit import RecordHandler, ServiceKit
from services.runtime.outbox import flush_outbox
from services.runtime.records import InboundRecord, parse_cloudevent
from services.runtime.retention import RetentionLoop, note_reopened, note_resolved

log = logging.getLogger(__name__)


class IntakeService:
    def __init__(self, kit: ServiceKit, settings: IntakeSettings) -> None:
        self.kit = kit
        self.settings = settings
        self.store = IntakeStore(kit.db)
        self.privacy = IntakePrivacy(kit.db, self.store, kit.registry)
        self.retention = RetentionLoop(
            kit, self.store.cases, self.privacy.mask_case, settings.retention_poll_seconds
        )
        self.received = Counter(
            "complaints_received_total",
            "Inbound complaint records by channel and outcome",
            ["channel", "outcome"],
            registry=kit.registry,
        )

    def register(self) -> None:
        self.kit.on_startup(self.store.ensure_indexes)
        for topic, parse in ((INBOUND_EMAIL, from_email), (INBOUND_SOCIAL, from_social),
                             (INBOUND_APP, from_app)):  # fmt: skip
            channel = ChannelReader(parse)
            self.kit.subscribe(topic, self.handler_for(channel), links=channel.links)
        self.kit.subscribe(CUSTOMER_PROFILES, self.on_profile)
        self.kit.subscribe(CASE_ACTIONS, self.on_action, links=by_case_in_action)
        # Reopenings, for retention: a case reopened after its resolution is not yet due.
        self.kit.subscribe(CASES_FOLLOWUPS, self.on_followup_event)
        self.kit.on_startup(self.privacy.ensure_indexes)
        self.kit.on_startup(self.retention.ensure_indexes)
        self.kit.background(self.retention.run)

    # --- channels --------------------------------------------------------------------

    def handler_for(self, channel: ChannelReader) -> RecordHandler:
        async def on_record(record: InboundRecord) -> None:
            await self.take(channel.complaint(record))

        return on_record

    async def on_action(self, record: InboundRecord) -> None:
        try:
            kind = json.loads(record.value or b"").get("type")
        except (ValueError, AttributeError):
            return  # the followup service owns rejecting malformed actions
        if kind in ("erase_customer", "resolve"):
            try:
                action = validated(EraseCustomer if kind == "erase_customer" else Resolve,
                                   record.value or b"")  # fmt: skip
            except InputRejected:
                return  # the followup service dead-letters malformed actions
            if isinstance(action, EraseCustomer):
                await self.privacy.erase(action, self.kit.clock(), self.kit.publish)
            else:
                await note_resolved(self.store.cases, action.case_number, action.at)
            return
        if kind != "customer_reply":
            return
        reply = validated(CustomerReply, record.value or b"")
        if not await self.store.case_exists(reply.case_number):
            raise InputRejected("unknown_case", f"no case {reply.case_number}")
        complaint = Complaint(
            channel=Channel.APP,
            source_ref=f"action:{reply.action_id}",
            received_at=record.received_at,
            subject="",
            text=reply.text,
            language="",
            identities=[],
            reply_to=None,
            mentioned_case=reply.case_number,
        )
        await self.add_to_case(complaint, reply.case_number)

    async def on_followup_event(self, record: InboundRecord) -> None:
        event = parse_cloudevent(record)
        if event["type"] == "complaint.case.reopened":
            at = datetime.fromisoformat(str(event["time"]))
            await note_reopened(self.store.cases, str(event["data"]["case_number"]), at)

    async def on_profile(self, record: InboundRecord) -> None:
        await apply_profile_record(self.store.customers, record)

    # --- the one path every complaint takes ------------------------------------------

    async def take(self, complaint: Complaint) -> None:
        channel = complaint.channel.value
        if complaint.auto_reply_reason:
            log.info("auto-reply ignored: %s", complaint.auto_reply_reason)
            self.received.labels(channel, "auto_reply").inc()
            return
        claimed = await self.store.source(complaint.source_key)
        if claimed is not None:
            self.received.labels(channel, "redelivered").inc()
            await self.complete(claimed, complaint)
            return
        thread_case = await self.thread_case(complaint)
        if thread_case is not None:
            self.received.labels(channel, "message_added").inc()
            await self.add_to_case(complaint, thread_case)
            return
        first_sender = await self.store.claim_fingerprint(
            complaint.fingerprint(),
            complaint.source_key,
            complaint.received_at,
            timedelta(minutes=self.settings.duplicate_window_minutes),
        )
        if first_sender != complaint.source_key:
            original = await self.store.source(first_sender)
            if original is None:
                raise RetryLater(f"duplicate of {first_sender}, which is still being opened")
            self.received.labels(channel, "duplicate").inc()
            await self.store.claim_source(complaint.source_key, original["case_number"], "ignored")
            return
        policy = self.kit.policy.current()
        day = opening_day(complaint.received_at, policy)
        case_number = format_case_number(day, await self.store.next_sequence(day))
        claimed = await self.store.claim_source(complaint.source_key, case_number, "opened")
        self.received.labels(channel, "opened").inc()
        await self.complete(claimed, complaint)

    async def thread_case(self, complaint: Complaint) -> str | None:
        found = await self.store.case_for_sources(complaint.reply_keys())
        if found:
            return found
        if complaint.mentioned_case and await self.store.case_exists(complaint.mentioned_case):
            return complaint.mentioned_case
        return None

    async def add_to_case(self, complaint: Complaint, case_number: str) -> None:
        claimed = await self.store.claim_source(complaint.source_key, case_number, "message")
        await self.complete(claimed, complaint)

    async def complete(self, claimed: dict[str, object], complaint: Complaint) -> None:
        """Make the claimed effect true (idempotently) and publish what is still pending."""
        case_number = str(claimed["case_number"])
        policy = self.kit.policy.current()
        now = self.kit.clock()
        if claimed["kind"] == "opened":
            customer = await self.store.find_customer(complaint.identities)
            # The app is signed in: its customer id stands even before the CRM profile arrives.
            stated = next((value for kind, value in complaint.identities if kind == "id"), None)
            customer_id = str(customer["_id"]) if customer else stated
            async with self.kit.timed("create_case"):
                await self.store.create_case(
                    open_case(complaint, case_number, customer_id, policy, now)
                )
        elif claimed["kind"] == "message":
            message, outbox = message_for_case(complaint, case_number, policy, now)
            await self.store.add_message(case_number, message, outbox)
        await self.flush(case_number)

    async def flush(self, case_number: str) -> None:
        # A case erased before (a reply arriving later) is masked again after the write.
        await flush_outbox(
            self.store.cases, case_number, self.kit.publish, masked=self.privacy.mask_case
        )


def build(kit: ServiceKit, settings: IntakeSettings) -> IntakeService:
    service = IntakeService(kit, settings)
    service.register()
    return service
