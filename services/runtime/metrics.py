"""Metrics every service exports, beside FastStream's own Kafka middleware metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pymongo import monitoring


class CommonMetrics:
    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.dlq_records = Counter(
            "complaints_dlq_records_total",
            "Records sent to complaints.dlq, by source topic and reason code",
            ["service", "topic", "reason"],
            registry=registry,
        )
        self.redeliveries = Counter(
            "complaints_redeliveries_total",
            "Records handed back for redelivery after a transient failure",
            ["service", "topic", "error"],
            registry=registry,
        )
        self.store_latency = Histogram(
            "complaints_store_operation_seconds",
            "Latency of store operations",
            ["service", "operation"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.events_published = Counter(
            "complaints_events_published_total",
            "CloudEvents published, by topic and event type",
            ["service", "topic", "type"],
            registry=registry,
        )
        self.ready = Gauge(
            "complaints_service_ready",
            "1 while the service reaches Kafka and the store",
            ["service"],
            registry=registry,
        )
        self.service = service


# Further listeners on every service's store client, added by the embedding process before
# the services start (the tests' query-plan check records every query the services send).
STORE_LISTENERS: list[monitoring.CommandListener] = []


class StoreCommandTimer(monitoring.CommandListener):
    """Every store command's latency, by command name (find, update, findAndModify, …)."""

    def __init__(self, histogram: Histogram, service: str) -> None:
        self.histogram = histogram
        self.service = service

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self.histogram.labels(self.service, event.command_name).observe(event.duration_micros / 1e6)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self.histogram.labels(self.service, f"{event.command_name}_failed").observe(
            event.duration_micros / 1e6
        )
