from __future__ import annotations

from services.runtime.settings import ServiceSettings


class CompensationSettings(ServiceSettings):
    http_port: int = 8003
