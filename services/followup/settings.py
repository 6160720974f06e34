from __future__ import annotations

from services.runtime.settings import SchedulerSettings, ServiceSettings


class FollowupSettings(ServiceSettings, SchedulerSettings):
    http_port: int = 8004
