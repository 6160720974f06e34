from __future__ import annotations

from services.runtime.settings import SchedulerSettings, ServiceSettings


class CompensationSettings(ServiceSettings, SchedulerSettings):
    http_port: int = 8003
