from __future__ import annotations

from services.runtime.settings import ServiceSettings


class TriageSettings(ServiceSettings):
    http_port: int = 8002
    # How often the deadline watcher looks for due warnings.
    watch_poll_seconds: float = 0.5
