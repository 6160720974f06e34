"""The insights worker's app (see worker.py).

python -m services.triage.insights     (or: faststream run services.triage.insights.app:app)
"""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from services.runtime.clock import Clock, system_clock
from services.runtime.kit import service_app
from services.triage.insights.worker import build
from services.triage.settings import TriageSettings


def create_app(
    settings: TriageSettings | None = None, clock: Clock = system_clock
) -> AsgiFastStream:
    # Its own name (consumer group, metrics), triage's database (the cases, the insights).
    return service_app("insights", settings or TriageSettings(), clock, build, "triage")
