"""The one place that builds the Kafka broker, creates topics and publishes events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, OutOfOrderSequenceNumber, TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.security import BaseSecurity
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from schemas.cloudevents import CloudEvent, make_event
from schemas.common import Channel
from schemas.events import NotificationRequested
from schemas.topics import ALL_TOPICS, DLQ, NOTIFICATIONS, TopicSpec
from services.policy import Policy
from services.runtime.connections import as_client_kwargs

log = logging.getLogger(__name__)

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json; charset=UTF-8"


class RenewingKafkaBroker(KafkaBroker):
    """A broker that replaces its producer when the producer cannot go on. (Waiting for
    Kafka at start-up is the kit's job: ServiceKit.start keeps trying, not ready.)"""

    # --- a producer that cannot go on -------------------------------------------------

    producer_generation = 0
    _renewing: asyncio.Lock | None = None

    async def renew_producer(self, generation: int) -> None:
        """Replace the producer that failed in ``generation`` (once, however many of its
        sends report it). aiokafka's idempotent producer stops for good on
        OutOfOrderSequenceNumber, which a broker outage longer than its delivery timeout
        causes (expired batches leave a gap in its sequence numbers): without a new one,
        every later publish fails and the service never recovers by itself. Found by
        make chaos (broker away 45-60 s: compensation redelivered the same records for
        minutes)."""
        if self._renewing is None:
            self._renewing = asyncio.Lock()
        async with self._renewing:
            if generation != self.producer_generation:
                return  # another send renewed it already
            config: Any = self.config
            with contextlib.suppress(Exception):
                await asyncio.wait_for(config.producer.disconnect(), 10)
            await config.producer.connect(
                AIOKafkaProducer(**self._connection_kwargs),
                serializer=config.fd_config._serializer,
                codec=config.broker_codec,
            )
            self.producer_generation += 1
            log.warning("Kafka producer renewed after OutOfOrderSequenceNumber")


def build_broker(
    bootstrap_servers: str,
    service: str,
    registry: CollectorRegistry | None,
    max_publish_bytes: int,
    linger_ms: int = 5,
    security: BaseSecurity | None = None,
) -> KafkaBroker:
    """The service's broker; ``registry`` None leaves out FastStream's metrics middleware.

    ``security`` comes from services/runtime/connections.py (``kafka_security``).
    """
    return RenewingKafkaBroker(
        bootstrap_servers,
        security=security,
        max_request_size=max_publish_bytes,
        client_id=f"complaints-{service}",
        # acks=all + idempotence: a publish returns only once the record is durable.
        enable_idempotence=True,
        # A batch's lanes publish within a few milliseconds of each other: waiting that
        # long puts their records in one produce request instead of one request each.
        linger_ms=linger_ms,
        middlewares=[KafkaPrometheusMiddleware(registry=registry, app_name=service)]
        if registry is not None
        else [],
        logger=logging.getLogger(f"faststream.{service}"),
        graceful_timeout=30.0,
    )


DAY_MS = 24 * 3600 * 1000


def retention_ms(policy: Policy) -> dict[str, int]:
    """``retention.ms`` per topic: how long Kafka keeps records that carry personal data
    (the compacted profiles topic keeps each customer's latest, until the CRM's tombstone)."""
    rules = policy.privacy
    return {
        spec.name: (rules.dlq_retention_days if spec.name == DLQ else rules.topic_retention_days)
        * DAY_MS
        for spec in ALL_TOPICS
        if spec.personal and not spec.compacted
    }


async def ensure_topics(
    connection: str | dict[str, Any], partitions: int, prefix: str = "",
    retention: dict[str, int] | None = None, replication_factor: int = 1,
) -> None:  # fmt: skip
    """Create every contract topic with an explicit partition count and replication factor
    (idempotent), and with ``retention`` (topic → retention.ms). A topic that exists with another retention is
    reported, not changed: Kafka's AlterConfigs (all aiokafka has) replaces every setting
    of a topic, and ops may own the others.

    ``connection``: a bootstrap string, or client kwargs from connections.py.
    """
    retention = retention or {}
    admin = AIOKafkaAdminClient(**as_client_kwargs(connection))
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name=prefix + spec.name,
                num_partitions=partitions,
                replication_factor=replication_factor,
                topic_configs=_topic_configs(spec, retention),
            )
            for spec in ALL_TOPICS
            if prefix + spec.name not in existing
        ]
        if wanted:
            # Another service may have created them a moment ago.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
            log.info("created topics %s", [topic.name for topic in wanted])
        kept = {prefix + name: ms for name, ms in retention.items() if prefix + name in existing}
        if kept:
            await _report_other_retention(admin, kept)
    finally:
        await admin.close()


