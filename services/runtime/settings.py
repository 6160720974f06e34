"""Settings common to every service; each service subclasses this once."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.policy.model import DEFAULT_POLICY_FILE

KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

# Settings carry passwords: a validation error must never echo what was given.
_CONFIG = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True, hide_input_in_errors=True)


class SettingsError(ValueError):
    """A setting is missing or contradicts another; the message names it, never a secret."""


def _read_secret_file(path: Path, setting: str) -> str:
    try:
        # Kubernetes mounts a Secret's key as a file; editors add a final newline.
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise SettingsError(f"{setting}: cannot read {path}: {exc.strerror}") from None


class ConnectionSettings(BaseSettings):
    """How to reach and authenticate to Kafka and the store (services and CLIs alike).

    Secrets come from the environment or, for Kubernetes Secrets mounted as files, from
    the file a ``*_FILE`` variable names. They are ``SecretStr``: printing the settings
    shows ``**********``. Build clients with services/runtime/connections.py only.
    """

    model_config = _CONFIG

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    # Used with SASL_PLAINTEXT / SASL_SSL.
    kafka_sasl_mechanism: KafkaSaslMechanism = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_username_file: Path | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_sasl_password_file: Path | None = None
    # Used with SSL / SASL_SSL: the CA bundle that signed the brokers' certificates (the
    # system's trust store when unset), and an optional client certificate (mutual TLS).
    kafka_ssl_ca_file: Path | None = None
    kafka_ssl_cert_file: Path | None = None
    kafka_ssl_key_file: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None
    # May carry credentials and TLS options (mongodb://user:pass@host/?tls=true); never
    # logged with its password.
    mongodb_uri: SecretStr = SecretStr("mongodb://127.0.0.1:27017/")
    # The CA bundle (and client certificate + key, one PEM file) for the store's TLS,
    # where the URI cannot name a file (e.g. it comes from a provider's Secret).
    mongodb_tls_ca_file: Path | None = None
    mongodb_tls_certificate_key_file: Path | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ConnectionSettings:
        for name in ("kafka_sasl_username", "kafka_sasl_password"):
            if getattr(self, name) is not None and getattr(self, f"{name}_file") is not None:
                raise SettingsError(f"set {name.upper()} or {name.upper()}_FILE, not both")
        if self.kafka_security_protocol.startswith("SASL_"):
            for name in ("kafka_sasl_username", "kafka_sasl_password"):
                if getattr(self, name) is None and getattr(self, f"{name}_file") is None:
                    raise SettingsError(
                        f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                        f"{name.upper()} or {name.upper()}_FILE"
                    )
        if (self.kafka_ssl_cert_file is None) != (self.kafka_ssl_key_file is None):
            raise SettingsError("KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together")
        return self

    def kafka_sasl_credentials(self) -> tuple[str, str] | None:
        """(username, password) for a SASL protocol, read from a file where so configured."""
        if not self.kafka_security_protocol.startswith("SASL_"):
            return None
        username = self.kafka_sasl_username
        if self.kafka_sasl_username_file is not None:
            username = _read_secret_file(self.kafka_sasl_username_file, "KAFKA_SASL_USERNAME_FILE")
        if self.kafka_sasl_password_file is not None:
            password = _read_secret_file(self.kafka_sasl_password_file, "KAFKA_SASL_PASSWORD_FILE")
        else:
            assert self.kafka_sasl_password is not None  # checked above
            password = self.kafka_sasl_password.get_secret_value()
        assert username is not None
        return username, password


class ServiceSettings(ConnectionSettings):
    model_config = _CONFIG

    # Each service keeps its own database: <prefix>_<service>.
    mongodb_database_prefix: str = "complaints"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    topic_partitions: int = 3
    # Replicas of the topics the services create: 1 suits a single local broker; a managed
    # cluster wants its own (3 on most: with min.insync.replicas=2, one replica cannot
    # take a write with acks=all, and some providers refuse anything but 3).
    topic_replication_factor: int = Field(default=1, ge=1)
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
    # How often the retention loop looks for resolved cases past the policy's retention.
    retention_poll_seconds: float = 60.0
    # Until Kafka and the store answer at start-up (or after wrong credentials are fixed
    # by a restart), the service stays up, not ready, and tries again this often at most.
    connect_retry_max_seconds: float = 30.0
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
