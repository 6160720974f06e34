"""What a new complaint or a follow-up message becomes: case documents and their events. Pure."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from schemas.common import Money
from schemas.events import Attachment, CaseOpened, MessageAdded, OrderItem
from schemas.topics import CASES_OPENED
from services.intake.complaint import Complaint
from services.intake.templates import acknowledgement
from services.policy import Policy
from services.runtime.kafka import OutboundMessage, event_message, notification_message
from services.runtime.outbox import as_outbox

SOURCE = "/complaints/intake"


def opening_day(received_at: datetime, policy: Policy) -> date:
    return received_at.astimezone(policy.zone).date()


def format_case_number(day: date, sequence: int) -> str:
    return f"CS{day:%Y%m%d}-{sequence:04d}"


def _money(value: Any) -> Money | None:
    return Money.model_validate(value) if value else None


def open_case(
    complaint: Complaint,
    case_number: str,
    customer_id: str | None,
    policy: Policy,
    now: datetime,
) -> dict[str, Any]:
    """The case document, with the opened event and the acknowledgement in its outbox."""
    received_at = complaint.received_at.astimezone(policy.zone)
    extra = complaint.extra
    opened = CaseOpened(
        case_number=case_number,
        channel=complaint.channel,
        customer_id=customer_id,
        language=complaint.language,
        received_at=received_at,
        subject=complaint.subject,
        text=complaint.text,
        source_ref=complaint.source_ref,
        order_id=extra.get("order_id"),
        order_value=_money(extra.get("order_value")),
        category_hint=extra.get("category_hint"),
        visibility=extra.get("visibility"),
        followers=extra.get("followers"),
        platform=extra.get("platform"),
        attachments=[Attachment.model_validate(item) for item in extra.get("attachments", [])],
        items=[OrderItem.model_validate(item) for item in extra.get("items", [])],
    )
    opened_event = event_message(
        CASES_OPENED,
        "complaint.case.opened",
        SOURCE,
        case_number,
        opened,
        now,
        (case_number,),
    )
    reply_minutes = policy.triage.channel_first_response_minutes[complaint.channel.value]
    template, body = acknowledgement(
        complaint.language, case_number, received_at + timedelta(minutes=reply_minutes)
    )
    notification = notification_message(
        SOURCE,
        case_number,
        complaint.channel.value,
        complaint.reply_to,
        template,
        complaint.language,
        body,
        now,
        (case_number, "acknowledgement"),
    )
    return {
        "_id": case_number,
        "channel": complaint.channel.value,
        "customer_id": customer_id,
        "language": complaint.language,
        "received_at": complaint.received_at,
        "subject": complaint.subject,
        "text": complaint.text,
        "original_text": complaint.original_text,
        "source_ref": complaint.source_ref,
        "source_key": complaint.source_key,
        # Found again at erasure by these (digests of the sender's address, phone, social
        # id) and by customer_id; the duplicate-window claim to remove then.
        "identity_digests": complaint.identity_digests(),
        "fingerprint": complaint.fingerprint(),
        "extra": extra,
        "messages": [],
        "created_at": now,
        "outbox": as_outbox(
            [
                opened_event,
                notification,
            ]
        ),
    }


def message_for_case(
    complaint: Complaint, case_number: str, policy: Policy, now: datetime
) -> tuple[dict[str, Any], list[OutboundMessage]]:
    """A reply on an existing case: the stored message and its message_added event."""
    received_at = complaint.received_at.astimezone(policy.zone)
    added = MessageAdded(
        case_number=case_number,
        channel=complaint.channel,
        source_ref=complaint.source_ref,
        text=complaint.text,
        received_at=received_at,
        language=complaint.language,
    )
    event = event_message(
        CASES_OPENED,
        "complaint.case.message_added",
        SOURCE,
        case_number,
        added,
        now,
        (case_number, complaint.source_key),
    )
    message = {
        "source_key": complaint.source_key,
        "channel": complaint.channel.value,
        "received_at": complaint.received_at,
        "text": complaint.text,
    }
    return message, [event]


def within_window(earlier: datetime, later: datetime, minutes: Decimal | int) -> bool:
    return abs(later - earlier) <= timedelta(minutes=float(minutes))