def _topic_configs(spec: TopicSpec, retention: dict[str, int]) -> dict[str, str]:
    configs = {"cleanup.policy": "compact"} if spec.compacted else {}
    if spec.name in retention:
        configs["retention.ms"] = str(retention[spec.name])
    return configs


async def _report_other_retention(admin: AIOKafkaAdminClient, wanted: dict[str, int]) -> None:
    resources = [ConfigResource(ConfigResourceType.TOPIC, name, {"retention.ms": None})
                 for name in sorted(wanted)]  # fmt: skip
    try:
        responses = await admin.describe_configs(resources)
    except KafkaError as failure:  # e.g. no DescribeConfigs permission on a managed cluster
        log.warning("could not check the topics' retention: %s", type(failure).__name__)
        return
    for response in responses:
        for resource in response.resources:
            topic, entries = resource[3], resource[4]
            current = next((entry[1] for entry in entries if entry[0] == "retention.ms"), None)
            if topic in wanted and current is not None and int(current) != wanted[topic]:
                log.warning(
                    "topic %s keeps records %s ms, the policy says %d ms: kafka-configs "
                    "--alter --entity-type topics --entity-name %s --add-config retention.ms=%d",
                    topic, current, wanted[topic], topic, wanted[topic],
                    extra={"topic": topic},
                )  # fmt: skip


def encode_event(event: CloudEvent) -> bytes:
    return event.model_dump_json().encode("utf-8")


class OutboundMessage(dict[str, Any]):
    """One pending publish, stored inside the owning document until Kafka has it.

    Stored as plain fields (id, topic, key, value as a JSON string) so that a
    republish after a crash sends byte-for-byte the same record.
    """

    @classmethod
    def of(cls, topic: str, key: str, event: CloudEvent) -> OutboundMessage:
        return cls(
            id=event.id,
            topic=topic,
            key=key,
            type=event.type,
            value=encode_event(event).decode("utf-8"),
        )


async def publish_outbound(
    broker: KafkaBroker, messages: list[dict[str, Any]], prefix: str = ""
) -> None:
    """Send every message, then wait until the broker has all of them.

    Sends are issued in order without waiting for each acknowledgement: the idempotent
    producer keeps one partition's records in the order they were sent, so one case's
    events stay in order, and a batch of cases costs one round of acknowledgements.
    """
    generation = getattr(broker, "producer_generation", 0)
    try:
        sent = [
            await broker.publish(
                value.encode("utf-8") if isinstance(value, str) else value,
                topic=prefix + message["topic"],
                key=message["key"].encode("utf-8"),
                headers={"content-type": CLOUDEVENTS_CONTENT_TYPE, "ce_id": message["id"]},
                no_confirm=True,
            )
            for message in messages
            for value in (message["value"],)
        ]
        # Wait for all of them even when one fails, so no acknowledgement is left unobserved.
        outcomes = await asyncio.gather(*sent, return_exceptions=True)
        failed = next((outcome for outcome in outcomes if isinstance(outcome, BaseException)), None)
        if failed is not None:
            raise failed
    except OutOfOrderSequenceNumber:
        if isinstance(broker, RenewingKafkaBroker):
            await broker.renew_producer(generation)  # the caller redelivers; the new one sends
        raise


async def topic_partitions(
    connection: str | dict[str, Any], topics: list[str]
) -> list[TopicPartition]:
    """Every partition of ``topics``, asked of the cluster (a consumer's cache may lag)."""
    admin = AIOKafkaAdminClient(**as_client_kwargs(connection))
    try:
        await admin.start()
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return [
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        for partition in sorted(topic.get("partitions", []), key=lambda p: p["partition"])
    ]


def event_message(
    topic: str,
    event_type: str,
    source: str,
    case_number: str,
    data: BaseModel,
    time: datetime,
    fact: tuple[str, ...],
) -> OutboundMessage:
    """A case event for the outbox: keyed and subject-ed by the case, id derived from ``fact``."""
    event = make_event(
        event_type=event_type, source=source, subject=case_number, data=data, time=time, fact=fact
    )
    return OutboundMessage.of(topic, case_number, event)


def notification_message(
    source: str,
    case_number: str,
    channel: str | None,
    recipient: str | None,
    template: str,
    language: str,
    body: str,
    time: datetime,
    fact: tuple[str, ...],
) -> OutboundMessage:
    """A customer-facing message for the notification service to deliver."""
    data = NotificationRequested(
        case_number=case_number,
        channel=Channel(channel or "email"),
        recipient=recipient,
        template=template,
        language=language,
        body=body,
    )
    return event_message(
        NOTIFICATIONS, "complaint.notification.requested", source, case_number, data, time, fact
    )
