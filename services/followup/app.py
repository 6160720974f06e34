"""The followup service.

faststream run services.followup.app:app     (or: python -m services.followup)
"""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from services.followup.service import build
from services.followup.settings import FollowupSettings
from services.runtime.clock import Clock, system_clock
from services.runtime.kit import ServiceKit


def create_app(
    settings: FollowupSettings | None = None, clock: Clock = system_clock
) -> AsgiFastStream:
    settings = settings or FollowupSettings()
    kit = ServiceKit("followup", settings, clock)
    build(kit, settings)
    return kit.asgi_app()


app = create_app()
