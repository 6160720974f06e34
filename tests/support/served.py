"""The four services and triage's insights worker in-process but served over HTTP by uvicorn, as in production, with an
injectable clock: /metrics, /healthz and /readyz answer on real ports."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from tests.support.infra import Infra
from tests.support.isolated import FAST
from tests.support.system import FACTORIES, settings_for
from tests.support.wait import eventually

# The ports services.sh uses (triage's insights worker last).
ORDER = ("intake", "triage", "compensation", "followup", "insights")


@asynccontextmanager
async def served(
    infra: Infra,
    namespace: str,
    clock: Any,
    prefix: str,
    port_base: int,
    names: tuple[str, ...] = ORDER,
    **overrides: Any,
) -> AsyncIterator[dict[str, str]]:
    """Yields {service: base URL}; stops every server (gracefully) on exit."""  # fmt: skip
    servers: list[uvicorn.Server] = []
    tasks: list[asyncio.Task[None]] = []
    urls: dict[str, str] = {}
    try:
        for offset, name in enumerate(names):
            port = port_base + offset
            settings = settings_for(name, infra, namespace, topic_prefix=prefix, http_port=port,
                                    **{**FAST, **overrides})  # fmt: skip
            app = FACTORIES[name][1](settings, clock)
            server = uvicorn.Server(uvicorn.Config(
                app, host="127.0.0.1", port=port, log_config=None, access_log=False,
                timeout_graceful_shutdown=30,
            ))  # fmt: skip
            # Signals stay with pytest: the servers are stopped through should_exit.
            server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
            servers.append(server)
            task = asyncio.create_task(server.serve())
            tasks.append(task)

            async def started(server: uvicorn.Server = server, task: Any = task) -> bool:
                if task.done():
                    task.result()
                    raise RuntimeError("a service stopped while starting")
                return bool(server.started)

            await eventually(started, 60, f"{name} to serve HTTP")
            urls[name] = f"http://127.0.0.1:{port}"
        yield urls
    finally:
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
