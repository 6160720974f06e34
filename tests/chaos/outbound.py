"""Reading the system from the outside: its topics, its consumer groups' lag.

Every helper survives a broker restart (it is used while one happens): failures are
retried until a deadline, never taken for "no data".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata
from aiokafka.errors import KafkaError, OutOfOrderSequenceNumber

from schemas.topics import (
    CASES_COMPENSATION,
    CASES_FOLLOWUPS,
    CASES_OPENED,
    CASES_RESOLVED,
    CASES_TRIAGED,
    DLQ,
    NOTIFICATIONS,
)
from services.runtime.kafka import topic_partitions

OUTBOUND = (CASES_OPENED, CASES_TRIAGED, CASES_COMPENSATION, CASES_FOLLOWUPS, CASES_RESOLVED,
            NOTIFICATIONS, DLQ)  # fmt: skip
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Seen:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    raw: bytes
    event: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.event.get("type"))

    @property
    def id(self) -> str:
        return str(self.event.get("id"))

    @property
    def data(self) -> dict[str, Any]:
        data = self.event.get("data")
        return data if isinstance(data, dict) else {}

    @property
    def case_number(self) -> str | None:
        value = self.data.get("case_number")
        return value if isinstance(value, str) else None


def _seen(record: Any) -> Seen:
    try:
        event = json.loads(record.value)
    except (TypeError, ValueError):
        event = {"type": "<not json>"}
    return Seen(record.topic, record.partition, record.offset, record.key, record.value or b"",
                event if isinstance(event, dict) else {"type": "<not an object>"})  # fmt: skip


class Tail:
    """Follows the outbound topics from the beginning, calling ``on_record`` for each."""

    def __init__(self, bootstrap: str, on_record: Callable[[Seen], None]) -> None:
        self.bootstrap = bootstrap
        self.on_record = on_record
        self.count = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        consumer = AIOKafkaConsumer(*OUTBOUND, bootstrap_servers=self.bootstrap, group_id=None,
                                    auto_offset_reset="earliest", metadata_max_age_ms=2000)  # fmt: skip
        while True:
            try:
                await consumer.start()
                break
            except KafkaError:
                await asyncio.sleep(1)  # the broker may be restarting
        try:
            while True:
                try:
                    batch = await consumer.getmany(timeout_ms=200)
                except KafkaError as error:
                    log.warning("tail: %s", error)
                    await asyncio.sleep(1)  # back-off: the broker is away during a fault
                    continue
                for records in batch.values():
                    for record in records:
                        self.count += 1
                        self.on_record(_seen(record))
        finally:
            await _stop(consumer)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def _stop(client: Any) -> None:
    """Stop an aiokafka client; its own internal tasks' cancellation is not ours."""
    try:
        await client.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise


async def _retrying(what: str, attempt: Callable[[], Any], timeout: float = 120) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await attempt()
        except (KafkaError, OSError) as error:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{what}: {error}") from error
            await asyncio.sleep(1)  # back-off between attempts, bounded by the deadline


async def end_offsets(
    bootstrap: str, topics: tuple[str, ...] = OUTBOUND
) -> dict[TopicPartition, int]:
    async def attempt() -> dict[TopicPartition, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        await consumer.start()
        try:
            existing = set(await consumer.topics())
            partitions = await topic_partitions(bootstrap, [t for t in topics if t in existing])
            return dict(await consumer.end_offsets(partitions)) if partitions else {}
        finally:
            await _stop(consumer)

    result: dict[TopicPartition, int] = await _retrying("end offsets", attempt)
    return result


async def read_all(bootstrap: str, topics: tuple[str, ...] = OUTBOUND) -> list[Seen]:
    """Every record on ``topics`` up to their current end, in partition order."""
    ends = await end_offsets(bootstrap, topics)

    async def attempt() -> list[Seen]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                    enable_auto_commit=False, max_partition_fetch_bytes=32 << 20)  # fmt: skip
        await consumer.start()
        seen: list[Seen] = []
        try:
            wanted = [tp for tp, end in ends.items() if end > 0]
            if not wanted:
                return seen
            consumer.assign(wanted)
            await consumer.seek_to_beginning(*wanted)
            left = {tp: ends[tp] for tp in wanted}
            while left:
                batch = await consumer.getmany(*left, timeout_ms=1000)
                for tp, records in batch.items():
                    seen.extend(_seen(record) for record in records if record.offset < ends[tp])
                for tp in list(left):
                    if await consumer.position(tp) >= left[tp]:
                        del left[tp]
            return seen
        finally:
            await _stop(consumer)

    result: list[Seen] = await _retrying("reading the topics", attempt, timeout=300)
    return result


