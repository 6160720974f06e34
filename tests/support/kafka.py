"""Talking to the system from outside, as upstream teams and the CRM do: plain aiokafka."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

OUTBOUND_TOPICS = (
    "cases.opened", "cases.triaged", "cases.compensation", "cases.followups",
    "cases.resolved", "cases.insights", "notifications.outbound", "customers.erasures",
    "complaints.dlq",
)  # fmt: skip


@dataclass
class Seen:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    event: dict[str, Any]
    timestamp_ms: int = 0

    @property
    def type(self) -> str:
        return str(self.event.get("type"))

    @property
    def data(self) -> dict[str, Any]:
        return dict(self.event.get("data") or {})


@dataclass
class EventReader:
    """Reads every outbound topic from the beginning into memory, in the background."""

    bootstrap_servers: str
    topics: tuple[str, ...] = OUTBOUND_TOPICS
    # Security for a secured broker (services/runtime/connections.kafka_security_kwargs).
    options: dict[str, Any] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    _consumer: AIOKafkaConsumer | None = None
    _task: asyncio.Task[None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.bootstrap_servers,
            group_id=None,
            auto_offset_reset="earliest",
            metadata_max_age_ms=1000,
            **self.options,
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._consumer is not None
        while True:
            batch = await self._consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    try:
                        event = json.loads(record.value)
                    except ValueError:
                        event = {"type": "<not json>", "raw": record.value}
                    self.seen.append(
                        Seen(record.topic, record.partition, record.offset, record.key, event,
                             record.timestamp)
                    )  # fmt: skip
            if batch:
                self._changed.set()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer:
            try:
                await self._consumer.stop()
            except asyncio.CancelledError:
                # aiokafka's fetcher.close() cancels its in-flight fetch tasks and awaits them
                # unguarded, so a fetch that was backing off after a timeout (a loaded broker)
                # leaks its CancelledError (aio-libs/aiokafka#647). Only a cancellation of this
                # very task is ours to pass on.
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise

    def matching(self, predicate: Callable[[Seen], bool]) -> list[Seen]:
        return [item for item in self.seen if predicate(item)]

    async def wait_for(
        self, predicate: Callable[[Seen], bool], timeout: float = 60.0, count: int = 1
    ) -> list[Seen]:
        """Wait until ``count`` events match; fail with what was seen after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.matching(predicate)
            if len(found) >= count:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                recent = [
                    f"{s.topic}:{s.type}:{s.data.get('case_number')}" for s in self.seen[-15:]
                ]
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {count} event(s); "
                    f"found {len(found)}; last seen: {recent}"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=remaining)

    def of_case(self, case_number: str, event_type: str | None = None) -> list[Seen]:
        return self.matching(
            lambda s: (
                s.data.get("case_number") == case_number
                and (event_type is None or s.type == event_type)
            )
        )


class Upstream:
    """A plain producer publishing raw bytes, as the channel adapters do."""

    def __init__(self, bootstrap_servers: str, **options: Any) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            max_request_size=16 * 1024 * 1024,
            **options,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        await self._producer.send_and_wait(
            topic,
            value,
            key=key,
            headers=[(name, text.encode()) for name, text in (headers or {}).items()],
        )

    async def send_json(self, topic: str, payload: dict[str, Any], key: str | None = None) -> None:
        await self.send(
            topic, json.dumps(payload, ensure_ascii=False).encode(), key.encode() if key else None
        )
