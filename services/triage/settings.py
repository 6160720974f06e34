from __future__ import annotations

from services.runtime.settings import ServiceSettings


class TriageSettings(ServiceSettings):
    http_port: int = 8002
    # The deadline watcher looks again no sooner than poll and no later than idle seconds.
    watch_poll_seconds: float = 0.5
    watch_idle_seconds: float = 5.0
