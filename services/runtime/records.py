"""A consumed Kafka record, reduced to what handlers need and independent of the client."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

RECEIVED_AT_HEADER = "received-at"


@dataclass(frozen=True)
class InboundRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    headers: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def from_consumer_record(cls, record: Any) -> InboundRecord:
        headers: dict[str, bytes] = {}
        for name, value in record.headers or ():
            headers[name.lower()] = value or b""
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            timestamp_ms=record.timestamp,
            headers=headers,
        )

    @property
    def received_at(self) -> datetime:
        """When the complaint counts as received: the header if valid, else the record time."""
        raw = self.headers.get(RECEIVED_AT_HEADER)
        if raw:
            try:
                moment = datetime.fromisoformat(raw.decode("ascii").strip())
            except (UnicodeDecodeError, ValueError):
                moment = None
            if moment is not None and moment.tzinfo is not None:
                return moment
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    @property
    def position(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


def parse_cloudevent(record: InboundRecord) -> dict[str, Any]:
    """The JSON envelope of an event on one of our own topics, or InputRejected."""
    import json

    from services.runtime.errors import InputRejected

    try:
        event = json.loads((record.value or b"").decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputRejected("invalid_json", f"not a JSON CloudEvent: {exc}") from exc
    if not isinstance(event, dict) or not isinstance(event.get("data"), dict):
        raise InputRejected("schema_violation", "CloudEvent without a data object")
    for required in ("id", "type"):
        if not isinstance(event.get(required), str):
            raise InputRejected("schema_violation", f"CloudEvent without {required}")
    return event


def json_object(record: InboundRecord) -> dict[str, Any] | None:
    """The record's value as a JSON object, or None (for consumers that leave rejecting
    malformed records to the topic's owner)."""
    import json

    try:
        value = json.loads((record.value or b"").decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None
