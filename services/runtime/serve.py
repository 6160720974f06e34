"""Run a service's ASGI app with uvicorn on the port from its settings."""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn
from faststream.asgi import AsgiFastStream

from services.runtime.logs import configure_logging
from services.runtime.settings import ServiceSettings


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def serve(app: AsgiFastStream, settings: ServiceSettings) -> None:
    configure_logging(settings.log_level)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then raises the signal again for
    # the handler it found. With the default one the process would end "killed by
    # SIGTERM" (status 143), which looks like a hard kill; this one exits with 0.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, _exit_cleanly)
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
