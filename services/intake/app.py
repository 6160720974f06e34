"""The intake service.

faststream run services.intake.app:app     (or: python -m services.intake)
"""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from services.intake.service import build
from services.intake.settings import IntakeSettings
from services.runtime.clock import Clock, system_clock
from services.runtime.kit import service_app


def create_app(
    settings: IntakeSettings | None = None, clock: Clock = system_clock
) -> AsgiFastStream:
    return service_app("intake", settings or IntakeSettings(), clock, build)


app = create_app()
