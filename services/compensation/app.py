"""The compensation service.

faststream run services.compensation.app:app     (or: python -m services.compensation)
"""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from services.compensation.service import build
from services.compensation.settings import CompensationSettings
from services.runtime.clock import Clock, system_clock
from services.runtime.kit import service_app


def create_app(
    settings: CompensationSettings | None = None, clock: Clock = system_clock
) -> AsgiFastStream:
    return service_app("compensation", settings or CompensationSettings(), clock, build)


app = create_app()
