"""The triage service.

faststream run services.triage.app:app     (or: python -m services.triage)
"""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from services.runtime.clock import Clock, system_clock
from services.runtime.kit import service_app
from services.triage.service import build
from services.triage.settings import TriageSettings


def create_app(
    settings: TriageSettings | None = None, clock: Clock = system_clock
) -> AsgiFastStream:
    return service_app("triage", settings or TriageSettings(), clock, build)


app = create_app()
