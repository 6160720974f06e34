"""ServiceKit: the broker, the store, metrics and the guarded consume loop of one service.

Every subscriber commits its offset only after the handler returned, i.e. after the
effect is stored and its events are published (NACK_ON_ERROR seeks back on failure).
Handlers never let bad input escape: it is turned into a DLQ record and acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import TopicPartition
from faststream import AckPolicy
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import CollectorRegistry, make_asgi_app
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from services.policy import PolicySource
from services.runtime.batches import Links, by_key, plan_lanes, rewind_points
from services.runtime.clock import Clock, configured_clock, system_clock
from services.runtime.coalescing import CoalescingDatabase, StoreBatcher
from services.runtime.connections import (
    describe_store_failure,
    diagnose_kafka,
    kafka_client_kwargs,
    kafka_security,
    mongo_client,
)
from services.runtime.dlq import rejection_message
from services.runtime.errors import TRANSIENT_ERRORS, InputRejected, RetryLater
from services.runtime.kafka import build_broker, ensure_topics, publish_outbound, retention_ms
from services.runtime.lag import LagMonitor
from services.runtime.logs import quiet_payload_loggers, scrub
from services.runtime.metrics import STORE_LISTENERS, CommonMetrics, StoreCommandTimer
from services.runtime.records import InboundRecord
from services.runtime.settings import ServiceSettings

log = logging.getLogger(__name__)

Document = dict[str, Any]
RecordHandler = Callable[[InboundRecord], Awaitable[None]]
BackgroundLoop = Callable[[], Coroutine[Any, Any, None]]

# Outbound records keyed by a case carry its number into the log line (correlation).
CASE_NUMBER = re.compile(r"CS\d{8}-\d+")

# How long background loops get to finish their current pass on shutdown.
SHUTDOWN_GRACE_SECONDS = 20.0


def _raw_bytes_decoder(message: Any) -> Any:
    # Handlers decode the bytes themselves so that undecodable input reaches the DLQ path.
    return message.body


class ServiceKit:
    def __init__(
        self,
        name: str,
        settings: ServiceSettings,
        clock: Clock = system_clock,
        database_of: str | None = None,
    ) -> None:
        """``database_of``: the service whose database this one uses (its own by default;
        triage's insights worker works on triage's)."""
        quiet_payload_loggers()
        self.name = name
        self.settings = settings
        self.clock = clock
        self.registry = CollectorRegistry()
        self.metrics = CommonMetrics(self.registry, name)
        # Every Kafka client of the service (broker, admin, lag monitor) gets the same
        # security from the settings (services/runtime/connections.py).
        self.kafka: dict[str, Any] = kafka_client_kwargs(settings)
        self.broker: KafkaBroker = build_broker(
            settings.kafka_bootstrap_servers,
            name,
            self.registry if settings.metrics_enabled else None,
            settings.max_publish_bytes,
            settings.publish_linger_ms,
            security=kafka_security(settings),
        )
        timers = (
            [StoreCommandTimer(self.metrics.store_latency, name)]
            if settings.metrics_enabled
            else []
        )
        self.mongo: AsyncMongoClient[Document] = mongo_client(
            settings,
            tz_aware=True,
            serverSelectionTimeoutMS=5000,
            event_listeners=[*timers, *STORE_LISTENERS],
        )
        database = f"{settings.mongodb_database_prefix}_{database_of or name}"
        # Handlers running side by side share round trips (see services/runtime/coalescing.py).
        self.db: AsyncDatabase[Document] = (
            CoalescingDatabase(
                self.mongo,
                database,
                StoreBatcher(self.mongo, transactions=settings.store_commit_in_transactions),
            )
            if settings.store_coalescing
            else self.mongo[database]
        )
        self.policy = PolicySource(settings.policy_file)
        # Per record position: failed tries (back-off) and when it first waited on a
        # dependency (the budget before it is dead-lettered as dependency_missing).
        self._failures: dict[str, int] = {}
        self._waiting_since: dict[str, float] = {}
        self._routes: dict[str, tuple[RecordHandler, Links]] = {}
        self._startup: list[Callable[[], Awaitable[None]]] = []
        self._background: list[BackgroundLoop] = []
        self._tasks: list[asyncio.Task[None]] = []
        # Connected: topics, indexes, broker clients and subscriptions are up. Until then
        # the service is alive but not ready, and says why (not_ready_reason).
        self.connected = False
        self.not_ready_reason: str | None = "starting"
        self._connecting: asyncio.Task[None] | None = None
        # Set on shutdown: background loops finish their current pass, then return.
        self.stopping = asyncio.Event()
        self.lag = LagMonitor(self, settings.lag_poll_seconds)
        if settings.metrics_enabled:
            self.background(self.lag.run)
            # complaints_service_ready must follow an outage even where nothing polls
            # /readyz (make up): the alert on it would never fire otherwise.
            self.background(lambda: self.repeat("readiness", self.ready, settings.lag_poll_seconds))

    # --- consuming -----------------------------------------------------------------

    def subscribe(self, topic: str, handler: RecordHandler, links: Links = by_key) -> None:
        """Handle ``topic``'s records with ``handler``; ``links`` says which stay in order."""
        self._routes[self.settings.topic_prefix + topic] = (handler, links)

    @property
    def group_id(self) -> str:
        return f"{self.settings.consumer_group_prefix}.{self.name}"

    def _consume_subscriptions(self) -> None:
        """One consumer (one group) for all the service's topics, consuming in batches.

        One consumer rather than one per topic: a service's topics share its fetches,
        heartbeats and commits, which is most of what an idle service costs the broker.
        """
        topics = list(self._routes)
        self.lag.subscriptions.extend((topic, self.group_id) for topic in topics)

        @self.broker.subscriber(
            *topics,
            group_id=self.group_id,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            batch=True,
            max_records=self.settings.batch_max_records,
            batch_timeout_ms=self.settings.batch_timeout_ms,
            fetch_min_bytes=self.settings.fetch_min_bytes,
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            decoder=_raw_bytes_decoder,
            title=self.name,
        )
        async def consume(msg: KafkaMessage) -> None:
            records = [InboundRecord.from_consumer_record(raw) for raw in msg.raw_message]
            rewind = await self.process_batch(records)
            # Returning commits every position the consumer holds: rewound partitions
            # commit up to their first unfinished record, which comes again next poll.
            for (name, partition), offset in rewind.items():
                msg.consumer.seek(TopicPartition(name, partition), offset)

    async def process_batch(self, records: list[InboundRecord]) -> dict[tuple[str, int], int]:
        """Run a batch lane by lane; return where each partition must be rewound to."""
        unfinished: list[InboundRecord] = []
        slots = asyncio.Semaphore(self.settings.batch_lanes)

        async def run(lane: list[InboundRecord]) -> None:
            async with slots:
                for index, record in enumerate(lane):
                    if not await self.process(record, self._routes[record.topic][0]):
                        unfinished.extend(lane[index:])
                        return

        def links(record: InboundRecord) -> Iterable[str]:
            return self._routes[record.topic][1](record)

        await asyncio.gather(*(run(lane) for lane in plan_lanes(records, links)))
        if unfinished:
            failures = max(self._failures.get(r.position, 1) for r in unfinished)
            delay = min(0.05 * 2 ** min(failures, 10), self.settings.retry_backoff_max_seconds)
            await asyncio.sleep(delay)  # pacing redelivery during an outage, not synchronisation
        return rewind_points(unfinished)

    async def process(self, record: InboundRecord, handler: RecordHandler) -> bool:
        """Run one record through ``handler``: True when done, False to redeliver it."""
        try:
            try:
                if record.value is not None and len(record.value) > self.settings.max_record_bytes:
                    raise InputRejected(
                        "too_large",
                        f"record of {len(record.value)} bytes exceeds the limit of "
                        f"{self.settings.max_record_bytes} bytes",
                    )
                await handler(record)
            except InputRejected as rejected:
                await self.reject(record, rejected.code, rejected.reason)
            except RetryLater as waiting:
                # A dependency that has not arrived yet gets a time budget; outages of the
                # store or broker do not spend it (they are not the record's fault).
                since = self._waiting_since.setdefault(record.position, time.monotonic())
                if time.monotonic() - since < self.settings.dependency_wait_seconds:
                    return self._redeliver(record, "retry_later")
                await self.reject(record, "dependency_missing", f"gave up waiting: {waiting}")
            except TRANSIENT_ERRORS as outage:
                log.warning(
                    "transient failure, record will be redelivered: %s",
                    type(outage).__name__,
                    extra={
                        "topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                    },
                )
                return self._redeliver(record, type(outage).__name__)
            except Exception as bug:
                # A defect in our code must not stall the partition nor lose the record:
                # it is parked in the DLQ (replayable after the fix) and logged loudly.
                log.exception(
                    "handler failed", extra={"topic": record.topic, "offset": record.offset}
                )
                await self.reject(record, "internal_error", f"{type(bug).__name__}: {bug}")
        except TRANSIENT_ERRORS as outage:  # the DLQ itself out of reach
            return self._redeliver(record, type(outage).__name__)
        self._failures.pop(record.position, None)
        self._waiting_since.pop(record.position, None)
        return True

    def waited_seconds(self, record: InboundRecord) -> float:
        """How long ``record`` has been waiting on a dependency (RetryLater); 0 at first.

        For a handler that would rather go on without a late fact than wait the whole
        ``dependency_wait_seconds`` and be dead-lettered."""
        since = self._waiting_since.get(record.position)
        return 0.0 if since is None else time.monotonic() - since

    def _redeliver(self, record: InboundRecord, error: str) -> bool:
        self._failures[record.position] = self._failures.get(record.position, 0) + 1
        self.metrics.redeliveries.labels(self.name, record.topic, error).inc()
        return False

    async def reject(self, record: InboundRecord, code: str, reason: str) -> None:
        await self.publish([rejection_message(record, reason, self.name, code)])
        self.metrics.dlq_records.labels(self.name, record.topic, code).inc()
        log.warning(
            "record rejected to DLQ",
            extra={
                "topic": record.topic,
                "offset": record.offset,
                "partition": record.partition,
                "reason": code,
            },
        )

    # --- publishing ----------------------------------------------------------------

    async def publish(self, messages: Sequence[dict[str, Any]]) -> None:
        await publish_outbound(self.broker, list(messages), self.settings.topic_prefix)
        for message in messages:
            # Entries stored before they carried their type: read it from the event.
            event_type = message.get("type") or json.loads(message["value"]).get("type", "?")
            self.metrics.events_published.labels(self.name, message["topic"], event_type).inc()
            key = str(message.get("key") or "")
            log.info(
                "event published",
                extra={"event_id": message["id"], "event_type": event_type,
                       "topic": message["topic"],
                       "case_number": key if CASE_NUMBER.fullmatch(key) else None},
            )  # fmt: skip

    @asynccontextmanager
    async def timed(self, operation: str) -> Any:
        if not self.settings.metrics_enabled:
            yield
            return
        with self.metrics.store_latency.labels(self.name, operation).time():
            yield

    # --- lifecycle -----------------------------------------------------------------

    def on_startup(self, hook: Callable[[], Awaitable[None]]) -> None:
        self._startup.append(hook)

    def background(self, loop: BackgroundLoop) -> None:
        """A loop for the service's lifetime (schedulers, watchers).

        It should run ``while not kit.stopping.is_set()`` and wait with ``kit.pause`` so
        that a shutdown lets it finish what it is doing (publish and clear its outbox).
        """
        self._background.append(loop)

    async def repeat(
        self, name: str, one_pass: Callable[[], Awaitable[object]], seconds: float,
        wake: asyncio.Event | None = None,
    ) -> None:  # fmt: skip
        """Run ``one_pass`` every ``seconds`` (sooner when ``wake`` is set) until stopping.

        A failed pass is logged and tried again next time: a scheduler outlives outages.
        """
        while not self.stopping.is_set():
            if wake is not None:
                wake.clear()  # before the pass: a wake-up during it is not lost
            try:
                await one_pass()
            except TRANSIENT_ERRORS as outage:
                log.warning("%s pass failed, retrying: %s", name, type(outage).__name__)
            except Exception:
                log.exception("%s pass failed", name)
            await self.pause(seconds, wake)

    async def pause(self, seconds: float, wake: asyncio.Event | None = None) -> None:
        """Wait ``seconds``, or less if the service is stopping or ``wake`` is set."""
        waiters = [asyncio.ensure_future(self.stopping.wait())]
        if wake is not None:
            waiters.append(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    # --- connecting ----------------------------------------------------------------

    async def connect(self) -> None:
        """Topics, the store's indexes, the broker's clients and subscriptions, then the
        background loops. Raises when Kafka or the store cannot be used."""
        await ensure_topics(
            self.kafka, self.settings.topic_partitions, self.settings.topic_prefix,
            retention_ms(self.policy.current()), self.settings.topic_replication_factor,
        )  # fmt: skip
        for hook in self._startup:
            await hook()
        await self.warm_up_store()
        try:
            await self.broker.start()
        except BaseException:
            with contextlib.suppress(Exception):  # half-started clients; the next try rebuilds
                await self.broker.stop()
            raise
        self.connected, self.not_ready_reason = True, None
        self._tasks = [asyncio.create_task(loop()) for loop in self._background]

    async def start(self) -> None:
        """Connect; if that fails, stay up (alive, not ready), log why and keep trying.

        Wrong credentials or an untrusted certificate then show as a 503 on /readyz with
        the cause in the log, instead of a crash loop or a silent hang.
        """
        try:
            await self.connect()
        except Exception as failure:
            await self._connect_failed(failure, attempt=1)
            self._connecting = asyncio.create_task(self._keep_connecting())

    async def _keep_connecting(self) -> None:
        attempt = 1
        while not self.stopping.is_set():
            await self.pause(min(2.0**attempt, self.settings.connect_retry_max_seconds))
            if self.stopping.is_set():
                return
            attempt += 1
            try:
                await self.connect()
            except Exception as failure:
                await self._connect_failed(failure, attempt)
                continue
            log.info("connected to Kafka and the store after %d attempts", attempt)
            return

    async def _connect_failed(self, failure: Exception, attempt: int) -> None:
        if isinstance(failure, PyMongoError):
            reason = f"store: {describe_store_failure(failure)}"
        else:
            cause = await diagnose_kafka(self.kafka)
            reason = f"Kafka: {cause or f'{type(failure).__name__}: {failure}'}"
        self.connected, self.not_ready_reason = False, reason
        self.metrics.ready.labels(self.name).set(0)
        retry = min(2.0**attempt, self.settings.connect_retry_max_seconds)
        log.error(
            "cannot start (attempt %d), not ready, retrying in %.0f s: %s", attempt, retry, reason,
            extra={"reason": reason},
        )  # fmt: skip

    async def ready(self) -> bool:
        if not self.connected:
            self.metrics.ready.labels(self.name).set(0)
            return False
        try:
            kafka_ok = await self.broker.ping(timeout=2.0)
            await asyncio.wait_for(self.mongo.admin.command("ping"), timeout=2.0)
        except Exception:  # any failure means not ready
            self.metrics.ready.labels(self.name).set(0)
            return False
        self.metrics.ready.labels(self.name).set(1 if kafka_ok else 0)
        return bool(kafka_ok)

    async def warm_up_store(self) -> None:
        """Touch every collection once before taking records: a store that has just
        restarted on a large data set answers its first read of a collection seconds later
        (the local one: 2-12 s at 100k documents), and that wait belongs to start-up, not
        to the first batch."""
        for name in await self.db.list_collection_names():
            await self.db[name].find_one({"_id": None}, {"_id": 1})

    def asgi_app(self) -> AsgiFastStream:
        kit = self
        self._consume_subscriptions()

        @get(include_in_schema=False)
        async def healthz(scope: Any) -> AsgiResponse:
            return AsgiResponse(b'{"status":"alive"}', 200, {"content-type": "application/json"})

        @get(include_in_schema=False)
        async def readyz(scope: Any) -> AsgiResponse:
            if await kit.ready():
                return AsgiResponse(
                    b'{"status":"ready"}', 200, {"content-type": "application/json"}
                )
            body = {"status": "not ready", "reason": scrub(kit.not_ready_reason or "")}
            return AsgiResponse(
                json.dumps(body).encode(), 503, {"content-type": "application/json"}
            )

        async def shutdown() -> None:
            kit.stopping.set()
            if kit._connecting is not None:
                kit._connecting.cancel()
                await asyncio.gather(kit._connecting, return_exceptions=True)
            if kit._tasks:
                _, late = await asyncio.wait(kit._tasks, timeout=SHUTDOWN_GRACE_SECONDS)
                for task in late:  # stuck on an unreachable server: give up on it
                    task.cancel()
                await asyncio.gather(*kit._tasks, return_exceptions=True)

        async def close_store() -> None:
            await kit.mongo.close()

        return ServiceApp(
            self,
            asgi_routes=[
                ("/metrics", make_asgi_app(self.registry)),
                ("/healthz", healthz),
                ("/readyz", readyz),
            ],
            on_shutdown=[shutdown],
            after_shutdown=[close_store],
        )


class ServiceApp(AsgiFastStream):
    """FastStream's ASGI app, with the broker started by the kit: connecting may fail
    (unreachable, wrong credentials) and the service then stays up, not ready."""

    def __init__(self, kit: ServiceKit, **options: Any) -> None:
        super().__init__(kit.broker, **options)
        self.kit = kit

    async def _start_broker(self) -> None:
        await self.kit.start()


def service_app(
    name: str,
    settings: ServiceSettings,
    clock: Clock,
    build: Callable[[ServiceKit, Any], object],
    database_of: str | None = None,
) -> AsgiFastStream:
    """One service's ASGI app: a kit, the service's handlers registered on it by ``build``."""
    kit = ServiceKit(
        name, settings, configured_clock(settings.clock_offset_file, clock), database_of
    )
    build(kit, settings)
    return kit.asgi_app()
