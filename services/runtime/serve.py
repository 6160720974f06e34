"""Run a service's ASGI app with uvicorn on the port from its settings."""

from __future__ import annotations

import uvicorn
from faststream.asgi import AsgiFastStream

from services.runtime.logs import configure_logging
from services.runtime.settings import ServiceSettings


def serve(app: AsgiFastStream, settings: ServiceSettings) -> None:
    configure_logging(settings.log_level)
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level.lower(),
        log_config=None,  # keep our JSON-lines handler
        access_log=False,
        # Give in-flight records time to finish and commit on SIGTERM.
        timeout_graceful_shutdown=30,
    )
