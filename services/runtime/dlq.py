"""Dead-letter publishing: the exact original bytes, where they came from, and why."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from schemas.cloudevents import make_event
from schemas.events import InputRejected
from schemas.topics import DLQ
from services.runtime.kafka import OutboundMessage
from services.runtime.records import InboundRecord


def rejection_message(
    record: InboundRecord, reason: str, service: str, code: str | None = None
) -> OutboundMessage:
    """The DLQ record for ``record``. Its time is the record's own (when it reached Kafka),
    not the moment of rejection: a record rejected again (its batch redelivered after an
    outage, or a zombie instance handling it too) must give the same bytes under the same id."""
    data = InputRejected(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        reason=reason,
        original=base64.b64encode(record.value or b"").decode("ascii"),
        key=base64.b64encode(record.key).decode("ascii") if record.key is not None else None,
        service=service,
        reason_code=code,
        received_at=record.received_at,
    )
    event = make_event(
        event_type="complaint.input.rejected",
        source=f"/complaints/{service}",
        subject=record.position,
        data=data,
        time=datetime.fromtimestamp(record.timestamp_ms / 1000, UTC),
        # One record position is one rejection, however often it is redelivered.
        fact=(service, record.topic, str(record.partition), str(record.offset)),
    )
    key = record.key.decode("utf-8", "replace") if record.key else record.topic
    return OutboundMessage.of(DLQ, key, event)
