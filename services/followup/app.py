"""The followup service.

faststream run services.followup.app:app     (or: python -m services.followup)
"""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from services.followup.service import build
from services.followup.settings import FollowupSettings
from services.runtime.clock import Clock, system_clock
from services.runtime.kit import service_app


def create_app(
    settings: FollowupSettings | None = None, clock: Clock = system_clock
) -> AsgiFastStream:
    return service_app("followup", settings or FollowupSettings(), clock, build)


app = create_app()
