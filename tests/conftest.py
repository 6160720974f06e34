"""Test session wiring: real servers (see tests/support/infra.py) and the running system."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.support.infra import Infra, provide_infra
from tests.support.kafka import EventReader, Upstream
from tests.support.system import FakeClock, start_services

# The sample complaints `make run` feeds; the tests use them as the channels would send them.
SAMPLES = Path(__file__).resolve().parents[1] / "deploy" / "local" / "samples"
_infra_lines: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def infra(request: pytest.FixtureRequest) -> Iterator[Infra]:
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")

    def say(line: str) -> None:
        if reporter is not None:
            reporter.write_line(f"[infra] {line}")

    with ExitStack() as stack:
        found = provide_infra(stack, say)
        _infra_lines.extend(found.describe())
        for line in found.describe():
            say(line)
        yield found


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _infra_lines:
        terminalreporter.section("real servers used by the integration tests")
        for line in _infra_lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def namespace() -> str:
    """Databases and consumer groups of this session, so runs never see each other's state."""
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
async def system(infra: Infra, namespace: str, clock: FakeClock) -> AsyncIterator[dict[str, Any]]:
    async with AsyncExitStack() as stack:
        yield await start_services(stack, infra, namespace, clock)


@pytest.fixture(scope="session")
async def reader(infra: Infra) -> AsyncIterator[EventReader]:
    events = EventReader(infra.kafka_bootstrap_servers)
    await events.start()
    yield events
    await events.stop()


@pytest.fixture(scope="session")
async def upstream(infra: Infra) -> AsyncIterator[Upstream]:
    producer = Upstream(infra.kafka_bootstrap_servers)
    await producer.start()
    yield producer
    await producer.stop()
