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
    return service_app("insights", worker_settings(settings or TriageSettings()), clock, build,
                       "triage")  # fmt: skip


def worker_settings(settings: TriageSettings) -> TriageSettings:
    """Triage's settings with the worker's own consuming (big, trailing batches). Its
    own name (consumer group, metrics) and triage's database are set by ``create_app``."""
    return settings.model_copy(update={
        "batch_max_records": settings.insights_batch_max_records,
        "batch_lanes": settings.insights_batch_lanes,
        "fetch_min_bytes": settings.insights_fetch_min_bytes,
        "fetch_max_wait_ms": settings.insights_fetch_max_wait_ms,
    })  # fmt: skip
