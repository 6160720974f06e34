"""An isolated pipeline on the shared broker: its own topic prefix, namespace and clock."""

from __future__ import annotations

import uuid
from contextlib import AsyncExitStack
from typing import Any

from tests.support.infra import Infra
from tests.support.kafka import OUTBOUND_TOPICS, EventReader, Upstream
from tests.support.system import start_services

FAST = {"watch_poll_seconds": 0.05, "watch_idle_seconds": 0.2, "scheduler_poll_seconds": 0.05}


class Isolated:
    """Some services on prefixed topics, with one clock, a reader and a producer."""

    def __init__(
        self, infra: Infra, namespace: str, clock: Any,
        names: tuple[str, ...] = ("triage",), **settings: Any,
    ) -> None:  # fmt: skip
        self.infra, self.clock, self.names, self.settings = infra, clock, names, settings
        self.prefix = f"{namespace}.{uuid.uuid4().hex[:6]}."
        self.namespace = f"{namespace}w{uuid.uuid4().hex[:4]}"
        self.reader = EventReader(
            infra.kafka_bootstrap_servers,
            tuple(self.prefix + t for t in OUTBOUND_TOPICS),
            infra.kafka_client_options,
        )
        self.upstream = Upstream(infra.kafka_bootstrap_servers, **infra.kafka_client_options)
        self.stack = AsyncExitStack()
        self.apps: dict[str, Any] = {}

    async def __aenter__(self) -> Isolated:
        await self.upstream.start()
        await self.start()
        await self.reader.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()
        await self.reader.stop()
        await self.upstream.stop()

    async def start(self, names: tuple[str, ...] | None = None) -> None:
        self.apps |= await start_services(
            self.stack, self.infra, self.namespace, self.clock, names or self.names,
            **{"topic_prefix": self.prefix, **FAST, **self.settings},
        )  # fmt: skip

    async def stop(self) -> None:
        await self.stack.aclose()
        self.stack = AsyncExitStack()
        self.apps = {}

    async def send(
        self,
        topic: str,
        value: bytes,
        key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        await self.upstream.send(
            self.prefix + topic, value, key=key.encode() if key else None, headers=headers
        )
