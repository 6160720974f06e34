"""A service that starts while Kafka is away waits for it and then works (found by make
chaos: an instance restarted during a broker restart answered /healthz forever and never
consumed). The broker is reached through a gate that refuses connections until opened:
before the first one (topics are created at start-up) or after it (the consumers start)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import uvicorn

from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from tests.support.gate import Gate
from tests.support.infra import Infra
from tests.support.kafka import EventReader, Upstream
from tests.support.ports import free_port_block
from tests.support.wait import eventually


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


@contextlib.asynccontextmanager
async def serving(settings: IntakeSettings) -> AsyncIterator[asyncio.Task[None]]:
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1",
                                           port=settings.http_port, log_config=None))  # fmt: skip
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve())
    try:
        yield task
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("allow_first", [0, 1], ids=["before-topics", "before-consumers"])
async def test_a_service_started_while_kafka_is_away_waits_and_then_consumes(
    infra: Infra, namespace: str, allow_first: int
) -> None:
    run = uuid.uuid4().hex[:6]
    prefix = f"{namespace}.gate{run}."
    gate = Gate(infra.kafka_bootstrap_servers, allow_first)
    await gate.start()
    port = free_port_block(1)
    settings = IntakeSettings(
        kafka_bootstrap_servers=gate.address, mongodb_uri=infra.mongodb_uri,
        mongodb_database_prefix=f"{namespace}gate{run}", consumer_group_prefix=f"{namespace}gate{run}",
        topic_prefix=prefix, http_port=port, metrics_enabled=False,
    )  # fmt: skip
    reader = EventReader(infra.kafka_bootstrap_servers, (prefix + "cases.opened",))
    upstream = Upstream(infra.kafka_bootstrap_servers)
    try:
        async with serving(settings) as service:

            async def refused_some() -> bool:
                assert not service.done(), "the service gave up while Kafka was away"
                return gate.refused >= 3

            await eventually(refused_some, 60, "the service to try Kafka while it is away")
            assert not service.done()
            gate.open()
            ready = f"http://127.0.0.1:{port}/readyz"

            async def is_ready() -> bool:
                return await asyncio.to_thread(_status, ready) == 200

            await eventually(is_ready, 90, "/readyz once Kafka is back")
            await reader.start()
            await upstream.start()
            form = {"submission_id": f"gate-{run}", "message": "包裹還沒到",
                    "submitted_at": datetime.now(UTC).isoformat()}  # fmt: skip
            await upstream.send(prefix + "complaints.inbound.app", json.dumps(form).encode())
            await reader.wait_for(lambda s: s.data.get("source_ref") == f"gate-{run}", timeout=60)
    finally:
        await gate.stop()
        await reader.stop()
        await upstream.stop()
