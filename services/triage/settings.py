from __future__ import annotations

from services.runtime.settings import ServiceSettings


class TriageSettings(ServiceSettings):
    http_port: int = 8002
