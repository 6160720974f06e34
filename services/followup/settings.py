from __future__ import annotations

from services.runtime.settings import ServiceSettings


class FollowupSettings(ServiceSettings):
    http_port: int = 8004
    # How often the scheduler looks for due checks, and how long a claim is held.
    scheduler_poll_seconds: float = 0.5
    scheduler_lease_seconds: float = 30.0
    scheduler_batch: int = 100
