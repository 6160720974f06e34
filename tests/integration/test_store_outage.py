"""The store goes away: the service says so on /metrics by itself (the alert needs
complaints_service_ready at 0 even where nothing polls /readyz, as under `make up`), and
is ready again by itself when the store is back. Found by make chaos: the gauge only
moved when someone asked /readyz."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
import uuid
from collections.abc import AsyncIterator

import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from services.triage.app import create_app
from services.triage.settings import TriageSettings
from tests.support.gate import Gate
from tests.support.infra import Infra
from tests.support.ports import free_port_block
from tests.support.wait import eventually


def _ready_gauge(url: str) -> float | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    for family in text_string_to_metric_families(text):
        if family.name == "complaints_service_ready":
            return next((sample.value for sample in family.samples), None)
    return None


@contextlib.asynccontextmanager
async def serving(settings: TriageSettings) -> AsyncIterator[None]:
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1",
                                           port=settings.http_port, log_config=None))  # fmt: skip
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve())
    try:
        yield
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.timeout(180)
async def test_the_ready_gauge_follows_the_store_without_anyone_asking(
    infra: Infra, namespace: str
) -> None:
    store_address = infra.mongodb_uri.removeprefix("mongodb://").split("/")[0]
    gate = Gate(store_address, opened=True)
    await gate.start()
    run = uuid.uuid4().hex[:6]
    port = free_port_block(1)
    settings = TriageSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        # directConnection: the local store's hello names its own address as a replica set
        # member, and a discovering client would go there, past the gate.
        mongodb_uri=f"mongodb://{gate.address}/?serverSelectionTimeoutMS=2000&directConnection=true",
        mongodb_database_prefix=f"{namespace}gone{run}", consumer_group_prefix=f"{namespace}gone{run}",
        topic_prefix=f"{namespace}.gone{run}.", http_port=port, lag_poll_seconds=1.0,
    )  # fmt: skip
    metrics = f"http://127.0.0.1:{port}/metrics"

    def gauge_is(value: float) -> object:
        async def check() -> bool:
            return await asyncio.to_thread(_ready_gauge, metrics) == value

        return check

    try:
        async with serving(settings):
            # Never a request to /readyz in this test: only /metrics, as Prometheus does.
            await eventually(gauge_is(1.0), 60, "complaints_service_ready 1 while all is up")
            gate.close()
            await eventually(gauge_is(0.0), 60, "complaints_service_ready 0 with the store away")
            gate.open()
            await eventually(gauge_is(1.0), 60, "complaints_service_ready 1 once it is back")
    finally:
        await gate.stop()
