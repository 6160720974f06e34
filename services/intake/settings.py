from __future__ import annotations

from services.runtime.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    http_port: int = 8001
    # Identical text from the same sender within this window is the same complaint.
    duplicate_window_minutes: int = 10
