"""Settings common to every service; each service subclasses this once."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from services.policy.model import DEFAULT_POLICY_FILE


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    mongodb_uri: str = "mongodb://127.0.0.1:27017/"
    # Each service keeps its own database: <prefix>_<service>.
    mongodb_database_prefix: str = "complaints"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    topic_partitions: int = 3
    # Prepended to every topic name. Empty in production (the contract's names); tests
    # use it to run an isolated pipeline on a shared broker.
    topic_prefix: str = ""
    consumer_group_prefix: str = "complaints"
    policy_file: Path = DEFAULT_POLICY_FILE
    log_level: str = "INFO"
    max_record_bytes: int = 1024 * 1024
    # A DLQ record carries the rejected bytes in base64 (4/3 of the size), plus metadata.
    max_publish_bytes: int = 16 * 1024 * 1024
    # Redelivery back-off while the store or broker is unreachable.
    retry_backoff_max_seconds: float = 5.0
    # A record waiting for a fact from another topic (RetryLater) is dead-lettered as
    # dependency_missing after this long; outages do not count against it.
    dependency_wait_seconds: float = 600.0
    # Consuming: up to this many records per poll and one commit per batch; this many
    # lanes (independent cases) handled at once.
    batch_max_records: int = 500
    batch_timeout_ms: int = 50
    # A fetch returns once this much is there or this long has passed: under load fewer,
    # larger fetches; when idle, a few empty ones a second per subscription.
    fetch_min_bytes: int = 32 * 1024
    fetch_max_wait_ms: int = 50
    batch_lanes: int = 64
    # How long the producer waits to fill a produce request (latency for fewer requests).
    publish_linger_ms: int = 5
    # Send the single-document calls of concurrent handlers as one command each (off only
    # to measure what it saves).
    store_coalescing: bool = True
    # Commit a coalesced batch of writes as one transaction where the store has them: one
    # log sync for the batch on a store that syncs every commit (the local one does).
    store_commit_in_transactions: bool = True
    # Off only to measure what metrics cost (make bench): no FastStream middleware, no
    # store timings, no lag measurement. Business counters stay (they are the product).
    metrics_enabled: bool = True
    lag_poll_seconds: float = 5.0
    # Drills only (make chaos): the service's clock runs this file's number of seconds
    # ahead of the system clock, shared by every process reading it. Unset in production.
    clock_offset_file: Path | None = None


class SchedulerSettings(BaseSettings):
    """A service with a durable scheduler loop (follow-ups, offer expiry)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    # How often the loop looks for due work, and how long a claim is held.
    scheduler_poll_seconds: float = 0.5
    scheduler_lease_seconds: float = 30.0
    scheduler_batch: int = 100
