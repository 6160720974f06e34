from __future__ import annotations

from services.runtime.settings import ServiceSettings


class TriageSettings(ServiceSettings):
    http_port: int = 8002
    # The deadline watcher looks again no sooner than poll and no later than idle seconds.
    watch_poll_seconds: float = 0.5
    watch_idle_seconds: float = 5.0
    # Systemic-issue insights: how often the subsiding check looks for due insights, and
    # how long one instance holds an insight it is checking.
    insights_poll_seconds: float = 1.0
    insights_lease_seconds: float = 30.0
    # How old triage's copy of the open insights may be (a case joining an insight that
    # opened within this interval is counted by the worker but not told in its reasons).
    insights_open_refresh_seconds: float = 5.0
    # The insights worker's CPU niceness, the lowest priority by default: detection is
    # the one job that can wait, so on a saturated machine a burst's decisions come
    # first and detection runs on the CPU they leave (0: the services' priority).
    insights_nice: int = 19
    # The worker takes what piled up, in big batches (a fetch waits for a second's worth):
    # a turn's store work is per key, so the bigger the turn, the less per case. Its
    # lanes must let a whole batch reach the turn together.
    insights_batch_max_records: int = 2000
    insights_batch_lanes: int = 2000
    insights_fetch_min_bytes: int = 1024 * 1024
    insights_fetch_max_wait_ms: int = 1000
