from __future__ import annotations

from services.runtime.settings import SchedulerSettings, ServiceSettings


class FollowupSettings(ServiceSettings, SchedulerSettings):
    http_port: int = 8004
    # A resolve that follows an `accept_offer` waits this long for compensation's
    # `accepted` event (normally milliseconds behind); past it the case is resolved with
    # what is known and the late outcome publishes a new revision of the resolved record.
    acceptance_wait_seconds: float = 30.0
