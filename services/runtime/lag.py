"""Consumer lag per topic and partition, as the broker sees it: end offset minus the
offset this service's consumer group has committed. Committed, not consumed, because
that is what would be re-read after a crash, and what KEDA's Kafka scaler scales on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import Gauge

if TYPE_CHECKING:
    from services.runtime.kit import ServiceKit


class LagMonitor:
    def __init__(self, kit: ServiceKit, poll_seconds: float) -> None:
        self.kit = kit
        self.poll_seconds = poll_seconds
        # (full topic name, consumer group) for every subscription of the service.
        self.subscriptions: list[tuple[str, str]] = []
        self.lag = Gauge(
            "complaints_consumer_lag_records",
            "Records on the topic not yet committed by the service's consumer group",
            ["service", "topic", "partition"],
            registry=kit.registry,
        )

    async def measure(self, admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer) -> None:
        described = await admin.describe_topics([topic for topic, _ in self.subscriptions])
        partitions = {
            entry["topic"]: [TopicPartition(entry["topic"], p["partition"])
                             for p in entry.get("partitions", [])]
            for entry in described
        }  # fmt: skip
        if not any(partitions.values()):
            return
        # One request for every end offset; then one per group for what it committed.
        ends = await consumer.end_offsets([tp for tps in partitions.values() for tp in tps])
        for topic, group in self.subscriptions:
            mine = partitions.get(topic, [])
            if not mine:
                continue
            committed = await admin.list_consumer_group_offsets(group, partitions=mine)
            for partition in mine:
                done = committed.get(partition)
                position = done.offset if done is not None and done.offset >= 0 else 0
                self.lag.labels(
                    self.kit.name, topic.removeprefix(self.kit.settings.topic_prefix),
                    str(partition.partition),
                ).set(max(0, ends[partition] - position))  # fmt: skip

    async def run(self) -> None:
        admin = AIOKafkaAdminClient(**self.kit.kafka)
        consumer = AIOKafkaConsumer(**self.kit.kafka, group_id=None)
        try:
            await admin.start()
            await consumer.start()
            await self.kit.repeat(
                "lag measurement", lambda: self.measure(admin, consumer), self.poll_seconds
            )
        finally:
            await consumer.stop()
            await admin.close()