async def group_lags(bootstrap: str) -> dict[str, int]:
    """Per consumer group of the services (one per service, ``complaints.<service>``, for
    all its topics): records on its topics not yet committed (end - committed). Its topics
    are what its members subscribe to and what it has committed before."""

    async def attempt() -> dict[str, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        await admin.start()
        await consumer.start()
        try:
            groups = [entry[0] if isinstance(entry, tuple) else entry["group_id"]
                      for entry in await admin.list_consumer_groups()]  # fmt: skip
            lags: dict[str, int] = {}
            for group in groups:
                if not group.startswith("complaints."):
                    continue
                committed = await admin.list_consumer_group_offsets(group)
                topics = {tp.topic for tp in committed} | await _subscribed(admin, group)
                partitions = await topic_partitions(bootstrap, sorted(topics)) if topics else []
                ends = await consumer.end_offsets(partitions) if partitions else {}
                lag = 0
                for tp in partitions:
                    done = committed.get(tp)
                    position = done.offset if done is not None and done.offset >= 0 else 0
                    lag += max(0, ends[tp] - position)
                lags[group] = lag
            return lags
        finally:
            await _stop(consumer)
            await admin.close()

    result: dict[str, int] = await _retrying("consumer lag", attempt)
    return result


async def _subscribed(admin: AIOKafkaAdminClient, group: str) -> set[str]:
    """The topics the group's current members subscribe to."""
    topics: set[str] = set()
    for response in await admin.describe_consumer_groups([group]):
        for entry in response.groups:
            for member in entry[5]:
                with contextlib.suppress(Exception):  # a member mid-join has no metadata yet
                    topics.update(ConsumerProtocolMemberMetadata.decode(member[3]).subscription)
    return topics


async def group_state(bootstrap: str, group: str) -> tuple[str, list[str]]:
    """(state, member ids) of a consumer group, e.g. ("Stable", [...])."""

    async def attempt() -> tuple[str, list[str]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
        await admin.start()
        try:
            described = await admin.describe_consumer_groups([group])
        finally:
            await admin.close()
        for response in described:
            for entry in response.groups:
                return str(entry[2]), [str(member[0]) for member in entry[5]]
        return "Dead", []

    result: tuple[str, list[str]] = await _retrying("group state", attempt)
    return result


# Longer than a broker outage (up to 60 s) and its restart.
SEND_TIMEOUT = 150.0


class Producer:
    """The driver's producer: idempotent, and retried through broker restarts (upstream
    is at-least-once too; the same bytes twice are what the system must absorb)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._producer = self._new()
        self.retries = 0
        self.replaced = 0

    def _new(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True,
            max_request_size=16 << 20, request_timeout_ms=15000,
        )  # fmt: skip

    async def start(self) -> None:
        await _retrying("producer start", self._producer.start)

    async def stop(self) -> None:
        with contextlib.suppress(KafkaError, TimeoutError):
            await asyncio.wait_for(self._producer.stop(), 30)

    async def _replace(self) -> None:
        """A fresh producer for one that stopped answering: seen after a broker restart
        (a send that neither returned nor failed for minutes, the round's traffic stuck)."""
        stuck, self._producer = self._producer, self._new()
        self.replaced += 1
        with contextlib.suppress(Exception):
            await asyncio.wait_for(stuck.stop(), 10)
        await self.start()

    async def enqueue(self, topic: str, value: bytes) -> Any:
        """Queue a record without waiting for the broker; await the result for its position."""
        return await self._producer.send(topic, value)

    async def send(
        self, topic: str, value: bytes | None, key: bytes | None = None,
        headers: dict[str, str] | None = None, timeout: float = 300,
    ) -> Any:  # fmt: skip
        encoded = [(name, text.encode()) for name, text in (headers or {}).items()]
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            producer = self._producer
            try:
                return await asyncio.wait_for(
                    producer.send_and_wait(topic, value, key=key, headers=encoded), SEND_TIMEOUT
                )
            except (TimeoutError, OutOfOrderSequenceNumber, asyncio.CancelledError) as stuck:
                # Hung, or stopped for good (the idempotent producer's sender dies on
                # OutOfOrderSequenceNumber after a long outage and its pending sends are
                # cancelled, though this task was not): a fresh producer.
                task = asyncio.current_task()
                if isinstance(stuck, asyncio.CancelledError) and task and task.cancelling():
                    raise
                self.retries += 1
                if asyncio.get_running_loop().time() > deadline:
                    raise
                if producer is self._producer:  # not replaced by another send meanwhile
                    await self._replace()
            except KafkaError:
                self.retries += 1
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.5)  # back-off between sends, bounded by the deadline
