"""CloudEvents 1.0 structured-mode envelope with ids that are stable across retries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.common import Timestamp

# Namespace for uuid5 event ids: the same fact always hashes to the same id, so a
# re-publish after a crash carries the id the consumer has already seen.
EVENT_ID_NAMESPACE = uuid.UUID("6f1d2a9e-3c4b-5d6e-8f70-91a2b3c4d5e6")


def stable_event_id(*fact: str) -> str:
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, "\x1f".join(fact)))


class CloudEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    specversion: str = "1.0"
    id: str
    source: str
    type: str
    time: Timestamp
    subject: str | None = None
    datacontenttype: str = "application/json"
    data: dict[str, Any] = Field(default_factory=dict)


def make_event(
    *,
    event_type: str,
    source: str,
    subject: str,
    data: BaseModel,
    time: datetime,
    fact: tuple[str, ...],
) -> CloudEvent:
    """Wrap ``data`` in an envelope whose id is derived from ``fact`` (what makes it unique)."""
    return CloudEvent(
        id=stable_event_id(event_type, *fact),
        source=source,
        type=event_type,
        time=time,
        subject=subject,
        data=data.model_dump(mode="json"),
    )
