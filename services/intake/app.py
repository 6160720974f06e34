"""The intake service.

faststream run services.intake.app:app     (or: python -m services.intake)
"""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from services.intake.service import build
from services.intake.settings import IntakeSettings
from services.runtime.clock import Clock, system_clock
from services.runtime.kit import ServiceKit


def create_app(
    settings: IntakeSettings | None = None, clock: Clock = system_clock
) -> AsgiFastStream:
    settings = settings or IntakeSettings()
    kit = ServiceKit("intake", settings, clock)
    build(kit, settings)
    return kit.asgi_app()


app = create_app()
