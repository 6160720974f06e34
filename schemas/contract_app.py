"""The public contract as a FastStream app, for the AsyncAPI document only (never run).

faststream docs gen schemas.contract_app:app --out schemas/asyncapi.json
"""

from __future__ import annotations

from typing import Any, Literal

from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from pydantic import BaseModel, create_model

from schemas.cloudevents import CloudEvent
from schemas.events import EVENT_TYPES
from schemas.inbound import AppSubmission, CaseActionRecord, CustomerProfile, SocialPost
from schemas.topics import (
    CASE_ACTIONS,
    CASES_INSIGHTS,
    CUSTOMER_ERASURES,
    CUSTOMER_PROFILES,
    DLQ,
    INBOUND_APP,
    INBOUND_SOCIAL,
)


def envelope_for(event_type: str, data_model: type[BaseModel]) -> type[CloudEvent]:
    """A CloudEvent whose `type` and `data` are those of one event of the contract."""
    name = "".join(part.title() for part in event_type.split(".")[1:]) + "Event"
    model: type[CloudEvent] = create_model(
        name,
        __base__=CloudEvent,
        type=(Literal[event_type], event_type),  # type: ignore[arg-type]
        data=(data_model, ...),
    )
    return model


ENVELOPES: dict[str, type[CloudEvent]] = {
    event_type: envelope_for(event_type, model) for event_type, (_, model) in EVENT_TYPES.items()
}

broker = KafkaBroker("localhost:9092", description="Complaint-processing platform, public topics")


@broker.subscriber(
    "complaints.inbound.email",
    title="complaints.inbound.email",
    description="Raw RFC 5322 message bytes as the mail gateway received them (any charset).",
)
async def inbound_email(message: bytes) -> None: ...


@broker.subscriber(INBOUND_SOCIAL, title=INBOUND_SOCIAL, description="Social posts, JSON UTF-8.")
async def inbound_social(message: SocialPost) -> None: ...


@broker.subscriber(INBOUND_APP, title=INBOUND_APP, description="App and web form submissions.")
async def inbound_app(message: AppSubmission) -> None: ...


@broker.subscriber(
    CUSTOMER_PROFILES,
    title=CUSTOMER_PROFILES,
    description="CRM profiles, compacted, key = customer id; a null value removes the customer.",
)
async def customer_profiles(message: CustomerProfile) -> None: ...


@broker.subscriber(
    CASE_ACTIONS, title=CASE_ACTIONS, description="Agent desk and app actions on a case."
)
async def case_actions(message: CaseActionRecord) -> None: ...


# Topics whose records are not keyed by a case number.
KEYS = {
    CUSTOMER_ERASURES: "customer id (the erasure id when the request named none)",
    DLQ: "the rejected record's key",
    CASES_INSIGHTS: "insight id",
}


def _register_publishers() -> None:
    by_topic: dict[str, list[str]] = {}
    for event_type, (topic, _) in EVENT_TYPES.items():
        by_topic.setdefault(topic, []).append(event_type)
    for topic, event_types in by_topic.items():
        union: Any = ENVELOPES[event_types[0]]
        for event_type in event_types[1:]:
            union = union | ENVELOPES[event_type]
        key = KEYS.get(topic, "case number")
        broker.publisher(
            topic,
            title=topic,
            description=f"CloudEvents 1.0 (structured JSON), key = {key}: "
            + ", ".join(event_types),
            schema=union,
        )


_register_publishers()

app = FastStream(
    broker,
    specification=AsyncAPI(
        title="Complaint-processing platform",
        version="1.0.0",
        description="Topics and event shapes the outside world relies on (docs/contract.md).",
    ),
)
